// Resource status from desired + observed + plan + failed/in-progress sets + readiness reports
// (pure): every sync status (Missing, Orphaned, Failed, OutOfSync, Synced) and health (Healthy,
// Degraded, Progressing, Unknown) from its inputs; a VM with a readiness block is Ready only when
// its report says so, and the address comes from the report when it has one.
#include "gitvirt/engine/status_builder.h"

#include <gtest/gtest.h>

#include <optional>

namespace gitvirt {
namespace {

VirtualMachine Vm(const std::string& name, Readiness readiness) {
  VirtualMachine vm;
  vm.meta.name = name;
  vm.spec.node = "hv1";
  vm.spec.readiness = std::move(readiness);
  vm.spec.cloud_init = CloudInit{};
  vm.spec.cloud_init->ip_configs = {IpConfig{.v4 = IpMode::kStatic, .v4_address = "10.0.0.5/24"}};
  return vm;
}

ObservedState Running(const std::vector<std::string>& names) {
  ObservedState o;
  ObservedNode n;
  n.name = "hv1";
  n.reachable = true;
  for (const std::string& name : names) {
    ObservedVm vm;
    vm.name = name;
    vm.node = "hv1";
    vm.power = PowerState::kRunning;
    vm.owner = Ownership{};
    n.vms.push_back(vm);
  }
  o.nodes.push_back(n);
  return o;
}

const Condition& Ready(const ResourceStatus& s) {
  for (const Condition& c : s.conditions) {
    if (c.type == "Ready") return c;
  }
  static const Condition none;
  ADD_FAILURE() << "no Ready condition";
  return none;
}

class StatusReadinessTest : public ::testing::Test {
 protected:
  std::vector<ResourceStatus> Build(std::map<std::string, ReadinessReport> guests) {
    StatusInputs in;
    in.desired = &desired_;
    in.observed = &observed_;
    in.guests = std::move(guests);
    return BuildResourceStatuses(in);
  }
  DesiredState desired_;
  ObservedState observed_;
};

TEST_F(StatusReadinessTest, ReadyOnlyWhenTheReportSaysSo) {
  desired_.vms = {Vm("db-01", Readiness{.agent = true})};
  observed_ = Running({"db-01"});

  auto s = Build({});
  EXPECT_EQ(s[0].health, Health::kProgressing);
  EXPECT_FALSE(Ready(s[0]).status);
  EXPECT_EQ(Ready(s[0]).reason, "ReadinessUnknown");
  EXPECT_EQ(s[0].address, "10.0.0.5");
  EXPECT_EQ(s[0].address_source, "static");

  s = Build({{"db-01", ReadinessReport{.ready = false, .message = "the guest agent does not answer (x)"}}});
  EXPECT_EQ(s[0].health, Health::kProgressing);
  EXPECT_EQ(Ready(s[0]).reason, "ReadinessPending");
  EXPECT_EQ(Ready(s[0]).message, "the guest agent does not answer (x)");

  s = Build({{"db-01", ReadinessReport{.ready = true, .address = "10.0.0.77", .address_source = "agent",
                                       .message = "the guest agent answers and reports 10.0.0.77"}}});
  EXPECT_EQ(s[0].health, Health::kHealthy);
  EXPECT_TRUE(Ready(s[0]).status);
  EXPECT_EQ(Ready(s[0]).reason, "ReadinessPassed");
  EXPECT_EQ(s[0].address, "10.0.0.77");
  EXPECT_EQ(s[0].address_source, "agent");
}

TEST_F(StatusReadinessTest, UncheckableNodesAreReadyWithTheirReason) {
  desired_.vms = {Vm("db-01", Readiness{.tcp = 5432})};
  observed_ = Running({"db-01"});
  auto s = Build({{"db-01", ReadinessReport{.ready = true, .checked = false, .message = "cannot be checked"}}});
  EXPECT_EQ(s[0].health, Health::kHealthy);
  EXPECT_TRUE(Ready(s[0]).status);
  EXPECT_EQ(Ready(s[0]).reason, "ReadinessNotCheckable");
}

TEST_F(StatusReadinessTest, WithoutReadinessThePowerStateDecides) {
  desired_.vms = {Vm("web-01", Readiness{})};
  observed_ = Running({"web-01"});
  auto s = Build({});
  EXPECT_EQ(s[0].health, Health::kHealthy);
  EXPECT_EQ(Ready(s[0]).reason, "PowerStateMatches");
  // A stopped VM that should run is not Ready, whatever a report says.
  desired_.vms = {Vm("web-01", Readiness{.agent = true})};
  observed_.nodes[0].vms[0].power = PowerState::kStopped;
  s = Build({{"web-01", ReadinessReport{.ready = true}}});
  EXPECT_EQ(s[0].health, Health::kDegraded);
  EXPECT_EQ(Ready(s[0]).reason, "PowerStateDiffers");
}

TEST_F(StatusReadinessTest, ClusterMembersCountAsReadyOnlyWhenReady) {
  Cluster c;
  c.meta.name = "k8s";
  NodeGroup g;
  g.name = "cp";
  g.count = 2;
  c.spec.node_groups = {g};
  desired_.clusters = {c};
  for (const char* name : {"k8s-cp-01", "k8s-cp-02"}) {
    VirtualMachine vm = Vm(name, Readiness{.agent = true});
    vm.cluster = ClusterMembership{.cluster = "k8s", .group = "cp"};
    desired_.vms.push_back(vm);
  }
  observed_ = Running({"k8s-cp-01", "k8s-cp-02"});
  auto s = Build({{"k8s-cp-01", ReadinessReport{.ready = true}}, {"k8s-cp-02", ReadinessReport{.ready = false}}});
  const auto clusters = BuildClusterStatuses(desired_, s);
  ASSERT_EQ(clusters.size(), 1u);
  EXPECT_EQ(clusters[0].ready, 1);
  EXPECT_TRUE(clusters[0].groups[0].members[0].ready);
  EXPECT_FALSE(clusters[0].groups[0].members[1].ready);
}

// Sync status and health from the other inputs: no readiness blocks here, so the power state decides.
class StatusSyncTest : public ::testing::Test {
 protected:
  static VirtualMachine Declared(const std::string& name, PowerState power) {
    VirtualMachine vm;
    vm.meta.name = name;
    vm.spec.node = "hv1";
    vm.spec.power_state = power;
    return vm;
  }
  // An owned domain on hv1, last applied by revision `rev-<name>` in job `job-<name>`.
  void Observe(const std::string& name, PowerState power) {
    if (observed_.nodes.empty()) {
      observed_.nodes.push_back(ObservedNode{});
      observed_.nodes[0].name = "hv1";
      observed_.nodes[0].reachable = true;
    }
    ObservedVm vm;
    vm.name = name;
    vm.node = "hv1";
    vm.power = power;
    vm.owner = Ownership{.name = name, .revision = "rev-" + name, .job = "job-" + name};
    observed_.nodes[0].vms.push_back(vm);
  }
  static Action Update(const std::string& name, FieldChange change) {
    Action a;
    a.id = "update-live/" + name;
    a.type = ActionType::kUpdateLive;
    a.node = "hv1";
    a.target = ResourceRef{Kind::kVirtualMachine, name};
    a.changes = {std::move(change)};
    return a;
  }
  std::vector<ResourceStatus> Build() {
    StatusInputs in;
    in.desired = desired_ ? &*desired_ : nullptr;
    in.observed = &observed_;
    in.plan = &plan_;
    in.failed = failed_;
    in.in_progress = in_progress_;
    return BuildResourceStatuses(in);
  }
  const ResourceStatus& Find(const std::vector<ResourceStatus>& all, const std::string& name) {
    for (const ResourceStatus& s : all) {
      if (s.name == name) return s;
    }
    static const ResourceStatus none;
    ADD_FAILURE() << "no status for " << name;
    return none;
  }

