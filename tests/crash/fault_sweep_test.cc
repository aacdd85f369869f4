// Issue 5, the fault sweep: every mutating libvirt operation of a 20-VM apply is made to fail in
// turn (GITVIRT_FAULTS=any:k, k = 1..N), from the same starting state, and each rollback
// strategy must then hold its promise:
//
//   FULL         the nodes end exactly as they were (same domains, definitions, power states,
//                autostart, same volumes with the same size, format and backing file in every
//                pool), and the job says rolled-back: every completed step undone, one failed,
//                the rest skipped, nothing it could not undo;
//   PARTIAL      what succeeded stays and nothing after the failure ran (with --parallel 1 the
//                steps run in plan order, so: every step before the failed one succeeded, every
//                step after it was skipped), and the nodes hold exactly that;
//   NONE         every step that does not depend on the failed one ran and succeeded;
//   MARK_FAILED  as NONE, and the failed resource is listed in the job's failedTargets.
// For every strategy: nothing is left that is neither pre-existing nor accounted for by a
// succeeded step (no orphaned volume or domain), and, for the strategies that keep what they
// did, a second apply without faults converges (plan has no changes afterwards).
//
// The nodes are simulated (sim:PATH, libvirt's test driver with its state in files), so each
// run starts from a copy of the starting state's files. N is counted by a fault-free run with
// GITVIRT_FAULTS_REPORT. FULL runs with the default parallelism (8 steps at once, 4 per node)
// and tries every k; the others run with --parallel 1 (a deterministic order, so "nothing after
// the failure" is exact) and try every GITVIRT_CRASH_STRIDE-th k (default 3, starting at 1; the
// last k is always tried). GITVIRT_CRASH_STRIDE=1 tries every k everywhere; GITVIRT_CRASH_K=7,42
// tries only those (to reproduce a failure). ALostAnswer... loses the answer of every
// GITVIRT_CRASH_STRIDE-th operation instead (GITVIRT_FAULTS=lost:k) and wants the job to succeed.
//
// The scenario: two nodes, an Image `base` not yet imported anywhere, 20 new VMs (alternating
// nodes; a linked clone of `base` as root disk plus a new data disk; every third with
// cloud-init, so a seed is built and uploaded; all running), and three VMs made by an earlier
// apply from another Image (`old`) that this apply changes: pre-01 running, more memory (shutdown,
// update-restart, start), pre-02 running, new description and autostart (update-live), pre-03
// stopped, a new data disk (update, creates a volume).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "crash_support.h"
#include "gitvirt/core/json.h"
#include "temp_dir.h"

