#pragma once
// Running a plan as a job from the command line: a progress bar on a terminal and a line per
// step otherwise, Ctrl-C and SIGTERM turned into the job's interrupt, and the outcome in words.
// Internal to the cli folder.

#include <optional>
#include <string>

#include "gitvirt/core/plan.h"
#include "gitvirt/engine/executor.h"
#include "session.h"

namespace gitvirt::cli {

struct RunOptions {
  std::string kind = "apply";
  std::optional<RollbackStrategy> strategy;  // unset: the configuration's apply.rollback
  int parallel = 0;                          // 0: the configuration's apply.parallel
  bool quiet = false;
};

// Takes the state lock and finishes what killed processes left unfinished, printing what it
// does. False after printing why it could not.
bool LockAndRecover(Session& session);

// Runs `plan` as a job through the session; prints the outcome. nullopt after printing the
// error.
std::optional<JobOutcome> RunPlan(Session& session, const Plan& plan, const RunOptions& options);

}  // namespace gitvirt::cli
