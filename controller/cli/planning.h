#pragma once
// Making the current plan (desired + observed), recovering unfinished jobs, and running a plan
// as a job with progress output: what plan, apply, diff and the power/snapshot commands share.

#include <atomic>
#include <optional>

#include "gitvirt/core/planner.h"
#include "gitvirt/engine/executor.h"
#include "gitvirt/store/state_lock.h"
#include "session.h"

namespace gitvirt::cli {

struct PlanRequest {
  SourceOptions source;
  bool prune = false;
  std::string target;  // "Kind/name"
};

struct Planned {
  ControllerConfig config;
  Desired desired;
  std::unique_ptr<NodeSet> nodes;
  ObservedState observed;
  Plan plan;
};

// Loads config and manifests, connects, observes and plans; prints what went wrong.
std::optional<Planned> MakeCurrentPlan(const GlobalOptions& global, const PlanRequest& request,
                                       const std::shared_ptr<spdlog::logger>& log);

// The state lock, or nullopt after saying who holds it.
std::optional<StateLock> LockState(const ControllerConfig& config);

// Finishes jobs a killed process left running (FULL rolls back, others resume). Needs the lock.
bool RecoverUnfinishedJobs(const ControllerConfig& config, NodeSet& nodes, Journal& journal,
                           const std::shared_ptr<spdlog::logger>& log);

struct RunOptions {
  RollbackStrategy strategy = RollbackStrategy::kFull;
  int parallel = 8;
  std::string kind = "apply";
  bool quiet = false;
};

// Runs `plan` as a job against `nodes`, with a progress bar on a terminal and a line per step
// otherwise; SIGINT/SIGTERM stop it the way the strategy says. Prints the outcome.
std::optional<JobOutcome> RunPlan(const ControllerConfig& config, NodeSet& nodes, Journal& journal,
                                  const Plan& plan, const RunOptions& options,
                                  const std::shared_ptr<spdlog::logger>& log);

// Parses "VirtualMachine/web-01" or "web-01".
std::optional<ResourceRef> ParseTarget(const std::string& text);

}  // namespace gitvirt::cli
