// Issue 5, the kill sweep: `gitvirt apply` of 20 VMs is killed with SIGKILL at every step
// boundary in turn, against two private libvirtd daemons (tests/harness), and the next
// `gitvirt apply` must converge: it recovers the killed job (FULL: rolls it back; PARTIAL:
// resumes it), applies what is left, exits 0, `plan` has nothing to do, and the nodes hold
// exactly what a run that was never killed leaves: the same domains in the same power states,
// the same volumes, no domain or volume twice, nothing orphaned, the hand-made domain untouched.
//
// Step boundaries are hit on purpose, not by timing: the test build's crash points
// (include/gitvirt/engine/crash_points.h) make the process raise SIGKILL on itself at the Nth
// boundary it passes (GITVIRT_KILL_AT_STEP=N): the job journaled, a step journaled started
// (nothing done yet), a step's side effect done but not journaled, a step journaled finished,
// the job's end. A fault-free run with GITVIRT_CRASH_POINTS_LOG counts them (1 + 3 per step +
// 1). The apply runs with its default parallelism (8 steps at once, 4 per node), so each kill
// also finds other steps in the middle of their libvirt calls.
//
// The nodes are the test driver served by each daemon (test+unix:///default): it keeps its
// state while one connection is open, so the test holds one per daemon for the whole run, and
// resets a node to the driver's built-in state (one running domain `test`, no pool `default`)
// by closing it. Every run starts from that state with a fresh journal.
//
// The scenario: an Image `base`, imported on both nodes, and 20 VMs alternating between them
// (a linked clone of `base` as root disk plus a new data disk, every third with a cloud-init
// seed, all running): 42 steps, 128 boundaries.
//
//   FullRollsBackThenConverges      --rollback FULL, killed at every odd boundary;
//   PartialResumesAndConverges      --rollback PARTIAL, killed at every even boundary (so the two
//                                   cover every boundary between them);
//   KilledRecoveryStillConverges    killed at the middle boundary, then the recovering apply
//                                   killed at every other boundary of its rollback (this is
//                                   what found that a recovery recorded the steps it was about
//                                   to undo as skipped, losing them when killed in between).
// About 1.6 s a run: some 3 minutes for the three in sequence on two idle cores.
// GITVIRT_KILL_STRIDE=1 kills at every boundary in all three (about 9 minutes);
// GITVIRT_KILL_K=7,42 runs only those boundaries (to reproduce a failure).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "crash_support.h"
#include "gitvirt/hypervisor/connect.h"
#include "libvirtd_harness.h"
#include "temp_dir.h"

