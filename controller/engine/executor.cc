#include "gitvirt/engine/executor.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "gitvirt/core/json.h"
#include "gitvirt/engine/crash_points.h"

namespace gitvirt {
namespace {

using Clock = std::chrono::steady_clock;

bool Terminal(StepStatus s) {
  return s != StepStatus::kPending && s != StepStatus::kRunning && s != StepStatus::kUndoing;
}

std::string MergeJson(const std::string& base, const std::string& extra) {
  nlohmann::json b = base.empty() ? nlohmann::json::object() : nlohmann::json::parse(base, nullptr, false);
  nlohmann::json e = extra.empty() ? nlohmann::json::object() : nlohmann::json::parse(extra, nullptr, false);
  if (!b.is_object()) b = nlohmann::json::object();
  if (e.is_object()) b.merge_patch(e);
  return b.dump();
}

struct Step {
  const Action* action = nullptr;
  int seq = 0;
  StepStatus status = StepStatus::kPending;
  std::string undo_json;
  int attempt = 0;
  int completed_order = -1;  // when it succeeded, among all steps
  RollbackStrategy strategy = RollbackStrategy::kFull;
  std::string error;
  bool started_before = false;  // recovery: it was running when the previous process died
  bool undoing_before = false;  // recovery: it was being undone when the previous process died
  // Recovery: why the undo record an earlier process journaled cannot be trusted ("" = it can).
  // Such a step is neither run again nor undone: nothing is done on the strength of it.
  std::string corrupt;
  bool reported = false;  // finish() ran for the current attempt
};

// Why a journaled undo record is unusable, or "" when it is a JSON object (or empty).
std::string UndoRecordProblem(const std::string& undo_json) {
  if (undo_json.empty()) return "";
  const nlohmann::json j = nlohmann::json::parse(undo_json, nullptr, false);
  if (j.is_discarded()) return "its undo record in the journal is not valid JSON";
  if (!j.is_object()) return "its undo record in the journal is not a JSON object";
  return "";
}

// Runs one call of the step runner with its edge guarded: an exception (a library's, or a
// record of an unexpected shape) fails that step, naming the job and the step, and never
// leaves the worker thread.
template <typename T, typename Call>
Result<T> Guarded(const std::string& job_id, const std::string& step_id, const char* what, Call&& call) {
  try {
    return call();
  } catch (const std::exception& e) {
    return Fail(ErrorCode::kInternal, std::string("unexpected error while ") + what + ": " + e.what(),
                "job " + job_id + " step " + step_id);
  } catch (...) {
    return Fail(ErrorCode::kInternal, std::string("unexpected error while ") + what,
                "job " + job_id + " step " + step_id);
  }
}

class Context final : public StepContext {
 public:
  Context(Journal& journal, std::string job_id, std::string step_id, Clock::time_point deadline,
          std::function<bool()> cancelled, std::string* undo_json, std::mutex* mu)
      : journal_(journal),
        job_id_(std::move(job_id)),
        step_id_(std::move(step_id)),
        deadline_(deadline),
        cancelled_(std::move(cancelled)),
        undo_json_(undo_json),
        mu_(mu) {}

  const std::string& job_id() const override { return job_id_; }
  const std::string& step_id() const override { return step_id_; }
  Result<void> RecordUndo(const std::string& undo_json) override {
    std::string merged;
    {
      std::lock_guard lock(*mu_);
      *undo_json_ = MergeJson(*undo_json_, undo_json);
      merged = *undo_json_;
    }
    return journal_.RecordStepUndoInfo(job_id_, step_id_, merged);
  }
  std::string undo_json() const override {
    std::lock_guard lock(*mu_);
    return *undo_json_;
  }
  void Event(EventLevel level, const std::string& message) override {
    (void)journal_.AppendEvent(job_id_, step_id_, level, message);
  }
  bool Cancelled() const override { return cancelled_(); }
  Clock::time_point deadline() const override { return deadline_; }

