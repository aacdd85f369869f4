// The files of a simulated node are XML built with an XML library: a node file and a configured
// pool path with characters that mean something in XML (' < & ") are written, loaded by libvirt's
// test driver, observed, and read back by a later connection (another process, as far as the
// files go) exactly as configured.

#include <gtest/gtest.h>

#include "gitvirt/hypervisor/connect.h"
#include "temp_dir.h"

namespace gitvirt {
namespace {

TEST(SimStoreTest, APoolPathWithXmlCharactersSurvivesEveryFile) {
  testing::TempDir dir;
  const std::string path = (dir.path() / "it's <images> & \"more\"").string();
  NodeConfig node;
  node.name = "hv1";
  node.uri = "sim:" + (dir.path() / "hv'1&2.xml").string();
  node.pools = {PoolConfig{"default", (dir.path() / "images").string()}, PoolConfig{"odd", path}};
  {
    auto hv = ConnectNode(node, HypervisorOptions{});
    ASSERT_TRUE(hv) << hv.error().ToString();
    auto ensured = (*hv)->storage().EnsurePool(node.pools[1]);
    ASSERT_TRUE(ensured) << ensured.error().ToString();
    auto made = (*hv)->storage().CreateVolume(VolumeSpec{"odd", "v<1>&'.qcow2", 1ULL << 30});
    ASSERT_TRUE(made) << made.error().ToString();
    auto observed = (*hv)->Observe();
    ASSERT_TRUE(observed) << observed.error().ToString();
    const ObservedPool* pool = observed->FindPool("odd");
    ASSERT_NE(pool, nullptr);
    EXPECT_EQ(pool->path, path);
    ASSERT_NE(pool->FindVolume("v<1>&'.qcow2"), nullptr);
    EXPECT_EQ(pool->FindVolume("v<1>&'.qcow2")->path, path + "/v<1>&'.qcow2");
  }
  auto again = ConnectNode(node, HypervisorOptions{});  // built from the files alone
  ASSERT_TRUE(again) << again.error().ToString();
  auto observed = (*again)->Observe();
  ASSERT_TRUE(observed) << observed.error().ToString();
  const ObservedPool* pool = observed->FindPool("odd");
  ASSERT_NE(pool, nullptr);
  EXPECT_EQ(pool->path, path);
  ASSERT_NE(pool->FindVolume("v<1>&'.qcow2"), nullptr);
  EXPECT_EQ(pool->FindVolume("v<1>&'.qcow2")->capacity, 1ULL << 30);
  auto dir_of_pool = (*again)->storage().GetPoolPath("odd");
  ASSERT_TRUE(dir_of_pool) << dir_of_pool.error().ToString();
  EXPECT_EQ(*dir_of_pool, path);
}

}  // namespace
}  // namespace gitvirt
