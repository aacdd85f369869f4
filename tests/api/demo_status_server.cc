// A status server over fake data, for trying the dashboard, its browser test and the API
// benchmark without libvirt. Test-only; not installed.
//
//   demo_status_server [--listen 127.0.0.1:8080] [--vms 20] [--steps 20] [--step-ms 300]
//                      [--pause-ms 4000] [--threads 1] [--tokens FILE] [--no-jobs] [--refused]
//
// Prints "listening on URL" once serving, then runs apply jobs in a loop: each starts `steps`
// VMs one after the other (`step-ms` each), with journal events, then pauses `pause-ms`.
// SIGINT or SIGTERM stops it gracefully.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>

#include "fake_status.h"
#include "gitvirt/api/server.h"

namespace {

using namespace gitvirt;
using gitvirt::testing::FakeJournal;
using gitvirt::testing::FakeStatusSource;

struct Flags {
  std::string listen = "127.0.0.1:8080";
  int vms = 20;
  int steps = 20;
  int step_ms = 300;
  int pause_ms = 4000;
  int threads = 1;
  std::string tokens;
  bool jobs = true;
  bool refused = false;  // the newest commit was refused (the dashboard's error panel)
};

bool ParseFlags(int argc, char** argv, Flags& flags) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    auto number = [&]() { return std::atoi(value().c_str()); };
    if (arg == "--listen") {
      flags.listen = value();
    } else if (arg == "--vms") {
      flags.vms = number();
    } else if (arg == "--steps") {
      flags.steps = number();
    } else if (arg == "--step-ms") {
      flags.step_ms = number();
    } else if (arg == "--pause-ms") {
      flags.pause_ms = number();
    } else if (arg == "--threads") {
      flags.threads = number();
    } else if (arg == "--tokens") {
      flags.tokens = value();
    } else if (arg == "--no-jobs") {
      flags.jobs = false;
    } else if (arg == "--refused") {
      flags.refused = true;
    } else {
      std::cerr << "unknown argument " << arg << "\n";
      return false;
    }
  }
  flags.steps = std::max(1, std::min(flags.steps, flags.vms));
  return flags.vms > 0 && flags.threads > 0;
}

// Runs demo jobs until stopped: the journal gains steps and events like a real apply.
class JobLoop {
 public:
  JobLoop(FakeStatusSource& source, const Flags& flags) : source_(source), flags_(flags) {}

  void Run() {
    for (int n = 1; !Sleep(n == 1 ? 1500 : flags_.pause_ms); ++n) RunJob(n);
  }
  void Stop() {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    wake_.notify_all();
  }

 private:
  // True when stopped.
  bool Sleep(int ms) {
    std::unique_lock lock(mutex_);
    return wake_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return stopping_; });
  }

  void RunJob(int n) {
    FakeJournal& journal = source_.fake_journal();
    std::vector<std::string> vms;
    const auto snapshot = source_.Snapshot();
    for (const ResourceStatus& r : snapshot->resources) {
      if (r.kind == Kind::kVirtualMachine && static_cast<int>(vms.size()) < flags_.steps) {
        vms.push_back(r.name);
      }
    }
    char id[64];
    std::snprintf(id, sizeof id, "demo-%04d", n);
    testing::CreateDemoJob(journal, vms, id);
    source_.Update([&](StatusSnapshot& s) { s.current_job = id; });
    (void)journal.RecordJobStatus(id, JobStatus::kRunning);
    (void)journal.AppendEvent(id, "", EventLevel::kInfo,
                              "job started: " + std::to_string(vms.size()) + " steps");
    for (const std::string& vm : vms) {
      const std::string step = "start/" + vm;
      (void)journal.RecordStepStarted(id, step, 1, "{}");
      (void)journal.AppendEvent(id, step, EventLevel::kInfo, "starting " + vm);
      if (Sleep(flags_.step_ms)) return;
      (void)journal.RecordStepFinished(id, step, StepStatus::kSucceeded, "",
                                       R"({"power":"Running"})");
      (void)journal.AppendEvent(id, step, EventLevel::kInfo, vm + " is running");
    }
    (void)journal.RecordJobStatus(id, JobStatus::kSucceeded, "",
                                  R"({"succeeded":)" + std::to_string(vms.size()) +
                                      R"(,"failed":0,"rollback":{"outcome":"none"}})");
    (void)journal.AppendEvent(id, "", EventLevel::kInfo, "job succeeded");
    source_.Update([&](StatusSnapshot& s) {
      s.current_job.clear();
      s.last_sync = testing::NowSeconds();
      s.metrics.jobs_total += 1;
      s.metrics.steps_total += vms.size();
      s.metrics.steps_seconds_sum += vms.size() * flags_.step_ms / 1000.0;
      s.metrics.reconciles_total += 1;
      for (ResourceStatus& r : s.resources) {
        if (std::find(vms.begin(), vms.end(), r.name) != vms.end()) r.last_job = id;
      }
    });
  }

  FakeStatusSource& source_;
  const Flags& flags_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
};

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  if (!ParseFlags(argc, argv, flags)) return 2;

  // Signals are taken by sigwait below, never delivered to the server's threads.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  FakeStatusSource source(gitvirt::testing::DemoSnapshot(flags.vms, flags.refused));
  ApiOptions options;
  options.listen = flags.listen;
  options.threads = flags.threads;
  options.tokens_file = flags.tokens;
  auto server = StatusServer::Start(options, source);
  if (!server) {
    std::cerr << "demo_status_server: " << server.error().ToString() << "\n";
    return 1;
  }
  std::cout << "listening on " << (*server)->url() << std::endl;

  JobLoop loop(source, flags);
  std::thread jobs;
  if (flags.jobs) jobs = std::thread([&loop] { loop.Run(); });

  int signal = 0;
  sigwait(&signals, &signal);
  loop.Stop();
  if (jobs.joinable()) jobs.join();
  (*server)->Stop();
  return 0;
}
