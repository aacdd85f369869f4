#include "gitvirt/core/planner.h"

#include <algorithm>
#include <map>
#include <queue>
#include <set>
#include <string_view>
#include <tuple>
#include <unordered_map>

#include "gitvirt/core/diff.h"
#include "gitvirt/core/ignore.h"
#include "gitvirt/core/json.h"
#include "gitvirt/core/placement.h"
#include "gitvirt/core/selector.h"
#include "gitvirt/core/storage.h"
#include "gitvirt/core/suggest.h"

namespace gitvirt {
namespace {

// Stages order the plan coarsely; Action::depends_on orders it finely. The executor starts no
// action before every action of an earlier stage has finished.
enum Stage : int {
  kStageImages = 0,
  kStageChanges = 1,   // migrate, create, replace, update, and the power steps of those chains
  kStageDeletes = 2,   // delete, release
  kStagePower = 3,     // power changes of VMs that are otherwise left as they are
  kStageVolumes = 4,   // volume-delete
};

bool IsRunningLike(PowerState p) { return p != PowerState::kStopped; }

class Builder {
  struct Room {  // free capacity on a node (times its overcommit ratios)
    double vcpus = 0;
    double memory = 0;
  };

 public:
  Builder(const ControllerConfig& config, const DesiredState& desired,
          const ObservedState& observed, const PlanOptions& options)
      : config_(config), desired_(desired), observed_(observed), options_(options) {}

  Result<Plan> Build() {
    if (options_.target) {
      if (auto found = CheckTarget(*options_.target); !found) return std::unexpected(found.error());
    }
    plan_.revision = options_.revision;
    plan_.source = options_.source;
    plan_.prune = options_.prune;
    plan_.adopt = options_.adopt;
    plan_.images = desired_.images;
    for (const ObservedNode& node : observed_.nodes) {
      if (!node.reachable) plan_.unreachable[node.name] = node.error;
      for (const ObservedVm& vm : node.vms) {
        if (!vm.Owned()) plan_.unmanaged.push_back(node.name + "/" + vm.name);
      }
    }
    ResolveNodes();
    for (const VirtualMachine& vm : desired_.vms) PlanVm(vm);
    PlanOrphans();
    ExpirePreChangeSnapshots();
    HoldBackBlocked();
    HoldBackDependents();
    AddSourceCleanups();
    PlanImages();
    LinkDependencies();
    RollRestarts();
    if (!errors_.empty()) {
      std::string message = "the plan cannot be made:";
      for (const std::string& e : errors_) message += "\n  - " + e;
      return Fail(ErrorCode::kFailedPrecondition, message);
    }
    if (options_.target) FilterToTarget(*options_.target);
    Order();
    for (const Action& a : plan_.actions) {
      if (a.target.kind != Kind::kVirtualMachine) continue;
      const std::string key = "vm/" + a.target.name;
      auto vms = observed_.FindVms(a.target.name);
      plan_.fingerprints[key] = vms.empty() ? "absent" : ObservedFingerprint(*vms.front());
    }
    return std::move(plan_);
  }

 private:
  // ---- nodes ------------------------------------------------------------------------------

  const ObservedNode* Node(const std::string& name) const { return observed_.FindNode(name); }

  // The owned domain(s) for a VM name, on reachable nodes.
  std::vector<const ObservedVm*> Owned(const std::string& name) const {
    std::vector<const ObservedVm*> out;
    for (const ObservedVm* vm : observed_.FindVms(name)) {
      if (vm->Owned()) out.push_back(vm);
    }
    return out;
  }

  void ResolveNodes() {
    std::vector<NodeInventory> inventory;
    std::set<std::string> unreachable;
    for (const NodeConfig& nc : config_.nodes) {
      const ObservedNode* on = Node(nc.name);
      NodeInventory n;
      n.name = nc.name;
      n.labels = nc.labels;
      n.schedulable = on != nullptr && on->reachable && !nc.drain;
      if (on == nullptr || !on->reachable) unreachable.insert(nc.name);
      n.vcpus = nc.capacity_vcpus.value_or(on ? on->cpus : 0);
      n.memory = nc.capacity_memory.value_or(on ? on->memory : 0);
      n.cpu_overcommit = nc.cpu_overcommit;
      n.memory_overcommit = nc.memory_overcommit;
      inventory.push_back(std::move(n));
    }
    std::set<std::string> placed;  // desired VMs that placement decides
    std::vector<PlacementRequest> requests;
    for (const VirtualMachine& vm : desired_.vms) {
      if (!vm.spec.node.empty()) {
        if (config_.FindNode(vm.spec.node) == nullptr) {
          std::vector<std::string> names;
          std::string known;
          for (const NodeConfig& n : config_.nodes) {
            names.push_back(n.name);
            known += (known.empty() ? "" : ", ") + n.name;
          }
          Error(vm, "VirtualMachine \"" + vm.meta.name + "\" names node \"" + vm.spec.node +
                        "\", which is not in the configuration" + DidYouMean(ClosestNames(vm.spec.node, names)) +
                        " (its nodes: " + (known.empty() ? "none" : known) + ")");
          continue;
        }
        node_of_[vm.meta.name] = vm.spec.node;
        continue;
      }
      auto owned = Owned(vm.meta.name);
      if (owned.empty() && (vm.spec.adopt || options_.adopt)) {
        // A domain to adopt stays where it runs.
        if (auto domains = observed_.FindVms(vm.meta.name); domains.size() == 1) {
          node_of_[vm.meta.name] = domains.front()->node;
          continue;
        }
      }
      if (owned.empty() && !unreachable.empty()) {
        // It may already run on the node we cannot see: placing it elsewhere could duplicate it.
        blocked_[vm.meta.name] = "cannot be placed while node(s) are unreachable (it may run "
                                 "there): " + *unreachable.begin();
        continue;
      }
      PlacementRequest r;
      r.vm = vm.meta.name;
      r.vcpus = vm.spec.vcpus;
      r.memory = vm.spec.memory;
      r.placement = vm.spec.placement;
      if (vm.cluster) r.group = vm.cluster->cluster + "/" + vm.cluster->group;
      if (owned.size() == 1) r.current_node = owned.front()->node;
      requests.push_back(std::move(r));
      placed.insert(vm.meta.name);
    }
    // What the nodes already hold, except the VMs placement is deciding about now; and the
    // pinned VMs that do not exist yet but will.
    for (NodeInventory& n : inventory) {
      if (const ObservedNode* on = Node(n.name)) {
        for (const ObservedVm& vm : on->vms) {
          if (placed.contains(vm.name) && vm.Owned()) continue;
          n.vcpus_used += vm.actual.vcpus;
          n.memory_used += vm.actual.memory;
        }
      }
    }
    for (const VirtualMachine& vm : desired_.vms) {
      auto it = node_of_.find(vm.meta.name);
      if (it == node_of_.end() || !vm.spec.node.size()) continue;
      const ObservedNode* on = Node(it->second);
      if (on != nullptr && on->FindVm(vm.meta.name) != nullptr) continue;
      for (NodeInventory& n : inventory) {
        if (n.name == it->second) {
          n.vcpus_used += vm.spec.vcpus;
          n.memory_used += vm.spec.memory;
        }
      }
    }
    PlacementResult placement = Place(inventory, requests);
    // What each node has left once placement is done: the precondition for pinned migrations.
    for (const NodeInventory& n : inventory) {
      free_[n.name] = Room{n.vcpus * n.cpu_overcommit - n.vcpus_used,
                           static_cast<double>(n.memory) * n.memory_overcommit - static_cast<double>(n.memory_used)};
    }
    for (const PlacementRequest& r : requests) {
      if (auto it = placement.node_of.find(r.vm); it != placement.node_of.end()) {
        free_[it->second].vcpus -= r.vcpus;
        free_[it->second].memory -= static_cast<double>(r.memory);
      }
    }
    for (const std::string& e : placement.errors) errors_.push_back(e);
    for (const std::string& w : placement.warnings) {
      plan_.warnings.push_back(Diagnostic{Severity::kWarning, {}, "placement", w});
    }
    for (const auto& [vm, node] : placement.node_of) node_of_[vm] = node;
    for (const auto& [vm, why] : placement.moved) moved_by_placement_[vm] = why;
  }

