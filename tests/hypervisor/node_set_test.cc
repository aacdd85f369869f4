// The nodes of a configuration: a node that cannot be connected is recorded, not fatal, and is
// connected by RetryUnreachable once it can be; a live migration needs two libvirt nodes that
// can migrate (a node given with Put has no libvirt behind it), and a refused one is no change
// for the fault seam.

#include "gitvirt/hypervisor/node_set.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "fault_injection.h"
#include "temp_dir.h"

namespace gitvirt {
namespace {

namespace fs = std::filesystem;

NodeConfig SimNode(const fs::path& file, const std::string& name) {
  NodeConfig node;
  node.name = name;
  node.uri = "sim:" + file.string();
  node.pools = {PoolConfig{"default", (file.parent_path() / "images").string()}};
  return node;
}

TEST(NodeSetTest, AnUnreachableNodeIsConnectedAgainOnceItCanBe) {
  testing::TempDir dir("gv-nodeset");
  const fs::path blocker = dir.path() / "blocked";
  std::ofstream(blocker) << "a file where the node's directory would go";
  auto set = NodeSet::Connect({SimNode(dir.path() / "hv1.xml", "hv1"), SimNode(blocker / "hv2.xml", "hv2")}, {});
  ASSERT_NE(set->Find("hv1"), nullptr);
  EXPECT_EQ(set->Find("hv2"), nullptr);
  EXPECT_NE(set->ConnectError("hv2"), "");
  ObservedState observed = set->ObserveAll();
  ASSERT_EQ(observed.nodes.size(), 2u);
  EXPECT_TRUE(observed.nodes[0].reachable);
  EXPECT_FALSE(observed.nodes[1].reachable);
  EXPECT_EQ(observed.nodes[1].error, set->ConnectError("hv2"));

  Node* hv1 = set->Find("hv1");
  fs::remove(blocker);
  set->RetryUnreachable();
  EXPECT_EQ(set->Find("hv1"), hv1) << "a connected node stays as it is";
  ASSERT_NE(set->Find("hv2"), nullptr);
  EXPECT_EQ(set->ConnectError("hv2"), "");
  EXPECT_TRUE(set->ObserveAll().nodes[1].reachable);
}

TEST(NodeSetTest, ALiveMigrationNeedsTwoLibvirtNodesThatCanMigrate) {
  testing::TempDir dir("gv-nodeset");
  ::setenv("GITVIRT_FAULTS", "migrate:1+", 1);
  ResetFaultInjection();
  auto set = NodeSet::Connect({SimNode(dir.path() / "hv1.xml", "hv1"), SimNode(dir.path() / "hv2.xml", "hv2")}, {});
  auto refused = set->migrations().MigrateLive("web-01", "hv1", "hv2", LiveMigration{});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kUnsupported) << "refused for what the nodes are, not injected";
  EXPECT_NE(refused.error().message.find("TEST -> TEST"), std::string::npos) << refused.error().ToString();

  NodeSet given({SimNode(dir.path() / "hv1.xml", "hv1"), SimNode(dir.path() / "hv3.xml", "hv3")});
  auto hv1 = ConnectNode(SimNode(dir.path() / "hv1.xml", "hv1"), {});
  ASSERT_TRUE(hv1) << hv1.error().ToString();
  given.Put("hv1", std::move(*hv1));
  auto unknown = given.migrations().MigrateLive("web-01", "hv1", "hv3", LiveMigration{});
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, ErrorCode::kUnsupported) << "a node given with Put has no libvirt adapter";
  ::unsetenv("GITVIRT_FAULTS");
  ResetFaultInjection();
}

}  // namespace
}  // namespace gitvirt
