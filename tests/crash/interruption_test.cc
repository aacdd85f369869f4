// Issue 5, interruptions: a job is stopped from outside while it runs, and must stop starting
// steps, apply its rollback strategy to what is done, and tell the whole story in
// `gitvirt jobs ID`; a libvirtd restart in the middle of a job must not fail it; a graceful
// shutdown waits the VM's shutdownTimeout and forces the VM off only when the manifest allows.
//
//   Interruption (simulated nodes, no root needed; the real binary, slowed down by the test
//   build's GITVIRT_STEP_DELAY_MS so that the interruption lands in the middle):
//     CancelFromAnotherProcessRollsBackUnderFull   `gitvirt jobs cancel ID` from a second
//                                                  process: the nodes end exactly as before;
//     SigintKeepsWhatIsDoneUnderPartial            SIGINT to `apply`: what succeeded stays,
//                                                  nothing more starts, a new apply converges;
//     SigtermToServeInterruptsAndTheNextStartRollsBack  SIGTERM to `serve`: the running steps
//                                                  finish, the job is recorded interrupted, and
//                                                  the next start rolls it back (FULL).
//   OnLibvirtd (a private libvirtd's QEMU driver; skipped without root):
//     RestartDuringAJobDoesNotFailIt               `libvirtd.sh restart` while an apply of six
//                                                  running VMs is half-way: it reconnects and
//                                                  succeeds;
//     ShutdownWaitsTheTimeoutThenForcesOffOnlyIfAllowed  a memory change needs a restart; with
//                                                  forceOff: false the step fails after the
//                                                  timeout and the VM keeps running; with
//                                                  forceOff: true it is powered off after it.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "crash_support.h"
#include "libvirtd_harness.h"
#include "temp_dir.h"

namespace gitvirt::crash {
namespace {

using namespace std::chrono_literals;

std::string VmName(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "vm-%02d", i);
  return buf;
}

std::map<StepStatus, int> CountSteps(const JobView& job) {
  std::map<StepStatus, int> n;
  for (const StepRecord& s : job.steps) ++n[s.status];
  return n;
}

std::string Counts(const std::map<StepStatus, int>& n) {
  std::string out;
  for (const auto& [status, count] : n) out += std::string(EnumName(status)) + "=" + std::to_string(count) + " ";
  return out;
}

bool Contains(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }

// Waits until `done` holds for the only job of the state file, polling the journal.
std::optional<JobView> WaitForJob(const std::string& state, const std::function<bool(const JobView&)>& done,
                                  std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    auto jobs = ReadJobs(state);
    if (!jobs.empty() && done(jobs.back())) return jobs.back();
    std::this_thread::sleep_for(100ms);
  }
  return std::nullopt;
}

// ---- on simulated nodes ----------------------------------------------------------------------

constexpr int kVms = 10;

class Interruption : public ::testing::Test {
 protected:
  void SetUp() override {
    const fs::path image = work_.path() / "tiny.qcow2";
    fs::copy_file(fs::path(GITVIRT_SOURCE_DIR) / "examples/images/tiny.qcow2", image);
    ws_.emplace(work_.path(),
                std::vector<NodeSpec>{
                    {"hv1", "sim:" + (work_.path() / "sim/hv1.xml").string(), "/var/lib/gv/hv1"},
                    {"hv2", "sim:" + (work_.path() / "sim/hv2.xml").string(), "/var/lib/gv/hv2"},
                },
                // serve: apply on its own, two steps at once, the API on any free port.
                "sync: {auto: true}\napply: {parallel: 2}\napi: {listen: \"127.0.0.1:0\"}\n");
    const fs::path m = ws_->manifests();
    WriteFile(m / "image-base.yaml", ImageYaml("base", image, Sha256(image)));
    WriteFile(m / "pre-01.yaml", VmYaml("pre-01", {.node = "hv1", .image = "base", .data_disk = false}));
    Output pre = (*ws_)({"apply", "--auto-approve", "--no-color"});
    ASSERT_EQ(pre.rc, 0) << pre.text;
    for (const char* f : {"gitvirt.db", "gitvirt.db-wal", "gitvirt.db-shm"}) fs::remove(ws_->state_dir() / f);
    before_ = TakeInventory(ws_->NodeConfigs());
    ASSERT_TRUE(before_.errors.empty()) << DiffInventories({}, before_);
    for (int i = 1; i <= kVms; ++i) {
      WriteFile(m / (VmName(i) + ".yaml"),
                VmYaml(VmName(i), {.node = i % 2 ? "hv1" : "hv2", .image = "base", .cloud_init = i % 3 == 0}));
    }
  }

