// The executor against a fake StepRunner (the one fake the executor's tests need) and a real
// SQLite journal: dependency order, parallel limits, stage barriers, every rollback strategy,
// cluster units, cancellation, crash recovery and journal-ahead.

#include "gitvirt/engine/executor.h"

#include "gitvirt/core/json.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "temp_dir.h"

namespace gitvirt {
namespace {

using nlohmann::json;

class FakeRunner : public StepRunner {
 public:
  std::set<std::string> fail_run;   // step ids whose Run fails
  std::set<std::string> fail_undo;  // step ids whose Undo fails
  std::set<std::string> not_undoable;
  std::set<std::string> throw_run;   // step ids whose Run throws (a library's exception)
  std::set<std::string> throw_undo;  // step ids whose Undo throws (a record of the wrong shape)
  std::chrono::milliseconds delay{0};
  Journal* journal = nullptr;       // to check journal-ahead from inside Run
  std::function<void(const std::string&)> on_run;   // called as each step runs
  std::function<void(const std::string&)> on_undo;  // called as each step is undone

  Result<std::string> Prepare(const Action& action, StepContext&) override {
    return json{{"prepared", action.id}}.dump();
  }

  Result<std::string> Run(const Action& action, StepContext& ctx) override {
    {
      std::lock_guard lock(mu);
      ++running;
      max_running = std::max(max_running, running);
      ++running_per_node[action.node];
      max_per_node = std::max(max_per_node, running_per_node[action.node]);
      started.push_back(action.id);
      if (journal != nullptr) {
        auto steps = journal->GetSteps(ctx.job_id());
        for (const StepRecord& s : *steps) {
          if (s.id == action.id) journal_ahead_ok = journal_ahead_ok && s.status == StepStatus::kRunning &&
                                                    s.undo_json.find("prepared") != std::string::npos;
        }
      }
    }
    if (on_run) on_run(action.id);
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    std::lock_guard lock(mu);
    --running;
    --running_per_node[action.node];
    finished.push_back(action.id);
    if (throw_run.contains(action.id)) throw std::runtime_error("[json.exception.type_error.302] type must be string");
    if (fail_run.contains(action.id)) return Fail(ErrorCode::kInternal, "injected failure of " + action.id);
    return std::string("{}");
  }

  Result<UndoOutcome> Undo(const Action& action, const std::string& undo_json, StepContext&) override {
    if (on_undo) on_undo(action.id);
    std::lock_guard lock(mu);
    undone.push_back(action.id);
    if (throw_undo.contains(action.id)) throw std::runtime_error("[json.exception.type_error.302] type must be array");
    EXPECT_NE(undo_json.find("prepared"), std::string::npos) << action.id;
    if (fail_undo.contains(action.id)) return Fail(ErrorCode::kInternal, "undo failed");
    if (not_undoable.contains(action.id)) return UndoOutcome::kNotUndoable;
    return UndoOutcome::kUndone;
  }

  std::mutex mu;
  std::vector<std::string> started, finished, undone;
  int running = 0, max_running = 0, max_per_node = 0;
  std::map<std::string, int> running_per_node;
  bool journal_ahead_ok = true;
};

Action A(const std::string& id, std::vector<std::string> deps = {}, int stage = 1, std::string node = "hv1",
         std::string unit = "") {
  Action a;
  a.id = id;
  a.type = ActionType::kCreate;
  a.node = std::move(node);
  a.target = {Kind::kVirtualMachine, id};
  a.depends_on = std::move(deps);
  a.stage = stage;
  a.unit = std::move(unit);
  return a;
}

class ExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto j = Journal::Open((dir_.path() / "state.db").string());
    ASSERT_TRUE(j) << j.error().ToString();
    journal_ = std::move(*j);
    runner_.journal = journal_.get();
  }

  JobOutcome Run(const Plan& plan, RollbackStrategy strategy = RollbackStrategy::kFull, int parallel = 4) {
    Executor executor(runner_, *journal_, nullptr);
    ExecutionOptions options;
    options.strategy = strategy;
    options.parallel = parallel;
    auto outcome = executor.Apply(plan, options);
    EXPECT_TRUE(outcome) << (outcome ? "" : outcome.error().ToString());
    return outcome ? *outcome : JobOutcome{};
  }