  // ---- actions ----------------------------------------------------------------------------

  Action& Add(Action action, Stage stage) {
    action.stage = stage;
    if (action.target.kind == Kind::kVirtualMachine) {
      auto& chain = chain_[action.target.name];
      if (!chain.empty()) action.depends_on.push_back(chain.back());
      chain.push_back(action.id);
    }
    plan_.actions.push_back(std::move(action));
    return plan_.actions.back();
  }

  Action VmAction(ActionType type, const VirtualMachine& vm, const std::string& node,
                  std::string reason) const {
    Action a;
    a.type = type;
    a.id = std::string(EnumName(type)) + "/" + vm.meta.name;
    a.node = node;
    a.target = {Kind::kVirtualMachine, vm.meta.name};
    a.reason = std::move(reason);
    a.unit = vm.cluster ? vm.cluster->cluster : "";
    return a;
  }

  void Pending(const VirtualMachine& vm, const std::string& node, std::vector<FieldChange> changes,
               std::string reason) {
    plan_.pending.push_back(PendingChange{{Kind::kVirtualMachine, vm.meta.name}, node,
                                          std::move(changes), std::move(reason)});
  }

  void CheckNodeResources(const VirtualMachine& vm, const std::string& node_name) {
    const ObservedNode* node = Node(node_name);
    const NodeConfig* nc = config_.FindNode(node_name);
    if (node == nullptr || nc == nullptr) return;
    auto has_pool = [&](const std::string& pool) {
      if (node->FindPool(pool) != nullptr) return true;
      return std::any_of(nc->pools.begin(), nc->pools.end(),
                         [&](const PoolConfig& p) { return p.name == pool; });
    };
    std::set<std::string> pools;
    for (const Disk& d : vm.spec.disks) {
      if (d.source.type != DiskSourceType::kPath) pools.insert(d.pool);
      if (d.source.type == DiskSourceType::kImage) {
        if (const Image* img = desired_.FindImage(d.source.ref)) pools.insert(img->spec.pool);
      }
    }
    for (const std::string& pool : pools) {
      if (!has_pool(pool)) {
        Error(vm, "VirtualMachine \"" + vm.meta.name + "\" needs pool \"" + pool + "\" on node " + node_name +
              ", which neither exists there nor is listed in the node's pools");
      }
    }
    for (const Nic& nic : vm.spec.networks) {
      if (!nic.network.empty() &&
          std::find(node->networks.begin(), node->networks.end(), nic.network) ==
              node->networks.end()) {
        Error(vm, "VirtualMachine \"" + vm.meta.name + "\" uses network \"" + nic.network +
              "\", which does not exist on node " + node_name);
      }
      if (!nic.bridge.empty() && node->interfaces &&
          !std::binary_search(node->interfaces->begin(), node->interfaces->end(), nic.bridge)) {
        std::string have;
        for (const std::string& i : *node->interfaces) have += (have.empty() ? "" : ", ") + i;
        Error(vm, "VirtualMachine \"" + vm.meta.name + "\" uses bridge \"" + nic.bridge +
              "\", which does not exist on node " + node_name + " (its interfaces: " + have + ")");
      }
    }
  }

  void PlanPower(const VirtualMachine& vm, const std::string& node, PowerState from,
                 bool power_only) {
    const PowerState to = vm.spec.power_state;
    if (from == to) return;
    const Stage stage = power_only ? kStagePower : kStageChanges;
    auto add = [&](ActionType type, std::string reason) {
      Action a = VmAction(type, vm, node, std::move(reason));
      a.power_before = from;
      if (type == ActionType::kShutdown) a.vm = vm;  // its updatePolicy: timeout, forceOff
      a.changes.push_back(FieldChange{"powerState", std::string(EnumName(from)),
                                      std::string(EnumName(to)), ChangeClass::kPower});
      Add(std::move(a), stage);
    };
    switch (to) {
      case PowerState::kRunning:
        if (from == PowerState::kPaused) {
          add(ActionType::kResume, "powerState is Running");
        } else {
          add(ActionType::kStart, "powerState is Running");
        }
        break;
      case PowerState::kStopped:
        if (from == PowerState::kPaused) {
          add(ActionType::kStop, "powerState is Stopped (a paused VM is powered off)");
        } else {
          add(ActionType::kShutdown, "powerState is Stopped");
        }
        break;
      case PowerState::kPaused:
        if (from == PowerState::kStopped) add(ActionType::kStart, "powerState is Paused");
        add(ActionType::kSuspend, "powerState is Paused");
        break;
    }
  }

  void PlanVm(const VirtualMachine& vm) {
    if (auto it = blocked_.find(vm.meta.name); it != blocked_.end()) {
      Pending(vm, "", {}, it->second);
      return;
    }
    auto node_it = node_of_.find(vm.meta.name);
    if (node_it == node_of_.end()) return;  // placement failed; reported
    std::string node = node_it->second;  // where the VM will be (where it is, if it cannot move)
    const ObservedNode* target_node = Node(node);
    if (target_node == nullptr || !target_node->reachable) {
      Pending(vm, node, {}, "node " + node + " is unreachable");
      return;
    }
    // A domain of that name that gitvirt does not own is never touched, unless the manifest
    // (spec.adopt) or the command (--adopt) says to take it over as it runs.
    std::vector<const ObservedVm*> unowned;
    for (const ObservedVm* other : observed_.FindVms(vm.meta.name)) {
      if (!other->Owned()) unowned.push_back(other);
    }
    if (!unowned.empty()) {
      PlanAdoption(vm, node, unowned);
      return;
    }
    VirtualMachine want = vm;
    want.spec.node = node;
    auto owned = Owned(vm.meta.name);
    if (owned.size() > 1) {
      Pending(vm, node, {}, "exists on more than one node (an interrupted migration?): " +
                                owned[0]->node + ", " + owned[1]->node);
      return;
    }
    if (owned.empty()) {
      CheckNodeResources(want, node);
      Action create = VmAction(ActionType::kCreate, want, node, "not found on any node");
      for (const Disk& d : want.spec.disks) {
        create.changes.push_back(FieldChange{"disks[" + d.name + "]", "", DescribeDisk(d), ChangeClass::kLive});
      }
      create.changes.insert(create.changes.begin(),
                            {FieldChange{"vcpus", "", std::to_string(want.spec.vcpus), ChangeClass::kLive},
                             FieldChange{"memory", "", FormatSize(want.spec.memory), ChangeClass::kLive}});
      for (std::size_t i = 0; i < want.spec.networks.size(); ++i) {
        create.changes.push_back(FieldChange{"networks[" + std::to_string(i) + "]", "",
                                             DescribeNic(want.spec.networks[i]), ChangeClass::kLive});
      }
      for (const Cdrom& c : want.spec.cdroms) {
        create.changes.push_back(FieldChange{"cdroms[" + c.name + "]", "",
                                             c.image.empty() ? c.path : "image " + c.image, ChangeClass::kLive});
      }
      if (want.spec.cloud_init) {
        const CloudInit& ci = *want.spec.cloud_init;
        std::string users;
        for (const CloudInitUser& u : ci.users) users += (users.empty() ? "" : ", ") + u.name;
        std::string ips;
        for (const IpConfig& ip : ci.ip_configs) ips += (ips.empty() ? "" : " ") + ip.ToString();
        create.changes.push_back(FieldChange{"cloudInit", "",
                                             "hostname " + ci.hostname + (users.empty() ? "" : ", users " + users) +
                                                 (ips.empty() ? "" : ", " + ips),
                                             ChangeClass::kLive});
      }
      create.vm = want;
      Add(std::move(create), kStageChanges);
      PlanPower(want, node, PowerState::kStopped, /*power_only=*/false);
      return;
    }

    const ObservedVm& current = *owned.front();
    PlanUpdate(vm, current, node, /*adopting=*/false);
  }