  // `apply` slowed down to about 0.4 s per step, two at a time: 20 steps take 4 s or more.
  std::unique_ptr<Child> StartApply(const std::string& strategy) {
    return ws_->Start({"apply", "--auto-approve", "--no-color", "--rollback", strategy},
                      {"GITVIRT_STEP_DELAY_MS=400"});
  }

  JobView TheJob() {
    auto jobs = ReadJobs(ws_->state_file());
    EXPECT_EQ(jobs.size(), 1u);
    return jobs.empty() ? JobView{} : jobs.back();
  }

  // Succeeded creates exist, the others do not; nothing else is there.
  void ExpectNodesHoldWhatSucceeded(const JobView& job) {
    const Inventory now = TakeInventory(ws_->NodeConfigs());
    for (const Action& a : job.plan.actions) {
      if (a.type != ActionType::kCreate) continue;
      const StepRecord* s = job.Step(a.id);
      ASSERT_NE(s, nullptr);
      EXPECT_EQ(now.domains.contains(a.node + "/" + a.target.name), s->status == StepStatus::kSucceeded)
          << a.id << " is " << EnumName(s->status);
    }
    const std::vector<std::string> orphans =
        FindOrphans(before_, now, {"hv1/default/base.qcow2", "hv2/default/base.qcow2"});
    EXPECT_TRUE(orphans.empty()) << ::testing::PrintToString(orphans);
  }

  void ExpectConverges() {
    Output again = (*ws_)({"apply", "--auto-approve", "--no-color"});
    EXPECT_EQ(again.rc, 0) << again.text;
    Output plan = (*ws_)({"plan", "--detailed-exitcode", "--no-color"});
    EXPECT_EQ(plan.rc, 0) << plan.text;
    const Inventory now = TakeInventory(ws_->NodeConfigs());
    EXPECT_EQ(now.domains.size(), before_.domains.size() + kVms) << DiffInventories(before_, now);
    EXPECT_TRUE(FindOrphans(before_, now, {"hv1/default/base.qcow2", "hv2/default/base.qcow2"}).empty());
  }

  testing::TempDir work_{"gvintr"};
  std::optional<Workspace> ws_;
  Inventory before_;
};

TEST_F(Interruption, CancelFromAnotherProcessRollsBackUnderFull) {
  auto apply = StartApply("FULL");
  ASSERT_TRUE(apply->WaitFor("[4/", 120s)) << apply->output();
  // The job's id, as a user finds it.
  Output running = (*ws_)({"jobs", "--status", "running"});
  ASSERT_EQ(running.rc, 0) << running.text;
  std::istringstream rows(running.text);
  std::string header, id;
  std::getline(rows, header);
  rows >> id;
  ASSERT_FALSE(id.empty()) << running.text;
  Output cancel = (*ws_)({"jobs", "cancel", id});
  ASSERT_EQ(cancel.rc, 0) << cancel.text;
  EXPECT_TRUE(Contains(cancel.text, "Cancellation of job " + id + " requested")) << cancel.text;
  EXPECT_EQ(apply->Wait(), 1) << apply->output();
  EXPECT_TRUE(Contains(apply->output(), "Job " + id + " cancelled")) << apply->output();

  const JobView job = TheJob();
  auto n = CountSteps(job);
  EXPECT_EQ(job.job.status, JobStatus::kCancelled) << job.Describe();
  // Started steps (at least the four seen) are undone, the rest never started; nothing else.
  EXPECT_GE(n[StepStatus::kUndone], 4) << job.Describe();
  EXPECT_GE(n[StepStatus::kSkipped], 1) << job.Describe();
  EXPECT_EQ(n[StepStatus::kUndone] + n[StepStatus::kSkipped], static_cast<int>(job.steps.size())) << Counts(n);
  for (const StepRecord& s : job.steps) {
    if (s.status == StepStatus::kSkipped) {
      EXPECT_EQ(s.attempt, 0) << s.id << " was started";
    }
  }
  const Inventory after = TakeInventory(ws_->NodeConfigs());
  EXPECT_TRUE(after == before_) << DiffInventories(before_, after);

  Output shown = (*ws_)({"jobs", id});
  ASSERT_EQ(shown.rc, 0) << shown.text;
  for (const char* line : {"Status:    cancelled", "cancel requested (gitvirt jobs cancel)", "rolling back",
                           "undid create", "undone", "skipped", "job cancelled"}) {
    EXPECT_TRUE(Contains(shown.text, line)) << "`gitvirt jobs " << id << "` lacks \"" << line << "\":\n"
                                            << shown.text;
  }
}

