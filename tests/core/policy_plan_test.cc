// What one run of a SnapshotPolicy or BackupPolicy plans: the selected VMs, the names, and
// retention over the policy's own items only (hand-made ones, other policies' and protected
// backups are never deleted).
#include "gitvirt/core/json.h"
#include "gitvirt/core/policy_plan.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace gitvirt {
namespace {

// An action's params as plan files and the journal carry them: every value a string.
std::map<std::string, std::string> WireParams(const Action& a) {
  Plan p;
  p.actions = {a};
  return PlanToJson(p)["actions"][0]["params"].get<std::map<std::string, std::string>>();
}

using std::chrono::hours;
using std::chrono::seconds;

// 2026-03-01T00:00:00Z
const TimePoint kT0 = TimePoint{seconds{1772323200}};

VirtualMachine Vm(const std::string& name, Labels labels, std::vector<std::string> tags = {}) {
  VirtualMachine vm;
  vm.meta.name = name;
  vm.meta.labels = std::move(labels);
  vm.meta.tags = std::move(tags);
  vm.spec.node = "hv1";
  return vm;
}

ObservedVm Domain(const std::string& name, bool owned = true) {
  ObservedVm vm;
  vm.name = name;
  vm.node = "hv1";
  vm.power = PowerState::kRunning;
  if (owned) vm.owner = Ownership{};
  return vm;
}

ObservedSnapshot Snap(const std::string& name, const std::string& policy, TimePoint created) {
  ObservedSnapshot s;
  s.name = name;
  s.policy = policy;
  s.created = created;
  return s;
}

struct World {
  DesiredState desired;
  ObservedState observed;
  World() {
    desired.vms = {Vm("db-01", {{"tier", "db"}}), Vm("web-01", {{"tier", "web"}}, {"env-prod"}),
                   Vm("web-02", {{"tier", "web"}}), Vm("web-03", {{"tier", "web"}})};
    ObservedNode node;
    node.name = "hv1";
    node.reachable = true;
    // web-03 is declared but no node runs it; "legacy" runs but is not gitvirt's.
    node.vms = {Domain("db-01"), Domain("legacy", false), Domain("web-01"), Domain("web-02")};
    observed.nodes = {node};
  }
  ObservedVm& Find(const std::string& name) {
    for (ObservedVm& vm : observed.nodes[0].vms) {
      if (vm.name == name) return vm;
    }
    throw std::runtime_error(name);
  }
};

SnapshotPolicy Hourly(std::optional<int> keep = 7) {
  SnapshotPolicy p;
  p.meta.name = "hourly";
  p.spec.selector.match_labels = {{"tier", "web"}};
  p.spec.schedule = "0 * * * *";
  p.spec.name_pattern = "auto-{vm}-{datetime}";
  p.spec.retention.keep = keep;
  p.spec.description = "rotation";
  p.spec.quiesce = true;
  return p;
}

std::vector<std::string> Ids(const Plan& plan) {
  std::vector<std::string> ids;
  for (const Action& a : plan.actions) ids.push_back(a.id);
  return ids;
}

TEST(SelectPolicyVms, MatchesDeclaredVmsThatRunAndWarnsAboutTheRest) {
  World w;
  std::vector<Diagnostic> warnings;
  Selector s;
  s.match_labels = {{"tier", "web"}};
  auto selected = SelectPolicyVms(s, w.desired, w.observed, &warnings);
  ASSERT_TRUE(selected) << selected.error().ToString();
  ASSERT_EQ(selected->size(), 2u);
  EXPECT_EQ((*selected)[0].vm->meta.name, "web-01");
  EXPECT_EQ((*selected)[1].vm->meta.name, "web-02");
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].message.find("web-03"), std::string::npos);

  Selector tags;
  tags.tags = "env-prod";
  selected = SelectPolicyVms(tags, w.desired, w.observed);
  ASSERT_EQ(selected->size(), 1u);
  EXPECT_EQ((*selected)[0].vm->meta.name, "web-01");

  Selector names;
  names.names = {"db-*", "legacy"};
  selected = SelectPolicyVms(names, w.desired, w.observed);
  ASSERT_EQ(selected->size(), 1u);  // legacy is not in the manifests (and not gitvirt's)
  EXPECT_EQ((*selected)[0].vm->meta.name, "db-01");

  Selector all;
  all.all = true;
  EXPECT_EQ(SelectPolicyVms(all, w.desired, w.observed)->size(), 3u);
  EXPECT_FALSE(SelectPolicyVms(Selector{}, w.desired, w.observed));  // empty selector
}

