#pragma once
// What `get`, `describe` and `diff` show: the observed state and, when the manifests can be read,
// the desired state and the plan between them, reduced to resource, node and cluster statuses
// (the values the status API serves). Read-only: no lock, no journal write.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gitvirt/core/history.h"
#include "gitvirt/core/observed.h"
#include "gitvirt/core/plan.h"
#include "gitvirt/core/status.h"
#include "gitvirt/engine/desired_source.h"

namespace gitvirt {

class Session;

struct FleetView {
  std::optional<Desired> desired;  // nullopt: no source, or it could not be read (a notice said so)
  ObservedState observed;
  std::optional<Plan> plan;
  std::vector<ResourceStatus> resources;
  std::vector<NodeStatus> nodes;
  std::vector<ClusterStatus> clusters;
};

// One migration of a VM, from its journaled step: when, from where to where, how, and how it
// ended (a migration a rollback undid says so).
struct MigrationRecord {
  std::optional<TimePoint> started;
  std::string from;
  std::string to;
  std::string mode;
  bool simulated = false;
  std::optional<std::uint64_t> bytes;
  StepStatus status = StepStatus::kPending;
  std::string job;
  std::string error;
};

// Everything `describe vm` shows about one VM.
struct VmDetails {
  std::string name;
  const ResourceStatus* resource = nullptr;  // in the manifests (points into the FleetView)
  const ObservedVm* observed = nullptr;      // on a node (points into the FleetView)
  // For a VM gitvirt owns: its snapshots (when the node answered), its last five migrations
  // (when the journal could be read), and the last job that applied it with this VM's events.
  std::optional<std::vector<ObservedSnapshot>> snapshots;
  std::optional<std::vector<MigrationRecord>> migrations;
  std::optional<JobRecord> last_job;
  std::vector<EventRecord> last_job_events;
};

// kNotFound (with the closest names) when neither the manifests nor any node has a VM of that
// name.
Result<VmDetails> DescribeVm(Session& session, const FleetView& view, const std::string& name);

// Everything `describe node` shows about one node of the configuration.
struct NodeDetails {
  const NodeStatus* status = nullptr;    // points into the FleetView
  const ObservedNode* observed = nullptr;  // null when the node was not observed
  std::vector<const ResourceStatus*> vms;  // the manifests' VMs placed on it
};
// kNotFound (with the closest names) for a node the configuration does not list.
Result<NodeDetails> DescribeNode(const FleetView& view, const std::string& name);

// `get TYPE NAME`: kNotFound (with the closest names) when the view has nothing of that type
// and name. `type`: VirtualMachine (declared or on a node), Node, Image, Cluster, Snapshot (by
// snapshot name), Backup (by id, from the catalog).
Result<void> FindInView(Session& session, const FleetView& view, std::string_view type, const std::string& name);

// Reads the selection's source (or the configuration's, if it has one), observes every node,
// plans, and asks the running VMs' guests for their addresses and readiness. Fails when a source
// given on the command line cannot be read; the configuration's own source only gets a notice.
Result<FleetView> GatherFleetView(Session& session, const SourceSelection& selection);

}  // namespace gitvirt