  // The changes an existing domain needs, gitvirt's or (adopting) one it takes over now: a
  // migration when its node changes, then updates, live or with a restart, and power.
  void PlanUpdate(const VirtualMachine& vm, const ObservedVm& current, std::string node, bool adopting) {
    VirtualMachine want = vm;
    want.spec.node = node;
    bool changed = adopting;
    // The power state once the migration, if any, is done (an offline one stops the VM).
    PowerState power = current.power;
    if (current.node != node) {
      const Move move = PlanMigration(vm, want, current, node);
      if (move.outcome == Move::kImpossible) return;  // the plan fails, saying why
      if (move.outcome == Move::kPending) {
        // The move waits (and says why); every other change is made where the VM is.
        node = current.node;
        want.spec.node = node;
      } else {
        power = move.power;
        changed = true;
      }
    }
    // Changes are made where the VM will be, with that node's driver.
    const ObservedNode* current_node = Node(node);
    if (const NodeConfig* pinned = config_.FindNode(node);
        pinned != nullptr && pinned->drain && !want.spec.node.empty() && vm.spec.node == node) {
      Pending(vm, node, {}, "node " + node + " is draining, but spec.node pins the VM to it; change spec.node to move it");
    }
    const bool running = IsRunningLike(power);
    // A VM this plan stops anyway can take every change while it is down: no restart needed.
    const bool stopping = running && want.spec.power_state == PowerState::kStopped;
    DiffContext ctx{running, current_node ? current_node->capabilities : NodeCapabilities{}};
    // A domain being adopted is compared as it will be observed once it carries the owner mark
    // with the manifest's spec; what only that mark holds (labels, policies) the adopt writes.
    const VmSpec observed = adopting ? FillFromApplied(current.actual, want.spec, vm.meta.name) : current.actual;
    VmDiff diff = DiffVm(want.spec, observed, ctx);
    IgnoreDifferences(want, current, node, diff);
    for (const std::string& e : diff.errors) {
      Error(vm, "VirtualMachine \"" + vm.meta.name + "\": " + e);
    }
    std::vector<FieldChange> metadata = adopting ? std::vector<FieldChange>{} : MetadataChanges(want, current);
    if (diff.changes.empty() && metadata.empty()) {
      PlanPower(want, node, power, /*power_only=*/!changed);
      return;
    }
    if (std::any_of(diff.changes.begin(), diff.changes.end(),
                    [](const FieldChange& c) { return c.path.starts_with("disks[") && c.before.empty(); })) {
      CheckNodeResources(want, node);
    }
    const bool restart_allowed = want.spec.update_policy.restart == RestartPolicy::kAllowed || stopping;
    if (diff.Has(ChangeClass::kReplace)) {
      if (want.spec.deletion_policy == DeletionPolicy::kProtect) {
        Pending(vm, node, diff.changes, "the change replaces the VM and deletionPolicy is Protect");
      } else if (running && !restart_allowed) {
        Pending(vm, node, diff.changes,
                "the change replaces the VM, which is running; updatePolicy.restart is Never");
      } else {
        SnapshotBeforeChange(want, node, "before the VM is replaced");
        if (running) {
          StopForRestart(want, node, power, "to replace the VM");
          restart_chains_.push_back(vm.meta.name);
        }
        Action replace = VmAction(ActionType::kReplace, want, node, "a disk's source, pool or format changed");
        replace.changes = diff.changes;
        ListDrops(replace, current);
        replace.vm = want;
        Add(std::move(replace), kStageChanges);
        PlanPower(want, node, PowerState::kStopped, false);
      }
      return;
    }
    // Disk growth on a running VM is live only where the driver can resize a block device;
    // on a stopped VM it needs volume resizing.
    for (FieldChange& c : diff.changes) {
      if (c.change_class != ChangeClass::kGrow) continue;
      const bool live = running && !stopping;
      const bool can = live ? ctx.capabilities.block_resize : ctx.capabilities.volume_resize;
      if (!can && live && ctx.capabilities.volume_resize) {
        c.change_class = ChangeClass::kRestart;
      } else if (!can) {
        Error(vm, "VirtualMachine \"" + vm.meta.name + "\": " + c.path + " grows, but node " + node + " (" +
                      ctx.capabilities.driver + " driver) cannot resize volumes");
      }
    }
    std::vector<FieldChange> now = metadata, later;
    for (const FieldChange& c : diff.changes) {
      (c.change_class == ChangeClass::kRestart || stopping ? later : now).push_back(c);
    }
    if (!later.empty() && !restart_allowed) {
      Pending(vm, node, later, "needs a restart and updatePolicy.restart is Never");
    }
    if (!later.empty() && restart_allowed) {
      // Every change rides along with the redefine while the VM is down.
      later.insert(later.end(), now.begin(), now.end());
      std::sort(later.begin(), later.end(), [](const auto& a, const auto& b) { return a.path < b.path; });
      SnapshotBeforeChange(want, node, "before the restart");
      StopForRestart(want, node, power, "to apply changes that need a restart");
      Action update = VmAction(ActionType::kUpdateRestart, want, node, "redefine while stopped");
      update.changes = later;
      ListDrops(update, current);
      update.vm = want;
      Add(std::move(update), kStageChanges);
      if (want.spec.power_state != PowerState::kStopped) {
        Action up = VmAction(ActionType::kStart, want, node, "start again after the restart");
        up.power_before = PowerState::kStopped;
        Add(std::move(up), kStageChanges);
        if (want.spec.power_state == PowerState::kPaused) {
          Add(VmAction(ActionType::kSuspend, want, node, "powerState is Paused"), kStageChanges);
        }
      }
      restart_chains_.push_back(vm.meta.name);
      return;
    }
    if (!now.empty()) {
      if (std::any_of(now.begin(), now.end(), [](const FieldChange& c) { return c.path.starts_with("disks["); })) {
        SnapshotBeforeChange(want, node, "before its disks change");
      }
      Action update = VmAction(ActionType::kUpdateLive, want, node,
                               running ? "applied to the running VM" : "the VM is stopped");
      update.changes = now;
      update.vm = want;
      if (!later.empty()) {
        // Part of the change waits for a restart: write only what is applied now, so neither
        // the definition nor the applied spec claims what the running VM does not have.
        update.vm->spec = ApplyChanges(observed, want.spec, now);
      }
      ListDrops(update, current);
      Add(std::move(update), kStageChanges);
      changed = true;
    }
    PlanPower(want, node, power, /*power_only=*/!changed);
  }

  // A redefinition writes what the manifest says: what the domain holds beyond it is lost, and
  // the action says so, element by element.
  static void ListDrops(Action& action, const ObservedVm& current) {
    for (const std::string& element : current.unexpressed) {
      action.changes.push_back(FieldChange{element, "not expressible in a manifest", "", ChangeClass::kDestroy});
    }
  }

  // ---- adoption ------------------------------------------------------------------------------

