// The policy scheduler driven by a fake clock, against the shared fake node, whose snapshots
// carry the fake clock's times (so retention by age is exercised too), and against simulated nodes
// (libvirt's test driver) through the real adapter. No test sleeps for a schedule.
//
//   TenDaysHourlyKeepSeven    240 hourly slots: exactly the newest 7 of the policy's own remain,
//                             plus the hand-made and the other policy's snapshots
//   DownAcrossTwoSlotsRunsOnce  a scheduler (a new process) started after two missed slots runs
//                             the policy once, and not again for the same slot
//   SlotRecordedBeforeTheRun  the slot is durable before the job starts
//   NewPolicyWaitsForItsFirstSlot, SuspendedAndManualOnly, RunNowIncludesRetention, MaxAge
//   SimNodePolicyRun          the real adapter on a sim: node: names by the pattern, the policy
//                             recorded in the snapshot's metadata, a hand-made one survives
#include "gitvirt/engine/scheduler.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <set>

#include "fake_node.h"
#include "gitvirt/core/json.h"
#include "gitvirt/engine/timezone_db.h"
#include "gitvirt/hypervisor/connect.h"
#include "temp_dir.h"

namespace gitvirt {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
using testing::FakeNode;

// 2026-03-01T00:00:00Z
const TimePoint kT0 = TimePoint{seconds{1772323200}};

// Holds each snapshot creation until more than `hold_until_more_than` are in flight at once or
// `hold_for` passes, so a run that exceeds its limit is caught in the act; the most seen at once
// is `max_in_flight`. Runs as the fake node's hook, before the call.
struct ConcurrencyProbe {
  std::chrono::milliseconds hold_for{0};
  int hold_until_more_than = 0;
  int max_in_flight = 0;

  void Hold() {
    std::unique_lock lock(mu);
    ++in_flight;
    max_in_flight = std::max(max_in_flight, in_flight);
    changed.notify_all();
    changed.wait_for(lock, hold_for, [&] { return in_flight > hold_until_more_than; });
    --in_flight;
  }
  std::mutex mu;
  std::condition_variable changed;
  int in_flight = 0;
};

VirtualMachine Vm(const std::string& name, Labels labels) {
  VirtualMachine vm;
  vm.meta.name = name;
  vm.meta.labels = std::move(labels);
  vm.spec.node = "hv1";
  vm.spec.vcpus = 1;
  vm.spec.memory = 1ULL << 30;
  return vm;
}

SnapshotPolicy Hourly(int keep) {
  SnapshotPolicy p;
  p.meta.name = "hourly";
  p.spec.selector.match_labels = {{"tier", "web"}};
  p.spec.schedule = "0 * * * *";
  p.spec.name_pattern = "{policy}-{vm}-{datetime}";
  p.spec.retention.keep = keep;
  return p;
}

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.state = (dir_.path() / "gitvirt.db").string();
    NodeConfig node;
    node.name = "hv1";
    node.uri = "fake://";
    config_.nodes = {node};
    nodes_ = std::make_unique<NodeSet>(config_.nodes);
    auto hv = std::make_unique<FakeNode>("hv1");
    hv->SetClock([this] { return clock_.Now(); });
    hv->SetHook([this](std::string_view operation, const std::string&) {
      if (operation == "snapshot-create" && probe_.hold_for.count() > 0) probe_.Hold();
    });
    hv_ = hv.get();
    nodes_->Put("hv1", std::move(hv));
    hv_->AddDomain("web-01", PowerState::kRunning);
    hv_->AddDomain("web-02", PowerState::kRunning);
    desired_.vms = {Vm("web-01", {{"tier", "web"}}), Vm("web-02", {{"tier", "web"}})};
    desired_.snapshot_policies = {Hourly(7)};
    OpenJournal();
  }

  void OpenJournal() {
    scheduler_.reset();
    journal_.reset();
    auto j = Journal::Open(config_.state);
    ASSERT_TRUE(j) << j.error().ToString();
    journal_ = std::move(*j);
    scheduler_ = std::make_unique<PolicyScheduler>(*nodes_, *journal_, clock_, SchedulerOptions{}, nullptr);
  }

  // One pass of the controller's loop: observe, then run what is due.
  std::vector<PolicyRunResult> Tick() {
    const ObservedState observed = nodes_->ObserveAll();
    return scheduler_->RunDue(desired_, observed, "rev", {});
  }

  int JobCount(const std::string& kind) {
    JobFilter f;
    f.kind = kind;
    f.limit = 0;
    return *journal_->CountJobs(f);
  }

  testing::TempDir dir_{"gv-sched"};
  FakeClock clock_{kT0};
  ControllerConfig config_;
  std::unique_ptr<NodeSet> nodes_;
  FakeNode* hv_ = nullptr;
  ConcurrencyProbe probe_;
  DesiredState desired_;
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<PolicyScheduler> scheduler_;
};