  std::optional<DesiredState> desired_ = DesiredState{};
  ObservedState observed_;
  Plan plan_;
  std::set<std::string> failed_;
  std::set<std::string> in_progress_;
};

TEST_F(StatusSyncTest, DeclaredButNotObservedIsMissingAndDegraded) {
  desired_->vms = {Declared("web-01", PowerState::kRunning)};
  const auto s = Build();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].sync, SyncStatus::kMissing);
  EXPECT_EQ(s[0].health, Health::kDegraded);
  EXPECT_EQ(s[0].node, "hv1");  // the declared node
  EXPECT_EQ(s[0].power, "");
  EXPECT_EQ(s[0].revision, "");
  EXPECT_FALSE(Ready(s[0]).status);
  EXPECT_EQ(Ready(s[0]).message, "not found on any node");
}

TEST_F(StatusSyncTest, ObservedAndUnchangedIsSyncedWithTheRevisionThatAppliedIt) {
  desired_->vms = {Declared("web-01", PowerState::kRunning)};
  Observe("web-01", PowerState::kRunning);
  const auto s = Build();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].sync, SyncStatus::kSynced);
  EXPECT_EQ(s[0].health, Health::kHealthy);
  EXPECT_EQ(s[0].revision, "rev-web-01");
  EXPECT_EQ(s[0].last_job, "job-web-01");
  EXPECT_EQ(s[0].power, "Running");
  EXPECT_TRUE(s[0].drift.empty());
  EXPECT_TRUE(Ready(s[0]).status);
}