  // `vm` names domains gitvirt does not own. Allowed (spec.adopt, --adopt) and unambiguous, the
  // plan adopts the one on the VM's node (the owner mark with the manifest's spec; nothing else
  // changes) and, after it, makes the usual changes where the manifest and the domain differ.
  void PlanAdoption(const VirtualMachine& vm, const std::string& node, const std::vector<const ObservedVm*>& unowned) {
    const ObservedVm& domain = *unowned.front();
    const std::string who = "VirtualMachine \"" + vm.meta.name + "\"";
    if (!vm.spec.adopt && !options_.adopt) {
      errors_.push_back("a domain named \"" + vm.meta.name + "\" exists on node " + domain.node +
                        " and is not managed by gitvirt; rename the manifest, or adopt the domain with `gitvirt "
                        "import` (to write its manifest) and `spec.adopt: true` in the manifest or `gitvirt "
                        "plan|apply --adopt` (to take it over as it runs, without a restart)");
      return;
    }
    auto owned = Owned(vm.meta.name);
    if (unowned.size() > 1 || !owned.empty()) {
      std::string nodes;
      for (const ObservedVm* d : observed_.FindVms(vm.meta.name)) nodes += (nodes.empty() ? "" : ", ") + d->node;
      errors_.push_back(who + " cannot adopt a domain: domains of that name run on nodes " + nodes +
                        "; rename or remove all but one");
      return;
    }
    if (domain.node != node) {
      errors_.push_back(who + " cannot adopt the domain on node " + domain.node + ": spec.node is " + node +
                        "; adopt it where it is (spec.node: " + domain.node + ") and move it afterwards");
      return;
    }
    if (!domain.persistent) {
      errors_.push_back(who + " cannot adopt the domain on node " + domain.node +
                        ": it is transient (it has no persistent definition to carry the owner mark); define it "
                        "first (virsh dumpxml, virsh define)");
      return;
    }
    VirtualMachine want = vm;
    want.spec.node = node;
    Action adopt = VmAction(ActionType::kAdopt, want, node,
                            std::string(vm.spec.adopt ? "spec.adopt" : "--adopt") +
                                ": gitvirt takes the domain over as it runs (owner metadata only: no "
                                "redefinition, no restart)");
    adopt.vm = want;
    Add(std::move(adopt), kStageChanges);
    std::erase(plan_.unmanaged, domain.node + "/" + domain.name);  // not left alone: taken over
    if (!domain.unexpressed.empty()) {
      std::string elements;
      for (const std::string& e : domain.unexpressed) elements += (elements.empty() ? "" : ", ") + e;
      plan_.warnings.push_back(Diagnostic{Severity::kWarning, {}, "VirtualMachine/" + vm.meta.name,
                                          "the domain holds what a manifest cannot express (" + elements +
                                              "); adopting keeps it, but an update redefines the domain "
                                              "without it"});
    }
    PlanUpdate(vm, domain, node, /*adopting=*/true);
  }

  // ---- migration ---------------------------------------------------------------------------

  bool SharedPool(const std::string& a, const std::string& b, const std::string& pool) const {
    auto shared_on = [&](const std::string& node) {
      const NodeConfig* nc = config_.FindNode(node);
      return nc != nullptr && std::any_of(nc->pools.begin(), nc->pools.end(),
                                          [&](const PoolConfig& p) { return p.name == pool && p.shared; });
    };
    return shared_on(a) && shared_on(b);
  }

  // A problem the VM's manifest is at fault for (or can fix), named at its document:
  // "examples/manifests/web.yaml:3:1: VirtualMachine ...". Reported once.
  void Error(const VirtualMachine& vm, std::string message) {
    const SourceLocation& at = vm.meta.location;
    if (!at.file.empty() && at.line > 0) {
      SourceLocation shown = at;
      if (!options_.manifest_root.empty()) shown.file = options_.manifest_root + "/" + at.file;
      message = shown.ToString() + ": " + message;
    }
    if (std::find(errors_.begin(), errors_.end(), message) == errors_.end()) errors_.push_back(std::move(message));
  }

  // Plans moving `current` to `node`: the preconditions (the target's room, networks, pools and
  // storage; what both drivers can do), the mode (live for a running VM when it can be, else
  // offline, stopping the VM first when its policies allow), the volumes to copy, and their
  // removal from the source at the end of the job. Says the VM's power state after the
  // migration; or that the move is pending (the VM stays) or impossible (the plan fails).
  struct Move {
    enum Outcome { kPlanned, kPending, kImpossible } outcome = kPlanned;
    PowerState power = PowerState::kStopped;
  };
  Move PlanMigration(const VirtualMachine& vm, const VirtualMachine& want, const ObservedVm& current,
                     const std::string& node) {
    const std::string& from = current.node;
    const ObservedNode* source = Node(from);
    const ObservedNode* target = Node(node);
    const std::size_t errors_before = errors_.size();
    const std::string who = "VirtualMachine \"" + vm.meta.name + "\"";
    std::string reason = "desired node is " + node;
    if (const NodeConfig* nc = config_.FindNode(from); nc != nullptr && nc->drain) {
      reason = "node " + from + " is draining";
    } else if (auto why = moved_by_placement_.find(vm.meta.name); why != moved_by_placement_.end()) {
      reason = why->second;
    }

    // The target must hold what the VM uses now (it arrives as it is) and what it will use.
    CheckNodeResources(want, node);
    VirtualMachine as_is = want;
    as_is.spec = current.actual;
    as_is.spec.node = node;
    CheckNodeResources(as_is, node);
    if (!vm.spec.node.empty()) {
      // Placement checks what it places; a pinned VM is checked here. ResolveNodes counted it
      // on the target already (with every other VM pinned there), so the room must not be
      // negative.
      const Room& room = free_[node];
      if (room.vcpus < 0 || room.memory < 0) {
        const Room before{room.vcpus + want.spec.vcpus, room.memory + static_cast<double>(want.spec.memory)};
        Error(vm, who + " cannot move to node " + node + ": it needs " + std::to_string(want.spec.vcpus) +
              " vCPUs and " + FormatSize(want.spec.memory) + ", and " + node + " has " + FormatRoom(before) +
              " free (capacity times overcommit, minus what its domains hold)");
      }
    }
    const NodeCapabilities& sc = source->capabilities;
    const NodeCapabilities& tc = target->capabilities;
    const bool simulated = sc.driver == "TEST" && tc.driver == "TEST";
    if (!simulated && !(sc.volume_upload && tc.volume_upload)) {
      Error(vm, who + " cannot move from " + from + " (" + sc.driver + " driver) to " + node + " (" + tc.driver +
            " driver): a migration needs both nodes real (QEMU) or both simulated");
    }
    // Storage: what gitvirt created is copied unless the pool is shared by both nodes; what it
    // did not create must already be there.
    std::vector<std::string> copy;
    const std::vector<std::string>& created = current.owner->created_volumes;
    for (const std::string& v : created) {
      const std::string pool = v.substr(0, v.find('/'));
      if (SharedPool(from, node, pool)) continue;
      copy.push_back(v);
      if (const ObservedPool* p = target->FindPool(pool); p != nullptr && p->FindVolume(v.substr(v.find('/') + 1))) {
        Error(vm, who + " cannot move to node " + node + ": volume " + v + " exists there already; remove it "
              "(an earlier copy?) or declare pool " + pool + " shared on both nodes");
      }
    }
    for (const Disk& d : current.actual.disks) {
      if (d.source.type == DiskSourceType::kPath) {
        plan_.warnings.push_back(Diagnostic{Severity::kWarning, {}, "VirtualMachine/" + vm.meta.name,
                                            "disk " + d.name + " is the file " + d.source.ref +
                                                ", which a migration does not copy: it must exist on " + node});
        continue;
      }
      if (d.source.type != DiskSourceType::kVolume) continue;
      const std::string key = d.pool + "/" + d.source.ref;
      if (std::find(created.begin(), created.end(), key) != created.end() || SharedPool(from, node, d.pool)) continue;
      const ObservedPool* p = target->FindPool(d.pool);
      if (p == nullptr || p->FindVolume(d.source.ref) == nullptr) {
        Error(vm, who + " cannot move to node " + node + ": disk " + d.name + " uses volume " + key +
              ", which gitvirt did not create and " + node + " does not have; copy it there, or declare pool " +
              d.pool + " shared on both nodes");
      }
    }

    const bool running = IsRunningLike(current.power);
    const MigrationPolicy& policy = want.spec.migration;
    std::string live_blocker;  // why a running VM cannot move live
    if (running) {
      if (!policy.live) {
        live_blocker = "migration.live is false";
      } else if (!simulated && !(sc.migration && tc.migration)) {
        live_blocker = "node " + (sc.migration ? node : from) + " cannot migrate live";
      } else if (!current.snapshots.empty() && !simulated) {
        live_blocker = "it has " + std::to_string(current.snapshots.size()) +
                       " snapshot(s), which libvirt does not migrate live";
      } else if (!copy.empty() && !policy.copy_storage) {
        live_blocker = "its volumes are on storage " + node + " does not share (" + copy.front() +
                       (copy.size() > 1 ? " and " + std::to_string(copy.size() - 1) + " more" : "") +
                       "); set migration.copyStorage: true to copy them while it runs";
      }
    }
    if (errors_.size() > errors_before) return Move{Move::kImpossible};
    const FieldChange node_change{"node", from, node, ChangeClass::kLive};
    PowerState after = current.power;
    std::string mode = "offline";
    if (running && live_blocker.empty()) {
      mode = "live";
    } else if (running) {
      // Offline means stopped: only when the VM's policies accept the downtime.
      if (!policy.allow_offline && want.spec.update_policy.restart != RestartPolicy::kAllowed) {
        Pending(vm, from, {node_change},
                "cannot migrate live: " + live_blocker + ". An offline migration stops the VM: allow "
                "it with migration.allowOffline: true or updatePolicy.restart: Allowed");
        return Move{Move::kPending};
      }
      StopForRestart(want, from, current.power, "to migrate offline: " + live_blocker);
      after = PowerState::kStopped;
    }
    const Firmware& firmware = current.actual.firmware;
    if (mode == "offline" && !simulated && (firmware.type == FirmwareType::kUefi || firmware.tpm)) {
      plan_.warnings.push_back(Diagnostic{
          Severity::kWarning, {}, "VirtualMachine/" + vm.meta.name,
          std::string("an offline migration does not carry ") +
              (firmware.tpm ? "the UEFI variables (NVRAM) or the TPM state" : "the UEFI variables (NVRAM)") +
              ": they stay on " + from + ", and " + vm.meta.name + " starts on " + node +
              " with fresh ones (boot entries fall back to the disk's default loader)"});
    }
    Action migrate = VmAction(ActionType::kMigrate, want, node, reason);
    migrate.source_node = from;
    migrate.changes.push_back(node_change);
    migrate.changes.push_back(FieldChange{"mode", "", mode, ChangeClass::kLive});
    for (const std::string& v : copy) {
      migrate.changes.push_back(FieldChange{"copy " + v, "", from + " -> " + node, ChangeClass::kLive});
    }
    migrate.params = MigrateParams{mode, mode == "live" && policy.allow_offline, policy.bandwidth, simulated};
    migrate.volumes = copy;
    migrate.vm = want;
    const std::string migrate_id = migrate.id;
    Add(std::move(migrate), kStageChanges);
    if (!copy.empty()) {
      // The source's copies go with the other deletions, last: until then FULL can move the VM
      // back onto them.
      Action cleanup;
      cleanup.type = ActionType::kVolumeDelete;
      cleanup.id = "volume-delete/" + from + "/" + vm.meta.name;
      cleanup.target = {Kind::kVirtualMachine, vm.meta.name};
      cleanup.node = from;
      cleanup.unit = want.cluster ? want.cluster->cluster : "";
      cleanup.volumes = copy;
      cleanup.reason = "the source's copies, once " + vm.meta.name + " runs from " + node;
      for (const std::string& v : copy) cleanup.changes.push_back(FieldChange{"volume", v, "", ChangeClass::kDestroy});
      cleanup.depends_on.push_back(migrate_id);
      cleanup.stage = kStageVolumes;
      source_cleanups_.push_back(std::move(cleanup));
    }
    return Move{Move::kPlanned, after};
  }