TEST_F(SchedulerTest, TenDaysHourlyKeepSeven) {
  // The scheduler first sees the policy at 00:00:30; a hand-made snapshot and another
  // policy's snapshot exist on web-01 from the start.
  clock_.Set(kT0 + seconds(30));
  ASSERT_TRUE(hv_->snapshots().Create("web-01", SnapshotRequest{"by-hand", "", "", false, false}));
  ASSERT_TRUE(hv_->snapshots().Create("web-01", SnapshotRequest{"daily-keepme", "", "daily", false, false}));
  EXPECT_TRUE(Tick().empty());  // first seen: waits for its first slot

  int runs = 0;
  // Every 10 minutes for 10 days: the policy must run exactly once per hour.
  for (int step = 1; step <= 10 * 24 * 6; ++step) {
    clock_.Set(kT0 + seconds(30) + minutes(10) * step);
    for (const PolicyRunResult& r : Tick()) {
      ++runs;
      EXPECT_EQ(r.status, JobStatus::kSucceeded) << r.result;
      EXPECT_EQ(r.snapshots, 2);
      ASSERT_TRUE(r.slot);
      EXPECT_EQ(std::chrono::floor<hours>(*r.slot), *r.slot) << "slots are whole hours";
    }
  }
  EXPECT_EQ(runs, 240);
  EXPECT_EQ(hv_->Successes("snapshot-create"), 2 + 240 * 2);
  // The newest 7 of its own (the last run was the 240th hour: day 10 00:00, run at 00:00:30 and
  // named by the time it ran), plus the two it does not own.
  std::vector<std::string> expected = {"by-hand", "daily-keepme"};
  for (int h = 233; h <= 239; ++h) {
    const TimePoint t = kT0 + hours(h + 1);
    const auto day = std::chrono::floor<std::chrono::days>(t);
    const std::chrono::year_month_day ymd{day};
    char buf[64];
    std::snprintf(buf, sizeof buf, "hourly-web-01-%04d%02u%02uT%02d0030", static_cast<int>(ymd.year()),
                  static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                  static_cast<int>(std::chrono::duration_cast<hours>(t - day).count()));
    expected.push_back(buf);
  }
  EXPECT_EQ(hv_->SnapshotNames("web-01"), expected);
  EXPECT_EQ(hv_->SnapshotNames("web-02").size(), 7u);
  EXPECT_EQ(JobCount("snapshot"), 240);
}

