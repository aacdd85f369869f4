// Sync windows at an injected instant: deny and allow, a window that spans midnight, one that
// opens between two plans, manual overrides, and windows that cannot be evaluated. (Windows
// across daylight-saving changes, with the tz database: tests/engine/sync_window_zone_test.cc.)
#include "gitvirt/core/sync_window.h"

#include <gtest/gtest.h>

#include "gitvirt/core/planner.h"

namespace gitvirt {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

TimePoint At(int y, unsigned mo, unsigned d, int h, int mi = 0, int s = 0) {
  return TimePoint{std::chrono::sys_days{std::chrono::year{y} / std::chrono::month{mo} / std::chrono::day{d}}} +
         hours(h) + minutes(mi) + seconds(s);
}

SyncWindow Window(std::string name, SyncWindowType type, std::string schedule, Seconds duration, Selector selector,
                  bool manual = false) {
  SyncWindow w;
  w.meta.name = std::move(name);
  w.spec.type = type;
  w.spec.schedule = std::move(schedule);
  w.spec.duration = duration;
  w.spec.selector = std::move(selector);
  w.spec.manual_sync = manual;
  return w;
}

Selector All() {
  Selector s;
  s.all = true;
  return s;
}

VirtualMachine Vm(std::string name, Labels labels = {}) {
  VirtualMachine vm;
  vm.meta.name = std::move(name);
  vm.meta.labels = std::move(labels);
  return vm;
}

TEST(EvaluateWindow, OpenForItsDurationAfterEachFire) {
  auto cron = ParseCron("0 22 * * *");
  ASSERT_TRUE(cron);
  // Spans midnight: opened 22:00 the day before, closes 02:00.
  WindowState s = EvaluateWindow(*cron, hours(4), At(2026, 12, 8, 1), UtcZone());
  EXPECT_TRUE(s.active);
  EXPECT_EQ(s.since, At(2026, 12, 7, 22));
  EXPECT_EQ(s.until, At(2026, 12, 8, 2));
  // The first second after it: closed, opening next at 22:00.
  s = EvaluateWindow(*cron, hours(4), At(2026, 12, 8, 2), UtcZone());
  EXPECT_FALSE(s.active);
  EXPECT_EQ(s.until, At(2026, 12, 8, 22));
  // The opening second itself is inside.
  EXPECT_TRUE(EvaluateWindow(*cron, hours(4), At(2026, 12, 8, 22), UtcZone()).active);
}

TEST(EvaluateWindow, FixedOffsetZone) {
  auto cron = ParseCron("0 2 * * *");
  ASSERT_TRUE(cron);
  auto tz = FixedOffsetZone("UTC+05:30", hours(5) + minutes(30));
  // 02:00 at +05:30 is 20:30 UTC the day before.
  WindowState s = EvaluateWindow(*cron, hours(1), At(2026, 12, 7, 20, 45), *tz);
  EXPECT_TRUE(s.active);
  EXPECT_EQ(s.since, At(2026, 12, 7, 20, 30));
  EXPECT_EQ(s.until, At(2026, 12, 7, 21, 30));
}

TEST(SyncWindows, DenyBlocksWhatItSelectsUntilItCloses) {
  Selector db;
  db.match_labels = {{"tier", "db"}};
  const auto windows = SyncWindows::Evaluate({Window("freeze", SyncWindowType::kDeny, "0 22 * * *", hours(4), db)},
                                             At(2026, 12, 7, 23, 30), nullptr);
  auto block = windows.Blocks(Vm("db-01", {{"tier", "db"}}));
  ASSERT_TRUE(block);
  EXPECT_EQ(block->Reason(), "blocked by window freeze until 2026-12-08T02:00:00Z");
  EXPECT_FALSE(block->manual_sync);
  EXPECT_FALSE(windows.Blocks(Vm("web-01", {{"tier", "web"}})));
  EXPECT_EQ(windows.NextChange(), At(2026, 12, 8, 2));
}

TEST(SyncWindows, AllowWindowOpensBetweenTwoPlans) {
  const std::vector<SyncWindow> declared = {Window("maintenance", SyncWindowType::kAllow, "0 2 * * *", hours(1), All())};
  // One second before it opens: blocked until it does; the controller's next pass comes then.
  auto before = SyncWindows::Evaluate(declared, At(2026, 12, 8, 1, 59, 59), nullptr);
  auto block = before.Blocks(Vm("app-01"));
  ASSERT_TRUE(block);
  EXPECT_EQ(block->Reason(), "blocked by window maintenance until 2026-12-08T02:00:00Z");
  EXPECT_EQ(before.NextChange(), At(2026, 12, 8, 2));
  // At the opening and until the end of its hour: allowed.
  EXPECT_FALSE(SyncWindows::Evaluate(declared, At(2026, 12, 8, 2), nullptr).Blocks(Vm("app-01")));
  EXPECT_FALSE(SyncWindows::Evaluate(declared, At(2026, 12, 8, 2, 59, 59), nullptr).Blocks(Vm("app-01")));
  EXPECT_TRUE(SyncWindows::Evaluate(declared, At(2026, 12, 8, 3), nullptr).Blocks(Vm("app-01")));
}

TEST(SyncWindows, DenyWinsOverAnOpenAllowAndTheLastEndingDenyIsNamed) {
  const auto windows = SyncWindows::Evaluate(
      {Window("allow-all", SyncWindowType::kAllow, "0 0 * * *", hours(24), All()),
       Window("short", SyncWindowType::kDeny, "0 10 * * *", hours(1), All(), true),
       Window("long", SyncWindowType::kDeny, "0 9 * * *", hours(5), All(), true)},
      At(2026, 12, 7, 10, 30), nullptr);
  auto block = windows.Blocks(Vm("x"));
  ASSERT_TRUE(block);
  EXPECT_EQ(block->window, "long");
  EXPECT_EQ(block->until, At(2026, 12, 7, 14));
  EXPECT_TRUE(block->manual_sync);  // both denies allow a manual sync
}

TEST(SyncWindows, ManualSyncOnlyWhenEveryBlockingWindowAllowsIt) {
  const auto windows = SyncWindows::Evaluate(
      {Window("a", SyncWindowType::kDeny, "0 0 * * *", hours(24), All(), true),
       Window("b", SyncWindowType::kDeny, "0 0 * * *", hours(12), All(), false)},
      At(2026, 12, 7, 6), nullptr);
  auto block = windows.Blocks(Vm("x"));
  ASSERT_TRUE(block);
  EXPECT_FALSE(block->manual_sync);
}

TEST(SyncWindows, ClusterSelectorAndDeletedVmsByTheirMark) {
  Selector k8s;
  k8s.clusters = {"k8s"};
  const auto windows = SyncWindows::Evaluate({Window("k8s", SyncWindowType::kDeny, "0 0 * * *", hours(24), k8s)},
                                             At(2026, 12, 7, 6), nullptr);
  VirtualMachine member = Vm("k8s-w-01");
  member.cluster = ClusterMembership{};
  member.cluster->cluster = "k8s";
  member.cluster->group = "w";
  EXPECT_TRUE(windows.Blocks(member));
  EXPECT_FALSE(windows.Blocks(Vm("solo")));
  EXPECT_TRUE(windows.Blocks("k8s-w-02", {}, {}, "k8s"));  // a member about to be deleted
}

TEST(SyncWindows, AnUnknownZoneBlocksAndSaysWhy) {
  SyncWindow w = Window("night", SyncWindowType::kAllow, "0 2 * * *", hours(1), All());
  w.spec.time_zone = "Mars/Olympus";
  auto block = SyncWindows::Evaluate({w}, At(2026, 12, 7, 2, 30), nullptr).Blocks(Vm("x"));
  ASSERT_TRUE(block);
  EXPECT_EQ(block->Reason(), "blocked by window night (unknown time zone \"Mars/Olympus\")");
}

// The planner at two instants: the same change is pending, then planned.
TEST(SyncWindows, PlannerHoldsBackBlockedVmsAndOverridesWhereAllowed) {
  ControllerConfig config;
  config.nodes.push_back(NodeConfig{.name = "hv1", .uri = "test:///default"});
  DesiredState desired;
  VirtualMachine vm = Vm("app-01");
  vm.spec.node = "hv1";
  vm.spec.vcpus = 4;
  vm.spec.max_vcpus = 8;
  vm.spec.memory = 1ull << 30;
  desired.vms.push_back(vm);
  desired.sync_windows.push_back(Window("maintenance", SyncWindowType::kAllow, "0 2 * * *", hours(1), All(), true));
  ObservedState observed;
  ObservedNode node;
  node.name = "hv1";
  node.reachable = true;
  node.cpus = 16;
  node.memory = 64ull << 30;
  ObservedVm running;
  running.name = "app-01";
  running.node = "hv1";
  running.power = PowerState::kRunning;
  running.actual = vm.spec;
  running.actual.vcpus = 2;
  running.actual.power_state = PowerState::kRunning;
  running.owner = Ownership{};
  running.owner->name = "app-01";
  node.vms.push_back(running);
  observed.nodes.push_back(node);

  PlanOptions options;
  options.now = At(2026, 12, 8, 1, 59, 59);
  auto blocked = Planner(config).MakePlan(desired, observed, options);
  ASSERT_TRUE(blocked) << blocked.error().ToString();
  EXPECT_TRUE(blocked->actions.empty());
  ASSERT_EQ(blocked->pending.size(), 1u);
  EXPECT_EQ(blocked->pending[0].reason, "blocked by window maintenance until 2026-12-08T02:00:00Z");
  ASSERT_EQ(blocked->pending[0].changes.size(), 1u);
  EXPECT_EQ(blocked->pending[0].changes[0].path, "vcpus");

  options.override_windows = true;
  auto overridden = Planner(config).MakePlan(desired, observed, options);
  ASSERT_TRUE(overridden);
  ASSERT_EQ(overridden->actions.size(), 1u);
  EXPECT_TRUE(overridden->pending.empty());

  options.override_windows = false;
  options.now = At(2026, 12, 8, 2);
  auto open = Planner(config).MakePlan(desired, observed, options);
  ASSERT_TRUE(open);
  ASSERT_EQ(open->actions.size(), 1u);
  EXPECT_EQ(open->actions[0].id, "update-live/app-01");
  EXPECT_TRUE(open->pending.empty());
}

}  // namespace
}  // namespace gitvirt
