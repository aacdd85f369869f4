#include "planning.h"

#include <csignal>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>


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

bool LockAndRecover(Session& session) {
  if (auto locked = session.Lock(); !locked) {
    PrintError(locked.error());
    return false;
  }
  // Before anything new: finish what a killed process left behind (the session says what it
  // does, job by job).
  if (auto recovered = session.RecoverUnfinishedJobs(); !recovered) {
    PrintError(recovered.error());
    return false;
  }
  return true;
}

std::optional<JobOutcome> RunPlan(Session& session, const Plan& plan, const RunOptions& run) {
  ProgressPrinter printer(StdoutIsTerminal() && !run.quiet);
  RunRequest request;
  request.kind = run.kind;
  request.strategy = run.strategy;
  request.parallel = run.parallel;
  request.interrupt = &g_interrupted;
  if (!run.quiet) request.on_progress = [&printer](const StepProgress& p) { printer(p); };
  g_interrupted = false;
  auto previous_int = std::signal(SIGINT, OnInterrupt);
  auto previous_term = std::signal(SIGTERM, OnInterrupt);
  auto outcome = session.Run(plan, request);
  std::signal(SIGINT, previous_int);
  std::signal(SIGTERM, previous_term);
  printer.Finish();
  if (!outcome) {
    PrintError(outcome.error());
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
