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

// kNotFound when neither the manifests nor any node has a VM of that name.
Result<VmDetails> DescribeVm(Session& session, const FleetView& view, const std::string& name);

// Reads the selection's source (or the configuration's, if it has one), observes every node,
// plans, and asks the running VMs' guests for their addresses and readiness.
FleetView GatherFleetView(Session& session, const SourceSelection& selection);

}  // namespace gitvirt