  std::map<std::string, StepStatus> StepStatuses(const std::string& job) {
    std::map<std::string, StepStatus> out;
    const auto steps = journal_->GetSteps(job);  // named: `*temporary` in a range-for dangles
    for (const StepRecord& s : *steps) out[s.id] = s.status;
    return out;
  }

  static std::size_t Index(const std::vector<std::string>& v, const std::string& id) {
    return static_cast<std::size_t>(std::find(v.begin(), v.end(), id) - v.begin());
  }

  testing::TempDir dir_{"gv-exec"};
  std::unique_ptr<Journal> journal_;
  FakeRunner runner_;
};

TEST_F(ExecutorTest, RunsStepsAfterWhatTheyDependOn) {
  Plan plan;
  plan.actions = {A("a"), A("b", {"a"}), A("c", {"b"}), A("d")};
  runner_.delay = std::chrono::milliseconds(5);
  JobOutcome o = Run(plan);
  EXPECT_EQ(o.status, JobStatus::kSucceeded);
  EXPECT_EQ(o.succeeded, 4);
  EXPECT_LT(Index(runner_.finished, "a"), Index(runner_.started, "b"));
  EXPECT_LT(Index(runner_.finished, "b"), Index(runner_.started, "c"));
  EXPECT_TRUE(runner_.journal_ahead_ok) << "a step ran before it was journaled as running with its undo";
}

TEST_F(ExecutorTest, NoStepStartsBeforeEarlierStagesFinish) {
  Plan plan;
  plan.actions = {A("import", {}, 0), A("create", {}, 1), A("delete", {}, 2), A("power", {}, 3)};
  runner_.delay = std::chrono::milliseconds(5);
  Run(plan);
  EXPECT_LT(Index(runner_.finished, "import"), Index(runner_.started, "create"));
  EXPECT_LT(Index(runner_.finished, "create"), Index(runner_.started, "delete"));
  EXPECT_LT(Index(runner_.finished, "delete"), Index(runner_.started, "power"));
}

TEST_F(ExecutorTest, KeepsWithinTheOverallAndPerNodeLimits) {
  Plan plan;
  for (int i = 0; i < 24; ++i) plan.actions.push_back(A("s" + std::to_string(i), {}, 1, i % 2 ? "hv1" : "hv2"));
  runner_.delay = std::chrono::milliseconds(10);
  Executor executor(runner_, *journal_, nullptr);
  ExecutionOptions options;
  options.parallel = 6;
  options.per_node = {{"hv1", 2}, {"hv2", 3}};
  auto o = executor.Apply(plan, options);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->succeeded, 24);
  EXPECT_LE(runner_.max_running, 5);
  EXPECT_LE(runner_.max_per_node, 3);
  EXPECT_GE(runner_.max_running, 2) << "steps should run in parallel";
}

TEST_F(ExecutorTest, FullUndoesEveryCompletedStepInReverse) {
  Plan plan;
  plan.actions = {A("a"), A("b", {"a"}), A("c", {"b"}), A("d", {"c"}), A("e", {"d"})};
  runner_.fail_run = {"d"};
  JobOutcome o = Run(plan, RollbackStrategy::kFull);
  EXPECT_EQ(o.status, JobStatus::kRolledBack);
  // The failed step's own partial work goes first, then the completed steps, latest first.
  EXPECT_EQ(runner_.undone, (std::vector<std::string>{"d", "c", "b", "a"}));
  auto statuses = StepStatuses(o.job_id);
  EXPECT_EQ(statuses["a"], StepStatus::kUndone);
  EXPECT_EQ(statuses["d"], StepStatus::kFailed);
  EXPECT_EQ(statuses["e"], StepStatus::kSkipped);
  auto job = journal_->GetJob(o.job_id);
  EXPECT_EQ(job->status, JobStatus::kRolledBack);
  EXPECT_NE(job->summary_json.find("\"undone\":3"), std::string::npos) << job->summary_json;
}

TEST_F(ExecutorTest, PartialKeepsWhatSucceededAndStops) {
  Plan plan;
  plan.actions = {A("a"), A("b", {"a"}), A("c", {"b"})};
  runner_.fail_run = {"b"};
  JobOutcome o = Run(plan, RollbackStrategy::kPartial);
  EXPECT_EQ(o.status, JobStatus::kFailed);
  // Only what the failed step itself had half done is cleaned up; its status stays failed.
  EXPECT_EQ(runner_.undone, (std::vector<std::string>{"b"}));
  EXPECT_EQ(StepStatuses(o.job_id)["b"], StepStatus::kFailed);
  auto statuses = StepStatuses(o.job_id);
  EXPECT_EQ(statuses["a"], StepStatus::kSucceeded);
  EXPECT_EQ(statuses["c"], StepStatus::kSkipped);
}