TEST(PlanSnapshotPolicyRun, NamesSnapshotsByThePatternInThePolicysZone) {
  World w;
  const auto amsterdam = FixedOffsetZone("CET", hours(1));
  auto plan = PlanSnapshotPolicyRun(Hourly(), w.desired, w.observed, kT0 + hours(5), *amsterdam, "rev1");
  ASSERT_TRUE(plan) << plan.error().ToString();
  EXPECT_EQ(Ids(*plan), (std::vector<std::string>{"snapshot/web-01/auto-web-01-20260301T060000",
                                                  "snapshot/web-02/auto-web-02-20260301T060000"}));
  const Action& a = plan->actions[0];
  EXPECT_EQ(a.type, ActionType::kSnapshot);
  EXPECT_EQ(a.node, "hv1");
  EXPECT_EQ(a.policy, "hourly");
  EXPECT_EQ(a.snapshot, "auto-web-01-20260301T060000");
  EXPECT_EQ(WireParams(a).at("quiesce"), "true");
  EXPECT_EQ(WireParams(a).at("memory"), "false");
  EXPECT_EQ(WireParams(a).at("description"), "rotation");
  EXPECT_EQ(plan->revision, "rev1");
  EXPECT_EQ(plan->warnings.size(), 1u);
}

TEST(PlanSnapshotPolicyRun, ATakenNameGetsASuffix) {
  World w;
  SnapshotPolicy p = Hourly();
  p.spec.name_pattern = "{vm}-daily";
  w.Find("web-01").snapshots = {Snap("web-01-daily", "hourly", kT0), Snap("web-01-daily-2", "", kT0)};
  auto plan = PlanSnapshotPolicyRun(p, w.desired, w.observed, kT0 + hours(1), UtcZone(), "");
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->actions[0].snapshot, "web-01-daily-3");
  EXPECT_EQ(plan->actions[1].snapshot, "web-02-daily");
}

TEST(PlanSnapshotPolicyRun, RetentionDeletesOnlyThisPolicysOldestAfterTheNewSnapshot) {
  World w;
  std::vector<ObservedSnapshot>& snaps = w.Find("web-01").snapshots;
  for (int i = 0; i < 8; ++i) snaps.push_back(Snap("h" + std::to_string(i), "hourly", kT0 + hours(i)));
  snaps.push_back(Snap("by-hand", "", kT0 - hours(100)));
  snaps.push_back(Snap("other", "daily", kT0 - hours(100)));
  // keep 7: 8 old + 1 new = 9, so the two oldest of its own go.
  auto plan = PlanSnapshotPolicyRun(Hourly(7), w.desired, w.observed, kT0 + hours(10), UtcZone(), "");
  ASSERT_TRUE(plan);
  std::vector<std::string> deletes;
  for (const Action& a : plan->actions) {
    if (a.type != ActionType::kSnapshotDelete) continue;
    deletes.push_back(a.snapshot);
    EXPECT_EQ(a.policy, "hourly");
    EXPECT_EQ(a.stage, 1);
    EXPECT_EQ(a.depends_on, std::vector<std::string>{"snapshot/web-01/auto-web-01-20260301T100000"});
  }
  EXPECT_EQ(deletes, (std::vector<std::string>{"h0", "h1"}));
}

