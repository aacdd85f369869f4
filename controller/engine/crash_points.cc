#include "gitvirt/engine/crash_points.h"

#ifdef GITVIRT_FAULT_INJECTION
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#endif

namespace gitvirt {

#ifdef GITVIRT_FAULT_INJECTION
namespace {

struct CrashPoints {
  long kill_at = 0;      // 0: never
  int log_fd = -1;       // GITVIRT_CRASH_POINTS_LOG, opened O_APPEND
  long delay_ms = 0;
  std::mutex mu;
  long passed = 0;
};

long EnvNumber(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::strtol(v, nullptr, 10) : 0;
}

CrashPoints& State() {
  static CrashPoints* points = [] {
    auto* p = new CrashPoints;  // never destroyed: boundaries can be passed during exit
    p->kill_at = EnvNumber("GITVIRT_KILL_AT_STEP");
    p->delay_ms = EnvNumber("GITVIRT_STEP_DELAY_MS");
    if (const char* log = std::getenv("GITVIRT_CRASH_POINTS_LOG"); log != nullptr && *log) {
      p->log_fd = ::open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    }
    return p;
  }();
  return *points;
}

}  // namespace

void CrashPoint(std::string_view boundary, std::string_view step_id) {
  CrashPoints& p = State();
  if (p.kill_at <= 0 && p.log_fd < 0) return;
  // Under the lock, so that the log's numbering is the order boundaries were passed and no
  // other thread passes one between the chosen boundary and the kill.
  std::lock_guard lock(p.mu);
  const long n = ++p.passed;
  if (p.log_fd >= 0) {
    std::string line = std::to_string(n) + " " + std::string(boundary) + " " +
                       (step_id.empty() ? "-" : std::string(step_id)) + "\n";
    (void)!::write(p.log_fd, line.data(), line.size());  // one write: O_APPEND keeps it whole
  }
  if (n == p.kill_at) {
    ::raise(SIGKILL);
    ::pause();  // not reached
  }
}

void StepDelay() {
  const long ms = State().delay_ms;
  if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

#else

void CrashPoint(std::string_view, std::string_view) {}
void StepDelay() {}

#endif

}  // namespace gitvirt
