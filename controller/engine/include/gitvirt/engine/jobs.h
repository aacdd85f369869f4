#pragma once
// Running a plan as a journaled job, in one place: the libvirt step runner over a NodeSet, the
// executor over a journal, and the ExecutionOptions a configuration gives every job. The Session
// runs and recovers jobs through it, and so does the policy scheduler.

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "gitvirt/core/config.h"
#include "gitvirt/core/error.h"
#include "gitvirt/core/plan.h"
#include "gitvirt/engine/executor.h"
#include "gitvirt/engine/step_runner.h"
#include "gitvirt/hypervisor/node_set.h"
#include "gitvirt/store/journal.h"

namespace spdlog {
class logger;
}

namespace gitvirt {

// What one job is asked for. Unset fields take the configuration's values (JobSettings).
struct RunRequest {
  std::string kind = "apply";  // apply | sync | power | snapshot | backup | restore
  std::optional<RollbackStrategy> strategy;
  int parallel = 0;  // steps at once overall; 0 = apply.parallel
  // Interrupt (Ctrl-C): start nothing more, finish the running steps, then the strategy (after
  // confirm_rollback, when set and FULL would undo something); shutdown (serve stopping, a
  // second Ctrl-C): start nothing more, finish the running steps, leave the job to the next
  // start. See ExecutionOptions.
  const std::atomic<bool>* interrupt = nullptr;
  const std::atomic<bool>* shutdown = nullptr;
  std::function<bool(const std::vector<std::string>& would_undo)> confirm_rollback;
  std::function<void(const StepProgress&)> on_progress;  // called from worker threads
  bool caller_reports = false;  // ExecutionOptions::caller_reports
};

// What a configuration gives every job it runs.
struct JobSettings {
  StepRunnerOptions runner;               // cache, secrets, console and state paths
  RollbackStrategy strategy = RollbackStrategy::kFull;  // apply.rollback
  int parallel = 8;                       // apply.parallel
  std::chrono::seconds step_timeout{600}; // apply.stepTimeout
  std::map<std::string, int> per_node;    // the nodes' maxParallel
  static JobSettings For(const ControllerConfig& config);
};

ExecutionOptions ExecutionFor(const JobSettings& settings, const RunRequest& request);

// Journals `plan` as a new job and runs it on `nodes`.
Result<JobOutcome> RunJob(NodeSet& nodes, Journal& journal, const Plan& plan, const JobSettings& settings,
                          const RunRequest& request, const std::shared_ptr<spdlog::logger>& log);
// Finishes a job a previous process left unfinished, its own plan read from the journal.
Result<JobOutcome> RecoverJob(NodeSet& nodes, Journal& journal, const std::string& job_id, const Plan& plan,
                              const JobSettings& settings, const std::shared_ptr<spdlog::logger>& log);

}  // namespace gitvirt