TEST_F(ExecutorTest, NoneCarriesOnWithIndependentSteps) {
  Plan plan;
  plan.actions = {A("a"), A("b", {"a"}), A("c", {"b"}), A("d"), A("e", {"d"})};
  runner_.fail_run = {"b"};
  JobOutcome o = Run(plan, RollbackStrategy::kNone, 1);
  EXPECT_EQ(o.status, JobStatus::kFailed);
  auto statuses = StepStatuses(o.job_id);
  EXPECT_EQ(statuses["c"], StepStatus::kSkipped);
  EXPECT_EQ(statuses["d"], StepStatus::kSucceeded);
  EXPECT_EQ(statuses["e"], StepStatus::kSucceeded);
  EXPECT_EQ(runner_.undone, (std::vector<std::string>{"b"}));
}

TEST_F(ExecutorTest, MarkFailedKeepsEverythingAndNamesTheFailedResource) {
  Plan plan;
  plan.actions = {A("a"), A("b"), A("c")};
  runner_.fail_run = {"b"};
  JobOutcome o = Run(plan, RollbackStrategy::kMarkFailed);
  EXPECT_EQ(o.status, JobStatus::kMarkedFailed);
  EXPECT_EQ(o.failed_targets, (std::vector<std::string>{"VirtualMachine/b"}));
  EXPECT_EQ(o.succeeded, 2);
  EXPECT_EQ(runner_.undone, (std::vector<std::string>{"b"}));
  EXPECT_EQ(StepStatuses(o.job_id)["b"], StepStatus::kFailed);
}

TEST_F(ExecutorTest, AClusterWithFullRollsBackOnlyItsMembers) {
  Plan plan;
  Action m1 = A("m1", {}, 1, "hv1", "k8s"), m2 = A("m2", {"m1"}, 1, "hv1", "k8s"), m3 = A("m3", {"m2"}, 1, "hv1", "k8s");
  for (Action* m : {&m1, &m2, &m3}) {
    m->vm = VirtualMachine{};
    m->vm->cluster = ClusterMembership{"k8s", "cp", "", 0, 0, RollbackStrategy::kFull};
  }
  plan.actions = {m1, m2, m3, A("standalone")};
  runner_.fail_run = {"m3"};
  JobOutcome o = Run(plan, RollbackStrategy::kNone, 1);
  EXPECT_EQ(runner_.undone, (std::vector<std::string>{"m3", "m2", "m1"}));
  auto statuses = StepStatuses(o.job_id);
  EXPECT_EQ(statuses["standalone"], StepStatus::kSucceeded);
  EXPECT_EQ(statuses["m1"], StepStatus::kUndone);
}

TEST_F(ExecutorTest, AnUndoThatFailsLeavesTheJobRollbackIncomplete) {
  Plan plan;
  plan.actions = {A("a"), A("b", {"a"}), A("c", {"b"})};
  runner_.fail_run = {"c"};
  runner_.fail_undo = {"a"};
  JobOutcome o = Run(plan, RollbackStrategy::kFull);
  EXPECT_EQ(o.status, JobStatus::kRollbackIncomplete);
  EXPECT_EQ(o.undo_failed, 1);
  EXPECT_EQ(StepStatuses(o.job_id)["a"], StepStatus::kUndoFailed);
}

TEST_F(ExecutorTest, CancellingStopsNewStepsAndRollsBackUnderFull) {
  Plan plan;
  for (int i = 0; i < 8; ++i) {
    plan.actions.push_back(A("s" + std::to_string(i), i ? std::vector<std::string>{"s" + std::to_string(i - 1)} : std::vector<std::string>{}));
  }
  runner_.delay = std::chrono::milliseconds(100);
  std::atomic<bool> interrupt{false};
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    interrupt = true;
  });
  Executor executor(runner_, *journal_, nullptr);
  ExecutionOptions options;
  options.interrupt = &interrupt;
  auto o = executor.Apply(plan, options);
  canceller.join();
  ASSERT_TRUE(o);
  EXPECT_EQ(o->status, JobStatus::kCancelled);
  EXPECT_LT(runner_.started.size(), 8u);
  EXPECT_EQ(runner_.undone.size(), runner_.finished.size()) << "FULL undoes what completed";
}

