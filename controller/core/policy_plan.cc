#include "gitvirt/core/policy_plan.h"

#include <algorithm>
#include <cstdio>
#include <set>

#include "gitvirt/core/selector.h"
#include "gitvirt/core/templating.h"

namespace gitvirt {
namespace {

std::string UtcStamp(TimePoint t) {
  const auto day = std::chrono::floor<std::chrono::days>(t);
  const std::chrono::year_month_day ymd{day};
  const std::chrono::hh_mm_ss<std::chrono::seconds> tod{t - day};
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d%02u%02uT%02d%02d%02dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(tod.hours().count()), static_cast<int>(tod.minutes().count()),
                static_cast<int>(tod.seconds().count()));
  return buf;
}


// The first of `name`, `name-2`, `name-3`... not in `taken`.
std::string Unique(const std::string& name, const std::set<std::string>& taken) {
  if (!taken.contains(name)) return name;
  for (int i = 2;; ++i) {
    std::string candidate = name + "-" + std::to_string(i);
    if (!taken.contains(candidate)) return candidate;
  }
}

// Observed VMs gitvirt owns, by name (the first one found when a VM shows on two nodes).
std::map<std::string, const ObservedVm*> OwnedVms(const ObservedState& observed) {
  std::map<std::string, const ObservedVm*> out;
  for (const ObservedNode& node : observed.nodes) {
    if (!node.reachable) continue;
    for (const ObservedVm& vm : node.vms) {
      if (vm.Owned()) out.emplace(vm.name, &vm);
    }
  }
  return out;
}

}  // namespace

Result<std::vector<PolicyVm>> SelectPolicyVms(const Selector& selector, const DesiredState& desired,
                                              const ObservedState& observed, std::vector<Diagnostic>* warnings) {
  auto compiled = CompiledSelector::Compile(selector);
  if (!compiled) return std::unexpected(compiled.error().Wrap("selector"));
  const auto owned = OwnedVms(observed);
  std::vector<PolicyVm> out;
  for (const VirtualMachine& vm : desired.vms) {
    if (!compiled->Matches(vm.meta.name, vm.meta.labels, vm.meta.tags)) continue;
    auto it = owned.find(vm.meta.name);
    if (it == owned.end()) {
      if (warnings != nullptr) {
        warnings->push_back(Diagnostic{Severity::kWarning, vm.meta.location, "",
                                       "VirtualMachine/" + vm.meta.name + " is selected but no reachable node runs it"});
      }
      continue;
    }
    out.push_back(PolicyVm{&vm, it->second});
  }
  std::sort(out.begin(), out.end(), [](const PolicyVm& a, const PolicyVm& b) { return a.vm->meta.name < b.vm->meta.name; });
  return out;
}

Result<Plan> PlanSnapshotPolicyRun(const SnapshotPolicy& policy, const DesiredState& desired,
                                   const ObservedState& observed, TimePoint now, const TimeZone& tz,
                                   const std::string& revision) {
  const std::string& name = policy.meta.name;
  Plan plan;
  plan.revision = revision;
  plan.source = SourceRef::Policy("SnapshotPolicy/" + name);
  auto selected = SelectPolicyVms(policy.spec.selector, desired, observed, &plan.warnings);
  if (!selected) return std::unexpected(selected.error().Wrap("SnapshotPolicy/" + name));

  // The new snapshots count as the newest, even when the node's clock is ahead of ours.
  auto newest_of = [](const ObservedVm& vm, TimePoint now) {
    TimePoint newest = now;
    for (const ObservedSnapshot& s : vm.snapshots) newest = std::max(newest, s.created + std::chrono::seconds(1));
    return newest;
  };
  std::vector<RetentionItem> items;
  std::map<std::string, std::pair<std::string, std::string>> where;  // item id -> (vm, node)
  std::set<std::string> fresh;                                        // ids of this run's snapshots
  std::map<std::string, std::string> create_of;                       // vm -> its snapshot action
  for (const PolicyVm& p : *selected) {
    const std::string& vm = p.vm->meta.name;
    auto rendered = RenderSnapshotName(policy.spec.name_pattern, vm, name, now, tz);
    if (!rendered) return std::unexpected(rendered.error().Wrap("SnapshotPolicy/" + name + ": namePattern"));
    std::set<std::string> taken;
    for (const ObservedSnapshot& s : p.observed->snapshots) taken.insert(s.name);
    const std::string snapshot = Unique(*rendered, taken);
    Action a;
    a.id = "snapshot/" + vm + "/" + snapshot;
    a.type = ActionType::kSnapshot;
    a.node = p.observed->node;
    a.target = ResourceRef{Kind::kVirtualMachine, vm};
    a.reason = "snapshot " + snapshot + " (SnapshotPolicy " + name + ")";
    a.snapshot = snapshot;
    a.policy = name;
    a.stage = 0;
    a.params = SnapshotParams{policy.spec.description, policy.spec.memory, policy.spec.quiesce};
    create_of[vm] = a.id;
    plan.actions.push_back(std::move(a));
    const std::string id = vm + "/" + snapshot;
    items.push_back(RetentionItem{id, vm, name, newest_of(*p.observed, now), false});
    fresh.insert(id);
    where[id] = {vm, p.observed->node};
  }
  // Every owned VM holding snapshots of this policy, selected now or not.
  std::set<std::string> seen;
  for (const ObservedNode& node : observed.nodes) {
    if (!node.reachable) continue;
    for (const ObservedVm& vm : node.vms) {
      if (!vm.Owned() || !seen.insert(vm.name).second) continue;
      for (const ObservedSnapshot& s : vm.snapshots) {
        if (s.policy != name) continue;
        const std::string id = vm.name + "/" + s.name;
        items.push_back(RetentionItem{id, vm.name, name, s.created, false});
        where[id] = {vm.name, node.name};
      }
    }
  }
  for (const std::string& id : SelectForDeletion(items, name, policy.spec.retention, now)) {
    if (fresh.contains(id)) continue;  // keep: 0 never deletes what this run makes
    const auto& [vm, node] = where.at(id);
    const std::string snapshot = id.substr(vm.size() + 1);
    Action d;
    d.id = "snapshot-delete/" + vm + "/" + snapshot;
    d.type = ActionType::kSnapshotDelete;
    d.node = node;
    d.target = ResourceRef{Kind::kVirtualMachine, vm};
    d.reason = "snapshot " + snapshot + ": retention of SnapshotPolicy " + name;
    d.snapshot = snapshot;
    d.policy = name;
    d.stage = 1;
    if (auto it = create_of.find(vm); it != create_of.end()) d.depends_on = {it->second};
    plan.actions.push_back(std::move(d));
  }
  return plan;
}