TEST_F(SchedulerTest, DownAcrossTwoSlotsRunsOnce) {
  clock_.Set(kT0 + minutes(5));
  Tick();  // first seen
  clock_.Set(kT0 + hours(1) + minutes(1));
  ASSERT_EQ(Tick().size(), 1u);  // the 01:00 slot
  // The controller stops at 01:02 and starts again at 03:30: the 02:00 and 03:00 slots were
  // missed. A new process: journal and scheduler opened afresh.
  OpenJournal();
  clock_.Set(kT0 + hours(3) + minutes(30));
  auto runs = Tick();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(*runs[0].slot, kT0 + hours(3));
  EXPECT_EQ(hv_->SnapshotNames("web-01").size(), 2u);
  // Not again for the same slot, in this process or the next.
  clock_.Set(kT0 + hours(3) + minutes(59));
  EXPECT_TRUE(Tick().empty());
  OpenJournal();
  EXPECT_TRUE(Tick().empty());
  EXPECT_EQ(JobCount("snapshot"), 2);
  // And the status says when it runs next.
  auto statuses = scheduler_->Statuses(desired_);
  ASSERT_EQ(statuses.size(), 1u);
  EXPECT_EQ(statuses[0].name, "hourly");
  EXPECT_EQ(statuses[0].next_run, kT0 + hours(4));
  EXPECT_EQ(statuses[0].last_run, kT0 + hours(3) + minutes(30));
  EXPECT_EQ(statuses[0].last_result, "succeeded");
}

TEST_F(SchedulerTest, MaxParallelBoundsTheSnapshotsAtOnce) {
  for (int i = 3; i <= 6; ++i) {
    const std::string name = "web-0" + std::to_string(i);
    hv_->AddDomain(name, PowerState::kRunning);
    desired_.vms.push_back(Vm(name, {{"tier", "web"}}));
  }
  desired_.snapshot_policies[0].spec.max_parallel = 2;
  probe_.hold_for = std::chrono::milliseconds(300);
  probe_.hold_until_more_than = 2;
  auto r = scheduler_->RunNow(Kind::kSnapshotPolicy, "hourly", desired_, nodes_->ObserveAll(), "rev");
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->snapshots, 6);
  EXPECT_EQ(probe_.max_in_flight, 2) << "maxParallel 2: two at once, never more";

  // The node's maxParallel bounds it too.
  desired_.snapshot_policies[0].spec.max_parallel = 6;
  SchedulerOptions options;
  options.jobs.per_node["hv1"] = 1;
  scheduler_ = std::make_unique<PolicyScheduler>(*nodes_, *journal_, clock_, options, nullptr);
  probe_.max_in_flight = 0;
  probe_.hold_until_more_than = 1;
  clock_.Advance(minutes(1));
  r = scheduler_->RunNow(Kind::kSnapshotPolicy, "hourly", desired_, nodes_->ObserveAll(), "rev");
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(probe_.max_in_flight, 1);
}

TEST_F(SchedulerTest, AFailedSnapshotKeepsThatVmsOldOnes) {
  desired_.snapshot_policies[0].spec.retention.keep = 2;
  for (int i = 1; i <= 3; ++i) {
    clock_.Set(kT0 + hours(i));
    ASSERT_TRUE(scheduler_->RunNow(Kind::kSnapshotPolicy, "hourly", desired_, nodes_->ObserveAll(), "rev"));
  }
  ASSERT_EQ(hv_->SnapshotNames("web-01").size(), 2u);
  const auto before = hv_->SnapshotNames("web-01");
  hv_->FailCalls("snapshot-create", "web-01", Error{ErrorCode::kInternal, "snapshot of web-01 failed (injected)", ""});
  clock_.Set(kT0 + hours(4));
  auto r = scheduler_->RunNow(Kind::kSnapshotPolicy, "hourly", desired_, nodes_->ObserveAll(), "rev");
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->snapshots, 1);
  EXPECT_EQ(r->snapshots_failed, 1);
  EXPECT_EQ(r->deleted, 1) << "web-02 rotates";
  EXPECT_NE(r->status, JobStatus::kSucceeded);
  EXPECT_EQ(hv_->SnapshotNames("web-01"), before) << "no new snapshot, so none of the old ones goes";
  EXPECT_EQ(hv_->SnapshotNames("web-02").size(), 2u);
}