TEST_F(ExecutorTest, RecoveryRollsBackAJobThatUsedFull) {
  // A previous process journaled the job, finished two steps, was killed in the third.
  Plan plan;
  plan.actions = {A("a"), A("b", {"a"}), A("c", {"b"}), A("d", {"c"})};
  JobRecord job;
  job.kind = "apply";
  job.strategy = "FULL";
  job.plan_json = PlanToJson(plan).dump();
  std::vector<StepRecord> steps;
  for (int i = 0; i < 4; ++i) steps.push_back(StepRecord{"", plan.actions[i].id, i});
  auto id = journal_->CreateJob(job, steps);
  ASSERT_TRUE(id);
  for (const char* s : {"a", "b", "c"}) ASSERT_TRUE(journal_->RecordStepStarted(*id, s, 1, R"({"prepared":"x"})"));
  ASSERT_TRUE(journal_->RecordStepFinished(*id, "a", StepStatus::kSucceeded));
  ASSERT_TRUE(journal_->RecordStepFinished(*id, "b", StepStatus::kSucceeded));
  ASSERT_TRUE(journal_->Flush());

  Executor executor(runner_, *journal_, nullptr);
  auto o = executor.Recover(*id, ExecutionOptions{});
  ASSERT_TRUE(o) << o.error().ToString();
  EXPECT_EQ(o->status, JobStatus::kRolledBack);
  EXPECT_TRUE(runner_.started.empty()) << "nothing new runs when rolling back";
  EXPECT_EQ(runner_.undone, (std::vector<std::string>{"c", "b", "a"}));
  EXPECT_EQ(StepStatuses(*id)["d"], StepStatus::kSkipped);
}

TEST_F(ExecutorTest, RecoveryFinishesAFullJobWhoseEveryStepSucceeded) {
  // The previous process died after its last step, before the job's own status was durable:
  // the apply was a success, and rolling it back would undo it.
  Plan plan;
  plan.actions = {A("a"), A("b", {"a"})};
  JobRecord job;
  job.kind = "apply";
  job.strategy = "FULL";
  job.plan_json = PlanToJson(plan).dump();
  auto id = journal_->CreateJob(job, {StepRecord{"", "a", 0}, StepRecord{"", "b", 1}});
  ASSERT_TRUE(id);
  for (const char* s : {"a", "b"}) {
    ASSERT_TRUE(journal_->RecordStepStarted(*id, s, 1, R"({"prepared":"x"})"));
    ASSERT_TRUE(journal_->RecordStepFinished(*id, s, StepStatus::kSucceeded));
  }
  ASSERT_TRUE(journal_->Flush());

  Executor executor(runner_, *journal_, nullptr);
  auto o = executor.Recover(*id, ExecutionOptions{});
  ASSERT_TRUE(o) << o.error().ToString();
  EXPECT_EQ(o->status, JobStatus::kSucceeded);
  EXPECT_EQ(o->succeeded, 2);
  EXPECT_TRUE(runner_.started.empty());
  EXPECT_TRUE(runner_.undone.empty());
  EXPECT_EQ(journal_->GetJob(*id)->status, JobStatus::kSucceeded);
}

// ---- failures contained: an exception or a corrupt record fails a step, never the process ----

TEST_F(ExecutorTest, AnExceptionInAStepFailsThatStepNamingTheJobAndTheStep) {
  Plan plan;
  plan.actions = {A("a"), A("b", {"a"}), A("c")};
  runner_.throw_run = {"b"};
  JobOutcome o = Run(plan, RollbackStrategy::kNone);
  EXPECT_EQ(o.status, JobStatus::kFailed);
  EXPECT_EQ(o.succeeded, 2);
  ASSERT_EQ(o.failed, 1);
  ASSERT_EQ(o.errors.size(), 1u);
  EXPECT_NE(o.errors[0].find("job " + o.job_id + " step b"), std::string::npos) << o.errors[0];
  EXPECT_NE(o.errors[0].find("type must be string"), std::string::npos) << o.errors[0];
  EXPECT_EQ(StepStatuses(o.job_id)["b"], StepStatus::kFailed);
}