TEST(PlanSnapshotPolicyRun, KeepCountsTheNewSnapshotAsTheNewestEvenWhenTheNodesClockIsAhead) {
  World w;
  // The node's clock runs two hours ahead of the controller's: its 7 snapshots of the policy
  // look newer than `now`. keep 7 still keeps the one this run makes and drops the oldest.
  std::vector<ObservedSnapshot>& snaps = w.Find("web-01").snapshots;
  for (int i = 0; i < 7; ++i) snaps.push_back(Snap("h" + std::to_string(i), "hourly", kT0 + hours(2) + std::chrono::minutes(i)));
  auto plan = PlanSnapshotPolicyRun(Hourly(7), w.desired, w.observed, kT0, UtcZone(), "");
  ASSERT_TRUE(plan);
  std::vector<std::string> deletes;
  for (const Action& a : plan->actions) {
    if (a.type == ActionType::kSnapshotDelete) deletes.push_back(a.snapshot);
  }
  EXPECT_EQ(deletes, std::vector<std::string>{"h0"});
  // And keep 1 leaves exactly the new one.
  plan = PlanSnapshotPolicyRun(Hourly(1), w.desired, w.observed, kT0, UtcZone(), "");
  ASSERT_TRUE(plan);
  deletes.clear();
  for (const Action& a : plan->actions) {
    if (a.type == ActionType::kSnapshotDelete) deletes.push_back(a.snapshot);
  }
  EXPECT_EQ(deletes, (std::vector<std::string>{"h0", "h1", "h2", "h3", "h4", "h5", "h6"}));
}

TEST(PlanSnapshotPolicyRun, MaxAgeAndVmsNoLongerSelected) {
  World w;
  // db-01 is not selected any more but still holds two of the policy's snapshots.
  w.Find("db-01").snapshots = {Snap("old", "hourly", kT0 - hours(72)), Snap("new", "hourly", kT0 - hours(1)),
                               Snap("mine", "", kT0 - hours(999))};
  SnapshotPolicy p = Hourly(std::nullopt);
  p.spec.retention.max_age = Seconds(std::chrono::hours(48));
  auto plan = PlanSnapshotPolicyRun(p, w.desired, w.observed, kT0, UtcZone(), "");
  ASSERT_TRUE(plan);
  ASSERT_EQ(plan->actions.size(), 3u);
  const Action& d = plan->actions.back();
  EXPECT_EQ(d.id, "snapshot-delete/db-01/old");
  EXPECT_TRUE(d.depends_on.empty());  // db-01 gets no new snapshot to wait for
}

TEST(PlanSnapshotPolicyRun, KeepZeroNeverDeletesTheNewSnapshot) {
  World w;
  w.Find("web-01").snapshots = {Snap("a", "hourly", kT0 - hours(1))};
  auto plan = PlanSnapshotPolicyRun(Hourly(0), w.desired, w.observed, kT0, UtcZone(), "");
  ASSERT_TRUE(plan);
  EXPECT_EQ(Ids(*plan), (std::vector<std::string>{"snapshot/web-01/auto-web-01-20260301T000000",
                                                  "snapshot/web-02/auto-web-02-20260301T000000",
                                                  "snapshot-delete/web-01/a"}));
}

BackupPolicy Nightly() {
  BackupPolicy p;
  p.meta.name = "nightly";
  p.spec.selector.names = {"web-01"};
  p.spec.target.directory = "/backups";
  p.spec.retention.keep = 2;
  p.spec.compression = Compression::kZstd;
  p.spec.compression_level = 5;
  p.spec.verify = true;
  return p;
}

CatalogBackup Backup(const std::string& id, const std::string& policy, TimePoint created, bool is_protected = false,
                     const std::string& vm = "web-01") {
  return CatalogBackup{id, vm, "hv1", policy, "/backups/" + vm + "/" + id, created, is_protected};
}

TEST(PlanBackupPolicyRun, BacksUpTheSelectedVmsWithThePolicysSettings) {
  World w;
  auto plan = PlanBackupPolicyRun(Nightly(), w.desired, w.observed, {}, kT0 + hours(2), "rev9");
  ASSERT_TRUE(plan) << plan.error().ToString();
  ASSERT_EQ(plan->actions.size(), 1u);
  const Action& a = plan->actions[0];
  EXPECT_EQ(a.id, "backup/web-01/web-01-20260301T020000Z");
  EXPECT_EQ(a.type, ActionType::kBackup);
  ASSERT_TRUE(a.vm);
  EXPECT_EQ(a.vm->meta.name, "web-01");
  EXPECT_EQ(WireParams(a).at("id"), "web-01-20260301T020000Z");
  EXPECT_EQ(WireParams(a).at("directory"), "/backups/web-01/web-01-20260301T020000Z");
  EXPECT_EQ(WireParams(a).at("compression"), "zstd");
  EXPECT_EQ(WireParams(a).at("level"), "5");
  EXPECT_EQ(WireParams(a).at("verify"), "true");
  EXPECT_EQ(WireParams(a).at("mode"), "snapshot");
}

