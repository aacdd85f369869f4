#include "fault_injection.h"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <sstream>
#include <string>

namespace gitvirt {

#ifdef GITVIRT_FAULT_INJECTION
namespace {

struct Faults {
  std::mutex mu;
  bool loaded = false;
  struct FailAt {
    long n = 0;
    bool and_later = false;  // "kind:N+": the Nth call and every later one fail
  };
  std::map<std::string, FailAt, std::less<>> fail_at;  // kind -> call number(s) to fail
  std::map<std::string, long, std::less<>> counts;
  long lose_at = 0;  // "lost:N": the Nth mutating operation's answer is lost
  long mutating = 0;
  long kill_at = 0;  // "kill:N": the process is killed right after the Nth mutating operation
  long carried_out = 0;
  // Tests: GITVIRT_FAULTS_REPORT=FILE writes how many mutating operations of each kind this
  // process asked for ("kind count" lines, and "any N"), at exit.
  std::string report;
  std::map<std::string, long, std::less<>> seen;
};

Faults& State() {
  static Faults faults;
  return faults;
}

void WriteReport();

void Load(Faults& f) {
  f.fail_at.clear();
  f.counts.clear();
  f.seen.clear();
  f.lose_at = 0;
  f.mutating = 0;
  f.kill_at = 0;
  f.carried_out = 0;
  f.loaded = true;
  if (const char* report = std::getenv("GITVIRT_FAULTS_REPORT"); report != nullptr && *report) {
    if (f.report.empty()) std::atexit(WriteReport);
    f.report = report;
  }
  const char* spec = std::getenv("GITVIRT_FAULTS");
  if (spec == nullptr) return;
  std::istringstream in(spec);
  std::string item;
  while (std::getline(in, item, ',')) {
    const auto colon = item.find(':');
    if (colon == std::string::npos) continue;
    char* end = nullptr;
    const long n = std::strtol(item.c_str() + colon + 1, &end, 10);
    if (item.substr(0, colon) == "lost") {
      f.lose_at = n;
    } else if (item.substr(0, colon) == "kill") {
      f.kill_at = n;
    } else {
      f.fail_at[item.substr(0, colon)] = Faults::FailAt{n, *end == '+'};
    }
  }
}

void WriteReport() {
  Faults& f = State();
  std::lock_guard lock(f.mu);
  if (std::FILE* out = std::fopen(f.report.c_str(), "w")) {
    long any = 0;
    for (const auto& [kind, n] : f.seen) {
      std::fprintf(out, "%s %ld\n", kind.c_str(), n);
      any += n;
    }
    std::fprintf(out, "any %ld\n", any);
    std::fclose(out);
  }
}

}  // namespace

std::optional<Error> InjectedFault(std::string_view kind) {
  Faults& f = State();
  std::lock_guard lock(f.mu);
  if (!f.loaded) Load(f);
  if (!f.report.empty()) ++f.seen[std::string(kind)];
  if (f.fail_at.empty()) return std::nullopt;
  for (std::string_view key : {kind, std::string_view("any")}) {
    auto it = f.fail_at.find(key);
    if (it == f.fail_at.end()) continue;
    const long n = ++f.counts[std::string(key)];
    if (n == it->second.n || (it->second.and_later && n > it->second.n)) {
      return Error{ErrorCode::kInternal,
                   "injected fault: " + std::string(kind) + " (GITVIRT_FAULTS " + std::string(key) +
                       ":" + std::to_string(n) + ")",
                   ""};
    }
  }
  return std::nullopt;
}

bool InjectedConnectionLoss(std::string_view) {
  Faults& f = State();
  std::lock_guard lock(f.mu);
  if (!f.loaded) Load(f);
  return f.lose_at > 0 && ++f.mutating == f.lose_at;
}

void InjectedKill(std::string_view) {
  Faults& f = State();
  std::lock_guard lock(f.mu);
  if (!f.loaded) Load(f);
  // Like `kill -9` between the hypervisor's answer and anything gitvirt does with it: no
  // destructor, no journal write, no flush.
  if (f.kill_at > 0 && ++f.carried_out == f.kill_at) ::raise(SIGKILL);
}

void ResetFaultInjection() {
  Faults& f = State();
  std::lock_guard lock(f.mu);
  Load(f);
}

#else

bool InjectedConnectionLoss(std::string_view) { return false; }
void InjectedKill(std::string_view) {}

std::optional<Error> InjectedFault(std::string_view) { return std::nullopt; }
void ResetFaultInjection() {}

#endif

}  // namespace gitvirt