TEST_F(ExecutorTest, AnExceptionInAnUndoIsAnUndoFailure) {
  Plan plan;
  plan.actions = {A("a"), A("b", {"a"})};
  runner_.fail_run = {"b"};
  runner_.throw_undo = {"a"};
  JobOutcome o = Run(plan, RollbackStrategy::kFull);
  EXPECT_EQ(o.status, JobStatus::kRollbackIncomplete);
  EXPECT_EQ(o.undo_failed, 1);
  EXPECT_EQ(StepStatuses(o.job_id)["a"], StepStatus::kUndoFailed);
}

// A job a killed process left with `c` running and these bytes as c's undo record.
std::string UnfinishedJobWithUndoRecord(Journal& journal, const Plan& plan, const std::string& strategy,
                                        const std::string& undo_of_c) {
  JobRecord job;
  job.kind = "apply";
  job.strategy = strategy;
  job.plan_json = PlanToJson(plan).dump();
  std::vector<StepRecord> steps;
  for (std::size_t i = 0; i < plan.actions.size(); ++i) steps.push_back(StepRecord{"", plan.actions[i].id, int(i)});
  auto id = journal.CreateJob(job, steps);
  EXPECT_TRUE(id);
  EXPECT_TRUE(journal.RecordStepStarted(*id, "a", 1, R"({"prepared":"a"})"));
  EXPECT_TRUE(journal.RecordStepFinished(*id, "a", StepStatus::kSucceeded));
  EXPECT_TRUE(journal.RecordStepStarted(*id, "c", 1, undo_of_c));
  EXPECT_TRUE(journal.Flush());
  return *id;
}

TEST_F(ExecutorTest, AnUnparsableUndoRecordIsNeverUndoneBlindlyUnderFull) {
  Plan plan;
  plan.actions = {A("a"), A("c", {"a"})};
  const std::string id = UnfinishedJobWithUndoRecord(*journal_, plan, "FULL", R"({"volumes": ["default/c.qcow2")");
  Executor executor(runner_, *journal_, nullptr);
  auto o = executor.Recover(id, ExecutionOptions{});
  ASSERT_TRUE(o) << o.error().ToString();
  // a is undone from its good record; c is not touched on the strength of a broken one, and the
  // job says so instead of "rolled back".
  EXPECT_EQ(runner_.undone, (std::vector<std::string>{"a"}));
  EXPECT_TRUE(runner_.started.empty());
  EXPECT_EQ(o->status, JobStatus::kRollbackIncomplete);
  EXPECT_EQ(StepStatuses(id)["c"], StepStatus::kUndoFailed);
  ASSERT_FALSE(o->errors.empty());
  EXPECT_NE(o->errors[0].find("job " + id + " step c"), std::string::npos) << o->errors[0];
  EXPECT_NE(o->errors[0].find("not valid JSON"), std::string::npos) << o->errors[0];
}

TEST_F(ExecutorTest, AStepWithACorruptUndoRecordIsNotRunAgainOnResume) {
  Plan plan;
  plan.actions = {A("a"), A("c", {"a"}), A("d", {"c"})};
  const std::string id = UnfinishedJobWithUndoRecord(*journal_, plan, "PARTIAL", "[1, 2, 3]");
  Executor executor(runner_, *journal_, nullptr);
  auto o = executor.Recover(id, ExecutionOptions{});
  ASSERT_TRUE(o) << o.error().ToString();
  EXPECT_TRUE(runner_.started.empty()) << "c is not run again from an unreadable record, d waits for c";
  EXPECT_TRUE(runner_.undone.empty()) << "nor is what c's first attempt did undone from it";
  // What c's first attempt may have left cannot be undone: the job says so.
  EXPECT_EQ(o->status, JobStatus::kRollbackIncomplete);
  EXPECT_EQ(StepStatuses(id)["c"], StepStatus::kUndoFailed);
  EXPECT_EQ(StepStatuses(id)["d"], StepStatus::kSkipped);
  ASSERT_FALSE(o->errors.empty());
  EXPECT_NE(o->errors[0].find("not a JSON object"), std::string::npos) << o->errors[0];
}