 private:
  Journal& journal_;
  std::string job_id_;
  std::string step_id_;
  Clock::time_point deadline_;
  std::function<bool()> cancelled_;
  std::string* undo_json_;
  std::mutex* mu_;
};

}  // namespace

Executor::Executor(StepRunner& runner, Journal& journal, std::shared_ptr<spdlog::logger> logger)
    : runner_(runner), journal_(journal), log_(logger ? std::move(logger) : spdlog::default_logger()) {}

Result<JobOutcome> Executor::Apply(const Plan& plan, const ExecutionOptions& options) {
  JobRecord job;
  job.kind = options.kind;
  job.strategy = std::string(EnumName(options.strategy));
  job.revision = plan.revision;
  job.source = plan.source.ToString();
  job.plan_json = PlanToJson(plan).dump();
  std::vector<StepRecord> steps;
  int seq = 0;
  for (const Action& a : plan.actions) {
    StepRecord s;
    s.id = a.id;
    s.seq = seq++;
    s.type = std::string(EnumName(a.type));
    s.node = a.node;
    s.target = a.target.ToString();
    steps.push_back(std::move(s));
  }
  auto job_id = journal_.CreateJob(job, steps);
  if (!job_id) return std::unexpected(job_id.error().Wrap("recording the job"));
  CrashPoint("job-created");
  return Execute(*job_id, plan, steps, /*rollback_only=*/false, options);
}

Result<JobOutcome> Executor::Recover(const std::string& job_id, const ExecutionOptions& options) {
  auto job = journal_.GetJob(job_id);
  if (!job) return std::unexpected(job.error());
  auto plan_json = nlohmann::json::parse(job->plan_json, nullptr, false);
  auto plan = PlanFromJson(plan_json);
  if (!plan) return std::unexpected(plan.error().Wrap("recovering job " + job_id));
  auto steps = journal_.GetSteps(job_id);
  if (!steps) return std::unexpected(steps.error());
  ExecutionOptions opts = options;
  opts.strategy = ParseEnum<RollbackStrategy>(job->strategy).value_or(RollbackStrategy::kFull);
  opts.kind = job->kind;
  // Every step succeeded: the process died after the last one, before the job's own status was
  // durable. The job is done; rolling it back would undo a successful apply.
  const bool all_succeeded = std::all_of(steps->begin(), steps->end(), [](const StepRecord& s) {
    return s.status == StepStatus::kSucceeded;
  });
  const bool roll_back = opts.strategy == RollbackStrategy::kFull && !all_succeeded;
  const std::string what = all_succeeded ? "every step had succeeded; recording it as finished"
                           : roll_back   ? "rolling it back"
                                         : "resuming it";
  (void)journal_.AppendEvent(job_id, "", EventLevel::kWarning, "the process running this job stopped; " + what);
  log_->warn("job={} found unfinished ({}): {}", job_id, EnumName(job->status), what);
  return Execute(job_id, *plan, *steps, roll_back, opts);
}

Result<JobOutcome> Executor::Execute(const std::string& job_id, const Plan& plan,
                                     const std::vector<StepRecord>& records, bool rollback_only,
                                     const ExecutionOptions& options) {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Step> steps(plan.actions.size());
  std::map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < plan.actions.size(); ++i) {
    const Action& a = plan.actions[i];
    steps[i].action = &a;
    steps[i].seq = static_cast<int>(i);
    steps[i].strategy = options.strategy;
    if (a.vm && a.vm->cluster && !a.unit.empty()) steps[i].strategy = a.vm->cluster->rollback;
    index[a.id] = i;
  }
  // What an earlier process recorded (recovery): succeeded steps stay done, in the order they
  // finished; a step that was running is run again, or, when the job no longer starts steps,
  // undone (it may have done part of its work); a step whose undo was cut short had succeeded
  // and is undone again.
  int completed = 0;
  {
    std::vector<const StepRecord*> done;
    for (const StepRecord& r : records) {
      auto it = index.find(r.id);
      if (it == index.end()) continue;
      Step& s = steps[it->second];
      s.undo_json = r.undo_json;
      s.attempt = r.attempt;
      s.corrupt = UndoRecordProblem(r.undo_json);
      if (r.status == StepStatus::kSucceeded || r.status == StepStatus::kUndoing) done.push_back(&r);
      if (r.status == StepStatus::kRunning) s.started_before = true;
      if (r.status == StepStatus::kUndoing) s.undoing_before = true;
      if (r.status == StepStatus::kFailed || r.status == StepStatus::kSkipped ||
          r.status == StepStatus::kUndone || r.status == StepStatus::kNotUndoable) {
        s.status = r.status;
        s.error = r.error;
      }
    }
    std::sort(done.begin(), done.end(), [](const StepRecord* a, const StepRecord* b) {
      return std::make_pair(a->finished_at.value_or(TimePoint{}), a->seq) <
             std::make_pair(b->finished_at.value_or(TimePoint{}), b->seq);
    });
    for (const StepRecord* r : done) {
      Step& s = steps[index.at(r->id)];
      s.status = StepStatus::kSucceeded;
      s.completed_order = completed++;
    }
  }

