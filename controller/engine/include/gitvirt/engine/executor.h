#pragma once
// The executor: runs a Plan as a journaled job, in parallel, in dependency order, with a
// rollback strategy.
//
// Every step is journaled before and after its side effect: the StepRunner first says how the
// step would be undone (without changing anything), that is made durable, then the step runs,
// reporting more undo information as it learns it (volumes just created), then its outcome is
// recorded. A controller killed at any point finds the job unfinished at its next start and
// Recover() resumes it (PARTIAL, NONE, MARK_FAILED) or rolls it back (FULL); a step found
// running is run again, which is safe because every step converges (idempotent).
//
// Strategies, per job, overridden per Cluster for the cluster's members (Action::unit):
//   FULL        first failure: start nothing more (in the unit), wait for running steps, undo
//               every completed step (of the unit; of the whole job for job-level steps) in
//               reverse order of completion;
//   PARTIAL     first failure: start nothing more (in the unit); keep what succeeded;
//   NONE        carry on with every step that does not depend on a failed one;
//   MARK_FAILED as NONE, and the failed resources are marked Failed.
//
// Thread-safety: one Apply/Recover at a time per Executor; steps run on worker threads.

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gitvirt/core/error.h"
#include "gitvirt/core/plan.h"
#include "gitvirt/store/journal.h"

namespace spdlog {
class logger;
}

namespace gitvirt {

// What a step can tell the executor while it runs.
class StepContext {
 public:
  virtual ~StepContext() = default;
  virtual const std::string& job_id() const = 0;
  virtual const std::string& step_id() const = 0;
  // Durably adds to the step's undo information (a JSON object merged into what Prepare gave;
  // arrays are replaced, so send whole lists).
  virtual Result<void> RecordUndo(const std::string& undo_json) = 0;
  // The step's undo information so far, including what an earlier attempt recorded.
  virtual std::string undo_json() const = 0;
  virtual void Event(EventLevel level, const std::string& message) = 0;
  virtual bool Cancelled() const = 0;
  virtual std::chrono::steady_clock::time_point deadline() const = 0;
};

enum class UndoOutcome { kUndone, kNotUndoable };

// Carries out actions on the hypervisors. The engine's libvirt implementation lives in
// step_runner.h; executor tests use a fake.
class StepRunner {
 public:
  virtual ~StepRunner() = default;
  // How the step would be undone, looked up before anything changes (e.g. the current
  // definition of a VM about to be updated). Must have no side effects.
  virtual Result<std::string> Prepare(const Action& action, StepContext& context) = 0;
  // Does the step. Idempotent: running it again after a partial run finishes the job.
  virtual Result<std::string> Run(const Action& action, StepContext& context) = 0;
  // Reverses a completed (or partly completed) step from its undo information.
  virtual Result<UndoOutcome> Undo(const Action& action, const std::string& undo_json,
                                   StepContext& context) = 0;
};

struct StepProgress {
  std::string job_id;
  std::string step_id;
  StepStatus status = StepStatus::kPending;
  std::string message;
  int done = 0;
  int total = 0;
  // A step of the rollback: `done` of `total` counts the undo pass alone (the steps it undoes,
  // a failed step's partial work included).
  bool undo = false;
};

struct ExecutionOptions {
  std::string kind = "apply";
  RollbackStrategy strategy = RollbackStrategy::kFull;
  int parallel = 8;                        // steps at once, overall
  std::map<std::string, int> per_node;     // steps at once per node (default 4)
  std::chrono::seconds step_timeout{600};
  // Interrupt (the first Ctrl-C during `apply`): start nothing more, let the running steps
  // finish, then apply the strategy to what is done (FULL: after confirm_rollback, when set).
  // `gitvirt jobs cancel` (through the journal) does the same, without asking.
  const std::atomic<bool>* interrupt = nullptr;
  // Shutdown (SIGTERM to `serve`, a second Ctrl-C): start nothing more, let running steps
  // finish, record the job as interrupted and return; the next start resumes or rolls it back.
  // Set during a rollback, it stops the rollback between two undos the same way.
  const std::atomic<bool>* shutdown = nullptr;
  // After an interrupt, once the running steps have finished and FULL would undo something:
  // shown what (the step ids, latest first), true rolls back, false keeps what is done. Unset:
  // the strategy applies. Runs on the executor's thread; `shutdown` set when it returns leaves
  // the job interrupted instead.
  std::function<bool(const std::vector<std::string>& would_undo)> confirm_rollback;
  std::function<void(const StepProgress&)> on_progress;  // called from worker threads
  // The caller prints every step's outcome itself (the command line's progress lines): a failed
  // step, a failed undo and an interrupt are logged at info, not as warnings and errors beside
  // the same words. The journal's events are the same either way.
  bool caller_reports = false;
};

struct JobOutcome {
  std::string job_id;
  JobStatus status = JobStatus::kPending;
  int succeeded = 0;
  int failed = 0;
  int skipped = 0;
  int undone = 0;
  int undo_failed = 0;
  int not_undoable = 0;
  std::vector<std::string> errors;  // "step-id: message"
  std::vector<std::string> failed_targets;  // resources to mark Failed (MARK_FAILED)
  bool Ok() const { return status == JobStatus::kSucceeded; }
};

class Executor {
 public:
  Executor(StepRunner& runner, Journal& journal, std::shared_ptr<spdlog::logger> logger);

  // Journals the plan as a new job and runs it.
  Result<JobOutcome> Apply(const Plan& plan, const ExecutionOptions& options);

  // Finishes a job a previous process left unfinished: FULL rolls back what it did; the other
  // strategies run its remaining steps (a step found running is run again).
  Result<JobOutcome> Recover(const std::string& job_id, const ExecutionOptions& options);

 private:
  Result<JobOutcome> Execute(const std::string& job_id, const Plan& plan,
                             const std::vector<StepRecord>& steps, bool rollback_only,
                             const ExecutionOptions& options);

  StepRunner& runner_;
  Journal& journal_;
  std::shared_ptr<spdlog::logger> log_;
};

// The JSON written to a job's summary: counts and the rollback outcome.
std::string OutcomeSummaryJson(const JobOutcome& outcome);

}  // namespace gitvirt
