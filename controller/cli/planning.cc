#include "planning.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <mutex>

#include "flags.h"
#include "gitvirt/core/plan_text.h"
#include "output.h"

namespace gitvirt::cli {
namespace {

// Ctrl-C (and SIGTERM): the first asks the job to stop starting steps; the second leaves it
// interrupted. Set from the signal handler, read by the executor.
std::atomic<bool> g_interrupted{false};
std::atomic<bool> g_abandoned{false};

extern "C" void OnInterrupt(int) {
  if (!g_interrupted.exchange(true)) {
    static const char kFirst[] =
        "\ngitvirt: interrupted: starting no more steps, waiting for the running ones to finish "
        "(interrupt again to leave the job interrupted for the next start)\n";
    (void)!write(STDERR_FILENO, kFirst, sizeof kFirst - 1);
  } else if (!g_abandoned.exchange(true)) {
    static const char kSecond[] =
        "\ngitvirt: interrupted again: the job is left interrupted; the next gitvirt apply (or serve) resumes or "
        "rolls it back\n";
    (void)!write(STDERR_FILENO, kSecond, sizeof kSecond - 1);
  }
}

// Installs OnInterrupt for SIGINT and SIGTERM without SA_RESTART, so that a read waiting for an
// answer returns when the second one arrives; restores the previous handlers when done.
class InterruptHandlers {
 public:
  InterruptHandlers() {
    g_interrupted = false;
    g_abandoned = false;
    struct sigaction action {};
    action.sa_handler = OnInterrupt;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;
    sigaction(SIGINT, &action, &previous_int_);
    sigaction(SIGTERM, &action, &previous_term_);
  }
  ~InterruptHandlers() {
    sigaction(SIGINT, &previous_int_, nullptr);
    sigaction(SIGTERM, &previous_term_, nullptr);
  }
  InterruptHandlers(const InterruptHandlers&) = delete;
  InterruptHandlers& operator=(const InterruptHandlers&) = delete;

 private:
  struct sigaction previous_int_ {};
  struct sigaction previous_term_ {};
};

bool Interactive() { return isatty(STDIN_FILENO) == 1 && isatty(STDOUT_FILENO) == 1; }

// One line from the terminal; nullopt on end of input or when a signal interrupts the read.
std::optional<std::string> ReadAnswer() {
  std::string line;
  char c;
  while (true) {
    const ssize_t n = read(STDIN_FILENO, &c, 1);
    if (n == 1) {
      if (c == '\n') return line;
      line += c;
    } else if (n == 0 || errno == EINTR) {
      return n == 0 && !line.empty() ? std::optional<std::string>(line) : std::nullopt;
    } else {
      return std::nullopt;
    }
  }
}

// After the first interrupt, on a terminal: what FULL would undo, and the question.
bool AskRollBack(const std::vector<std::string>& would_undo) {
  std::cout << "\nInterrupted; the running steps have finished. The FULL strategy would undo " << would_undo.size()
            << " completed step" << (would_undo.size() == 1 ? "" : "s") << ", latest first:\n";
  for (const std::string& id : would_undo) std::cout << "  - " << id << "\n";
  while (true) {
    std::cout << "Roll back? (yes/no): " << std::flush;
    auto answer = ReadAnswer();
    if (!answer) {
      // Interrupted again (the executor sees it and leaves the job interrupted), or end of input:
      // the strategy decides, as it does off a terminal.
      std::cout << "\n";
      return true;
    }
    if (*answer == "yes") return true;
    if (*answer == "no") {
      std::cout << "Keeping what is done; the next plan shows what is left.\n";
      return false;
    }
  }
}

}  // namespace

ProgressPrinter::ProgressPrinter(bool terminal) : terminal_(terminal) {}

void ProgressPrinter::operator()(const StepProgress& p) {
  std::lock_guard lock(mu_);
  const std::string counter = (p.undo ? "undo " : "") + std::to_string(p.done) + "/" + std::to_string(p.total);
  // An undo of a failed step's partial work keeps the step failed: say what happened instead.
  const bool partial = p.undo && p.status == StepStatus::kFailed;
  const bool failed = !partial && (p.status == StepStatus::kFailed || p.status == StepStatus::kUndoFailed);
  const std::string status = partial ? "partial work undone" : std::string(EnumName(p.status));
  if (terminal_) {
    const int width = 30;
    const int filled = p.total == 0 ? width : p.done * width / p.total;
    std::cerr << "\r\033[K[" << std::string(static_cast<std::size_t>(filled), p.undo ? '<' : '#')
              << std::string(static_cast<std::size_t>(width - filled), '.') << "] " << counter << "  " << status
              << " " << p.step_id << std::flush;
    if (failed) std::cerr << "\n  " << p.message << "\n";
    return;
  }
  std::cout << "[" << counter << "] " << p.step_id << ": " << status;
  if (failed) std::cout << ": " << p.message;
  std::cout << "\n" << std::flush;
}

void ProgressPrinter::Finish() {
  if (terminal_) std::cerr << "\n";
}

void PrintPlan(const GlobalOptions& global, const Plan& plan) {
  std::cout << RenderPlan(plan, PlanTextOptions{UseColor(global), DisplaySource(plan.source)});
}

bool ConfirmAction(const std::string& question) {
  if (!Interactive()) {
    std::cerr << "gitvirt: this needs confirmation; run it on a terminal or pass --yes (-y, --auto-approve)\n";
    return false;
  }
  std::cout << question << " Only 'yes' will be accepted: " << std::flush;
  std::string answer;
  std::getline(std::cin, answer);
  return answer == "yes";
}

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
  ProgressPrinter printer(isatty(STDOUT_FILENO) == 1 && !run.quiet);
  RunRequest request;
  request.kind = run.kind;
  request.strategy = run.strategy;
  request.parallel = run.parallel;
  request.interrupt = &g_interrupted;
  request.shutdown = &g_abandoned;
  if (Interactive()) request.confirm_rollback = AskRollBack;
  if (!run.quiet) request.on_progress = [&printer](const StepProgress& p) { printer(p); };
  request.caller_reports = true;  // the progress lines, or the outcome's errors, say it
  Result<JobOutcome> outcome = std::unexpected(Error{});
  {
    InterruptHandlers handlers;
    outcome = session.Run(plan, request);
  }
  printer.Finish();
  if (!outcome) {
    PrintError(outcome.error());
    return std::nullopt;
  }
  const JobOutcome& o = *outcome;
  // Quiet (apply -o json): stdout is the document; the words go to stderr.
  std::ostream& out = run.quiet ? std::cerr : std::cout;
  out << "\nJob " << o.job_id << " " << EnumName(o.status) << ": " << o.succeeded << " succeeded, "
            << o.failed << " failed, " << o.skipped << " skipped";
  if (o.undone + o.undo_failed + o.not_undoable > 0) {
    out << "; rolled back " << o.undone << ", could not undo " << o.undo_failed + o.not_undoable;
  }
  out << ".\n";
  for (const std::string& e : o.errors) out << "  error: " << e << "\n";
  if (o.status == JobStatus::kInterrupted) {
    out << "The next `gitvirt apply` (or serve) resumes it, or rolls it back under FULL.\n";
  }
  if (!o.Ok()) out << "See `gitvirt jobs " << o.job_id << "` for every step.\n";
  return *outcome;
}

}  // namespace gitvirt::cli
