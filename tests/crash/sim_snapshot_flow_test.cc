// Issue 3, the observation snapshots of simulated nodes through the real binary: `plan` after
// `apply` sees what the apply did (the apply changed the node, so its snapshot is outdated) and
// is empty; the plan after that is answered from the snapshot (logged at debug level) and is
// empty too; a change applied afterwards is seen again.
#include <gtest/gtest.h>

#include "crash_support.h"
#include "temp_dir.h"

namespace gitvirt::crash {
namespace {

bool Contains(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }

constexpr const char* kLoaded = "loaded its files through the test driver";
constexpr const char* kFromSnapshot = "observed from its snapshot";

TEST(SimSnapshotFlow, PlanAfterApplyIsEmptyAndTheNextOneComesFromTheSnapshot) {
  testing::TempDir work;
  const fs::path image = work.path() / "tiny.qcow2";
  fs::copy_file(fs::path(GITVIRT_SOURCE_DIR) / "examples/images/tiny.qcow2", image);
  Workspace ws(work.path(), {{"hv1", "sim:" + (work.path() / "sim/hv1.xml").string(), "/var/lib/gv/hv1"},
                             {"hv2", "sim:" + (work.path() / "sim/hv2.xml").string(), "/var/lib/gv/hv2"}});
  const fs::path m = ws.manifests();
  WriteFile(m / "image-base.yaml", ImageYaml("base", image, Sha256(image)));
  WriteFile(m / "a.yaml", VmYaml("vm-a", {.node = "hv1", .image = "base"}));
  WriteFile(m / "b.yaml", VmYaml("vm-b", {.node = "hv2", .image = "base"}));
  Output apply = ws({"apply", "--auto-approve", "--no-color"});
  ASSERT_EQ(apply.rc, 0) << apply.text;

  Output first = ws({"-vv", "plan", "--detailed-exitcode", "--no-color"});
  EXPECT_EQ(first.rc, 0) << first.text;
  EXPECT_TRUE(Contains(first.text, kLoaded)) << first.text;
  EXPECT_FALSE(Contains(first.text, kFromSnapshot)) << "the apply changed both nodes:\n" << first.text;

  Output second = ws({"-vv", "plan", "--detailed-exitcode", "--no-color"});
  EXPECT_EQ(second.rc, 0) << second.text;
  EXPECT_TRUE(Contains(second.text, kFromSnapshot)) << second.text;
  EXPECT_FALSE(Contains(second.text, kLoaded)) << second.text;

  // Stop vm-a: its plan is answered from the snapshots, the apply connects and changes hv1.
  WriteFile(m / "a.yaml", VmYaml("vm-a", {.node = "hv1", .image = "base", .power = "Stopped"}));
  Output stop = ws({"apply", "--auto-approve", "--no-color"});
  ASSERT_EQ(stop.rc, 0) << stop.text;
  EXPECT_TRUE(Contains(stop.text, "vm-a")) << stop.text;
  Output after = ws({"-vv", "plan", "--detailed-exitcode", "--no-color"});
  EXPECT_EQ(after.rc, 0) << after.text;
  EXPECT_TRUE(Contains(after.text, "node=hv1 " + std::string(kLoaded))) << after.text;
  EXPECT_TRUE(Contains(after.text, "node=hv2 " + std::string(kFromSnapshot))) << after.text;
  Output get = ws({"get", "vms"});
  EXPECT_EQ(get.rc, 0) << get.text;
  EXPECT_TRUE(Contains(get.text, "Stopped") || Contains(get.text, "shut off")) << get.text;
}

}  // namespace
}  // namespace gitvirt::crash