namespace gitvirt::crash {
namespace {

constexpr int kVms = 20;

int Stride() {
  const char* s = std::getenv("GITVIRT_CRASH_STRIDE");
  return s != nullptr && std::atoi(s) > 0 ? std::atoi(s) : 3;
}

std::string VmName(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "vm-%02d", i);
  return buf;
}

class FaultSweep : public ::testing::Test {
 protected:
  void SetUp() override {
    const fs::path image = work_.path() / "tiny.qcow2";
    fs::copy_file(fs::path(GITVIRT_SOURCE_DIR) / "examples/images/tiny.qcow2", image);
    const std::string sha = Sha256(image);
    setup_.emplace(work_.path(), std::vector<NodeSpec>{
                                     {"hv1", "sim:" + (work_.path() / "sim/hv1.xml").string(), "/var/lib/gv/hv1"},
                                     {"hv2", "sim:" + (work_.path() / "sim/hv2.xml").string(), "/var/lib/gv/hv2"},
                                 });
    // The earlier apply: three VMs from Image `old`.
    const fs::path m = setup_->manifests();
    WriteFile(m / "image-old.yaml", ImageYaml("old", image, sha));
    WriteFile(m / "pre-01.yaml", VmYaml("pre-01", {.node = "hv1", .image = "old", .data_disk = false}));
    WriteFile(m / "pre-02.yaml", VmYaml("pre-02", {.node = "hv2", .image = "old", .data_disk = false,
                                                   .extra = "  description: before\n"}));
    WriteFile(m / "pre-03.yaml", VmYaml("pre-03", {.node = "hv1", .image = "old", .data_disk = false,
                                                   .power = "Stopped"}));
    Output pre = (*setup_)({"apply", "--auto-approve", "--no-color"});
    ASSERT_EQ(pre.rc, 0) << pre.text;

    // This apply: change the three, add the Image `base` and 20 VMs.
    WriteFile(m / "pre-01.yaml",
              VmYaml("pre-01", {.node = "hv1", .image = "old", .memory = "768MiB", .data_disk = false}));
    WriteFile(m / "pre-02.yaml", VmYaml("pre-02", {.node = "hv2", .image = "old", .data_disk = false,
                                                   .extra = "  description: after\n  autostart: true\n"}));
    WriteFile(m / "pre-03.yaml", VmYaml("pre-03", {.node = "hv1", .image = "old", .data_disk = true,
                                                   .power = "Stopped"}));
    WriteFile(m / "image-base.yaml", ImageYaml("base", image, sha));
    for (int i = 1; i <= kVms; ++i) {
      WriteFile(m / (VmName(i) + ".yaml"),
                VmYaml(VmName(i), {.node = i % 2 ? "hv1" : "hv2", .image = "base", .cloud_init = i % 3 == 0}));
    }
    // The starting state: the sim files and the image cache, without the journal.
    for (const char* f : {"gitvirt.db", "gitvirt.db-wal", "gitvirt.db-shm"}) fs::remove(setup_->state_dir() / f);
    CopyTree(work_.path() / "sim", start_ / "sim");
    CopyTree(setup_->state_dir(), start_ / "state");
    before_ = TakeInventory(setup_->NodeConfigs());
    ASSERT_TRUE(before_.errors.empty()) << DiffInventories({}, before_);

    // Count the mutating operations of a fault-free run.
    const fs::path report = work_.path() / "faults-report";
    const auto start = Clock::now();
    Output counted = (*setup_)({"apply", "--auto-approve", "--no-color"},
                               {"GITVIRT_FAULTS=any:1000000", "GITVIRT_FAULTS_REPORT=" + report.string()});
    ASSERT_EQ(counted.rc, 0) << counted.text;
    clean_seconds_ = SecondsSince(start);
    counts_ = ReadFaultsReport(report);
    operations_ = static_cast<int>(counts_["any"]);
    ASSERT_GT(operations_, 100) << ReadFile(report);
    auto jobs = ReadJobs(setup_->state_file());
    ASSERT_EQ(jobs.size(), 1u);
    plan_ = jobs.back().plan;
    std::set<ActionType> types;
    for (const Action& a : plan_.actions) types.insert(a.type);
    for (ActionType t : {ActionType::kImageImport, ActionType::kCreate, ActionType::kStart, ActionType::kShutdown,
                         ActionType::kUpdateRestart, ActionType::kUpdateLive}) {
      EXPECT_TRUE(types.contains(t)) << "the scenario lacks a " << EnumName(t) << " step";
    }
    for (const char* kind : {"ensure-pool", "upload-volume", "create-volume", "define", "start", "shutdown"}) {
      EXPECT_GT(counts_[kind], 0) << "no " << kind << " operation in the scenario";
    }
    after_clean_ = TakeInventory(setup_->NodeConfigs());
  }

  void Restore() {
    CopyTree(start_ / "sim", work_.path() / "sim");
    CopyTree(start_ / "state", setup_->state_dir());
  }

  std::vector<int> Ks(int stride) const {
    std::vector<int> ks;
    if (const char* only = std::getenv("GITVIRT_CRASH_K"); only != nullptr && *only) {
      std::istringstream in(only);  // "k1,k2,...": only these (to reproduce a failure)
      for (std::string k; std::getline(in, k, ',');) ks.push_back(std::stoi(k));
      return ks;
    }
    for (int k = 1; k <= operations_; k += stride) ks.push_back(k);
    if (ks.back() != operations_) ks.push_back(operations_);
    return ks;
  }