  (void)journal_.RecordJobStatus(job_id, JobStatus::kRunning);
  JobOutcome outcome;
  outcome.job_id = job_id;
  const int total = static_cast<int>(steps.size());
  std::atomic<int> done_count{0};
  for (const Step& s : steps) {
    if (Terminal(s.status)) ++done_count;
  }

  std::set<std::string> stopped_units;  // units whose strategy stopped them
  std::set<std::string> full_units;     // units to roll back (FULL)
  bool abort_job = rollback_only;       // start nothing more
  bool rollback_job = rollback_only;    // undo everything completed
  bool cancelled = false;      // `gitvirt jobs cancel`: the strategy applies at once
  bool interrupted = false;    // Ctrl-C: start nothing more; decide about the rest once idle
  bool shutting_down = false;  // serve stopping, or a second Ctrl-C: leave the job to the next start
  auto last_cancel_check = Clock::now() - std::chrono::seconds(1);
  int running = 0;
  std::map<std::string, int> running_per_node;
  std::vector<std::thread> workers;

  auto progress = [&](const Step& s, const std::string& message) {
    if (options.on_progress) {
      options.on_progress(StepProgress{job_id, s.action->id, s.status, message, done_count.load(), total});
    }
  };
  auto is_cancelled = [&] { return cancelled || interrupted; };

  // What a failed step's strategy does to the rest of the job (called with `mu` held).
  auto apply_strategy = [&](const Step& s) {
    const std::string& unit = s.action->unit;
    switch (s.strategy) {
      case RollbackStrategy::kFull:
        if (unit.empty()) {
          abort_job = rollback_job = true;
        } else {
          stopped_units.insert(unit);
          full_units.insert(unit);
        }
        break;
      case RollbackStrategy::kPartial:
        if (unit.empty()) {
          abort_job = true;
        } else {
          stopped_units.insert(unit);
        }
        break;
      case RollbackStrategy::kNone:
        break;
      case RollbackStrategy::kMarkFailed:
        outcome.failed_targets.push_back(s.action->target.ToString());
        break;
    }
  };
  // Recovery: a failure an earlier process recorded still decides what happens to the rest.
  for (const Step& s : steps) {
    if (s.status == StepStatus::kFailed) apply_strategy(s);
  }

  auto finish = [&](std::size_t i, Result<std::string> result) {
    std::unique_lock lock(mu);
    Step& s = steps[i];
    if (s.reported) return;  // a worker's last-resort catch after the step was already counted
    s.reported = true;
    --running;
    --running_per_node[s.action->node];
    ++done_count;
    if (result) {
      s.status = StepStatus::kSucceeded;
      s.completed_order = completed++;
      lock.unlock();
      (void)journal_.RecordStepFinished(job_id, s.action->id, StepStatus::kSucceeded, "", *result);
      CrashPoint("step-finished", s.action->id);
      (void)journal_.AppendEvent(job_id, s.action->id, EventLevel::kInfo,
                                 std::string(EnumName(s.action->type)) + " " + s.action->target.ToString() +
                                     " succeeded");
      progress(s, "succeeded");
      lock.lock();
    } else {
      s.status = StepStatus::kFailed;
      s.completed_order = completed++;  // its partial work is undone in this order too
      s.error = result.error().ToString();
      apply_strategy(s);
      lock.unlock();
      log_->log(options.caller_reports ? spdlog::level::info : spdlog::level::err, "job={} step={} node={} failed: {}",
                job_id, s.action->id, s.action->node, s.error);
      (void)journal_.RecordStepFinished(job_id, s.action->id, StepStatus::kFailed, s.error);
      CrashPoint("step-finished", s.action->id);
      (void)journal_.AppendEvent(job_id, s.action->id, EventLevel::kError, s.error);
      progress(s, s.error);
      lock.lock();
    }
    cv.notify_all();
  };

