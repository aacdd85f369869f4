#pragma once
// Sync status and health, from the desired state, what the nodes run and the plan between them:
//   Missing    declared, not found on any node
//   Orphaned   gitvirt's, not declared any more
//   OutOfSync  the plan would change it, or a change is pending
//   Failed     its last job step failed and MARK_FAILED kept it as it was
//   Synced     otherwise
// Health judges the observed power state against the desired one (a VM declared Stopped that
// is stopped is Healthy): Healthy, Progressing (a job is working on it), Degraded, Unknown.
// A VM declared Running with a `readiness` block is Ready (and Healthy) only when its
// readiness report says so; until then it is Progressing. Without a report (nobody probed)
// it is not Ready either. The address is the report's, else the first static address of its
// cloud-init ipConfigs.
// Pure functions of their inputs.

#include <map>
#include <set>
#include <string>
#include <vector>

#include "gitvirt/core/config.h"
#include "gitvirt/core/model.h"
#include "gitvirt/core/observed.h"
#include "gitvirt/core/plan.h"
#include "gitvirt/engine/readiness.h"
#include "gitvirt/core/status.h"

namespace gitvirt {

struct StatusInputs {
  const DesiredState* desired = nullptr;   // null when the manifests could not be read
  const ObservedState* observed = nullptr;
  const Plan* plan = nullptr;              // null when no plan could be made
  std::set<std::string> failed;            // "VirtualMachine/x" marked Failed by a job
  std::set<std::string> in_progress;       // targets a running job is working on
  std::map<std::string, ReadinessReport> guests;  // running VMs by name (ProbeGuests)
};

std::vector<ResourceStatus> BuildResourceStatuses(const StatusInputs& inputs);
std::vector<NodeStatus> BuildNodeStatuses(const ControllerConfig& config, const ObservedState& observed);
std::vector<ClusterStatus> BuildClusterStatuses(const DesiredState& desired,
                                                const std::vector<ResourceStatus>& resources);

}  // namespace gitvirt