  static std::string FormatRoom(const Room& room) {
    const auto vcpus = static_cast<long long>(std::max(0.0, room.vcpus));
    const auto memory = static_cast<std::uint64_t>(std::max(0.0, room.memory));
    return std::to_string(vcpus) + " vCPU" + (vcpus == 1 ? "" : "s") + " and " + FormatSize(memory);
  }

  // Source clean-ups whose migration is still in the plan (HoldBackDependents may drop one).
  void AddSourceCleanups() {
    for (Action& a : source_cleanups_) {
      if (plan_.FindAction(a.depends_on.front()) != nullptr) plan_.actions.push_back(std::move(a));
    }
    source_cleanups_.clear();
  }

  // Labels, tags and cluster membership live in gitvirt's owner metadata, not in the spec.
  static std::vector<FieldChange> MetadataChanges(const VirtualMachine& want, const ObservedVm& current) {
    std::vector<FieldChange> out;
    const Ownership& owner = *current.owner;
    std::set<std::string> keys;
    for (const auto& [k, v] : want.meta.labels) keys.insert(k);
    for (const auto& [k, v] : owner.labels) keys.insert(k);
    for (const std::string& k : keys) {
      auto d = want.meta.labels.find(k);
      auto o = owner.labels.find(k);
      const std::string after = d == want.meta.labels.end() ? "" : d->second;
      const std::string before = o == owner.labels.end() ? "" : o->second;
      const bool same = (d == want.meta.labels.end()) == (o == owner.labels.end()) && after == before;
      if (!same) out.push_back(FieldChange{"labels." + k, before, after, ChangeClass::kMetadata});
    }
    if (want.meta.tags != owner.tags) {
      auto list = [](const std::vector<std::string>& tags) {
        std::string s;
        for (const std::string& t : tags) s += (s.empty() ? "" : ", ") + t;
        return "[" + s + "]";
      };
      out.push_back(FieldChange{"tags", list(owner.tags), list(want.meta.tags), ChangeClass::kMetadata});
    }
    const std::string cluster = want.cluster ? want.cluster->cluster + "/" + want.cluster->group : "";
    const std::string was = owner.cluster.empty() ? "" : owner.cluster + "/" + owner.group;
    if (cluster != was) out.push_back(FieldChange{"cluster", was, cluster, ChangeClass::kMetadata});
    return out;
  }

  // ---- safe rollouts (issue 16) ------------------------------------------------------------

  // Drift the VM's ignoreDifferences rules (its own and the configuration's) cover is shown as
  // ignored and taken out of the diff; what the plan writes keeps those fields as the domain
  // has them, so no update reverts them either.
  void IgnoreDifferences(VirtualMachine& want, const ObservedVm& current, const std::string& node, VmDiff& diff) {
    if (diff.changes.empty() && diff.errors.empty()) return;
    const std::vector<std::string> rules = IgnoreRulesFor(want, config_);
    if (rules.empty()) return;
    // An impossible change of an ignored field (a disk that would shrink) is not attempted
    // either: errors start with the field's path.
    std::erase_if(diff.errors, [&](const std::string& e) {
      const std::string path = e.substr(0, e.find(':'));
      return std::any_of(rules.begin(), rules.end(), [&](const std::string& r) { return IgnorePathMatches(r, path); });
    });
    IgnoreSplit split = SplitIgnored(diff.changes, rules);
    if (split.ignored.empty()) return;
    std::string covering;
    for (const std::string& rule : rules) {
      const bool used = std::any_of(split.ignored.begin(), split.ignored.end(),
                                    [&](const FieldChange& c) { return IgnorePathMatches(rule, c.path); });
      if (used && covering.find(" " + rule + ",") == std::string::npos) covering += " " + rule + ",";
    }
    covering.pop_back();
    plan_.ignored.push_back(PendingChange{{Kind::kVirtualMachine, want.meta.name}, node, split.ignored,
                                          "ignoreDifferences:" + covering});
    VmSpec kept = ApplyChanges(want.spec, current.actual, split.ignored);
    kept.node = want.spec.node;
    kept.power_state = want.spec.power_state;
    want.spec = std::move(kept);
    diff.changes = std::move(split.kept);
  }

