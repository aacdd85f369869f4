#include "gitvirt/engine/status_builder.h"

#include <algorithm>
#include <map>

#include "gitvirt/core/json.h"

namespace gitvirt {
namespace {

Health VmHealth(const VirtualMachine* desired, const ObservedVm* observed, bool in_progress) {
  if (in_progress) return Health::kProgressing;
  if (observed == nullptr) return desired != nullptr ? Health::kDegraded : Health::kUnknown;
  if (desired == nullptr) return Health::kUnknown;
  return observed->power == desired->spec.power_state ? Health::kHealthy : Health::kDegraded;
}

std::string PrimaryAddress(const VmSpec& spec) {
  if (!spec.cloud_init) return "";
  for (const IpConfig& ip : spec.cloud_init->ip_configs) {
    if (ip.v4 == IpMode::kStatic) return ip.v4_address.substr(0, ip.v4_address.find('/'));
  }
  return "";
}

// Ready: the power state matches, and, for a VM that should run and has a readiness block, its
// checks pass. Lowers `s.health` to Progressing while the checks do not pass yet.
Condition ReadyCondition(const VirtualMachine& vm, const ObservedVm* o, const ReadinessReport* report,
                         ResourceStatus& s) {
  const std::string power = o == nullptr ? "not found on any node"
                                         : "observed " + s.power + ", desired " +
                                               std::string(EnumName(vm.spec.power_state));
  if (s.health != Health::kHealthy) return Condition{"Ready", false, "PowerStateDiffers", power, {}};
  const bool checks = vm.spec.readiness.Enabled() && vm.spec.power_state == PowerState::kRunning;
  if (!checks) return Condition{"Ready", true, "PowerStateMatches", power, {}};
  if (report == nullptr) {
    s.health = Health::kProgressing;
    return Condition{"Ready", false, "ReadinessUnknown", "readiness (" + DescribeReadiness(vm.spec.readiness) +
                                                             ") has not been checked", {}};
  }
  if (!report->checked) return Condition{"Ready", true, "ReadinessNotCheckable", report->message, {}};
  if (report->ready) return Condition{"Ready", true, "ReadinessPassed", report->message, {}};
  s.health = Health::kProgressing;
  return Condition{"Ready", false, "ReadinessPending", report->message, {}};
}

}  // namespace

std::vector<ResourceStatus> BuildResourceStatuses(const StatusInputs& in) {
  std::vector<ResourceStatus> out;
  std::map<std::string, const ObservedVm*> observed;  // owned VMs by name
  if (in.observed != nullptr) {
    for (const ObservedNode& node : in.observed->nodes) {
      for (const ObservedVm& vm : node.vms) {
        if (vm.Owned()) observed.emplace(vm.name, &vm);
      }
    }
  }
  std::map<std::string, std::vector<const Action*>> actions;
  std::map<std::string, std::vector<const PendingChange*>> pending;
  std::map<std::string, const PendingChange*> ignored;
  if (in.plan != nullptr) {
    for (const Action& a : in.plan->actions) actions[a.target.ToString()].push_back(&a);
    for (const PendingChange& p : in.plan->pending) pending[p.target.ToString()].push_back(&p);
    for (const PendingChange& p : in.plan->ignored) ignored[p.target.ToString()] = &p;
  }
  auto fill_drift = [&](ResourceStatus& s, const std::string& key) {
    for (const Action* a : actions[key]) {
      for (const FieldChange& c : a->changes) s.drift.push_back(c);
    }
    for (const PendingChange* p : pending[key]) {
      for (const FieldChange& c : p->changes) s.drift.push_back(c);
      const bool window = p->reason.starts_with("blocked by window");
      s.conditions.push_back(Condition{"Pending", true, window ? "BlockedByWindow" : "NotApplied", p->reason, {}});
    }
    // Drift an ignoreDifferences rule covers: said, but not OutOfSync.
    if (auto it = ignored.find(key); it != ignored.end()) {
      std::string fields;
      for (const FieldChange& c : it->second->changes) {
        fields += (fields.empty() ? "" : "; ") + c.path + ": " + (c.before.empty() ? "(none)" : c.before) + " -> " +
                  (c.after.empty() ? "(none)" : c.after);
      }
      s.conditions.push_back(Condition{"DifferencesIgnored", true, "IgnoreDifferences",
                                       "ignored (" + it->second->reason + "): " + fields, {}});
    }
  };

  if (in.desired != nullptr) {
    for (const VirtualMachine& vm : in.desired->vms) {
      ResourceStatus s;
      s.kind = Kind::kVirtualMachine;
      s.name = vm.meta.name;
      s.labels = vm.meta.labels;
      s.tags = vm.meta.tags;
      s.desired_json = ToJson(vm.spec).dump();
      if (vm.cluster) {
        s.cluster = vm.cluster->cluster;
        s.group = vm.cluster->group;
      }
      const std::string key = "VirtualMachine/" + vm.meta.name;
      auto it = observed.find(vm.meta.name);
      const ObservedVm* o = it == observed.end() ? nullptr : it->second;
      if (o != nullptr) {
        s.node = o->node;
        s.power = std::string(EnumName(o->power));
        s.revision = o->owner->revision;
        s.last_job = o->owner->job;
        s.observed_json = ToJson(o->actual).dump();
      } else {
        s.node = vm.spec.node;
      }
      const auto guest = in.guests.find(vm.meta.name);
      const ReadinessReport* report = guest == in.guests.end() ? nullptr : &guest->second;
      if (report != nullptr && !report->address.empty()) {
        s.address = report->address;
        s.address_source = report->address_source;
      } else {
        s.address = PrimaryAddress(vm.spec);
        if (!s.address.empty()) s.address_source = "static";
      }
      fill_drift(s, key);
      if (in.failed.contains(key)) {
        s.sync = SyncStatus::kFailed;
      } else if (o == nullptr) {
        s.sync = SyncStatus::kMissing;
      } else if (!actions[key].empty() || !pending[key].empty()) {
        s.sync = SyncStatus::kOutOfSync;
      } else {
        s.sync = SyncStatus::kSynced;
      }
      s.health = VmHealth(&vm, o, in.in_progress.contains(key));
      s.conditions.insert(s.conditions.begin(), ReadyCondition(vm, o, report, s));
      out.push_back(std::move(s));
      observed.erase(vm.meta.name);
    }
  }
  // What is gitvirt's but not declared: Orphaned (pruned only with --prune).
  for (const auto& [name, o] : observed) {
    ResourceStatus s;
    s.kind = Kind::kVirtualMachine;
    s.name = name;
    s.node = o->node;
    s.power = std::string(EnumName(o->power));
    s.labels = o->owner->labels;
    s.tags = o->owner->tags;
    s.revision = o->owner->revision;
    s.last_job = o->owner->job;
    s.cluster = o->owner->cluster;
    s.group = o->owner->group;
    s.observed_json = ToJson(o->actual).dump();
    s.sync = in.desired != nullptr ? SyncStatus::kOrphaned : SyncStatus::kOutOfSync;
    s.health = Health::kUnknown;
    fill_drift(s, "VirtualMachine/" + name);
    out.push_back(std::move(s));
  }
  if (in.desired != nullptr) {
    for (const Image& image : in.desired->images) {
      ResourceStatus s;
      s.kind = Kind::kImage;
      s.name = image.meta.name;
      s.labels = image.meta.labels;
      s.desired_json = ToJson(image).dump();
      const std::string key = "Image/" + image.meta.name;
      s.sync = actions[key].empty() ? SyncStatus::kSynced : SyncStatus::kOutOfSync;
      s.health = Health::kHealthy;
      fill_drift(s, key);
      out.push_back(std::move(s));
    }
    auto add_plain = [&](Kind kind, const ObjectMeta& meta, std::string json) {
      ResourceStatus s;
      s.kind = kind;
      s.name = meta.name;
      s.labels = meta.labels;
      s.desired_json = std::move(json);
      s.sync = SyncStatus::kSynced;
      s.health = Health::kHealthy;
      out.push_back(std::move(s));
    };
    for (const Cluster& c : in.desired->clusters) add_plain(Kind::kCluster, c.meta, ToJson(c).dump());
    for (const SnapshotPolicy& p : in.desired->snapshot_policies) add_plain(Kind::kSnapshotPolicy, p.meta, ToJson(p).dump());
    for (const BackupPolicy& p : in.desired->backup_policies) add_plain(Kind::kBackupPolicy, p.meta, ToJson(p).dump());
  }
  std::sort(out.begin(), out.end(), [](const ResourceStatus& a, const ResourceStatus& b) {
    return std::make_pair(EnumName(a.kind), a.name) < std::make_pair(EnumName(b.kind), b.name);
  });
  return out;
}

std::vector<NodeStatus> BuildNodeStatuses(const ControllerConfig& config, const ObservedState& observed) {
  std::vector<NodeStatus> out;
  for (const NodeConfig& nc : config.nodes) {
    NodeStatus s;
    s.name = nc.name;
    s.uri = nc.uri;
    s.labels = nc.labels;
    s.draining = nc.drain;
    if (const ObservedNode* n = observed.FindNode(nc.name)) {
      s.reachable = n->reachable;
      s.error = n->error;
      s.driver = n->capabilities.driver;
      s.vcpus = n->cpus;
      s.memory = n->memory;
      for (const ObservedVm& vm : n->vms) {
        ++s.vms;
        if (vm.Owned()) ++s.vms_managed;
        s.vcpus_allocated += vm.actual.vcpus;
        s.memory_allocated += vm.actual.memory;
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<ClusterStatus> BuildClusterStatuses(const DesiredState& desired,
                                                const std::vector<ResourceStatus>& resources) {
  std::map<std::string, const ResourceStatus*> by_name;
  for (const ResourceStatus& r : resources) {
    if (r.kind == Kind::kVirtualMachine) by_name[r.name] = &r;
  }
  std::vector<ClusterStatus> out;
  for (const Cluster& c : desired.clusters) {
    ClusterStatus cs;
    cs.name = c.meta.name;
    for (const NodeGroup& g : c.spec.node_groups) {
      ClusterGroupStatus gs;
      gs.name = g.name;
      gs.role = g.role;
      gs.desired = g.count;
      for (const VirtualMachine& vm : desired.vms) {
        if (!vm.cluster || vm.cluster->cluster != c.meta.name || vm.cluster->group != g.name) continue;
        ClusterMemberStatus m;
        m.name = vm.meta.name;
        if (auto it = by_name.find(vm.meta.name); it != by_name.end()) {
          m.node = it->second->node;
          m.power = it->second->power;
          m.ready = it->second->health == Health::kHealthy;
        }
        if (m.ready) ++gs.ready;
        gs.members.push_back(std::move(m));
      }
      cs.desired += gs.desired;
      cs.ready += gs.ready;
      cs.groups.push_back(std::move(gs));
    }
    out.push_back(std::move(cs));
  }
  return out;
}

}  // namespace gitvirt