  // Checks that hold whatever the strategy, after a run with a fault: the node state agrees with
  // the job record, and nothing is there that is neither pre-existing nor accounted for by a
  // succeeded step.
  void CheckAccounted(const JobView& job, const Inventory& after, std::vector<std::string>& problems) {
    std::map<std::string, StepStatus> status;
    for (const StepRecord& s : job.steps) status[s.id] = s.status;
    std::set<std::string> created_vms, imported;  // "node/name", "node/pool/volume"
    for (const Action& a : job.plan.actions) {
      const StepStatus st = status[a.id];
      const std::string key = a.node + "/" + a.target.name;
      switch (a.type) {
        case ActionType::kCreate:
          if (st == StepStatus::kSucceeded) {
            created_vms.insert(key);
            if (!after.domains.contains(key)) problems.push_back(a.id + " succeeded but " + key + " does not exist");
          } else if (after.domains.contains(key)) {
            problems.push_back(a.id + " is " + std::string(EnumName(st)) + " but " + key + " exists");
          }
          break;
        case ActionType::kImageImport: {
          const std::string vol = a.node + "/" + a.image->spec.pool + "/" + a.image->VolumeName();
          if (st == StepStatus::kSucceeded) {
            imported.insert(vol);
            if (!after.volumes.contains(vol)) problems.push_back(a.id + " succeeded but " + vol + " does not exist");
          } else if (after.volumes.contains(vol)) {
            problems.push_back(a.id + " is " + std::string(EnumName(st)) + " but " + vol + " exists");
          }
          break;
        }
        case ActionType::kStart: {
          auto it = after.power.find(key);
          if (st == StepStatus::kSucceeded && (it == after.power.end() || it->second != "Running")) {
            problems.push_back(a.id + " succeeded but " + key + " is not running");
          }
          break;
        }
        case ActionType::kUpdateLive:
        case ActionType::kUpdateRestart: {
          auto b = before_.domains.find(key);
          auto n = after.domains.find(key);
          if (b == before_.domains.end() || n == after.domains.end()) {
            problems.push_back(key + " is missing");
          } else if (st == StepStatus::kSucceeded && b->second == n->second) {
            problems.push_back(a.id + " succeeded but " + key + " is unchanged");
          } else if (st != StepStatus::kSucceeded &&
                     b->second.substr(b->second.find("definition=")) != n->second.substr(n->second.find("definition="))) {
            problems.push_back(a.id + " is " + std::string(EnumName(st)) + " but the definition of " + key +
                               " changed");
          }
          break;
        }
        default: break;
      }
    }
    // Orphans: new domains no succeeded create accounts for; new volumes no existing domain
    // owns and no succeeded import made.
    std::set<std::string> owned;
    for (const auto& [key, volumes] : after.owned_volumes) {
      const std::string node = key.substr(0, key.find('/'));
      for (const std::string& v : volumes) owned.insert(node + "/" + v);
    }
    for (const auto& [key, line] : after.domains) {
      if (!before_.domains.contains(key) && !created_vms.contains(key)) problems.push_back("orphaned domain " + key);
    }
    for (const auto& [key, line] : before_.domains) {
      if (!after.domains.contains(key)) problems.push_back("pre-existing domain " + key + " is gone");
    }
    for (const auto& [key, line] : after.volumes) {
      if (key.ends_with("/") || before_.volumes.contains(key) || owned.contains(key) || imported.contains(key)) continue;
      problems.push_back("orphaned volume " + key);
    }
    for (const auto& [key, line] : before_.volumes) {
      if (!after.volumes.contains(key)) problems.push_back("pre-existing volume " + key + " is gone");
    }
  }

  // A second apply without faults converges: it succeeds and leaves nothing to do.
  void CheckConverges(std::vector<std::string>& problems) {
    Output again = (*setup_)({"apply", "--auto-approve", "--no-color"});
    if (again.rc != 0) {
      problems.push_back("the apply after it failed:\n" + again.text);
      return;
    }
    Output plan = (*setup_)({"plan", "--detailed-exitcode", "--no-color"});
    if (plan.rc != 0) problems.push_back("plan after the second apply is not empty:\n" + plan.text);
    const Inventory now = TakeInventory(setup_->NodeConfigs());
    if (now.domains.size() != after_clean_.domains.size() || now.volumes.size() != after_clean_.volumes.size()) {
      problems.push_back("after converging, the nodes differ from a fault-free apply:\n" +
                         DiffInventories(after_clean_, now));
    }
  }

  struct Failure {
    int k;
    std::string text;
  };