namespace gitvirt::crash {
namespace {

constexpr int kVms = 20;

// Every GITVIRT_KILL_STRIDE-th boundary from the first; unset: every other one, from `first`.
struct Sampling {
  int first = 1;
  int stride = 2;
};
Sampling Sample(int first_by_default) {
  const char* s = std::getenv("GITVIRT_KILL_STRIDE");
  if (s != nullptr && std::atoi(s) > 0) return {1, std::atoi(s)};
  return {first_by_default, 2};
}

std::string VmName(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "vm-%02d", i);
  return buf;
}

// One crash-points log line: "N boundary step-id".
struct Boundary {
  int n = 0;
  std::string name;
  std::string step;
  std::string ToString() const { return std::to_string(n) + " " + name + " " + step; }
};

std::vector<Boundary> ReadBoundaries(const fs::path& log) {
  std::vector<Boundary> out;
  std::istringstream in(ReadFile(log));
  for (Boundary b; in >> b.n >> b.name >> b.step;) out.push_back(b);
  return out;
}

// What must be equal between two runs: the domains' identity-free description (UUIDs and MAC
// addresses differ between runs, so the definition's fingerprint does too) and the volumes.
struct Shape {
  std::map<std::string, std::string> domains;
  std::map<std::string, std::string> volumes;
  bool operator==(const Shape&) const = default;
};

Shape ShapeOf(const Inventory& inv) {
  Shape s;
  for (const auto& [key, line] : inv.domains) {
    std::string d = "power=" + inv.power.at(key);
    for (const char* field : {" persistent=", " autostart=", " owner="}) {
      const auto at = line.find(field);
      d += line.substr(at, line.find(' ', at + 1) - at);
    }
    if (auto it = inv.owned_volumes.find(key); it != inv.owned_volumes.end()) {
      for (const std::string& v : it->second) d += " volume=" + v;
    }
    s.domains[key] = d;
  }
  s.volumes = inv.volumes;
  return s;
}

std::string DiffShapes(const Shape& want, const Shape& got) {
  Inventory a, b;
  a.domains = want.domains;
  a.volumes = want.volumes;
  b.domains = got.domains;
  b.volumes = got.volumes;
  return DiffInventories(a, b);
}

class KillSweep : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!testing::PrivateLibvirtd::Available(&why)) GTEST_SKIP() << "private libvirtd unavailable: " << why;
    const auto start = Clock::now();
    for (int i = 0; i < 2; ++i) {
      auto daemon = testing::PrivateLibvirtd::Start();
      ASSERT_TRUE(daemon) << daemon.error();
      daemons_.push_back(std::move(*daemon));
    }
    const fs::path image = work_.path() / "tiny.qcow2";
    fs::copy_file(fs::path(GITVIRT_SOURCE_DIR) / "examples/images/tiny.qcow2", image);
    ws_.emplace(work_.path(), std::vector<NodeSpec>{
                                  {"hv1", daemons_[0]->test_uri(), "/gitvirt-kill-sweep/hv1"},
                                  {"hv2", daemons_[1]->test_uri(), "/gitvirt-kill-sweep/hv2"},
                              });
    const fs::path m = ws_->manifests();
    WriteFile(m / "image-base.yaml", ImageYaml("base", image, Sha256(image)));
    for (int i = 1; i <= kVms; ++i) {
      WriteFile(m / (VmName(i) + ".yaml"),
                VmYaml(VmName(i), {.node = i % 2 ? "hv1" : "hv2", .image = "base", .cloud_init = i % 3 == 0}));
    }
    Hold();
    before_ = TakeInventory(ws_->NodeConfigs());
    ASSERT_TRUE(before_.errors.empty()) << DiffInventories({}, before_);
    ASSERT_TRUE(before_.domains.contains("hv1/test")) << "the test driver's own domain is missing";

    // A run never killed: what every other run must converge to, and how many boundaries.
    const fs::path log = work_.path() / "clean.points";
    const auto apply_start = Clock::now();
    Output clean = (*ws_)({"apply", "--auto-approve", "--no-color"}, {"GITVIRT_CRASH_POINTS_LOG=" + log.string()});
    ASSERT_EQ(clean.rc, 0) << clean.text;
    clean_seconds_ = SecondsSince(apply_start);
    clean_ = TakeInventory(ws_->NodeConfigs());
    ASSERT_TRUE(clean_.errors.empty()) << DiffInventories({}, clean_);
    ASSERT_EQ(clean_.domains.size(), before_.domains.size() + kVms);
    boundaries_ = ReadBoundaries(log);
    auto jobs = ReadJobs(ws_->state_file());
    ASSERT_EQ(jobs.size(), 1u);
    steps_ = static_cast<int>(jobs[0].steps.size());
    ASSERT_EQ(boundaries_.size(), static_cast<std::size_t>(3 * steps_ + 2)) << ReadFile(log);
    setup_seconds_ = SecondsSince(start);
  }

  // Opens (again) the connection that keeps each daemon's test-driver state alive.
  void Hold() {
    for (const NodeConfig& node : ws_->NodeConfigs()) {
      auto hv = ConnectNode(node, HypervisorOptions{});
      ASSERT_TRUE(hv) << hv.error().ToString();
      holds_.push_back(std::move(*hv));
    }
  }

  // Back to the starting state: the test driver's built-in state on both nodes, no journal.
  void Reset() {
    Inventory now;
    for (int attempt = 0; attempt < 100; ++attempt) {
      holds_.clear();  // the last connections: the daemons drop the test driver's state
      std::this_thread::sleep_for(std::chrono::milliseconds(attempt == 0 ? 0 : 100));
      Hold();
      now = TakeInventory(ws_->NodeConfigs());
      if (ShapeOf(now) == ShapeOf(before_)) break;
      // A connection of the killed process the daemon has not yet seen close keeps the state.
    }
    ASSERT_EQ(ShapeOf(now), ShapeOf(before_)) << DiffShapes(ShapeOf(before_), ShapeOf(now));
    for (const char* f : {"gitvirt.db", "gitvirt.db-wal", "gitvirt.db-shm", "gitvirt.db.lock"}) {
      fs::remove(ws_->state_dir() / f);
    }
  }

  std::vector<int> Ks(int last, Sampling sampling) const {
    std::vector<int> ks;
    if (const char* only = std::getenv("GITVIRT_KILL_K"); only != nullptr && *only) {
      std::istringstream in(only);
      for (std::string k; std::getline(in, k, ',');) ks.push_back(std::stoi(k));
      return ks;
    }
    for (int k = sampling.first; k <= last; k += sampling.stride) ks.push_back(k);
    if (ks.empty() || ks.back() != last) ks.push_back(last);
    return ks;
  }

  // An apply killed at boundary k; returns the boundary it died at (the log's last line).
  std::optional<Boundary> Killed(int k, const std::vector<std::string>& args, std::vector<std::string>& problems,
                                 std::string& text) {
    const fs::path log = work_.path() / "run.points";
    fs::remove(log);
    std::vector<std::string> argv = {"apply", "--auto-approve", "--no-color"};
    argv.insert(argv.end(), args.begin(), args.end());
    Output out = (*ws_)(argv, {"GITVIRT_KILL_AT_STEP=" + std::to_string(k), "GITVIRT_CRASH_POINTS_LOG=" + log.string()});
    text += "---- apply killed at boundary " + std::to_string(k) + " (exit " + std::to_string(out.rc) + ")\n" + out.text;
    const auto passed = ReadBoundaries(log);
    if (out.rc != 128 + SIGKILL) {
      problems.push_back("the apply was to be killed at boundary " + std::to_string(k) + " but exited " +
                         std::to_string(out.rc));
      return std::nullopt;
    }
    if (passed.empty()) {
      problems.push_back("no boundary was logged");
      return std::nullopt;
    }
    text += "     died at: " + passed.back().ToString() + "\n";
    return passed.back();
  }

  // The apply after a kill: recovers, applies what is left, and the nodes converge.
  void CheckConverges(const std::string& strategy, std::vector<std::string>& problems, std::string& text) {
    Output again = (*ws_)({"apply", "--auto-approve", "--no-color"});
    text += "---- apply again (exit " + std::to_string(again.rc) + ")\n" + again.text;
    if (again.rc != 0) problems.push_back("the apply after the kill exited " + std::to_string(again.rc));
    const auto jobs = ReadJobs(ws_->state_file());
    for (const JobView& job : jobs) text += job.Describe();
    if (jobs.empty()) {
      problems.push_back("no job in the journal");
      return;
    }
    // Every job is finished now, its strategy applied to what it did: FULL rolled back (unless
    // every step had succeeded: the kill came after the last one), PARTIAL resumed to the end.
    // The last job, the one that did the work, succeeded.
    for (const JobView& job : jobs) {
      const std::string name = "job " + job.job.id + ": ";
      const nlohmann::json summary = nlohmann::json::parse(job.job.summary_json, nullptr, false);
      bool all_succeeded = true;
      for (const StepRecord& s : job.steps) {
        all_succeeded = all_succeeded && s.status == StepStatus::kSucceeded;
        const bool ok = strategy == "FULL" ? s.status == StepStatus::kUndone || s.status == StepStatus::kSkipped ||
                                                 s.status == StepStatus::kSucceeded
                                           : s.status == StepStatus::kSucceeded;
        if (!ok) problems.push_back(name + "step " + s.id + " is " + std::string(EnumName(s.status)));
      }
      const JobStatus want = strategy == "FULL" && !all_succeeded ? JobStatus::kRolledBack : JobStatus::kSucceeded;
      if (job.job.status != want) {
        problems.push_back(name + std::string(EnumName(job.job.status)) + ", expected " + std::string(EnumName(want)));
      }
      if (summary.value("undoFailed", 0) != 0 || summary.value("notUndoable", 0) != 0) {
        problems.push_back(name + "could not undo everything: " + job.job.summary_json);
      }
    }
    if (jobs.back().job.status != JobStatus::kSucceeded) problems.push_back("the last job did not succeed");
    Output plan = (*ws_)({"plan", "--detailed-exitcode", "--no-color"});
    if (plan.rc != 0) problems.push_back("plan after it is not empty (exit " + std::to_string(plan.rc) + "):\n" + plan.text);

    const Inventory now = TakeInventory(ws_->NodeConfigs());
    for (const std::string& p : FindOrphans(before_, now, ImageVolumes())) problems.push_back(p);
    if (!(ShapeOf(now) == ShapeOf(clean_))) {
      problems.push_back("the nodes differ from a run never killed:\n" + DiffShapes(ShapeOf(clean_), ShapeOf(now)));
    }
    if (now.domains.at("hv1/test") != before_.domains.at("hv1/test")) problems.push_back("the hand-made domain changed");
  }

  std::set<std::string> ImageVolumes() const {
    return {"hv1/default/base.qcow2", "hv2/default/base.qcow2"};
  }

  struct Failure {
    int k;
    std::string first, all;
  };

  void Report(const std::string& what, const std::vector<int>& ks, const std::vector<Failure>& failures,
              double seconds) {
    std::ostringstream s;
    s << "[kill sweep] " << what << ": killed at " << ks.size() << " of " << boundaries_.size()
      << " boundaries (" << steps_ << " steps), " << seconds << " s; a run never killed takes " << clean_seconds_
      << " s; set-up " << setup_seconds_ << " s";
    std::cout << s.str() << "\n" << std::flush;
    RecordProperty("sweep_seconds", std::to_string(seconds));
    RecordProperty("runs", static_cast<int>(ks.size()));
    std::string listing;
    for (const Failure& f : failures) listing += "  k=" + std::to_string(f.k) + ": " + f.first + "\n";
    EXPECT_TRUE(failures.empty()) << failures.size() << " of " << ks.size() << " runs did not converge:\n"
                                  << listing << "\nthe first in full, k=" << failures.front().k << ":\n"
                                  << failures.front().all;
  }

  void Sweep(const std::string& strategy, Sampling sampling) {
    const auto start = Clock::now();
    const std::vector<int> ks = Ks(static_cast<int>(boundaries_.size()), sampling);
    std::vector<Failure> failures;
    for (int k : ks) {
      Reset();
      if (HasFatalFailure()) return;
      std::vector<std::string> problems;
      std::string text;
      if (Killed(k, {"--rollback", strategy}, problems, text)) CheckConverges(strategy, problems, text);
      if (!problems.empty()) failures.push_back({k, problems.front(), Join(problems) + text});
    }
    Report("--rollback " + strategy, ks, failures, SecondsSince(start));
  }

  static std::string Join(const std::vector<std::string>& lines) {
    std::string out;
    for (const std::string& l : lines) out += "  " + l + "\n";
    return out;
  }

  std::vector<std::unique_ptr<testing::PrivateLibvirtd>> daemons_;
  std::vector<std::unique_ptr<Node>> holds_;
  testing::TempDir work_{"gvkill"};
  std::optional<Workspace> ws_;
  Inventory before_, clean_;
  std::vector<Boundary> boundaries_;
  int steps_ = 0;
  double clean_seconds_ = 0, setup_seconds_ = 0;
};

