#include "planning.h"

#include <csignal>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>

#include "gitvirt/core/json.h"
#include "gitvirt/engine/step_runner.h"

namespace gitvirt::cli {
namespace {

std::atomic<bool> g_interrupted{false};

extern "C" void OnInterrupt(int) { g_interrupted.store(true); }

// A progress bar on a terminal, one line per finished step otherwise. Thread-safe.
class ProgressPrinter {
 public:
  explicit ProgressPrinter(bool terminal) : terminal_(terminal) {}

  void operator()(const StepProgress& p) {
    std::lock_guard lock(mu_);
    if (terminal_) {
      const int width = 30;
      const int filled = p.total == 0 ? width : p.done * width / p.total;
      std::cerr << "\r\033[K[" << std::string(static_cast<std::size_t>(filled), '#')
                << std::string(static_cast<std::size_t>(width - filled), '.') << "] " << p.done << "/"
                << p.total << "  " << EnumName(p.status) << " " << p.step_id << std::flush;
      if (p.status == StepStatus::kFailed) std::cerr << "\n  " << p.message << "\n";
      return;
    }
    std::cout << "[" << p.done << "/" << p.total << "] " << p.step_id << ": " << EnumName(p.status);
    if (p.status == StepStatus::kFailed) std::cout << ": " << p.message;
    std::cout << "\n" << std::flush;
  }

  void Finish() {
    if (terminal_) std::cerr << "\n";
  }

 private:
  bool terminal_;
  std::mutex mu_;
};

}  // namespace

std::optional<ResourceRef> ParseTarget(const std::string& text) { return ResourceRef::Parse(text); }

std::optional<Planned> MakeCurrentPlan(const GlobalOptions& global, const PlanRequest& request,
                                       const std::shared_ptr<spdlog::logger>& log) {
  Planned p;
  auto config = LoadConfig(global);
  if (!config) return std::nullopt;
  p.config = std::move(*config);
  auto desired = LoadDesired(p.config, request.source, log);
  if (!desired) return std::nullopt;
  p.desired = std::move(*desired);
  p.nodes = ConnectNodes(p.config, log);
  p.observed = p.nodes->ObserveAll();
  PlanOptions options;
  options.prune = request.prune || p.config.sync.prune;
  options.revision = p.desired.revision;
  options.source = p.desired.source;
  if (!request.target.empty()) {
    options.target = ParseTarget(request.target);
    if (!options.target) {
      std::cerr << "gitvirt: --target expects Kind/name, e.g. VirtualMachine/web-01\n";
      return std::nullopt;
    }
  }
  auto plan = Planner(p.config).MakePlan(p.desired.state, p.observed, options);
  if (!plan) {
    std::cerr << "gitvirt: " << plan.error().ToString() << "\n";
    return std::nullopt;
  }
  p.plan = std::move(*plan);
  return p;
}

std::optional<StateLock> LockState(const ControllerConfig& config) {
  auto lock = StateLock::Acquire(config.state, std::chrono::seconds(5));
  if (!lock) {
    std::cerr << "gitvirt: " << lock.error().ToString() << "\n";
    return std::nullopt;
  }
  return std::move(*lock);
}

bool RecoverUnfinishedJobs(const ControllerConfig& config, NodeSet& nodes, Journal& journal,
                           const std::shared_ptr<spdlog::logger>& log) {
  auto unfinished = journal.UnfinishedJobs();
  if (!unfinished) {
    std::cerr << "gitvirt: " << unfinished.error().ToString() << "\n";
    return false;
  }
  for (const JobRecord& job : *unfinished) {
    auto plan = PlanFromJson(nlohmann::json::parse(job.plan_json, nullptr, false));
    if (!plan) {
      std::cerr << "gitvirt: job " << job.id << ": " << plan.error().ToString() << "\n";
      return false;
    }
    StepRunnerOptions runner_options = StepRunnerOptionsFor(config);
    LibvirtStepRunner runner(nodes, *plan, plan->images, runner_options, log);
    Executor executor(runner, journal, log);
    ExecutionOptions options;
    options.parallel = config.apply.parallel;
    for (const NodeConfig& n : config.nodes) options.per_node[n.name] = n.max_parallel;
    std::cerr << "gitvirt: job " << job.id << " was interrupted (" << EnumName(job.status) << "); recovering it ("
              << job.strategy << ": " << (job.strategy == "FULL" ? "roll back" : "resume") << ")\n";
    auto outcome = executor.Recover(job.id, options);
    if (!outcome) {
      std::cerr << "gitvirt: recovering job " << job.id << ": " << outcome.error().ToString() << "\n";
      return false;
    }
    std::cerr << "gitvirt: job " << job.id << " " << EnumName(outcome->status) << "\n";
  }
  return true;
}

std::optional<JobOutcome> RunPlan(const ControllerConfig& config, NodeSet& nodes, Journal& journal,
                                  const Plan& plan, const RunOptions& run,
                                  const std::shared_ptr<spdlog::logger>& log) {
  StepRunnerOptions runner_options = StepRunnerOptionsFor(config);
  LibvirtStepRunner runner(nodes, plan, plan.images, runner_options, log);
  Executor executor(runner, journal, log);
  ProgressPrinter printer(StdoutIsTerminal() && !run.quiet);
  ExecutionOptions options;
  options.kind = run.kind;
  options.strategy = run.strategy;
  options.parallel = run.parallel;
  options.step_timeout = config.apply.step_timeout;
  for (const NodeConfig& n : config.nodes) options.per_node[n.name] = n.max_parallel;
  options.interrupt = &g_interrupted;
  if (!run.quiet) options.on_progress = [&printer](const StepProgress& p) { printer(p); };
  g_interrupted = false;
  auto previous_int = std::signal(SIGINT, OnInterrupt);
  auto previous_term = std::signal(SIGTERM, OnInterrupt);
  auto outcome = executor.Apply(plan, options);
  std::signal(SIGINT, previous_int);
  std::signal(SIGTERM, previous_term);
  printer.Finish();
  if (!outcome) {
    std::cerr << "gitvirt: " << outcome.error().ToString() << "\n";
    return std::nullopt;
  }
  const JobOutcome& o = *outcome;
  std::cout << "\nJob " << o.job_id << " " << EnumName(o.status) << ": " << o.succeeded << " succeeded, "
            << o.failed << " failed, " << o.skipped << " skipped";
  if (o.undone + o.undo_failed + o.not_undoable > 0) {
    std::cout << "; rolled back " << o.undone << ", could not undo " << o.undo_failed + o.not_undoable;
  }
  std::cout << ".\n";
  for (const std::string& e : o.errors) std::cout << "  error: " << e << "\n";
  if (!o.Ok()) std::cout << "See `gitvirt jobs " << o.job_id << "` for every step.\n";
  return *outcome;
}

}  // namespace gitvirt::cli