TEST_F(ExecutorTest, ShutdownLetsRunningStepsFinishAndStartsNoMore) {
  // Eight independent steps, two at a time; the controller stops while the first two run
  // (the executor starts both in one pass, before either runs).
  Plan plan;
  for (int i = 0; i < 8; ++i) plan.actions.push_back(A("s" + std::to_string(i)));
  std::atomic<bool> shutdown{false};
  runner_.on_run = [&](const std::string&) { shutdown = true; };
  Executor executor(runner_, *journal_, nullptr);
  ExecutionOptions options;
  options.parallel = 2;
  options.shutdown = &shutdown;
  auto o = executor.Apply(plan, options);
  ASSERT_TRUE(o) << o.error().ToString();
  EXPECT_EQ(o->status, JobStatus::kInterrupted);
  // The two running when it stopped finished; none started after.
  EXPECT_EQ(runner_.started.size(), 2u) << ::testing::PrintToString(runner_.started);
  EXPECT_EQ(runner_.finished.size(), 2u);
  EXPECT_TRUE(runner_.undone.empty());
  int pending = 0;
  for (const auto& [id, status] : StepStatuses(o->job_id)) pending += status == StepStatus::kPending;
  EXPECT_EQ(pending, 6) << "the steps not started wait for the next start";
  EXPECT_EQ(journal_->GetJob(o->job_id)->status, JobStatus::kInterrupted);
}

TEST_F(ExecutorTest, CancellingIsAnEventOfTheJob) {
  Plan plan;
  plan.actions = {A("a"), A("b", {"a"}), A("c", {"b"})};
  runner_.delay = std::chrono::milliseconds(100);
  std::atomic<bool> interrupt{true};  // SIGINT before the first step even starts
  Executor executor(runner_, *journal_, nullptr);
  ExecutionOptions options;
  options.strategy = RollbackStrategy::kPartial;
  options.interrupt = &interrupt;
  auto o = executor.Apply(plan, options);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->status, JobStatus::kCancelled);
  EXPECT_EQ(o->skipped, 3);
  bool found = false;
  const auto events = journal_->GetEvents(o->job_id);
  for (const EventRecord& e : *events) {
    found = found || e.message == "interrupted (SIGINT or SIGTERM): starting no more steps, waiting for the "
                                  "running ones, keeping what is done (PARTIAL)";
  }
  EXPECT_TRUE(found) << "the job's events do not say why it stopped";
}

TEST_F(ExecutorTest, RecoveryOfACutShortRollbackUndoesEveryStartedStep) {
  // A FULL job was being rolled back when its process died too: `a` half undone, `b` started
  // (by the first process) and not yet undone, `c` never started.
  Plan plan;
  plan.actions = {A("a"), A("b", {"a"}), A("c", {"b"})};
  JobRecord job;
  job.kind = "apply";
  job.strategy = "FULL";
  job.plan_json = PlanToJson(plan).dump();
  auto id = journal_->CreateJob(job, {StepRecord{"", "a", 0}, StepRecord{"", "b", 1}, StepRecord{"", "c", 2}});
  ASSERT_TRUE(id);
  for (const char* s : {"a", "b"}) ASSERT_TRUE(journal_->RecordStepStarted(*id, s, 1, R"({"prepared":"x"})"));
  ASSERT_TRUE(journal_->RecordStepFinished(*id, "a", StepStatus::kSucceeded));
  ASSERT_TRUE(journal_->RecordStepStatus(*id, "a", StepStatus::kUndoing));
  ASSERT_TRUE(journal_->Flush());

  Executor executor(runner_, *journal_, nullptr);
  auto o = executor.Recover(*id, ExecutionOptions{});
  ASSERT_TRUE(o) << o.error().ToString();
  EXPECT_EQ(o->status, JobStatus::kRolledBack);
  EXPECT_TRUE(runner_.started.empty());
  EXPECT_EQ(runner_.undone, (std::vector<std::string>{"b", "a"}));
  auto statuses = StepStatuses(*id);
  EXPECT_EQ(statuses["a"], StepStatus::kUndone);
  EXPECT_EQ(statuses["b"], StepStatus::kUndone);
  EXPECT_EQ(statuses["c"], StepStatus::kSkipped);
}

