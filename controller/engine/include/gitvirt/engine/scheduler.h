#pragma once
// The policy scheduler: runs SnapshotPolicies and BackupPolicies when their cron schedule says,
// and on demand (`gitvirt snapshot run POLICY`, `gitvirt backup run POLICY`).
//
// Per policy the journal's key/value state holds, under "schedule/<Kind>/<name>", a JSON object:
//   firstSeen  when the scheduler first saw the policy (a new policy waits for its first slot)
//   slot       the last schedule slot taken (DecideSchedule's `slot`)
//   lastRun, lastResult, lastJob   what the last run (scheduled or manual) did
// A due slot is recorded, durably, BEFORE its run starts: a controller killed mid-run never
// runs that slot again (the unfinished job itself is resumed by the controller's recovery),
// and a controller that was down across several slots runs the policy once, for the latest.
//
// A run is a Plan (core/policy_plan.h) executed as one journaled job of kind "snapshot" or
// "backup" with the NONE strategy (one VM's failure does not stop the others, and a VM's
// retention waits for its new item), at most the policy's maxParallel steps at once.
// A policy with `suspend: true` is not scheduled; one without a schedule runs only on demand.
//
// Thread-safety: one RunDue/RunNow at a time; Statuses from any thread.

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gitvirt/core/model.h"
#include "gitvirt/core/observed.h"
#include "gitvirt/engine/clock.h"
#include "gitvirt/engine/executor.h"
#include "gitvirt/engine/jobs.h"
#include "gitvirt/hypervisor/node_set.h"
#include "gitvirt/core/status.h"
#include "gitvirt/engine/step_runner.h"
#include "gitvirt/store/journal.h"

namespace spdlog {
class logger;
}

namespace gitvirt {

struct SchedulerOptions {
  // How the policies' jobs run (engine/jobs.h); each overrides the strategy (NONE) and the
  // parallelism (the policy's maxParallel).
  JobSettings jobs;
};

// What one policy run did.
struct PolicyRunResult {
  Kind kind = Kind::kSnapshotPolicy;
  std::string policy;
  bool ran = false;                       // a job was run
  std::optional<TimePoint> slot;          // the schedule slot (scheduled runs)
  std::string job_id;
  JobStatus status = JobStatus::kPending;
  std::string result;                     // succeeded | failed: ... | nothing to do | ...
  std::vector<std::string> warnings;      // VMs selected but not running anywhere, ...
  int snapshots = 0;                      // created
  int snapshots_failed = 0;
  int backups = 0;
  int backups_failed = 0;
  int deleted = 0;                        // by retention
  std::uint64_t backup_bytes = 0;         // stored
  double backup_seconds = 0;
};

// Hooks into the job a run executes (the CLI's progress output and Ctrl-C; serve's shutdown).
struct RunHooks {
  const std::atomic<bool>* interrupt = nullptr;
  const std::atomic<bool>* shutdown = nullptr;
  std::function<void(const StepProgress&)> on_progress;
};

class PolicyScheduler {
 public:
  PolicyScheduler(NodeSet& nodes, Journal& journal, const WallClock& clock, SchedulerOptions options,
                  std::shared_ptr<spdlog::logger> log);

  // Runs every scheduled policy that is due at the clock's now, once each.
  std::vector<PolicyRunResult> RunDue(const DesiredState& desired, const ObservedState& observed,
                                      const std::string& revision, const RunHooks& hooks = {});

  // Runs one policy now, retention included (the manual trigger). kNotFound for an unknown
  // policy. The schedule's slot is not touched.
  Result<PolicyRunResult> RunNow(Kind kind, const std::string& name, const DesiredState& desired,
                                 const ObservedState& observed, const std::string& revision,
                                 const RunHooks& hooks = {});

  // The plan a run would execute now (for --dry-run and tests).
  Result<Plan> PlanRun(Kind kind, const std::string& name, const DesiredState& desired,
                       const ObservedState& observed, const std::string& revision);

  // Last and next run of every policy the desired state declares.
  std::vector<PolicyStatus> Statuses(const DesiredState& desired);

  static std::string StateKey(Kind kind, const std::string& name);

 private:
  struct State;
  Result<State> LoadState(Kind kind, const std::string& name);
  Result<void> SaveState(Kind kind, const std::string& name, const State& state);
  Result<PolicyRunResult> Execute(Kind kind, const std::string& name, int max_parallel, const Plan& plan,
                                  const RunHooks& hooks);

  NodeSet& nodes_;
  Journal& journal_;
  const WallClock& clock_;
  SchedulerOptions options_;
  std::shared_ptr<spdlog::logger> log_;
};

}  // namespace gitvirt