TEST_F(SchedulerTest, SlotRecordedBeforeTheRun) {
  clock_.Set(kT0 + minutes(5));
  Tick();
  // A VM whose snapshot always fails would still have its slot taken; here the check is
  // that the state holds the slot while the job runs: read it from a step's progress.
  clock_.Set(kT0 + hours(1));
  std::optional<std::string> seen;
  std::mutex seen_mu;  // progress is reported from the executor's worker threads
  RunHooks hooks;
  hooks.on_progress = [&](const StepProgress&) {
    std::lock_guard lock(seen_mu);
    if (!seen) seen = **journal_->GetState(PolicyScheduler::StateKey(Kind::kSnapshotPolicy, "hourly"));
  };
  const ObservedState observed = nodes_->ObserveAll();
  ASSERT_EQ(scheduler_->RunDue(desired_, observed, "rev", hooks).size(), 1u);
  ASSERT_TRUE(seen);
  const auto state = nlohmann::json::parse(*seen);
  EXPECT_EQ(state.value("slot", 0LL), (kT0 + hours(1)).time_since_epoch().count()) << *seen;
  EXPECT_FALSE(state.contains("lastRun")) << "the run's outcome is recorded after it";
}

TEST_F(SchedulerTest, NewPolicyWaitsForItsFirstSlot) {
  clock_.Set(kT0 + minutes(59));
  EXPECT_TRUE(Tick().empty());
  clock_.Set(kT0 + minutes(59) + seconds(59));
  EXPECT_TRUE(Tick().empty());
  clock_.Set(kT0 + hours(1));
  EXPECT_EQ(Tick().size(), 1u);
}

TEST_F(SchedulerTest, SuspendedAndManualOnlyPoliciesAreNotScheduled) {
  desired_.snapshot_policies[0].spec.suspend = true;
  SnapshotPolicy manual = Hourly(3);
  manual.meta.name = "manual";
  manual.spec.schedule = "";
  desired_.snapshot_policies.push_back(manual);
  for (int h = 0; h < 5; ++h) {
    clock_.Set(kT0 + hours(h) + minutes(1));
    EXPECT_TRUE(Tick().empty());
  }
  EXPECT_EQ(hv_->Successes("snapshot-create"), 0);
  // By hand it runs, retention included.
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(minutes(1));
    auto r = scheduler_->RunNow(Kind::kSnapshotPolicy, "manual", desired_, nodes_->ObserveAll(), "rev");
    ASSERT_TRUE(r) << r.error().ToString();
    EXPECT_EQ(r->status, JobStatus::kSucceeded) << r->result;
  }
  EXPECT_EQ(hv_->SnapshotNames("web-01").size(), 3u);
  auto statuses = scheduler_->Statuses(desired_);
  ASSERT_EQ(statuses.size(), 2u);
  EXPECT_TRUE(statuses[0].suspended);
  EXPECT_FALSE(statuses[0].next_run);
  EXPECT_FALSE(statuses[1].next_run);
  EXPECT_EQ(statuses[1].last_result, "succeeded (run by hand)");
  EXPECT_FALSE(scheduler_->RunNow(Kind::kSnapshotPolicy, "nope", desired_, nodes_->ObserveAll(), "rev"));
}

TEST_F(SchedulerTest, MaxAgeDropsOlderSnapshotsByTheirCreationTime) {
  desired_.snapshot_policies[0].spec.retention = Retention{std::nullopt, Seconds(hours(3))};
  clock_.Set(kT0 + minutes(5));
  Tick();
  for (int h = 1; h <= 8; ++h) {
    clock_.Set(kT0 + hours(h));
    ASSERT_EQ(Tick().size(), 1u);
  }
  // Made at hours 1..8; at hour 8, those before hour 5 are older than 3h.
  EXPECT_EQ(hv_->SnapshotNames("web-02").size(), 4u);
}