TEST_F(Interruption, SigintKeepsWhatIsDoneUnderPartial) {
  auto apply = StartApply("PARTIAL");
  ASSERT_TRUE(apply->WaitFor("[4/", 120s)) << apply->output();
  apply->Signal(SIGINT);
  EXPECT_EQ(apply->Wait(), 1) << apply->output();

  const JobView job = TheJob();
  auto n = CountSteps(job);
  EXPECT_EQ(job.job.status, JobStatus::kCancelled) << job.Describe();
  EXPECT_GE(n[StepStatus::kSucceeded], 4) << job.Describe();
  EXPECT_GE(n[StepStatus::kSkipped], 1) << job.Describe();
  EXPECT_EQ(n[StepStatus::kSucceeded] + n[StepStatus::kSkipped], static_cast<int>(job.steps.size())) << Counts(n);
  ExpectNodesHoldWhatSucceeded(job);

  Output shown = (*ws_)({"jobs", job.job.id});
  for (const char* line : {"Status:    cancelled", "interrupted (SIGINT or SIGTERM)", "job cancelled"}) {
    EXPECT_TRUE(Contains(shown.text, line)) << "`gitvirt jobs` lacks \"" << line << "\":\n" << shown.text;
  }
  ExpectConverges();
}

TEST_F(Interruption, SigtermToServeInterruptsAndTheNextStartRollsBack) {
  auto serve = ws_->Start({"serve"}, {"GITVIRT_STEP_DELAY_MS=400"});
  auto seen = WaitForJob(ws_->state_file(), [](const JobView& j) { return CountSteps(j)[StepStatus::kSucceeded] >= 4; },
                         120s);
  ASSERT_TRUE(seen) << serve->output();
  serve->Signal(SIGTERM);
  EXPECT_EQ(serve->Wait(), 0) << serve->output();

  // The running steps finished; the rest never started; the job waits for the next start.
  JobView job = TheJob();
  auto n = CountSteps(job);
  EXPECT_EQ(job.job.status, JobStatus::kInterrupted) << job.Describe();
  EXPECT_GE(n[StepStatus::kSucceeded], 4) << job.Describe();
  EXPECT_GE(n[StepStatus::kPending], 1) << job.Describe();
  EXPECT_EQ(n[StepStatus::kSucceeded] + n[StepStatus::kPending], static_cast<int>(job.steps.size())) << Counts(n);
  for (const StepRecord& s : job.steps) {
    if (s.status == StepStatus::kPending) {
      EXPECT_EQ(s.attempt, 0) << s.id << " was started";
    }
  }

  // The next start (an apply of the manifests as they were before) rolls it back first.
  for (int i = 1; i <= kVms; ++i) fs::remove(ws_->manifests() / (VmName(i) + ".yaml"));
  Output next = (*ws_)({"apply", "--auto-approve", "--no-color"});
  EXPECT_EQ(next.rc, 0) << next.text;
  EXPECT_TRUE(Contains(next.text, "was interrupted (interrupted); recovering it (FULL: roll back)")) << next.text;
  job = TheJob();
  n = CountSteps(job);
  EXPECT_EQ(job.job.status, JobStatus::kRolledBack) << job.Describe();
  EXPECT_EQ(n[StepStatus::kUndone] + n[StepStatus::kSkipped], static_cast<int>(job.steps.size())) << Counts(n);
  const Inventory after = TakeInventory(ws_->NodeConfigs());
  EXPECT_TRUE(after == before_) << DiffInventories(before_, after);

  Output shown = (*ws_)({"jobs", job.job.id});
  for (const char* line : {"Status:    rolled-back", "the controller is stopping",
                           "the process running this job stopped; rolling it back", "undid create"}) {
    EXPECT_TRUE(Contains(shown.text, line)) << "`gitvirt jobs` lacks \"" << line << "\":\n" << shown.text;
  }
}