  // updatePolicy.snapshot: a snapshot first in the VM's chain. A FULL rollback of the job
  // reverts the VM to it (its undo); otherwise it is deleted once older than its keep.
  void SnapshotBeforeChange(const VirtualMachine& want, const std::string& node, const std::string& why) {
    if (!want.spec.update_policy.snapshot) return;
    Action a = VmAction(ActionType::kSnapshot, want, node, "pre-change snapshot (updatePolicy.snapshot), " + why);
    a.snapshot = PreChangeSnapshotName(options_.now);
    a.policy = std::string(kPreChangeSnapshotPolicy);
    SnapshotParams params;
    params.description = "taken before a change; a FULL rollback reverts to it";
    a.params = params;
    a.changes.push_back(FieldChange{"snapshot", "", a.snapshot, ChangeClass::kLive});
    Add(std::move(a), kStageChanges);
  }

  // Pre-change snapshots older than their keep (the VM's updatePolicy.snapshot.keep; 24h once
  // the manifest no longer asks for them) are deleted. Not subject to sync windows: deleting
  // one changes nothing the VM runs.
  void ExpirePreChangeSnapshots() {
    if (options_.now == TimePoint{}) return;
    for (const ObservedNode& node : observed_.nodes) {
      if (!node.reachable) continue;
      for (const ObservedVm& vm : node.vms) {
        if (!vm.Owned()) continue;
        const VirtualMachine* want = desired_.FindVm(vm.name);
        const Seconds keep = want != nullptr && want->spec.update_policy.snapshot
                                 ? want->spec.update_policy.snapshot->keep
                                 : PreChangeSnapshot{}.keep;
        for (const ObservedSnapshot& s : vm.snapshots) {
          if (s.policy != kPreChangeSnapshotPolicy || s.created + keep > options_.now) continue;
          Action a;
          a.type = ActionType::kSnapshotDelete;
          a.id = "snapshot-delete/" + vm.name + "/" + s.name;
          a.node = node.name;
          a.target = {Kind::kVirtualMachine, vm.name};
          a.unit = vm.owner->cluster;
          a.snapshot = s.name;
          a.policy = std::string(kPreChangeSnapshotPolicy);
          a.reason = "pre-change snapshot older than " + FormatDuration(keep) + " (updatePolicy.snapshot.keep)";
          a.changes.push_back(FieldChange{"snapshot", s.name, "", ChangeClass::kDestroy});
          // Not part of the VM's chain (nothing waits for it, and a rollout must not wait for
          // a later stage): it runs after every change, on its own.
          a.stage = kStagePower;
          expiring_.insert(a.id);
          plan_.actions.push_back(std::move(a));
        }
      }
    }
  }

  // Sync windows: the changes of a VM a window blocks now leave the plan and wait, listed as
  // pending with the window and until when. `--override-windows` lets them through where every
  // blocking window allows a manual sync.
  void HoldBackBlocked() {
    if (desired_.sync_windows.empty()) return;
    const SyncWindows windows = SyncWindows::Evaluate(desired_.sync_windows, options_.now, options_.zones);
    std::map<std::string, std::vector<const Action*>> by_vm;
    for (const Action& a : plan_.actions) {
      if (a.target.kind == Kind::kVirtualMachine && !expiring_.contains(a.id)) by_vm[a.target.name].push_back(&a);
    }
    std::set<std::string> held;  // action ids
    for (const auto& [name, actions] : by_vm) {
      std::optional<WindowBlock> block;
      if (const VirtualMachine* vm = desired_.FindVm(name)) {
        block = windows.Blocks(*vm);
      } else {
        // A deletion: the domain's own mark says what it was.
        static const Labels kNone;
        static const std::vector<std::string> kNoTags;
        auto seen = observed_.FindVms(name);
        const Ownership* owner = seen.empty() || !seen.front()->owner ? nullptr : &*seen.front()->owner;
        block = windows.Blocks(name, owner ? owner->labels : kNone, owner ? owner->tags : kNoTags,
                               owner ? std::string_view(owner->cluster) : "");
      }
      if (!block) continue;
      if (options_.override_windows && block->manual_sync) {
        plan_.warnings.push_back(Diagnostic{Severity::kWarning, {}, "VirtualMachine/" + name,
                                            block->Reason() + "; applied anyway (--override-windows; the window "
                                                              "allows manualSync)"});
        continue;
      }
      PendingChange wait{{Kind::kVirtualMachine, name}, actions.front()->node, {}, block->Reason()};
      if (options_.override_windows) wait.reason += " (the window does not allow a manual override: manualSync is false)";
      for (const Action* a : actions) {
        held.insert(a->id);
        if (a->changes.empty()) {
          const ChangeClass cls = a->type == ActionType::kDelete || a->type == ActionType::kRelease ? ChangeClass::kDestroy
                                                                                                    : ChangeClass::kPower;
          wait.changes.push_back(FieldChange{std::string(EnumName(a->type)), "", a->reason, cls});
        } else {
          wait.changes.insert(wait.changes.end(), a->changes.begin(), a->changes.end());
        }
      }
      plan_.pending.push_back(std::move(wait));
      chain_.erase(name);
      std::erase(restart_chains_, name);
    }
    std::erase_if(plan_.actions, [&](const Action& a) { return held.contains(a.id); });
    for (Action& a : plan_.actions) {
      std::erase_if(a.depends_on, [&](const std::string& id) { return held.contains(id); });
    }
    std::erase_if(source_cleanups_, [&](const Action& a) {
      return std::any_of(a.depends_on.begin(), a.depends_on.end(), [&](const std::string& id) { return held.contains(id); });
    });
  }

  // A paused guest cannot act on an ACPI request: it is powered off instead.
  void StopForRestart(const VirtualMachine& want, const std::string& node, PowerState from,
                      const std::string& reason) {
    const bool paused = from == PowerState::kPaused;
    Action down = VmAction(paused ? ActionType::kStop : ActionType::kShutdown, want, node, reason);
    down.power_before = from;
    if (!paused) down.vm = want;  // its updatePolicy: timeout, forceOff
    Add(std::move(down), kStageChanges);
  }

  void PlanOrphans() {
    for (const ObservedNode& node : observed_.nodes) {
      for (const ObservedVm& vm : node.vms) {
        if (!vm.Owned() || desired_.FindVm(vm.name) != nullptr) continue;
        const Ownership& owner = *vm.owner;
        bool scale_down = false;
        if (!owner.cluster.empty()) {
          if (const Cluster* c = FindCluster(owner.cluster)) {
            for (const NodeGroup& g : c->spec.node_groups) {
              if (g.name == owner.group && g.scale_down) scale_down = true;
            }
          }
        }
        const DeletionPolicy policy =
            vm.last_applied ? vm.last_applied->deletion_policy : DeletionPolicy::kDelete;
        const ResourceRef ref{Kind::kVirtualMachine, vm.name};
        if (!options_.prune && !scale_down) {
          plan_.pending.push_back(PendingChange{ref, node.name, {},
                                                options_.prune_by == PruneBy::kFlag
                                                    ? "not in the repository any more; the command line deletes "
                                                      "only with --prune (sync.prune is for serve)"
                                                    : "not in the repository any more; serve deletes only with "
                                                      "sync.prune: true"});
          continue;
        }
        if (policy == DeletionPolicy::kProtect) {
          plan_.pending.push_back(PendingChange{ref, node.name, {},
                                                "not in the repository, but deletionPolicy is "
                                                "Protect: delete it by hand if you mean it"});
          continue;
        }
        Action a;
        a.target = ref;
        a.node = node.name;
        a.unit = owner.cluster;
        const std::string why = scale_down ? "scaled down (cluster " + owner.cluster + ")" : "not in the repository (prune)";
        if (policy == DeletionPolicy::kKeepDisks) {
          a.type = ActionType::kDelete;
          a.id = "delete/" + vm.name;
          a.reason = why + "; deletionPolicy KeepDisks: the domain goes, its disks stay";
          a.power_before = vm.power;
          a.changes = KeptDisks(vm);
          Add(std::move(a), kStageDeletes);
          continue;
        }
        if (policy == DeletionPolicy::kRetain) {
          a.type = ActionType::kRelease;
          a.id = "release/" + vm.name;
          a.reason = "deletionPolicy Retain: the VM and its disks stay, gitvirt lets go";
          Add(std::move(a), kStageDeletes);
          continue;
        }
        a.type = ActionType::kDelete;
        a.id = "delete/" + vm.name;
        // An adopted domain's disks (or any gitvirt did not create) are never deleted: say so.
        a.reason = why + (owner.created_volumes.empty() && !vm.actual.disks.empty()
                              ? "; its disks stay (gitvirt did not create them)"
                              : "");
        a.power_before = vm.power;
        Add(std::move(a), kStageDeletes);
        if (!owner.created_volumes.empty()) {
          Action v;
          v.type = ActionType::kVolumeDelete;
          v.id = "volume-delete/" + vm.name;
          v.target = ref;
          v.node = node.name;
          v.unit = owner.cluster;
          v.volumes = owner.created_volumes;
          v.reason = "volumes gitvirt created for " + vm.name;
          for (const std::string& vol : v.volumes) {
            v.changes.push_back(FieldChange{"volume", vol, "", ChangeClass::kDestroy});
          }
          Add(std::move(v), kStageVolumes);
        }
      }
    }
  }