  auto run_step = [&](std::size_t i) {
    Step& s = steps[i];
    const Action& action = *s.action;
    if (!s.corrupt.empty()) {
      // Run again, it would start from a record that cannot be read: it fails instead, and the
      // strategy decides about the rest.
      return finish(i, Fail(ErrorCode::kFailedPrecondition,
                            s.corrupt + "; the step was not run again and nothing is undone on its account",
                            "job " + job_id + " step " + action.id));
    }
    Context ctx(journal_, job_id, action.id, Clock::now() + options.step_timeout, is_cancelled,
                &s.undo_json, &mu);
    log_->info("job={} step={} node={} {} {}", job_id, action.id, action.node, EnumName(action.type),
               action.target.ToString());
    auto undo = Guarded<std::string>(job_id, action.id, "preparing it", [&] { return runner_.Prepare(action, ctx); });
    if (!undo) return finish(i, std::unexpected(undo.error()));
    {
      std::lock_guard lock(mu);
      // A step run again after a crash keeps the undo information of its first attempt (which
      // describes the state before it), plus anything Prepare sees now.
      s.undo_json = MergeJson(*undo, s.undo_json);
    }
    if (auto ok = journal_.RecordStepStarted(job_id, action.id, s.attempt, s.undo_json); !ok) {
      return finish(i, std::unexpected(ok.error().Wrap("journal")));
    }
    CrashPoint("step-started", action.id);
    (void)journal_.AppendEvent(job_id, action.id, EventLevel::kInfo,
                               std::string(EnumName(action.type)) + " " + action.target.ToString() +
                                   (action.node.empty() ? "" : " on " + action.node));
    StepDelay();
    auto result = Guarded<std::string>(job_id, action.id, "running it", [&] { return runner_.Run(action, ctx); });
    CrashPoint("step-ran", action.id);
    finish(i, std::move(result));
  };

  auto node_limit = [&](const std::string& node) {
    auto it = options.per_node.find(node);
    return it == options.per_node.end() ? 4 : it->second;
  };