TEST_F(ExecutorTest, AStepStartedBeforeACrashIsNeverRecordedSkipped) {
  Plan plan;
  plan.actions = {A("a"), A("b")};
  JobRecord job;
  job.kind = "apply";
  job.strategy = "FULL";
  job.plan_json = PlanToJson(plan).dump();
  auto id = journal_->CreateJob(job, {StepRecord{"", "a", 0}, StepRecord{"", "b", 1}});
  ASSERT_TRUE(id);
  ASSERT_TRUE(journal_->RecordStepStarted(*id, "a", 1, R"({"prepared":"x"})"));
  ASSERT_TRUE(journal_->Flush());
  // `a` was started by the dead process. While it is undone, the journal must still say it ran
  // (undoing): a process killed at that moment leaves it for the next one to undo, where
  // "skipped" would have it forgotten with whatever it had done.
  std::vector<StepStatus> during_undo;
  runner_.on_undo = [&](const std::string& step) {
    const auto records = journal_->GetSteps(*id);
    for (const StepRecord& r : *records) {
      if (r.id == step) during_undo.push_back(r.status);
    }
  };
  Executor executor(runner_, *journal_, nullptr);
  auto o = executor.Recover(*id, ExecutionOptions{});
  ASSERT_TRUE(o) << o.error().ToString();
  EXPECT_EQ(runner_.undone, (std::vector<std::string>{"a"}));
  EXPECT_EQ(during_undo, (std::vector<StepStatus>{StepStatus::kUndoing}));
  EXPECT_EQ(StepStatuses(*id)["a"], StepStatus::kUndone);
  const auto records = journal_->GetSteps(*id);
  EXPECT_EQ(records->front().error, "") << "`a` was recorded skipped on the way to its undo";
  EXPECT_EQ(StepStatuses(*id)["b"], StepStatus::kSkipped);
}

TEST_F(ExecutorTest, RecoveryKeepsToTheStrategyOfARecordedFailure) {
  // PARTIAL: `a` failed before the process died; `b` does not depend on it but comes after the
  // failure, so it must not start after the restart either.
  Plan plan;
  plan.actions = {A("a"), A("b")};
  JobRecord job;
  job.kind = "apply";
  job.strategy = "PARTIAL";
  job.plan_json = PlanToJson(plan).dump();
  auto id = journal_->CreateJob(job, {StepRecord{"", "a", 0}, StepRecord{"", "b", 1}});
  ASSERT_TRUE(id);
  ASSERT_TRUE(journal_->RecordStepStarted(*id, "a", 1, R"({"prepared":"x"})"));
  ASSERT_TRUE(journal_->RecordStepFinished(*id, "a", StepStatus::kFailed, "boom"));
  ASSERT_TRUE(journal_->Flush());
  Executor executor(runner_, *journal_, nullptr);
  auto o = executor.Recover(*id, ExecutionOptions{});
  ASSERT_TRUE(o) << o.error().ToString();
  EXPECT_TRUE(runner_.started.empty()) << ::testing::PrintToString(runner_.started);
  EXPECT_EQ(o->status, JobStatus::kFailed);
  EXPECT_EQ(StepStatuses(*id)["b"], StepStatus::kSkipped);
}

TEST_F(ExecutorTest, RecoveryResumesAJobThatUsedPartial) {
  Plan plan;
  plan.actions = {A("a"), A("b", {"a"}), A("c", {"b"})};
  JobRecord job;
  job.kind = "apply";
  job.strategy = "PARTIAL";
  job.plan_json = PlanToJson(plan).dump();
  auto id = journal_->CreateJob(job, {StepRecord{"", "a", 0}, StepRecord{"", "b", 1}, StepRecord{"", "c", 2}});
  ASSERT_TRUE(id);
  ASSERT_TRUE(journal_->RecordStepStarted(*id, "a", 1, R"({"prepared":"a"})"));
  ASSERT_TRUE(journal_->RecordStepFinished(*id, "a", StepStatus::kSucceeded));
  ASSERT_TRUE(journal_->RecordStepStarted(*id, "b", 1, R"({"prepared":"b"})"));
  ASSERT_TRUE(journal_->Flush());

  Executor executor(runner_, *journal_, nullptr);
  auto o = executor.Recover(*id, ExecutionOptions{});
  ASSERT_TRUE(o);
  EXPECT_EQ(o->status, JobStatus::kSucceeded);
  EXPECT_EQ(runner_.started, (std::vector<std::string>{"b", "c"})) << "the interrupted step runs again, then the rest";
  auto steps = journal_->GetSteps(*id);
  EXPECT_EQ((*steps)[1].attempt, 2);
}

}  // namespace
}  // namespace gitvirt
