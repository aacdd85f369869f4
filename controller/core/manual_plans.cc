#include "gitvirt/core/manual_plans.h"

#include <algorithm>
#include <map>
#include <set>

#include "gitvirt/core/suggest.h"
#include "gitvirt/core/templating.h"
#include "gitvirt/core/time.h"
#include "gitvirt/core/timezone.h"

namespace gitvirt {

namespace {

std::vector<std::string> VmNames(const ObservedState& observed, bool owned_only) {
  std::vector<std::string> names;
  for (const ObservedNode& n : observed.nodes) {
    for (const ObservedVm& vm : n.vms) {
      if (!owned_only || vm.Owned()) names.push_back(vm.name);
    }
  }
  return names;
}

}  // namespace

Result<const ObservedVm*> FindVm(const ObservedState& observed, const std::string& name) {
  auto found = observed.FindVms(name);
  if (found.empty()) return std::unexpected(NotFoundError("VirtualMachine", name, VmNames(observed, false)));
  return found.front();
}

Result<const ObservedVm*> FindOwnedVm(const ObservedState& observed, const std::string& name) {
  auto found = observed.FindVms(name);
  for (const ObservedVm* vm : found) {
    if (vm->Owned()) return vm;
  }
  if (found.empty()) return std::unexpected(NotFoundError("VirtualMachine", name, VmNames(observed, true)));
  return Fail(ErrorCode::kFailedPrecondition, name + " on " + found.front()->node +
                                                  " is not gitvirt's (gitvirt never touches domains it does not own)");
}

namespace {

// kNotFound for a snapshot the VM does not have, offering the closest of its snapshots.
Result<const ObservedSnapshot*> FindSnapshotOf(const ObservedVm& vm, const std::string& name) {
  std::vector<std::string> names;
  for (const ObservedSnapshot& s : vm.snapshots) {
    if (s.name == name) return &s;
    names.push_back(s.name);
  }
  return std::unexpected(NotFoundError("Snapshot", name, names, " of " + vm.name));
}

Action OnVm(const ObservedVm& vm, ActionType type, std::string id, std::string reason) {
  Action a;
  a.id = std::move(id);
  a.type = type;
  a.node = vm.node;
  a.target = ResourceRef{Kind::kVirtualMachine, vm.name};
  a.reason = std::move(reason);
  return a;
}

}  // namespace

Result<Plan> PlanSnapshotCreate(const ObservedState& observed, const SnapshotCreateRequest& request) {
  auto vm = FindOwnedVm(observed, request.vm);
  if (!vm) return std::unexpected(vm.error());
  std::string name = request.name;
  if (name.empty()) {
    auto rendered = RenderSnapshotName("manual-{datetime}", (*vm)->name, "", request.now, UtcZone());
    if (!rendered) return std::unexpected(rendered.error());
    name = *rendered;
  }
  for (const ObservedSnapshot& s : (*vm)->snapshots) {
    if (s.name == name) {
      return Fail(ErrorCode::kAlreadyExists, (*vm)->name + " already has a snapshot named \"" + name + "\" (taken " +
                                                 FormatTime(s.created) + "); choose another name");
    }
  }
  Plan plan;
  plan.source = SourceRef::Command("snapshot create");
  Action a = OnVm(**vm, ActionType::kSnapshot, "snapshot/" + (*vm)->name + "/" + name, "snapshot by hand");
  a.snapshot = name;
  a.params = SnapshotParams{request.description, request.memory, request.quiesce};
  plan.actions.push_back(std::move(a));
  return plan;
}

Result<Plan> PlanSnapshotDelete(const ObservedState& observed, const std::string& vm_name, const std::string& snapshot) {
  auto vm = FindOwnedVm(observed, vm_name);
  if (!vm) return std::unexpected(vm.error());
  auto found = FindSnapshotOf(**vm, snapshot);
  if (!found) return std::unexpected(found.error());
  const ObservedSnapshot* snap = *found;
  Plan plan;
  plan.source = SourceRef::Command("snapshot delete");
  Action a = OnVm(**vm, ActionType::kSnapshotDelete, "snapshot-delete/" + (*vm)->name + "/" + snapshot, "deleted by hand");
  a.snapshot = snapshot;
  a.policy = snap->policy;
  plan.actions.push_back(std::move(a));
  return plan;
}

Result<Plan> PlanSnapshotRevert(const ObservedState& observed, const std::string& vm_name, const std::string& snapshot) {
  auto vm = FindOwnedVm(observed, vm_name);
  if (!vm) return std::unexpected(vm.error());
  if (auto found = FindSnapshotOf(**vm, snapshot); !found) return std::unexpected(found.error());
  Plan plan;
  plan.source = SourceRef::Command("snapshot restore");
  Action a = OnVm(**vm, ActionType::kSnapshotRevert, "snapshot-revert/" + (*vm)->name + "/" + snapshot, "revert by hand");
  a.snapshot = snapshot;
  a.power_before = (*vm)->power;
  plan.actions.push_back(std::move(a));
  return plan;
}

Result<PowerPlan> PlanPower(const ObservedState& observed, const PowerRequest& request) {
  PowerPlan out;
  if ((request.wait_ready || !request.max_unavailable.empty()) && request.operation != "reboot") {
    return Fail(ErrorCode::kInvalidArgument, "--wait-ready and --max-unavailable are for `power reboot`");
  }
  if (!request.max_unavailable.empty() && !ResolveMaxUnavailable(request.max_unavailable, 100)) {
    return Fail(ErrorCode::kInvalidArgument, "--max-unavailable: expected a number of at least 1 (2) or a "
                                             "percentage from 1% to 100% (25%), got \"" + request.max_unavailable + "\"");
  }
  std::vector<std::pair<std::string, std::string>> chains;  // (first, last) action of each VM, by VM name
  out.plan.source = SourceRef::Command("power " + request.operation +
                                       (request.selector_text.empty() ? "" : " -l " + request.selector_text));
  for (const std::string& name : request.names) {
    if (auto found = FindOwnedVm(observed, name); !found) return std::unexpected(found.error());
  }
  std::set<std::string> seen;
  for (const ObservedNode& node : observed.nodes) {
    for (const ObservedVm& vm : node.vms) {
      if (!vm.Owned() || !seen.insert(vm.name).second) continue;
      const bool named = std::find(request.names.begin(), request.names.end(), vm.name) != request.names.end();
      if (!named && (request.selector_text.empty() || !request.selector.Matches(vm.owner->labels))) continue;
      std::vector<ActionType> steps;
      bool in_state = false;
      if (request.operation == "start") {
        in_state = vm.power == PowerState::kRunning;
        steps = {vm.power == PowerState::kPaused ? ActionType::kResume : ActionType::kStart};
      } else if (request.operation == "stop") {
        in_state = vm.power == PowerState::kStopped;
        steps = {ActionType::kStop};
      } else if (request.operation == "shutdown") {
        in_state = vm.power == PowerState::kStopped;
        steps = {ActionType::kShutdown};
      } else if (request.operation == "reboot") {
        in_state = vm.power != PowerState::kRunning;
        if (request.force) {
          steps = {ActionType::kStop, ActionType::kStart};
        } else if (request.wait_ready) {
          // A guest reboot returns at once, while the VM still looks Ready: down and up again,
          // so that the start can wait for readiness.
          steps = {ActionType::kShutdown, ActionType::kStart};
        } else {
          steps = {ActionType::kReboot};
        }
      } else {
        return Fail(ErrorCode::kInvalidArgument, "unknown power operation " + request.operation);
      }
      if (in_state && request.skip_if_in_state) {
        out.skipped.push_back(vm.name + ": " + std::string(EnumName(vm.power)) + " already");
        continue;
      }
      std::string previous, first;
      for (ActionType type : steps) {
        Action a = OnVm(vm, type, std::string(EnumName(type)) + "/" + vm.name,
                        "power " + request.operation + (request.force ? " --force" : ""));
        a.node = node.name;
        a.power_before = vm.power;
        if (type == ActionType::kShutdown && request.force) a.params = ShutdownParams{true};
        if (!previous.empty()) a.depends_on = {previous};
        if (first.empty()) first = a.id;
        previous = a.id;
        out.plan.actions.push_back(std::move(a));
      }
      chains.emplace_back(first, previous);
    }
  }
  if (!request.max_unavailable.empty() && !chains.empty()) {
    // A rolling reboot: VM i goes down once VM i - N is back (and Ready, with --wait-ready).
    const auto limit = static_cast<std::size_t>(
        ResolveMaxUnavailable(request.max_unavailable, static_cast<int>(chains.size())).value_or(1));
    std::sort(chains.begin(), chains.end());
    std::map<std::string, Action*> by_id;
    for (Action& a : out.plan.actions) by_id[a.id] = &a;
    for (std::size_t i = limit; i < chains.size(); ++i) by_id.at(chains[i].first)->depends_on.push_back(chains[i - limit].second);
  }
  return out;
}

}  // namespace gitvirt
