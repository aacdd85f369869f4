#pragma once
// Plans for changes made by hand (`gitvirt snapshot create|delete|restore`, `gitvirt power`):
// one-off jobs built from the observed state alone, so they print, confirm and run like any
// plan. Pure: values in, values out.
//
// They act on gitvirt's VMs only: a name no node runs is kNotFound (`VirtualMachine "x" not
// found (did you mean "y"?)`), a domain gitvirt does not own is kFailedPrecondition, each with
// the reason in words. Pre-flight: a snapshot name the VM already has is kAlreadyExists.

#include <string>
#include <vector>

#include "gitvirt/core/error.h"
#include "gitvirt/core/observed.h"
#include "gitvirt/core/plan.h"
#include "gitvirt/core/selector.h"

namespace gitvirt {

// The domain of that name on any node; kNotFound naming the closest names otherwise.
Result<const ObservedVm*> FindVm(const ObservedState& observed, const std::string& name);
// gitvirt's domain of that name (on any node): kNotFound (with the closest of gitvirt's names)
// when no node runs it, kFailedPrecondition when it is not gitvirt's.
Result<const ObservedVm*> FindOwnedVm(const ObservedState& observed, const std::string& name);

struct SnapshotCreateRequest {
  std::string vm;
  std::string name;  // "" = manual-<datetime> (UTC)
  std::string description;
  bool memory = false;
  bool quiesce = false;
  TimePoint now{};
};
Result<Plan> PlanSnapshotCreate(const ObservedState& observed, const SnapshotCreateRequest& request);
// The action's `policy` names the policy that made the snapshot ("" by hand).
Result<Plan> PlanSnapshotDelete(const ObservedState& observed, const std::string& vm, const std::string& snapshot);
Result<Plan> PlanSnapshotRevert(const ObservedState& observed, const std::string& vm, const std::string& snapshot);

// `gitvirt power OPERATION`: every gitvirt VM the selector matches or that is named (a name no
// node runs as gitvirt's is kNotFound).
struct PowerRequest {
  std::string operation;  // start | stop | shutdown | reboot
  std::string selector_text;  // as given, for the plan's source
  LabelSelector selector;
  std::vector<std::string> names;
  bool force = false;            // shutdown: force off after the timeout; reboot: off, then start
  bool skip_if_in_state = true;  // leave out VMs already in the wanted state
  // reboot: each VM is shut down (off with force) and started, and its start waits until the
  // VM is Ready again (its readiness block; a VM without one is Ready once running).
  bool wait_ready = false;
  // reboot: at most this many VMs down at once ("2", "25%" of the VMs chosen); each waits for
  // the one maxUnavailable before it (by name) to be back. Empty: as many as --parallel allows.
  std::string max_unavailable;
};
struct PowerPlan {
  Plan plan;
  std::vector<std::string> skipped;  // "web-01: Running already"
};
Result<PowerPlan> PlanPower(const ObservedState& observed, const PowerRequest& request);

}  // namespace gitvirt