// ---- on a private libvirtd -------------------------------------------------------------------

class OnLibvirtd : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!testing::PrivateLibvirtd::Available(&why)) GTEST_SKIP() << "private libvirtd unavailable: " << why;
    auto daemon = testing::PrivateLibvirtd::Start();
    ASSERT_TRUE(daemon) << daemon.error();
    daemon_ = std::move(*daemon);
    ws_.emplace(work_.path(), std::vector<NodeSpec>{{"hv1", daemon_->qemu_uri(), daemon_->pool_dir()}});
  }

  void TearDown() override {
    if (HasFailure() && daemon_) {
      const std::string log = ReadFile(daemon_->log_path());
      std::cout << "---- " << daemon_->log_path() << " (end)\n" << log.substr(log.size() - std::min<std::size_t>(log.size(), 6000))
                << std::flush;
    }
  }

  std::vector<std::string> Env(std::vector<std::string> env = {}) const {
    env.push_back("GITVIRT_VIRT_TYPE=" + daemon_->virt_type());
    return env;
  }

  std::unique_ptr<testing::PrivateLibvirtd> daemon_;
  testing::TempDir work_{"gvintl"};
  std::optional<Workspace> ws_;
};

TEST_F(OnLibvirtd, RestartDuringAJobDoesNotFailIt) {
  constexpr int kN = 6;
  for (int i = 1; i <= kN; ++i) {
    WriteFile(ws_->manifests() / (VmName(i) + ".yaml"),
              VmYaml(VmName(i), {.node = "hv1", .data_disk = false}));
  }
  const pid_t old_pid = daemon_->pid();
  const auto start = Clock::now();
  auto apply = ws_->Start({"-v", "apply", "--auto-approve", "--no-color", "--parallel", "2"},
                          Env({"GITVIRT_STEP_DELAY_MS=700"}));
  ASSERT_TRUE(apply->WaitFor("[3/", 120s)) << apply->output();
  const double restart_at = SecondsSince(start);
  const auto restart_start = Clock::now();
  auto restarted = daemon_->Restart();
  ASSERT_TRUE(restarted) << restarted.error();
  const double restart_seconds = SecondsSince(restart_start);
  EXPECT_NE(daemon_->pid(), old_pid);
  const int rc = apply->Wait();
  const double total = SecondsSince(start);
  std::cout << "[restart] libvirtd restarted " << restart_at << " s into the apply, in " << restart_seconds
            << " s; the apply took " << total << " s\n";
  ASSERT_EQ(rc, 0) << apply->output();
  // The restart happened while the job ran: the adapter saw the connection go and came back.
  EXPECT_TRUE(Contains(apply->output(), "reconnected to")) << apply->output();
  const JobView job = ReadJobs(ws_->state_file()).back();
  EXPECT_EQ(job.job.status, JobStatus::kSucceeded) << job.Describe();
  EXPECT_EQ(CountSteps(job)[StepStatus::kSucceeded], 2 * kN) << job.Describe();
  Output plan = (*ws_)({"plan", "--detailed-exitcode", "--no-color"}, Env());
  EXPECT_EQ(plan.rc, 0) << plan.text;
  const Inventory now = TakeInventory(ws_->NodeConfigs());
  for (int i = 1; i <= kN; ++i) EXPECT_EQ(now.power.at("hv1/" + VmName(i)), "Running") << VmName(i);
  EXPECT_TRUE(FindOrphans({}, now, {}).empty()) << ::testing::PrintToString(FindOrphans({}, now, {}));
}