  std::unique_lock lock(mu);
  while (true) {
    if (!cancelled && Clock::now() - last_cancel_check > std::chrono::milliseconds(250)) {
      last_cancel_check = Clock::now();
      lock.unlock();
      auto requested = journal_.CancelRequested(job_id);
      lock.lock();
      if (requested && *requested) cancelled = true;
    }
    if (options.shutdown != nullptr && options.shutdown->load() && !shutting_down && !rollback_only) {
      abort_job = true;
      shutting_down = true;
      log_->warn("job={} interrupted by shutdown: finishing the running steps", job_id);
    }
    const bool interrupt_now = options.interrupt != nullptr && options.interrupt->load() && !interrupted;
    if ((cancelled || interrupt_now) && !abort_job && !interrupted && !rollback_only) {
      // A cancel decides at once; an interrupt waits for the running steps, then asks (or
      // applies the strategy) before anything is skipped or undone.
      const bool full = options.strategy == RollbackStrategy::kFull;
      std::string then = !full ? "keeping what is done (" + std::string(EnumName(options.strategy)) + ")"
                         : cancelled || !options.confirm_rollback ? std::string("then undoing every completed step (FULL)")
                                                                  : std::string("then asking whether to roll back (FULL)");
      if (cancelled) {
        abort_job = true;
        rollback_job = full;
      } else {
        interrupted = true;
      }
      const std::string why = cancelled ? "cancel requested (gitvirt jobs cancel)" : "interrupted (SIGINT or SIGTERM)";
      log_->log(options.caller_reports ? spdlog::level::info : spdlog::level::warn, "job={} {}: starting no more steps, {}",
                job_id, why, then);
      (void)journal_.AppendEvent(job_id, "", EventLevel::kWarning,
                                 why + ": starting no more steps, waiting for the running ones, " + then);
    }
    // Skip what can no longer run: dependents of failed or skipped steps, stopped units.
    bool changed = true;
    while (changed) {
      changed = false;
      for (Step& s : steps) {
        if (s.status != StepStatus::kPending) continue;
        // Left pending: the next start resumes or rolls back (shutdown), or the decision after
        // the interrupt skips them.
        if (shutting_down || interrupted) continue;
        bool skip = abort_job || stopped_units.contains(s.action->unit);
        for (const std::string& dep : s.action->depends_on) {
          auto it = index.find(dep);
          if (it == index.end()) continue;
          const StepStatus d = steps[it->second].status;
          if (d == StepStatus::kFailed || d == StepStatus::kSkipped || d == StepStatus::kUndone) skip = true;
        }
        if (skip) {
          s.status = StepStatus::kSkipped;
          ++done_count;
          changed = true;
          // A step an earlier process started was not skipped: whatever it did is undone below,
          // and until then the journal goes on saying it ran, so that a process killed before
          // the undo still finds it.
          if (s.started_before) continue;
          (void)journal_.RecordStepStatus(job_id, s.action->id, StepStatus::kSkipped,
                                          abort_job ? "the job stopped before it" : "a step it needs did not succeed");
          CrashPoint("step-skipped", s.action->id);
        }
      }
    }
    // Start what is ready, within the limits and stage barriers.
    int lowest_open_stage = std::numeric_limits<int>::max();
    for (const Step& s : steps) {
      if (!Terminal(s.status)) lowest_open_stage = std::min(lowest_open_stage, s.action->stage);
    }
    // Nothing starts once the job stops (on shutdown the steps not started stay pending).
    for (std::size_t i = 0; i < steps.size() && running < options.parallel && !abort_job && !interrupted; ++i) {
      Step& s = steps[i];
      if (s.status != StepStatus::kPending || s.action->stage > lowest_open_stage) continue;
      if (running_per_node[s.action->node] >= node_limit(s.action->node)) continue;
      const bool ready = std::all_of(s.action->depends_on.begin(), s.action->depends_on.end(), [&](const std::string& dep) {
        auto it = index.find(dep);
        return it == index.end() || steps[it->second].status == StepStatus::kSucceeded;
      });
      if (!ready) continue;
      s.status = StepStatus::kRunning;
      s.reported = false;
      ++s.attempt;
      ++running;
      ++running_per_node[s.action->node];
      workers.emplace_back([&, i] {
        // The edge of the worker thread: nothing thrown here may end the process.
        try {
          run_step(i);
        } catch (const std::exception& e) {
          log_->error("job={} step={} worker failed: {}", job_id, steps[i].action->id, e.what());
          finish(i, Fail(ErrorCode::kInternal, std::string("unexpected error: ") + e.what(),
                         "job " + job_id + " step " + steps[i].action->id));
        } catch (...) {
          finish(i, Fail(ErrorCode::kInternal, "unexpected error", "job " + job_id + " step " + steps[i].action->id));
        }
      });
    }
    if (running == 0) {
      const bool any_pending = std::any_of(steps.begin(), steps.end(), [](const Step& s) { return s.status == StepStatus::kPending; });
      if (!any_pending || shutting_down || interrupted) break;
    }
    cv.wait_for(lock, std::chrono::milliseconds(250));
  }
  lock.unlock();
  for (std::thread& t : workers) t.join();

  // After an interrupt, with every running step finished: FULL would undo what completed
  // (latest first). The person at a terminal is asked; otherwise the strategy applies.
  if (interrupted && !shutting_down) {
    std::vector<const Step*> completed_steps;
    if (options.strategy == RollbackStrategy::kFull) {
      for (const Step& s : steps) {
        if (s.status == StepStatus::kSucceeded) completed_steps.push_back(&s);
      }
    }
    std::sort(completed_steps.begin(), completed_steps.end(),
              [](const Step* a, const Step* b) { return a->completed_order > b->completed_order; });
    bool roll_back = !completed_steps.empty();
    if (roll_back && options.confirm_rollback) {
      std::vector<std::string> would_undo;
      for (const Step* s : completed_steps) would_undo.push_back(s->action->id);
      roll_back = options.confirm_rollback(would_undo);
      shutting_down = options.shutdown != nullptr && options.shutdown->load();
      if (!shutting_down) {
        (void)journal_.AppendEvent(job_id, "", EventLevel::kWarning,
                                   roll_back ? "asked after the interrupt: roll back" : "asked after the interrupt: "
                                                                                         "keep what is done");
      }
    }
    if (!shutting_down) {
      abort_job = true;
      rollback_job = roll_back;
      for (Step& s : steps) {
        if (s.status != StepStatus::kPending) continue;
        s.status = StepStatus::kSkipped;
        ++done_count;
        if (s.started_before) continue;
        (void)journal_.RecordStepStatus(job_id, s.action->id, StepStatus::kSkipped, "the job stopped before it");
        CrashPoint("step-skipped", s.action->id);
      }
    }
  }

