// The serve loop's policy runner (Controller::ReconcileOnce) on a simulated node: a controller
// that was stopped across two scheduled slots runs the policy once when it starts, never again
// for that slot (also after another restart), and publishes the policies' last/next run, the
// snapshots, the backups and the metrics in its status.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "gitvirt/engine/controller.h"
#include "gitvirt/engine/scheduler.h"
#include "gitvirt/manifest/config_loader.h"
#include "temp_dir.h"

namespace gitvirt {
namespace {

namespace fs = std::filesystem;

void Write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

class ControllerPolicies : public ::testing::Test {
 protected:
  void SetUp() override {
    Write(dir_.path() / "gitvirt.yaml",
          "apiVersion: gitvirt.dev/v1\n"
          "kind: ControllerConfig\n"
          "source: {path: manifests}\n"
          "nodes:\n"
          "  - name: hv1\n"
          "    uri: sim:state/hv1.xml\n"
          "    pools: [{name: default, path: " + (dir_.path() / "images").string() + "}]\n"
          "sync: {auto: true}\n"
          "state: state/gitvirt.db\n");
    // Yearly: 00:00 UTC on 1 January. The test never waits for it; it says when it last ran.
    Write(dir_.path() / "manifests" / "all.yaml",
          "apiVersion: gitvirt.dev/v1\n"
          "kind: VirtualMachine\n"
          "metadata: {name: web-01, labels: {tier: web}}\n"
          "spec: {node: hv1, vcpus: 1, memory: 1GiB, disks: [{name: root, size: 1GiB}]}\n"
          "---\n"
          "apiVersion: gitvirt.dev/v1\n"
          "kind: SnapshotPolicy\n"
          "metadata: {name: yearly}\n"
          "spec:\n"
          "  selector: {matchLabels: {tier: web}}\n"
          "  schedule: \"0 0 1 1 *\"\n"
          "  namePattern: \"{policy}-{vm}-{datetime}\"\n"
          "  retention: {keep: 5}\n"
          "---\n"
          "apiVersion: gitvirt.dev/v1\n"
          "kind: BackupPolicy\n"
          "metadata: {name: yearly-backup}\n"
          "spec:\n"
          "  selector: {names: [web-01]}\n"
          "  schedule: \"0 0 1 1 *\"\n"
          "  target: {directory: " + (dir_.path() / "backups").string() + "}\n"
          "  verify: true\n");
    fs::create_directories(dir_.path() / "state");
    auto loaded = LoadControllerConfig(dir_.path() / "gitvirt.yaml");
    ASSERT_TRUE(loaded.ok()) << (loaded.diagnostics.empty() ? "" : loaded.diagnostics[0].ToString());
    config_ = loaded.config;
  }

  std::unique_ptr<Controller> Start() {
    auto c = Controller::Start(config_, nullptr);
    EXPECT_TRUE(c) << (c ? "" : c.error().ToString());
    return c ? std::move(*c) : nullptr;
  }

  int Jobs(Journal& journal, const std::string& kind) {
    JobFilter f;
    f.kind = kind;
    f.limit = 0;
    return *journal.CountJobs(f);
  }

  testing::TempDir dir_{"gv-ctlpol"};
  ControllerConfig config_;
  std::atomic<bool> stop_{false};
};

TEST_F(ControllerPolicies, StoppedAcrossTwoSlotsRunsOnceOnStart) {
  using namespace std::chrono;
  const TimePoint now = floor<seconds>(system_clock::now());
  const year_month_day today{floor<days>(now)};
  const TimePoint this_year = sys_days{today.year() / January / 1};
  const TimePoint two_years_ago = sys_days{(today.year() - years(2)) / January / 1};
  {
    auto c = Start();
    ASSERT_TRUE(c);
    c->ReconcileOnce(stop_);  // creates web-01; sees the policies for the first time
    EXPECT_EQ(Jobs(c->journal(), "snapshot"), 0) << "a new policy waits for its first slot";
    // As if this controller had last run the policies two years ago and then been stopped:
    // the slots of last year and this year were missed.
    for (const char* key : {"schedule/SnapshotPolicy/yearly", "schedule/BackupPolicy/yearly-backup"}) {
      const nlohmann::json state = {{"firstSeen", two_years_ago.time_since_epoch().count() - 60},
                                    {"slot", two_years_ago.time_since_epoch().count()}};
      ASSERT_TRUE(c->journal().SetState(key, state.dump()));
    }
    ASSERT_TRUE(c->journal().Flush());
  }
  {
    auto c = Start();
    ASSERT_TRUE(c);
    c->ReconcileOnce(stop_);
    EXPECT_EQ(Jobs(c->journal(), "snapshot"), 1);
    EXPECT_EQ(Jobs(c->journal(), "backup"), 1);
    auto s = c->Snapshot();
    ASSERT_EQ(s->snapshots.size(), 1u);
    EXPECT_EQ(s->snapshots[0].vm, "web-01");
    EXPECT_EQ(s->snapshots[0].policy, "yearly");
    ASSERT_EQ(s->backups.size(), 1u);
    EXPECT_EQ(s->backups[0].policy, "yearly-backup");
    EXPECT_EQ(s->backups[0].status, "complete");
    EXPECT_TRUE(s->backups[0].verified);
    EXPECT_EQ(s->metrics.snapshots_total, 1u);
    EXPECT_EQ(s->metrics.backups_total, 1u);
    EXPECT_GT(s->metrics.backup_bytes_total, 0u);
    ASSERT_EQ(s->policies.size(), 2u);
    for (const PolicyStatus& p : s->policies) {
      EXPECT_EQ(p.last_result, "succeeded") << p.name;
      ASSERT_TRUE(p.next_run) << p.name;
      EXPECT_EQ(*p.next_run, TimePoint{sys_days{(today.year() + years(1)) / January / 1}}) << p.name;
      ASSERT_TRUE(p.last_run);
    }
    const auto state = nlohmann::json::parse(**c->journal().GetState("schedule/SnapshotPolicy/yearly"));
    EXPECT_EQ(state.value("slot", 0LL), this_year.time_since_epoch().count());
    // The next pass: nothing more.
    c->ReconcileOnce(stop_);
    EXPECT_EQ(Jobs(c->journal(), "snapshot"), 1);
  }
  {
    auto c = Start();  // and after another restart
    ASSERT_TRUE(c);
    c->ReconcileOnce(stop_);
    EXPECT_EQ(Jobs(c->journal(), "snapshot"), 1);
    EXPECT_EQ(Jobs(c->journal(), "backup"), 1);
    EXPECT_EQ(c->Snapshot()->snapshots.size(), 1u);
  }
}

}  // namespace
}  // namespace gitvirt