  // What a KeepDisks deletion leaves behind: every disk's storage, and the other volumes
  // gitvirt made for the VM (its cloud-init seed).
  static std::vector<FieldChange> KeptDisks(const ObservedVm& vm) {
    std::vector<FieldChange> kept;
    std::set<std::string> listed;
    VirtualMachine probe;
    probe.meta.name = vm.name;
    for (const Disk& d : vm.actual.disks) {
      const std::string storage = DiskStorage(probe, d).ToString();
      listed.insert(storage);
      kept.push_back(FieldChange{"disks[" + d.name + "]", storage, "kept", ChangeClass::kLive});
    }
    for (const std::string& v : vm.owner->created_volumes) {
      if (listed.insert(v).second) kept.push_back(FieldChange{"volume", v, "kept", ChangeClass::kLive});
    }
    return kept;
  }

  const Cluster* FindCluster(const std::string& name) const {
    for (const Cluster& c : desired_.clusters) {
      if (c.meta.name == name) return &c;
    }
    return nullptr;
  }

  void PlanImages() {
    // Each node imports each Image its VMs need, once, if the pool lacks it.
    std::map<std::pair<std::string, std::string>, std::vector<std::string>> users;  // (node,image)->action ids
    for (const Action& a : plan_.actions) {
      if (!a.vm || (a.type != ActionType::kCreate && a.type != ActionType::kReplace &&
                    a.type != ActionType::kUpdateLive && a.type != ActionType::kUpdateRestart &&
                    a.type != ActionType::kMigrate)) {
        continue;
      }
      for (const Disk& d : a.vm->spec.disks) {
        if (d.source.type == DiskSourceType::kImage) users[{a.node, d.source.ref}].push_back(a.id);
      }
      for (const Cdrom& c : a.vm->spec.cdroms) {
        if (!c.image.empty()) users[{a.node, c.image}].push_back(a.id);
      }
    }
    for (const auto& [key, action_ids] : users) {
      const auto& [node_name, image_name] = key;
      const Image* image = desired_.FindImage(image_name);
      const ObservedNode* node = Node(node_name);
      if (image == nullptr || node == nullptr) continue;
      const ObservedPool* pool = node->FindPool(image->spec.pool);
      if (pool != nullptr && pool->FindVolume(image->VolumeName()) != nullptr) continue;
      Action a;
      a.type = ActionType::kImageImport;
      a.id = "image-import/" + node_name + "/" + image_name;
      a.node = node_name;
      a.target = {Kind::kImage, image_name};
      a.image = *image;
      a.reason = "pool " + image->spec.pool + " on " + node_name + " has no " + image->VolumeName();
      a.changes.push_back(FieldChange{"volume", "", image->spec.pool + "/" + image->VolumeName(),
                                      ChangeClass::kLive});
      Add(std::move(a), kStageImages);
      for (const std::string& id : action_ids) image_users_[id].push_back("image-import/" + node_name + "/" + image_name);
    }
  }

  // A VM that depends on one this plan leaves pending (and that is not known to be up) is held
  // back too: dependsOn promises it starts after its dependency.
  void HoldBackDependents() {
    std::set<std::string> held;
    for (const PendingChange& p : plan_.pending) {
      if (p.target.kind != Kind::kVirtualMachine || chain_.contains(p.target.name)) continue;
      auto vms = observed_.FindVms(p.target.name);
      const bool up = std::any_of(vms.begin(), vms.end(), [&](const ObservedVm* o) {
        const ObservedNode* n = Node(o->node);
        return o->Owned() && n != nullptr && n->reachable && o->power == PowerState::kRunning;
      });
      if (!up) held.insert(p.target.name);
    }
    for (bool grew = true; grew;) {
      grew = false;
      for (const VirtualMachine& vm : desired_.vms) {
        if (held.contains(vm.meta.name) || !chain_.contains(vm.meta.name)) continue;
        for (const ResourceRef& dep : vm.spec.depends_on) {
          if (dep.kind != Kind::kVirtualMachine || !held.contains(dep.name)) continue;
          const std::set<std::string> ids(chain_[vm.meta.name].begin(), chain_[vm.meta.name].end());
          std::erase_if(plan_.actions, [&](const Action& a) { return ids.contains(a.id); });
          chain_.erase(vm.meta.name);
          Pending(vm, node_of_[vm.meta.name], {},
                  "depends on " + dep.ToString() + ", which this plan leaves pending");
          held.insert(vm.meta.name);
          grew = true;
          break;
        }
      }
    }
  }

  // A change that takes VMs down (a restart, a replace) rolls: within each cluster group and
  // each DisruptionBudget's selection, at most maxUnavailable members are down at once. Member
  // i (by name) goes down only after member i - maxUnavailable is back and Ready (its start
  // waits for readiness); one that does not become Ready fails its step, the members after it
  // never start, and the job's rollback strategy decides what is undone.
  void RollRestarts() {
    if (restart_chains_.empty()) return;
    const std::set<std::string> restarting(restart_chains_.begin(), restart_chains_.end());
    struct Rollout {
      std::string limit;  // "1", "25%"
      int size = 0;       // the whole selection, for a percentage
      std::vector<std::string> members;  // restarting, by name
    };
    std::map<std::string, Rollout> rollouts;
    for (const VirtualMachine& vm : desired_.vms) {
      if (!vm.cluster) continue;
      Rollout& r = rollouts["group " + vm.cluster->cluster + "/" + vm.cluster->group];
      if (r.limit.empty()) {
        r.limit = "1";
        if (const Cluster* c = FindCluster(vm.cluster->cluster)) {
          for (const NodeGroup& g : c->spec.node_groups) {
            if (g.name == vm.cluster->group) r.limit = g.max_unavailable;
          }
        }
      }
      ++r.size;
      if (restarting.contains(vm.meta.name)) r.members.push_back(vm.meta.name);
    }
    for (const DisruptionBudget& budget : desired_.disruption_budgets) {
      auto selector = CompiledSelector::Compile(budget.spec.selector);
      if (!selector) continue;
      Rollout& r = rollouts["budget " + budget.meta.name];
      r.limit = budget.spec.max_unavailable;
      for (const VirtualMachine& vm : desired_.vms) {
        if (!selector->Matches(vm)) continue;
        ++r.size;
        if (restarting.contains(vm.meta.name)) r.members.push_back(vm.meta.name);
      }
    }
    std::map<std::string, Action*> by_id;
    for (Action& a : plan_.actions) by_id[a.id] = &a;
    for (auto& [what, r] : rollouts) {
      const int limit = std::max(1, ResolveMaxUnavailable(r.limit, r.size).value_or(1));
      std::sort(r.members.begin(), r.members.end());
      for (std::size_t i = static_cast<std::size_t>(limit); i < r.members.size(); ++i) {
        auto first = by_id.find(FirstOf(r.members[i]));
        const std::string previous = LastOf(r.members[i - static_cast<std::size_t>(limit)]);
        if (first == by_id.end() || previous.empty()) continue;
        auto& deps = first->second->depends_on;
        if (std::find(deps.begin(), deps.end(), previous) == deps.end()) {
          deps.push_back(previous);
          std::sort(deps.begin(), deps.end());
        }
      }
    }
  }