// By default FULL takes the odd boundaries and PARTIAL the even ones: together, every one.
TEST_F(KillSweep, FullRollsBackThenConverges) { Sweep("FULL", Sample(1)); }

TEST_F(KillSweep, PartialResumesAndConverges) { Sweep("PARTIAL", Sample(2)); }

TEST_F(KillSweep, KilledRecoveryStillConverges) {
  // Where the rollback of a job killed half-way has its boundaries: everything the recovering
  // apply passes before it journals its own new job.
  const int middle = static_cast<int>(boundaries_.size()) / 2;
  Reset();
  std::vector<std::string> problems;
  std::string text;
  ASSERT_TRUE(Killed(middle, {}, problems, text)) << Join(problems) << text;
  const fs::path log = work_.path() / "recovery.points";
  Output counted = (*ws_)({"apply", "--auto-approve", "--no-color"}, {"GITVIRT_CRASH_POINTS_LOG=" + log.string()});
  ASSERT_EQ(counted.rc, 0) << counted.text;
  const auto recovery = ReadBoundaries(log);
  const auto job_created = std::find_if(recovery.begin(), recovery.end(),
                                        [](const Boundary& b) { return b.name == "job-created"; });
  const int rollback = static_cast<int>(job_created - recovery.begin());
  ASSERT_GT(rollback, 10) << "the job killed at boundary " << middle << " left too little to roll back:\n"
                          << ReadFile(log);

  const auto start = Clock::now();
  const std::vector<int> ks = Ks(rollback + 1, Sample(1));
  std::vector<Failure> failures;
  for (int k : ks) {
    Reset();
    if (HasFatalFailure()) return;
    std::vector<std::string> problems;
    std::string text;
    if (Killed(middle, {}, problems, text) && Killed(k, {}, problems, text)) CheckConverges("FULL", problems, text);
    if (!problems.empty()) failures.push_back({k, problems.front(), Join(problems) + text});
  }
  Report("recovery (rollback of a job killed at boundary " + std::to_string(middle) + ", " +
             std::to_string(rollback) + " boundaries) killed in turn",
         ks, failures, SecondsSince(start));
}

}  // namespace
}  // namespace gitvirt::crash