  auto leave_interrupted = [&](const std::string& why) -> Result<JobOutcome> {
    outcome.status = JobStatus::kInterrupted;
    (void)journal_.RecordJobStatus(job_id, JobStatus::kInterrupted, interrupted ? "interrupted twice" : "the controller was stopped");
    (void)journal_.AppendEvent(job_id, "", EventLevel::kWarning,
                               why + ": the job is interrupted and will be resumed or rolled back when it starts again");
    if (auto flushed = journal_.Flush(); !flushed) return std::unexpected(flushed.error());
    for (const Step& s : steps) {
      if (s.status == StepStatus::kSucceeded) ++outcome.succeeded;
      if (s.status == StepStatus::kUndone) ++outcome.undone;
    }
    return outcome;
  };
  const std::string stop_reason = interrupted ? "interrupted again" : "the controller is stopping";
  if (shutting_down) return leave_interrupted(stop_reason);

  // Rollback: every completed step of the job (FULL failure, cancel, or recovery), or of the
  // units whose FULL strategy tripped; in reverse order of completion. A step that was running
  // when an earlier process died and is not run again is undone whatever the strategy, as a
  // failed step's partial work is: its undo tolerates a half-done step.
  // A failed step may have done part of its work (volumes created before its define failed):
  // whatever the strategy, that part is undone too, so a failed step leaves nothing behind that
  // would stop the next apply from doing it again (its status stays failed).
  std::vector<Step*> to_undo;
  int completed_to_undo = 0;
  for (Step& s : steps) {
    if (s.status == StepStatus::kFailed && s.attempt > 0) {
      to_undo.push_back(&s);
      continue;
    }
    const bool in_scope = rollback_job || full_units.contains(s.action->unit);
    if (!in_scope) continue;
    // Undone whatever the scope: what was started and not run again, or half undone.
    const bool abandoned = s.started_before && s.status == StepStatus::kSkipped;
    const bool half_undone = s.undoing_before && s.status == StepStatus::kSucceeded;
    if (abandoned || half_undone || (in_scope && s.status == StepStatus::kSucceeded)) {
      to_undo.push_back(&s);
      ++completed_to_undo;
    }
  }
  // Latest first; a step that was running when an earlier process died is the latest of all.
  auto order = [](const Step* s) { return s->completed_order >= 0 ? s->completed_order : INT32_MAX; };
  std::sort(to_undo.begin(), to_undo.end(), [&](const Step* a, const Step* b) {
    if (order(a) != order(b)) return order(a) > order(b);
    return a->seq > b->seq;
  });
  if (completed_to_undo > 0) {
    (void)journal_.RecordJobStatus(job_id, JobStatus::kRollingBack);
    (void)journal_.AppendEvent(job_id, "", EventLevel::kWarning,
                               "rolling back " + std::to_string(completed_to_undo) + " completed step(s)");
  }
  const int undo_total = static_cast<int>(to_undo.size());
  int undo_done = 0;
  for (Step* s : to_undo) {
    // A second interrupt (or serve stopping) while rolling back: the rest of the rollback is left
    // to the next start, which finds the job interrupted.
    if (options.shutdown != nullptr && options.shutdown->load()) return leave_interrupted(stop_reason);
    const Action& action = *s->action;
    const bool failed_step = s->status == StepStatus::kFailed;
    if (!failed_step) (void)journal_.RecordStepStatus(job_id, action.id, StepStatus::kUndoing);
    CrashPoint("undo-started", action.id);
    Context ctx(journal_, job_id, action.id, Clock::now() + options.step_timeout, [] { return false; },
                &s->undo_json, &mu);
    Result<UndoOutcome> undone =
        !s->corrupt.empty()
            ? Fail(ErrorCode::kFailedPrecondition, s->corrupt + "; nothing was undone on its account",
                   "job " + job_id + " step " + action.id)
            : Guarded<UndoOutcome>(job_id, action.id, "undoing it",
                                   [&] { return runner_.Undo(action, s->undo_json, ctx); });
    CrashPoint("undo-ran", action.id);
    if (!undone) {
      s->status = StepStatus::kUndoFailed;
      s->error = undone.error().ToString();
      ++outcome.undo_failed;
      outcome.errors.push_back(action.id + " (undo): " + s->error);
      log_->log(options.caller_reports ? spdlog::level::info : spdlog::level::err, "job={} step={} undo failed: {}",
                job_id, action.id, s->error);
      (void)journal_.RecordStepStatus(job_id, action.id, StepStatus::kUndoFailed, s->error);
      (void)journal_.AppendEvent(job_id, action.id, EventLevel::kError, "undo failed: " + s->error);
    } else if (failed_step) {
      (void)journal_.AppendEvent(job_id, action.id,
                                 *undone == UndoOutcome::kNotUndoable ? EventLevel::kWarning : EventLevel::kInfo,
                                 *undone == UndoOutcome::kNotUndoable
                                     ? "what the failed step did, if anything, cannot be reversed"
                                     : "undid what the failed step had done, if anything");
    } else if (*undone == UndoOutcome::kNotUndoable) {
      s->status = StepStatus::kNotUndoable;
      ++outcome.not_undoable;
      (void)journal_.RecordStepStatus(job_id, action.id, StepStatus::kNotUndoable,
                                      "its effect cannot be reversed");
      (void)journal_.AppendEvent(job_id, action.id, EventLevel::kWarning,
                                 std::string(EnumName(action.type)) + " cannot be undone");
    } else {
      s->status = StepStatus::kUndone;
      ++outcome.undone;
      (void)journal_.RecordStepStatus(job_id, action.id, StepStatus::kUndone);
      (void)journal_.AppendEvent(job_id, action.id, EventLevel::kInfo,
                                 "undid " + std::string(EnumName(action.type)) + " " + action.target.ToString());
    }
    CrashPoint("step-undone", action.id);
    ++undo_done;
    if (options.on_progress) {
      StepProgress p{job_id, action.id, s->status, failed_step ? "what it had done is undone" : "rolled back",
                     undo_done, undo_total};
      p.undo = true;
      options.on_progress(p);
    }
  }