TEST_F(StatusSyncTest, APlannedChangeIsOutOfSyncWithItsDrift) {
  desired_->vms = {Declared("web-01", PowerState::kRunning), Declared("web-02", PowerState::kRunning)};
  Observe("web-01", PowerState::kRunning);
  Observe("web-02", PowerState::kRunning);
  const FieldChange memory{.path = "memory", .before = "1GiB", .after = "2GiB"};
  plan_.actions = {Update("web-01", memory)};
  const auto s = Build();
  const ResourceStatus& drifted = Find(s, "web-01");
  EXPECT_EQ(drifted.sync, SyncStatus::kOutOfSync);
  EXPECT_EQ(drifted.drift, std::vector<FieldChange>{memory});
  EXPECT_EQ(drifted.health, Health::kHealthy);  // drift in memory says nothing about power
  // An action on one VM leaves the others Synced.
  EXPECT_EQ(Find(s, "web-02").sync, SyncStatus::kSynced);
  EXPECT_TRUE(Find(s, "web-02").drift.empty());
}

TEST_F(StatusSyncTest, APendingChangeIsOutOfSyncWithAPendingCondition) {
  desired_->vms = {Declared("web-01", PowerState::kRunning)};
  Observe("web-01", PowerState::kRunning);
  const FieldChange vcpus{.path = "vcpus", .before = "2", .after = "4", .change_class = ChangeClass::kRestart};
  plan_.pending = {PendingChange{.target = ResourceRef{Kind::kVirtualMachine, "web-01"},
                                 .node = "hv1",
                                 .changes = {vcpus},
                                 .reason = "restartPolicy: Never"}};
  const auto s = Build();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].sync, SyncStatus::kOutOfSync);
  EXPECT_EQ(s[0].drift, std::vector<FieldChange>{vcpus});
  bool pending = false;
  for (const Condition& c : s[0].conditions) {
    if (c.type == "Pending") {
      pending = true;
      EXPECT_EQ(c.message, "restartPolicy: Never");
    }
  }
  EXPECT_TRUE(pending);
}

TEST_F(StatusSyncTest, OwnedButNoLongerDeclaredIsOrphaned) {
  desired_->vms = {Declared("web-01", PowerState::kRunning)};
  Observe("web-01", PowerState::kRunning);
  Observe("old-01", PowerState::kRunning);
  // Somebody else's domain is neither Orphaned nor listed.
  ObservedVm foreign;
  foreign.name = "foreign";
  foreign.node = "hv1";
  observed_.nodes[0].vms.push_back(foreign);
  const auto s = Build();
  ASSERT_EQ(s.size(), 2u);
  const ResourceStatus& old = Find(s, "old-01");
  EXPECT_EQ(old.sync, SyncStatus::kOrphaned);
  EXPECT_EQ(old.health, Health::kUnknown);
  EXPECT_EQ(old.node, "hv1");
  EXPECT_EQ(old.revision, "rev-old-01");
  EXPECT_EQ(old.last_job, "job-old-01");
  EXPECT_EQ(Find(s, "web-01").sync, SyncStatus::kSynced);
}