// No guest OS runs, so an ACPI shutdown request is never answered: the graceful shutdown always
// times out, and what happens then is the manifest's choice.
TEST_F(OnLibvirtd, ShutdownWaitsTheTimeoutThenForcesOffOnlyIfAllowed) {
  // VmYaml's own updatePolicy gives way to one with the forceOff under test.
  auto vm = [](const std::string& memory, bool force) {
    std::string yaml = VmYaml("vm-01", {.node = "hv1", .memory = memory, .data_disk = false});
    const auto at = yaml.find("  updatePolicy:");
    yaml.erase(at, yaml.find('\n', at) - at + 1);
    return yaml + "  updatePolicy: {restart: Allowed, shutdownTimeout: 3s, forceOff: " + (force ? "true" : "false") +
           "}\n";
  };
  const fs::path file = ws_->manifests() / "vm-01.yaml";
  WriteFile(file, vm("512MiB", false));
  Output created = (*ws_)({"apply", "--auto-approve", "--no-color"}, Env());
  ASSERT_EQ(created.rc, 0) << created.text;
  const Inventory running = TakeInventory(ws_->NodeConfigs());
  ASSERT_EQ(running.power.at("hv1/vm-01"), "Running");

  // forceOff: false: the shutdown step waits 3 s, fails, and the job rolls back; the VM runs on
  // with its old definition.
  WriteFile(file, vm("768MiB", false));
  Output refused = (*ws_)({"apply", "--auto-approve", "--no-color"}, Env());
  EXPECT_EQ(refused.rc, 1) << refused.text;
  JobView job = ReadJobs(ws_->state_file()).back();
  const StepRecord* shutdown = job.Step("shutdown/vm-01");
  ASSERT_NE(shutdown, nullptr) << job.Describe();
  EXPECT_EQ(shutdown->status, StepStatus::kFailed) << job.Describe();
  EXPECT_TRUE(Contains(shutdown->error, "did not shut down within 3s")) << shutdown->error;
  ASSERT_TRUE(shutdown->started_at && shutdown->finished_at);
  EXPECT_GE(*shutdown->finished_at - *shutdown->started_at, 3s) << "it gave up before the timeout";
  EXPECT_EQ(job.job.status, JobStatus::kRolledBack) << job.Describe();
  const Inventory after_refused = TakeInventory(ws_->NodeConfigs());
  EXPECT_EQ(after_refused.power.at("hv1/vm-01"), "Running") << "forced off although forceOff is false";
  EXPECT_EQ(after_refused.domains, running.domains) << DiffInventories(running, after_refused);

  // forceOff: true: powered off after the 3 s, redefined, started again.
  WriteFile(file, vm("768MiB", true));
  Output forced = (*ws_)({"apply", "--auto-approve", "--no-color"}, Env());
  EXPECT_EQ(forced.rc, 0) << forced.text;
  EXPECT_TRUE(Contains(forced.text, "graceful shutdown timed out after 3s; forcing off")) << forced.text;
  job = ReadJobs(ws_->state_file()).back();
  shutdown = job.Step("shutdown/vm-01");
  ASSERT_NE(shutdown, nullptr) << job.Describe();
  EXPECT_EQ(shutdown->status, StepStatus::kSucceeded) << job.Describe();
  ASSERT_TRUE(shutdown->started_at && shutdown->finished_at);
  EXPECT_GE(*shutdown->finished_at - *shutdown->started_at, 3s) << "forced off before the timeout";
  EXPECT_EQ(job.job.status, JobStatus::kSucceeded) << job.Describe();
  EXPECT_EQ(TakeInventory(ws_->NodeConfigs()).power.at("hv1/vm-01"), "Running");
  Output plan = (*ws_)({"plan", "--detailed-exitcode", "--no-color"}, Env());
  EXPECT_EQ(plan.rc, 0) << plan.text;
}

}  // namespace
}  // namespace gitvirt::crash