  bool any_failed = false, only_marked = true;
  for (const Step& s : steps) {
    switch (s.status) {
      case StepStatus::kSucceeded: ++outcome.succeeded; break;
      case StepStatus::kFailed:
        ++outcome.failed;
        any_failed = true;
        if (s.strategy != RollbackStrategy::kMarkFailed) only_marked = false;
        outcome.errors.push_back(s.action->id + ": " + s.error);
        break;
      case StepStatus::kSkipped: ++outcome.skipped; break;
      default: break;
    }
  }
  if (is_cancelled()) {
    outcome.status = JobStatus::kCancelled;
  } else if (outcome.undo_failed > 0 || (outcome.not_undoable > 0 && (rollback_job || !full_units.empty()))) {
    outcome.status = JobStatus::kRollbackIncomplete;
  } else if (rollback_job) {
    outcome.status = JobStatus::kRolledBack;
  } else if (any_failed) {
    outcome.status = only_marked ? JobStatus::kMarkedFailed
                                 : (!full_units.empty() ? JobStatus::kRolledBack : JobStatus::kFailed);
  } else {
    outcome.status = JobStatus::kSucceeded;
  }
  std::string error;
  if (!outcome.errors.empty()) error = outcome.errors.front();
  (void)journal_.RecordJobStatus(job_id, outcome.status, error, OutcomeSummaryJson(outcome));
  (void)journal_.AppendEvent(job_id, "", outcome.Ok() ? EventLevel::kInfo : EventLevel::kError,
                             "job " + std::string(EnumName(outcome.status)));
  CrashPoint("job-finished");
  if (auto flushed = journal_.Flush(); !flushed) return std::unexpected(flushed.error());
  return outcome;
}

std::string OutcomeSummaryJson(const JobOutcome& o) {
  nlohmann::json j = {{"status", EnumName(o.status)}, {"succeeded", o.succeeded}, {"failed", o.failed},
                      {"skipped", o.skipped},         {"undone", o.undone},       {"undoFailed", o.undo_failed},
                      {"notUndoable", o.not_undoable}, {"errors", o.errors},      {"failedTargets", o.failed_targets}};
  return j.dump();
}

}  // namespace gitvirt