TEST_F(SchedulerTest, DstZoneSchedulesInLocalTime) {
  auto zone = LoadTimeZone("Europe/Amsterdam");
  ASSERT_TRUE(zone) << zone.error().ToString();
  desired_.snapshot_policies[0].spec.schedule = "0 2 * * *";  // 02:00 local, every day
  desired_.snapshot_policies[0].spec.time_zone = "Europe/Amsterdam";
  // 2026-03-28 12:00Z; the night of 28-29 March skips 02:00 local (CET -> CEST).
  const TimePoint start = TimePoint{seconds{1774699200}};
  clock_.Set(start);
  Tick();
  int runs = 0;
  std::vector<TimePoint> slots;
  for (int m = 1; m <= 3 * 24 * 6; ++m) {
    clock_.Set(start + minutes(10) * m);
    for (const PolicyRunResult& r : Tick()) {
      ++runs;
      slots.push_back(*r.slot);
    }
  }
  // 29 March has no 02:00; 30 and 31 March fire at 00:00Z (02:00 CEST).
  ASSERT_EQ(runs, 2);
  EXPECT_EQ(slots[0], TimePoint{seconds{1774828800}});  // 2026-03-30T00:00:00Z
  EXPECT_EQ(slots[1], TimePoint{seconds{1774915200}});  // 2026-03-31T00:00:00Z
}

// ---- the real adapter on a simulated node --------------------------------------------------

// The example through libvirt's test driver (the real adapter, snapshots in the node's
// file): hourly for 10 days with keep 7 ends with exactly the newest 7 of the policy's own; a
// hand-made snapshot and another policy's survive. The test driver stamps snapshots with the
// real time, so here the order comes from the names (equal creation times are ordered by name).
TEST(SchedulerSimNode, TenDaysHourlyKeepSeven) {
  testing::TempDir dir("gv-sched10");
  ControllerConfig config;
  config.state = (dir.path() / "gitvirt.db").string();
  NodeConfig node;
  node.name = "hv1";
  node.uri = "sim:" + (dir.path() / "hv1.xml").string();
  config.nodes = {node};
  auto hv = ConnectNode(node, HypervisorOptions{});
  ASSERT_TRUE(hv) << hv.error().ToString();
  for (const std::string name : {"web-01", "web-02"}) {
    DomainDefinition def;
    def.vm = Vm(name, {{"tier", "web"}});
    def.owner.name = name;
    ASSERT_TRUE((*hv)->domains().Define(def));
    ASSERT_TRUE((*hv)->power().Start(name));
  }
  ASSERT_TRUE((*hv)->snapshots().Create("web-01", SnapshotRequest{"by-hand", "", "", false, false}));
  ASSERT_TRUE((*hv)->snapshots().Create("web-01", SnapshotRequest{"daily-keepme", "", "daily", false, false}));
  NodeSet nodes(config.nodes);
  nodes.Put("hv1", std::move(*hv));
  auto journal = Journal::Open(config.state);
  ASSERT_TRUE(journal);
  FakeClock clock(kT0 + seconds(30));
  PolicyScheduler scheduler(nodes, **journal, clock, SchedulerOptions{}, nullptr);
  DesiredState desired;
  desired.vms = {Vm("web-01", {{"tier", "web"}}), Vm("web-02", {{"tier", "web"}})};
  desired.snapshot_policies = {Hourly(7)};
  EXPECT_TRUE(scheduler.RunDue(desired, nodes.ObserveAll(), "rev").empty()) << "first seen: waits for its slot";
  int runs = 0;
  for (int h = 1; h <= 240; ++h) {
    clock.Set(kT0 + hours(h) + seconds(30));
    for (const PolicyRunResult& r : scheduler.RunDue(desired, nodes.ObserveAll(), "rev")) {
      ++runs;
      ASSERT_EQ(r.status, JobStatus::kSucceeded) << r.result;
      ASSERT_EQ(r.snapshots, 2);
      EXPECT_EQ(r.deleted, h <= 7 ? 0 : 2) << "hour " << h;
    }
  }
  EXPECT_EQ(runs, 240);
  auto again = ConnectNode(node, HypervisorOptions{});  // as another process would see it
  ASSERT_TRUE(again);
  auto snaps = (*again)->snapshots().List("web-01");
  ASSERT_TRUE(snaps);
  std::vector<std::string> names;
  for (const ObservedSnapshot& s : *snaps) names.push_back(s.name);
  std::sort(names.begin(), names.end());
  std::vector<std::string> expected = {"by-hand", "daily-keepme"};
  for (int h = 234; h <= 240; ++h) {
    const TimePoint t = kT0 + hours(h);
    const std::chrono::year_month_day ymd{std::chrono::floor<std::chrono::days>(t)};
    char buf[64];
    std::snprintf(buf, sizeof buf, "hourly-web-01-%04d%02u%02uT%02d0030", static_cast<int>(ymd.year()),
                  static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()), h % 24);
    expected.push_back(buf);
  }
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(names, expected) << "the newest 7 of its own (the last one made by the last run) and the two others";
  EXPECT_EQ((*again)->snapshots().List("web-02")->size(), 7u);
}

