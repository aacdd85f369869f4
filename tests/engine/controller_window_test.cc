// serve's loop and sync windows, with an injected clock: a change a window blocks is planned,
// shown ("blocked by window W until T") and not applied; once the window opens between two
// passes, the next pass applies it. On a simulated node.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "gitvirt/engine/clock.h"
#include "gitvirt/engine/controller.h"
#include "gitvirt/manifest/config_loader.h"
#include "temp_dir.h"

namespace gitvirt {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono;

void Write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

const Condition* Find(const ResourceStatus& r, const std::string& type) {
  for (const Condition& c : r.conditions) {
    if (c.type == type) return &c;
  }
  return nullptr;
}

TEST(ControllerWindows, BlockedUntilTheWindowOpensThenApplied) {
  testing::TempDir dir{"gv-window"};
  Write(dir.path() / "gitvirt.yaml",
        "apiVersion: gitvirt.dev/v1\n"
        "kind: ControllerConfig\n"
        "source: {path: manifests}\n"
        "nodes:\n"
        "  - name: hv1\n"
        "    uri: sim:state/hv1.xml\n"
        "    pools: [{name: default, path: " + (dir.path() / "images").string() + "}]\n"
        "sync: {auto: true}\n"
        "state: state/gitvirt.db\n");
  Write(dir.path() / "manifests" / "all.yaml",
        "apiVersion: gitvirt.dev/v1\n"
        "kind: VirtualMachine\n"
        "metadata: {name: app-01, labels: {tier: app}}\n"
        "spec: {node: hv1, vcpus: 1, memory: 1GiB, disks: [{name: root, size: 1GiB}]}\n"
        "---\n"
        "apiVersion: gitvirt.dev/v1\n"
        "kind: SyncWindow\n"
        "metadata: {name: maintenance}\n"
        "spec: {type: allow, schedule: \"0 2 * * *\", duration: 1h, timeZone: Europe/Berlin,\n"
        "       selector: {matchLabels: {tier: app}}}\n");
  fs::create_directories(dir.path() / "state");
  auto loaded = LoadControllerConfig(dir.path() / "gitvirt.yaml");
  ASSERT_TRUE(loaded.ok());
  // 00:59:58 UTC is 01:59:58 in Berlin (winter time): two seconds before the window opens.
  FakeClock clock(TimePoint{sys_days{2026y / December / 8}} + hours(0) + minutes(59) + seconds(58));
  Session::Options options;
  options.clock = &clock;
  auto controller = Controller::Start(Session::FromConfig(loaded.config, options));
  ASSERT_TRUE(controller) << controller.error().ToString();
  std::atomic<bool> stop{false};

  (*controller)->ReconcileOnce(stop);
  auto s = (*controller)->Snapshot();
  ASSERT_EQ(s->resources.size(), 1u);
  EXPECT_EQ(s->resources[0].sync, SyncStatus::kMissing) << "not created while the window is closed";
  const Condition* pending = Find(s->resources[0], "Pending");
  ASSERT_NE(pending, nullptr);
  EXPECT_EQ(pending->reason, "BlockedByWindow");
  EXPECT_EQ(pending->message, "blocked by window maintenance until 2026-12-08T01:00:00Z");
  EXPECT_TRUE((*controller)->journal().ListJobs(JobFilter{}).value().empty()) << "no job while blocked";

  // The window opens between two passes.
  clock.Advance(seconds(2));
  (*controller)->ReconcileOnce(stop);
  s = (*controller)->Snapshot();
  ASSERT_EQ(s->resources.size(), 1u);
  EXPECT_EQ(s->resources[0].sync, SyncStatus::kSynced);
  EXPECT_EQ(Find(s->resources[0], "Pending"), nullptr);
}

}  // namespace
}  // namespace gitvirt