std::string MakeBackupId(const std::string& vm, TimePoint now, const std::vector<CatalogBackup>& existing) {
  std::set<std::string> taken;
  for (const CatalogBackup& b : existing) taken.insert(b.id);
  return Unique(vm + "-" + UtcStamp(now), taken);
}

Action MakeBackupAction(const VirtualMachine& vm, const std::string& node, const BackupPolicySpec& spec,
                        const std::string& policy, const std::string& id, TimePoint now) {
  Action a;
  a.id = "backup/" + vm.meta.name + "/" + id;
  a.type = ActionType::kBackup;
  a.node = node;
  a.target = ResourceRef{Kind::kVirtualMachine, vm.meta.name};
  a.reason = "backup " + id + " into " + spec.target.directory + "/" + vm.meta.name + "/" + id + " (" +
             (policy.empty() ? std::string("by hand") : "BackupPolicy " + policy) + ")";
  a.policy = policy;
  a.vm = vm;
  const int level = spec.compression_level.value_or(spec.compression == Compression::kGzip ? 6 : 3);
  a.params = BackupParams{id,
                          spec.target.directory + "/" + vm.meta.name + "/" + id,
                          spec.target.directory,
                          spec.mode,
                          spec.compression,
                          level,
                          spec.verify,
                          spec.protect,
                          spec.description,
                          static_cast<std::int64_t>(now.time_since_epoch().count())};
  return a;
}

Result<Plan> PlanBackupPolicyRun(const BackupPolicy& policy, const DesiredState& desired,
                                 const ObservedState& observed, const std::vector<CatalogBackup>& catalog,
                                 TimePoint now, const std::string& revision) {
  const std::string& name = policy.meta.name;
  Plan plan;
  plan.revision = revision;
  plan.source = SourceRef::Policy("BackupPolicy/" + name);
  auto selected = SelectPolicyVms(policy.spec.selector, desired, observed, &plan.warnings);
  if (!selected) return std::unexpected(selected.error().Wrap("BackupPolicy/" + name));

  std::vector<RetentionItem> items;
  std::set<std::string> fresh;
  std::map<std::string, const CatalogBackup*> by_id;
  std::map<std::string, std::string> create_of;
  std::vector<CatalogBackup> ids = catalog;
  for (const PolicyVm& p : *selected) {
    const std::string id = MakeBackupId(p.vm->meta.name, now, ids);
    ids.push_back(CatalogBackup{id, p.vm->meta.name, "", name, "", now, false});
    Action a = MakeBackupAction(*p.vm, p.observed->node, policy.spec, name, id, now);
    create_of[p.vm->meta.name] = a.id;
    plan.actions.push_back(std::move(a));
    TimePoint created = now;  // counted as the newest
    for (const CatalogBackup& b : catalog) {
      if (b.vm == p.vm->meta.name) created = std::max(created, b.created + std::chrono::seconds(1));
    }
    items.push_back(RetentionItem{id, p.vm->meta.name, name, created, policy.spec.protect});
    fresh.insert(id);
  }
  for (const CatalogBackup& b : catalog) {
    if (b.policy != name) continue;
    items.push_back(RetentionItem{b.id, b.vm, b.policy, b.created, b.is_protected});
    by_id[b.id] = &b;
  }
  for (const std::string& id : SelectForDeletion(items, name, policy.spec.retention, now)) {
    if (fresh.contains(id)) continue;
    const CatalogBackup& b = *by_id.at(id);
    Action d;
    d.id = "backup-delete/" + b.id;
    d.type = ActionType::kBackupDelete;
    d.node = "";  // runs on the controller: the backup is a directory here
    d.target = ResourceRef{Kind::kVirtualMachine, b.vm};
    d.reason = "backup " + b.id + ": retention of BackupPolicy " + name;
    d.policy = name;
    d.stage = 1;
    d.params = BackupDeleteParams{b.id, b.location, false};
    if (auto it = create_of.find(b.vm); it != create_of.end()) d.depends_on = {it->second};
    plan.actions.push_back(std::move(d));
  }
  return plan;
}

}  // namespace gitvirt