TEST(PlanBackupPolicyRun, RetentionNeverDeletesProtectedOrOtherPoliciesBackups) {
  World w;
  const std::vector<CatalogBackup> catalog = {
      Backup("b1", "nightly", kT0 - hours(96), /*protected=*/true),
      Backup("b2", "nightly", kT0 - hours(72)),
      Backup("b3", "nightly", kT0 - hours(48)),
      Backup("b4", "nightly", kT0 - hours(24)),
      Backup("weekly-1", "weekly", kT0 - hours(500)),
      Backup("hand-1", "", kT0 - hours(500)),
      Backup("db-1", "nightly", kT0 - hours(500), false, "db-01"),
  };
  auto plan = PlanBackupPolicyRun(Nightly(), w.desired, w.observed, catalog, kT0, "");
  ASSERT_TRUE(plan);
  // keep 2 per VM among unprotected: the new one and b4 stay; b2, b3 go; b1 is protected.
  // db-01 has a single backup of the policy: kept.
  EXPECT_EQ(Ids(*plan), (std::vector<std::string>{"backup/web-01/web-01-20260301T000000Z", "backup-delete/b2",
                                                  "backup-delete/b3"}));
  for (const Action& a : plan->actions) {
    if (a.type != ActionType::kBackupDelete) continue;
    EXPECT_EQ(a.policy, "nightly");
    EXPECT_EQ(a.depends_on, std::vector<std::string>{"backup/web-01/web-01-20260301T000000Z"});
    EXPECT_EQ(WireParams(a).at("directory"), "/backups/web-01/" + WireParams(a).at("id"));
  }
}

TEST(PlanBackupPolicyRun, KeepCountsTheNewBackupAsTheNewest) {
  World w;
  // Two backups of the policy whose recorded times are after `now` (a clock set back):
  // keep 2 keeps the new one and the newer of the two.
  const std::vector<CatalogBackup> catalog = {Backup("b1", "nightly", kT0 + hours(1)),
                                              Backup("b2", "nightly", kT0 + hours(2))};
  auto plan = PlanBackupPolicyRun(Nightly(), w.desired, w.observed, catalog, kT0, "");
  ASSERT_TRUE(plan);
  EXPECT_EQ(Ids(*plan), (std::vector<std::string>{"backup/web-01/web-01-20260301T000000Z", "backup-delete/b1"}));
}

TEST(PlanBackupPolicyRun, AProtectingPolicyNeverDeletes) {
  World w;
  BackupPolicy p = Nightly();
  p.spec.protect = true;
  const std::vector<CatalogBackup> catalog = {Backup("b1", "nightly", kT0 - hours(72), true),
                                              Backup("b2", "nightly", kT0 - hours(48), true),
                                              Backup("b3", "nightly", kT0 - hours(24), true)};
  auto plan = PlanBackupPolicyRun(p, w.desired, w.observed, catalog, kT0, "");
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->actions.size(), 1u);
  EXPECT_EQ(WireParams(plan->actions[0]).at("protect"), "true");
}

TEST(MakeBackupId, IsUniqueAgainstTheCatalog) {
  const std::vector<CatalogBackup> catalog = {Backup("web-01-20260301T000000Z", "", kT0),
                                              Backup("web-01-20260301T000000Z-2", "", kT0)};
  EXPECT_EQ(MakeBackupId("web-01", kT0, catalog), "web-01-20260301T000000Z-3");
  EXPECT_EQ(MakeBackupId("web-01", kT0 + seconds(1), catalog), "web-01-20260301T000001Z");
}

}  // namespace
}  // namespace gitvirt