  // Runs the apply with any:k and the strategy; returns the problems found.
  std::vector<std::string> RunOne(int k, const std::string& strategy, bool parallel) {
    std::vector<std::string> problems;
    Restore();
    std::vector<std::string> args = {"apply", "--auto-approve", "--no-color", "--rollback", strategy};
    if (!parallel) args.insert(args.end(), {"--parallel", "1"});
    Output out = (*setup_)(args, {"GITVIRT_FAULTS=any:" + std::to_string(k)});
    auto jobs = ReadJobs(setup_->state_file());
    if (jobs.size() != 1) {
      problems.push_back("expected one job, found " + std::to_string(jobs.size()) + ":\n" + out.text);
      return problems;
    }
    const JobView& job = jobs.back();
    if (out.rc != 1) problems.push_back("apply exited " + std::to_string(out.rc) + ", expected 1");
    const std::string fault = "GITVIRT_FAULTS any:" + std::to_string(k) + ")";
    std::vector<const StepRecord*> failed;
    std::map<StepStatus, int> by_status;
    for (const StepRecord& s : job.steps) {
      ++by_status[s.status];
      if (s.status == StepStatus::kFailed) failed.push_back(&s);
    }
    if (failed.size() != 1) {
      problems.push_back("expected exactly one failed step, found " + std::to_string(failed.size()));
    } else if (failed.front()->error.find(fault) == std::string::npos) {
      problems.push_back("the failed step's error does not name the injected fault: " + failed.front()->error);
    }
    const Inventory after = TakeInventory(setup_->NodeConfigs());
    const nlohmann::json summary = nlohmann::json::parse(job.job.summary_json, nullptr, false);

    if (strategy == "FULL") {
      if (job.job.status != JobStatus::kRolledBack) {
        problems.push_back("job is " + std::string(EnumName(job.job.status)) + ", expected rolled-back");
      }
      if (!(after == before_)) problems.push_back("the nodes differ from before the apply:\n" + DiffInventories(before_, after));
      for (const StepRecord& s : job.steps) {
        if (s.status != StepStatus::kUndone && s.status != StepStatus::kSkipped && s.status != StepStatus::kFailed) {
          problems.push_back("step " + s.id + " is " + std::string(EnumName(s.status)));
        }
      }
      if (summary.value("undone", -1) != by_status[StepStatus::kUndone] || summary.value("undoFailed", -1) != 0 ||
          summary.value("notUndoable", -1) != 0) {
        problems.push_back("summary does not match the steps: " + job.job.summary_json);
      }
    } else {
      if (failed.size() == 1) {
        const StepRecord& f = *failed.front();
        // What must not have run: PARTIAL: everything after the failure (plan order, one step
        // at a time); NONE, MARK_FAILED: what depends on the failed step, directly or not.
        std::set<std::string> must_skip;
        if (strategy == "PARTIAL") {
          for (const StepRecord& s : job.steps) {
            if (s.seq > f.seq) must_skip.insert(s.id);
          }
        } else {
          must_skip.insert(f.id);
          for (bool grew = true; grew;) {
            grew = false;
            for (const Action& a : job.plan.actions) {
              if (must_skip.contains(a.id)) continue;
              for (const std::string& d : a.depends_on) {
                if (must_skip.contains(d)) {
                  must_skip.insert(a.id);
                  grew = true;
                  break;
                }
              }
            }
          }
          must_skip.erase(f.id);
        }
        for (const StepRecord& s : job.steps) {
          if (s.id == f.id) continue;
          const StepStatus want = must_skip.contains(s.id) ? StepStatus::kSkipped : StepStatus::kSucceeded;
          if (s.status != want) {
            problems.push_back("step " + s.id + " is " + std::string(EnumName(s.status)) + ", expected " +
                               std::string(EnumName(want)));
          }
          if (want == StepStatus::kSkipped && s.attempt != 0) problems.push_back("skipped step " + s.id + " was started");
        }
        const JobStatus want_job = strategy == "MARK_FAILED" ? JobStatus::kMarkedFailed : JobStatus::kFailed;
        if (job.job.status != want_job) {
          problems.push_back("job is " + std::string(EnumName(job.job.status)) + ", expected " +
                             std::string(EnumName(want_job)));
        }
        if (strategy == "MARK_FAILED") {
          const auto targets = summary.value("failedTargets", std::vector<std::string>{});
          if (targets != std::vector<std::string>{f.target}) {
            problems.push_back("failedTargets is " + summary.value("failedTargets", nlohmann::json()).dump() +
                               ", expected [\"" + f.target + "\"]");
          }
        }
      }
      CheckAccounted(job, after, problems);
      if (problems.empty()) CheckConverges(problems);
    }
    if (!problems.empty()) problems.push_back(job.Describe() + "\n" + out.text);
    return problems;
  }