TEST_F(StatusSyncTest, WithoutReadableManifestsNothingIsCalledOrphaned) {
  // A repository that fails to load must not make every owned VM look like it left git.
  desired_.reset();
  Observe("web-01", PowerState::kRunning);
  const auto s = Build();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].sync, SyncStatus::kOutOfSync);
  EXPECT_EQ(s[0].health, Health::kUnknown);
}

TEST_F(StatusSyncTest, ALastJobFailureWinsOverDriftAndAbsence) {
  desired_->vms = {Declared("web-01", PowerState::kRunning), Declared("web-02", PowerState::kRunning)};
  Observe("web-01", PowerState::kRunning);
  plan_.actions = {Update("web-01", FieldChange{.path = "memory", .before = "1GiB", .after = "2GiB"})};
  failed_ = {"VirtualMachine/web-01", "VirtualMachine/web-02"};
  const auto s = Build();
  EXPECT_EQ(Find(s, "web-01").sync, SyncStatus::kFailed);
  EXPECT_EQ(Find(s, "web-01").drift.size(), 1u);  // what it failed to change is still shown
  EXPECT_EQ(Find(s, "web-02").sync, SyncStatus::kFailed);  // failed to be created
}

TEST_F(StatusSyncTest, HealthComparesTheObservedPowerWithTheDeclaredOne) {
  desired_->vms = {Declared("stopped-as-declared", PowerState::kStopped),
                   Declared("should-run", PowerState::kRunning),
                   Declared("paused", PowerState::kRunning),
                   Declared("should-stop", PowerState::kStopped)};
  Observe("stopped-as-declared", PowerState::kStopped);
  Observe("should-run", PowerState::kStopped);
  Observe("paused", PowerState::kPaused);
  Observe("should-stop", PowerState::kRunning);
  const auto s = Build();
  EXPECT_EQ(Find(s, "stopped-as-declared").health, Health::kHealthy);
  EXPECT_TRUE(Ready(Find(s, "stopped-as-declared")).status);
  EXPECT_EQ(Find(s, "should-run").health, Health::kDegraded);
  EXPECT_EQ(Ready(Find(s, "should-run")).message, "observed Stopped, desired Running");
  EXPECT_EQ(Find(s, "paused").health, Health::kDegraded);
  EXPECT_EQ(Find(s, "should-stop").health, Health::kDegraded);
}

TEST_F(StatusSyncTest, AVmAJobIsWorkingOnIsProgressing) {
  desired_->vms = {Declared("web-01", PowerState::kRunning), Declared("web-02", PowerState::kRunning)};
  Observe("web-01", PowerState::kStopped);  // being started
  in_progress_ = {"VirtualMachine/web-01", "VirtualMachine/web-02"};  // web-02 being created
  const auto s = Build();
  EXPECT_EQ(Find(s, "web-01").health, Health::kProgressing);
  EXPECT_EQ(Find(s, "web-02").health, Health::kProgressing);
  EXPECT_EQ(Find(s, "web-02").sync, SyncStatus::kMissing);
  in_progress_.clear();
  const auto after = Build();
  EXPECT_EQ(Find(after, "web-01").health, Health::kDegraded);
}

TEST_F(StatusSyncTest, ImagesAreOutOfSyncWhileAnImportIsPlanned) {
  Image image;
  image.meta.name = "debian-12";
  desired_->images = {image};
  EXPECT_EQ(Find(Build(), "debian-12").sync, SyncStatus::kSynced);
  Action import;
  import.id = "image-import/hv1/debian-12";
  import.type = ActionType::kImageImport;
  import.node = "hv1";
  import.target = ResourceRef{Kind::kImage, "debian-12"};
  plan_.actions = {import};
  EXPECT_EQ(Find(Build(), "debian-12").sync, SyncStatus::kOutOfSync);
}

}  // namespace
}  // namespace gitvirt
