#pragma once
// Printing plans and running them as jobs from the command line: the plan text with the
// colour rules, confirmations, a progress bar on a terminal and a line per step otherwise (the
// rollback with its own counter), Ctrl-C as terraform takes it, and the outcome in words.
// Internal to the cli folder.

#include <mutex>
#include <optional>
#include <string>

#include "gitvirt/core/plan.h"
#include "gitvirt/engine/executor.h"
#include "session.h"

namespace gitvirt::cli {

// The plan as `plan` prints it (colours by UseColor), to stdout.
void PrintPlan(const GlobalOptions& global, const Plan& plan);

// Asks "<question> Only 'yes' will be accepted:" when stdin and stdout are terminals; false
// (saying to pass -y, --yes or --auto-approve) when they are not.
bool ConfirmAction(const std::string& question);

// A progress bar on a terminal (stderr), one line per finished step otherwise (stdout):
// "[3/24] create/web-01: succeeded"; the rollback counts its own steps ("[undo 1/5] create/x:
// undone"). Thread-safe: the executor calls it from its workers.
class ProgressPrinter {
 public:
  explicit ProgressPrinter(bool terminal);
  void operator()(const StepProgress& progress);
  void Finish();

 private:
  bool terminal_;
  std::mutex mu_;
};

struct RunOptions {
  std::string kind = "apply";
  std::optional<RollbackStrategy> strategy;  // unset: the configuration's apply.rollback
  int parallel = 0;                          // 0: the configuration's apply.parallel
  bool quiet = false;  // no progress lines; the outcome's words go to stderr (stdout is a document)
};

// Takes the state lock and finishes what killed processes left unfinished, printing what it
// does. False after printing why it could not.
bool LockAndRecover(Session& session);

// Runs `plan` as a job through the session; prints progress and the outcome. Ctrl-C (or
// SIGTERM) once: no new steps, the running ones finish, then on a terminal the rollback FULL
// would do is shown and asked for ("Roll back? (yes/no)"), off a terminal the strategy applies;
// twice: the job is left interrupted for the next start. nullopt after printing the error.
std::optional<JobOutcome> RunPlan(Session& session, const Plan& plan, const RunOptions& options);

}  // namespace gitvirt::cli