  void Sweep(const std::string& strategy, bool parallel, int stride) {
    const auto start = Clock::now();
    std::vector<Failure> failures;
    const std::vector<int> ks = Ks(stride);
    for (int k : ks) {
      auto problems = RunOne(k, strategy, parallel);
      if (problems.empty()) continue;
      std::string text;
      for (const std::string& p : problems) text += "  " + p + "\n";
      failures.push_back({k, text});
    }
    const double seconds = SecondsSince(start);
    std::ostringstream s;
    s << "[sweep] " << strategy << (parallel ? " (parallel 8, 4 per node)" : " (--parallel 1)") << ": " << ks.size()
      << " of " << operations_ << " operations failed in turn (stride " << stride << "), " << seconds
      << " s; a fault-free apply takes " << clean_seconds_ << " s; operations:";
    for (const auto& [kind, n] : counts_) s << " " << kind << "=" << n;
    std::cout << s.str() << "\n" << std::flush;
    RecordProperty("sweep_seconds", std::to_string(seconds));
    RecordProperty("operations", operations_);
    RecordProperty("runs", static_cast<int>(ks.size()));
    std::string listing;
    for (const Failure& f : failures) {
      // One line per failed run: its first problem (and what follows on that problem's line).
      std::string first = f.text.substr(0, f.text.find('\n', f.text.find('\n') + 1));
      std::replace(first.begin(), first.end(), '\n', ' ');
      listing += "  k=" + std::to_string(f.k) + ":" + first.substr(1) + "\n";
    }
    EXPECT_TRUE(failures.empty()) << failures.size() << " of " << ks.size() << " runs broke the " << strategy
                                  << " guarantees:\n" << listing << "\nthe first in full, k=" << failures.front().k
                                  << ":\n" << failures.front().text;
  }

  testing::TempDir work_{"gvfault"};
  fs::path start_ = work_.path() / "start";
  std::optional<Workspace> setup_;
  Inventory before_, after_clean_;
  Plan plan_;
  std::map<std::string, long> counts_;
  int operations_ = 0;
  double clean_seconds_ = 0;
};

// The answer to every mutating operation is lost in turn (GITVIRT_FAULTS=lost:k: the operation
// is carried out, then the connection drops, as when libvirtd restarts in the middle of a
// call): the adapter reconnects and asks again, and the job must succeed all the same, with
// nothing twice and nothing orphaned.
TEST_F(FaultSweep, ALostAnswerAtEveryOperationDoesNotFailTheJob) {
  const auto start = Clock::now();
  const std::vector<int> ks = Ks(Stride());
  std::vector<std::string> failures;
  for (int k : ks) {
    Restore();
    std::vector<std::string> problems;
    Output out = (*setup_)({"-v", "apply", "--auto-approve", "--no-color"}, {"GITVIRT_FAULTS=lost:" + std::to_string(k)});
    if (out.rc != 0) problems.push_back("apply exited " + std::to_string(out.rc));
    if (out.text.find("reconnected to") == std::string::npos) problems.push_back("no reconnection");
    const auto jobs = ReadJobs(setup_->state_file());
    if (jobs.size() != 1 || jobs.back().job.status != JobStatus::kSucceeded) problems.push_back("the job did not succeed");
    Output plan = (*setup_)({"plan", "--detailed-exitcode", "--no-color"});
    if (plan.rc != 0) problems.push_back("plan is not empty:\n" + plan.text);
    const Inventory after = TakeInventory(setup_->NodeConfigs());
    if (after.domains.size() != after_clean_.domains.size() || after.volumes.size() != after_clean_.volumes.size()) {
      problems.push_back("the nodes differ from a run without the loss:\n" + DiffInventories(after_clean_, after));
    }
    std::set<std::string> images;
    for (const auto& [key, line] : after.volumes) {
      if (key.ends_with("/base.qcow2")) images.insert(key);
    }
    for (const std::string& p : FindOrphans(before_, after, images)) problems.push_back(p);
    if (problems.empty()) continue;
    std::string text = "k=" + std::to_string(k) + ":\n";
    for (const std::string& p : problems) text += "  " + p + "\n";
    failures.push_back(text + (jobs.empty() ? "" : jobs.back().Describe()) + out.text);
  }
  std::cout << "[sweep] lost answers: " << ks.size() << " of " << operations_ << " operations (stride " << Stride()
            << "), " << SecondsSince(start) << " s\n" << std::flush;
  EXPECT_TRUE(failures.empty()) << failures.size() << " of " << ks.size() << " runs failed; the first:\n"
                                << failures.front();
}

TEST_F(FaultSweep, FullRestoresTheNodesExactly) { Sweep("FULL", /*parallel=*/true, 1); }
TEST_F(FaultSweep, PartialKeepsWhatSucceededAndRunsNothingAfter) { Sweep("PARTIAL", /*parallel=*/false, Stride()); }
TEST_F(FaultSweep, NoneRunsEveryStepNotDependingOnTheFailure) { Sweep("NONE", /*parallel=*/false, Stride()); }
TEST_F(FaultSweep, MarkFailedKeepsEverythingAndNamesTheFailedResource) {
  Sweep("MARK_FAILED", /*parallel=*/false, Stride());
}

}  // namespace
}  // namespace gitvirt::crash