  // The last action of a VM's chain: what "wait for this VM" means for dependents.
  std::string LastOf(const std::string& vm) const {
    auto it = chain_.find(vm);
    return it == chain_.end() || it->second.empty() ? "" : it->second.back();
  }
  std::string FirstOf(const std::string& vm) const {
    auto it = chain_.find(vm);
    return it == chain_.end() || it->second.empty() ? "" : it->second.front();
  }

  void LinkDependencies() {
    std::map<std::string, Action*> by_id;
    for (Action& a : plan_.actions) by_id[a.id] = &a;
    auto depend = [&](const std::string& from, const std::string& on) {
      if (from.empty() || on.empty() || from == on) return;
      auto& deps = by_id.at(from)->depends_on;
      if (std::find(deps.begin(), deps.end(), on) == deps.end()) deps.push_back(on);
    };
    for (const auto& [id, imports] : image_users_) {
      for (const std::string& import : imports) depend(id, import);
    }
    // Cluster members by cluster, and by (cluster, group position): looked up per member, so
    // that ten thousand members do not cost ten thousand passes over every VM.
    std::map<std::string, std::vector<const VirtualMachine*>> by_cluster;
    std::map<std::pair<std::string, int>, std::vector<const VirtualMachine*>> by_group;
    for (const VirtualMachine& m : desired_.vms) {
      if (!m.cluster) continue;
      by_cluster[m.cluster->cluster].push_back(&m);
      by_group[{m.cluster->cluster, m.cluster->group_order}].push_back(&m);
    }
    for (const VirtualMachine& vm : desired_.vms) {
      const std::string first = FirstOf(vm.meta.name);
      if (first.empty()) continue;
      for (const ResourceRef& dep : vm.spec.depends_on) {
        if (dep.kind == Kind::kVirtualMachine) depend(first, LastOf(dep.name));
        if (dep.kind == Kind::kCluster) {
          if (auto it = by_cluster.find(dep.name); it != by_cluster.end()) {
            for (const VirtualMachine* m : it->second) depend(first, LastOf(m->meta.name));
          }
        }
      }
      // Cluster groups come up in order: a member waits for the previous group's members.
      if (vm.cluster && vm.cluster->group_order > 0) {
        if (auto it = by_group.find({vm.cluster->cluster, vm.cluster->group_order - 1}); it != by_group.end()) {
          for (const VirtualMachine* m : it->second) depend(first, LastOf(m->meta.name));
        }
      }
    }
    for (Action& a : plan_.actions) std::sort(a.depends_on.begin(), a.depends_on.end());
    // An action never waits on a later stage: lift it to the stage of what it depends on
    // (e.g. a VM created after one that only needs starting).
    for (bool lifted = true; lifted;) {
      lifted = false;
      for (Action& a : plan_.actions) {
        for (const std::string& dep : a.depends_on) {
          if (by_id.at(dep)->stage > a.stage) {
            a.stage = by_id.at(dep)->stage;
            lifted = true;
          }
        }
      }
    }
  }

  // --target names something the plan can act on: a VirtualMachine of the manifests or one of
  // gitvirt's on a node (an orphan), or an Image of the manifests.
  Result<void> CheckTarget(const ResourceRef& target) const {
    std::vector<std::string> names;
    if (target.kind == Kind::kVirtualMachine) {
      for (const VirtualMachine& vm : desired_.vms) names.push_back(vm.meta.name);
      for (const ObservedNode& node : observed_.nodes) {
        for (const ObservedVm& vm : node.vms) {
          if (vm.Owned()) names.push_back(vm.name);
        }
      }
    } else if (target.kind == Kind::kImage) {
      for (const Image& image : desired_.images) names.push_back(image.meta.name);
    } else {
      return Fail(ErrorCode::kInvalidArgument,
                  "--target takes a VirtualMachine or an Image, not a " + std::string(EnumName(target.kind)));
    }
    if (std::find(names.begin(), names.end(), target.name) != names.end()) return {};
    return std::unexpected(NotFoundError(EnumName(target.kind), target.name, names));
  }

  void FilterToTarget(const ResourceRef& target) {
    std::map<std::string, const Action*> by_id;
    for (const Action& a : plan_.actions) by_id[a.id] = &a;
    std::set<std::string> keep;
    std::vector<std::string> todo;
    for (const Action& a : plan_.actions) {
      if (a.target == target) todo.push_back(a.id);
    }
    while (!todo.empty()) {
      const std::string id = todo.back();
      todo.pop_back();
      if (!keep.insert(id).second) continue;
      for (const std::string& dep : by_id.at(id)->depends_on) todo.push_back(dep);
    }
    std::erase_if(plan_.actions, [&](const Action& a) { return !keep.contains(a.id); });
    std::erase_if(plan_.pending, [&](const PendingChange& p) { return !(p.target == target); });
  }

  // Kahn's algorithm; among ready actions the lowest (stage, id) goes first, so the order is
  // deterministic and reads in stages.
  void Order() {
    // Positions, not Actions, move through the queue and the sort: each Action moves once.
    const std::size_t n = plan_.actions.size();
    std::unordered_map<std::string_view, std::size_t> index;
    index.reserve(n);
    for (std::size_t i = 0; i < n; ++i) index.emplace(plan_.actions[i].id, i);
    std::vector<int> indegree(n, 0);
    std::vector<std::vector<std::size_t>> dependents(n);
    for (std::size_t i = 0; i < n; ++i) {
      for (const std::string& dep : plan_.actions[i].depends_on) {
        ++indegree[i];  // an unknown dependency never clears: the action is dropped, as before
        if (auto it = index.find(dep); it != index.end()) dependents[it->second].push_back(i);
      }
    }
    using Key = std::tuple<int, std::string_view, std::size_t>;
    std::priority_queue<Key, std::vector<Key>, std::greater<>> ready;
    auto push = [&](std::size_t i) { ready.emplace(plan_.actions[i].stage, plan_.actions[i].id, i); };
    for (std::size_t i = 0; i < n; ++i) {
      if (indegree[i] == 0) push(i);
    }
    std::vector<std::size_t> order;
    order.reserve(n);
    while (!ready.empty()) {
      const std::size_t i = std::get<2>(ready.top());
      ready.pop();
      order.push_back(i);
      for (std::size_t next : dependents[i]) {
        if (--indegree[next] == 0) push(next);
      }
    }
    // Stages are barriers: stable-sort by stage keeps the topological order within each.
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      return plan_.actions[a].stage < plan_.actions[b].stage;
    });
    std::vector<Action> ordered;
    ordered.reserve(order.size());
    for (std::size_t i : order) ordered.push_back(std::move(plan_.actions[i]));
    plan_.actions = std::move(ordered);
  }

  const ControllerConfig& config_;
  const DesiredState& desired_;
  const ObservedState& observed_;
  const PlanOptions& options_;
  Plan plan_;
  std::vector<std::string> errors_;
  std::map<std::string, std::string> node_of_;
  std::map<std::string, std::string> blocked_;
  std::map<std::string, std::vector<std::string>> chain_;
  std::map<std::string, std::vector<std::string>> image_users_;
  std::vector<std::string> restart_chains_;  // VMs restarted or replaced by this plan, by name
  std::set<std::string> expiring_;           // ids of the pre-change snapshot deletions
  std::map<std::string, std::string> moved_by_placement_;  // vm -> why placement moves it
  std::map<std::string, Room> free_;  // node -> what is left after placement
  std::vector<Action> source_cleanups_;  // volume-delete of migrated volumes on their source
};

}  // namespace

Result<Plan> Planner::MakePlan(const DesiredState& desired, const ObservedState& observed,
                               const PlanOptions& options) const {
  return Builder(config_, desired, observed, options).Build();
}

}  // namespace gitvirt