TEST(SchedulerSimNode, PolicyRunCreatesSnapshotsNamedByThePattern) {
  testing::TempDir dir("gv-schedsim");
  ControllerConfig config;
  config.state = (dir.path() / "gitvirt.db").string();
  NodeConfig node;
  node.name = "hv1";
  node.uri = "sim:" + (dir.path() / "hv1.xml").string();
  node.pools = {PoolConfig{"default", (dir.path() / "images").string()}};
  config.nodes = {node};
  auto hv = ConnectNode(node, HypervisorOptions{});
  ASSERT_TRUE(hv) << hv.error().ToString();
  // Two domains of gitvirt's, defined through the adapter as apply would.
  for (const std::string name : {"web-01", "web-02"}) {
    DomainDefinition def;
    def.vm = Vm(name, {{"tier", "web"}});
    def.owner.name = name;
    ASSERT_TRUE((*hv)->domains().Define(def));
    ASSERT_TRUE((*hv)->power().Start(name));
  }
  ASSERT_TRUE((*hv)->snapshots().Create("web-01", SnapshotRequest{"keep-me", "by hand", "", false, false}));
  NodeSet nodes(config.nodes);
  nodes.Put("hv1", std::move(*hv));
  auto journal = Journal::Open(config.state);
  ASSERT_TRUE(journal);
  FakeClock clock(kT0 + hours(1) + seconds(7));
  PolicyScheduler scheduler(nodes, **journal, clock, SchedulerOptions{}, nullptr);
  DesiredState desired;
  desired.vms = {Vm("web-01", {{"tier", "web"}}), Vm("web-02", {{"tier", "web"}})};
  SnapshotPolicy p = Hourly(2);
  p.spec.name_pattern = "auto-{vm}-{date}-{time}";
  p.spec.description = "hourly rotation";
  p.spec.quiesce = true;
  desired.snapshot_policies = {p};
  for (int i = 0; i < 3; ++i) {
    auto r = scheduler.RunNow(Kind::kSnapshotPolicy, "hourly", desired, nodes.ObserveAll(), "rev");
    ASSERT_TRUE(r) << r.error().ToString();
    EXPECT_EQ(r->status, JobStatus::kSucceeded) << r->result;
    clock.Advance(hours(1));
  }
  // Through a new connection to the node file: what another process would see.
  auto again = ConnectNode(node, HypervisorOptions{});
  ASSERT_TRUE(again);
  auto snaps = (*again)->snapshots().List("web-01");
  ASSERT_TRUE(snaps);
  std::vector<std::string> names;
  for (const ObservedSnapshot& s : *snaps) {
    names.push_back(s.name);
    if (s.name.starts_with("auto-")) {
      EXPECT_EQ(s.policy, "hourly");
      EXPECT_EQ(s.description, "hourly rotation");
    } else {
      EXPECT_EQ(s.policy, "");
    }
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"auto-web-01-20260301-020007", "auto-web-01-20260301-030007", "keep-me"}));
  auto observed = (*again)->domains().ObserveVm("web-02");
  ASSERT_TRUE(observed);
  EXPECT_EQ(observed->snapshots.size(), 2u) << "snapshots are part of the observed VM";
}

}  // namespace
}  // namespace gitvirt
