// Observation snapshots of simulated nodes (sim_store.h): a node whose files did not change
// since an observation is answered from the snapshot without loading the files into libvirt's
// test driver (SimulatedNodeLoads proves it), and with exactly what observing it would give;
// any change — by another connection, by this one, or one cut short by a crash after the
// generation was incremented — makes the next observation real.

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "gitvirt/core/json.h"
#include "gitvirt/core/observed_codec.h"
#include "domain_xml.h"
#include "gitvirt/hypervisor/connect.h"
#include "temp_dir.h"

namespace gitvirt {
namespace {

namespace fs = std::filesystem;

NodeConfig SimNode(const fs::path& dir) {
  NodeConfig node;
  node.name = "hv1";
  node.uri = "sim:" + (dir / "hv1.xml").string();
  node.capacity_vcpus = 32;
  node.capacity_memory = 64 * kGiB;
  node.pools = {PoolConfig{"default", (dir / "images").string()}};
  return node;
}

VirtualMachine Vm(const std::string& name) {
  VirtualMachine vm;
  vm.meta.name = name;
  vm.meta.labels = {{"tier", "web"}};
  vm.spec.node = "hv1";
  vm.spec.vcpus = 2;
  vm.spec.memory = 2 * kGiB;
  Disk root;
  root.name = "root";
  root.size = 20 * kGiB;
  vm.spec.disks = {root};
  Nic nic;
  nic.network = "default";
  nic.mac = "52:54:00:aa:bb:01";
  vm.spec.networks = {nic};
  vm.spec.autostart = true;
  return vm;
}

DomainDefinition Definition(const VirtualMachine& vm) {
  DomainDefinition def;
  def.vm = vm;
  def.owner.name = vm.meta.name;
  def.owner.spec_hash = SpecHash(vm.spec);
  def.owner.revision = "test";
  def.owner.labels = vm.meta.labels;
  def.owner.tags = {"a", "b"};
  def.owner.created_volumes = {"default/" + vm.meta.name + "-root.qcow2"};
  def.owner.applied_spec = ToJson(vm.spec).dump();
  return def;
}

std::unique_ptr<Node> Connect(const NodeConfig& node) {
  auto hv = ConnectNode(node, HypervisorOptions::FromEnvironment());
  EXPECT_TRUE(hv.has_value()) << (hv ? "" : hv.error().ToString());
  return hv ? std::move(*hv) : nullptr;
}

ObservedNode Observe(Node& hv) {
  auto observed = hv.Observe();
  EXPECT_TRUE(observed) << (observed ? "" : observed.error().ToString());
  return observed ? std::move(*observed) : ObservedNode{};
}

class SimSnapshot : public ::testing::Test {
 protected:
  void SetUp() override {
    ::unsetenv("GITVIRT_SIM_SNAPSHOTS");
    node_ = SimNode(dir_.path());
    auto hv = Connect(node_);
    ASSERT_TRUE(hv);
    for (const char* name : {"web-01", "web-02"}) {
      const VirtualMachine vm = Vm(name);
      ASSERT_TRUE(hv->storage().CreateVolume(VolumeSpec{"default", std::string(name) + "-root.qcow2", 20 * kGiB}));
      ASSERT_TRUE(hv->domains().Define(Definition(vm)));
    }
    ASSERT_TRUE(hv->power().Start("web-01"));
    ASSERT_TRUE(hv->snapshots().Create("web-01", SnapshotRequest{"before", "by hand", "hourly", false, false}));
    // A domain made by hand (no owner): in the snapshot too, and still unowned.
    std::string xml = RenderDomainXml(Definition(Vm("by-hand")), "kvm");
    xml.erase(xml.find("<metadata>"), xml.find("</metadata>") + 11 - xml.find("<metadata>"));
    ASSERT_TRUE(hv->domains().Restore(SavedDomain{xml}));
  }

  // An observation made by a new connection (a new process, as far as the node is concerned),
  // and whether it loaded the node's files.
  std::pair<ObservedNode, bool> ObserveAnew() {
    auto hv = Connect(node_);
    const std::uint64_t before = SimulatedNodeLoads();
    ObservedNode observed = hv ? Observe(*hv) : ObservedNode{};
    return {std::move(observed), SimulatedNodeLoads() != before};
  }

  fs::path Generation() const { return dir_.path() / "hv1.xml.d" / "generation"; }

  testing::TempDir dir_;
  NodeConfig node_;
};

TEST_F(SimSnapshot, AnUnchangedNodeIsAnsweredFromTheSnapshotExactly) {
  auto [real, loaded] = ObserveAnew();
  EXPECT_TRUE(loaded) << "no snapshot yet: the first observation loads the files";
  ASSERT_EQ(real.vms.size(), 3u);
  ASSERT_NE(real.FindVm("web-01"), nullptr);
  ASSERT_FALSE(real.FindVm("web-01")->snapshots.empty());
  auto [again, loaded_again] = ObserveAnew();
  EXPECT_FALSE(loaded_again) << "the files did not change: the snapshot answers";
  EXPECT_EQ(again, real);  // every field, owner metadata and libvirt snapshots included
  const ObservedVm* by_hand = again.FindVm("by-hand");
  ASSERT_NE(by_hand, nullptr);
  EXPECT_FALSE(by_hand->Owned());
}

TEST_F(SimSnapshot, AChangeThroughAnotherConnectionMakesTheNextObservationReal) {
  ObserveAnew();  // writes the snapshot
  {
    auto other = Connect(node_);
    ASSERT_TRUE(other);
    ASSERT_TRUE(other->power().Destroy("web-01"));
  }
  auto [after, loaded] = ObserveAnew();
  EXPECT_TRUE(loaded);
  ASSERT_NE(after.FindVm("web-01"), nullptr);
  EXPECT_EQ(after.FindVm("web-01")->power, PowerState::kStopped);
  auto [again, loaded_again] = ObserveAnew();
  EXPECT_FALSE(loaded_again);
  EXPECT_EQ(again, after);
}

TEST_F(SimSnapshot, AChangeCutShortAfterTheGenerationMovedInvalidatesIt) {
  auto [real, loaded] = ObserveAnew();
  // What a process killed between incrementing the generation and writing its files leaves:
  // the next generation, and the files as they were.
  std::ifstream in(Generation());
  std::uint64_t generation = 0;
  in >> generation;
  ASSERT_GT(generation, 0u);
  std::ofstream(Generation()) << generation + 1 << "\n";
  auto [after, loaded_after] = ObserveAnew();
  EXPECT_TRUE(loaded_after);
  EXPECT_EQ(after, real);
}

TEST_F(SimSnapshot, AConnectionThatChangedTheNodeObservesThroughLibvirt) {
  ObserveAnew();
  auto hv = Connect(node_);
  ASSERT_TRUE(hv);
  const std::uint64_t before = SimulatedNodeLoads();
  ObservedNode first = Observe(*hv);  // from the snapshot
  EXPECT_EQ(SimulatedNodeLoads(), before);
  EXPECT_EQ(first.FindVm("web-01")->power, PowerState::kRunning);
  ASSERT_TRUE(hv->power().Destroy("web-01"));  // connects: the files are loaded now
  EXPECT_EQ(SimulatedNodeLoads(), before + 1);
  ObservedNode second = Observe(*hv);
  EXPECT_EQ(second.FindVm("web-01")->power, PowerState::kStopped) << "a stale snapshot answered";
  auto [fresh, loaded] = ObserveAnew();
  EXPECT_TRUE(loaded) << "a process that changed the node keeps no snapshot";
  EXPECT_EQ(fresh.FindVm("web-01")->power, PowerState::kStopped);
}

TEST_F(SimSnapshot, TheEscapeHatchAlwaysObservesThroughLibvirt) {
  ObserveAnew();
  ::setenv("GITVIRT_SIM_SNAPSHOTS", "0", 1);
  auto [real, loaded] = ObserveAnew();
  ::unsetenv("GITVIRT_SIM_SNAPSHOTS");
  EXPECT_TRUE(loaded);
  EXPECT_EQ(real.vms.size(), 3u);
}

TEST_F(SimSnapshot, AnOpenThatChangesNothingKeepsTheGeneration) {
  ObserveAnew();
  std::ifstream first(Generation());
  std::uint64_t before = 0;
  first >> before;
  Connect(node_);  // EnsureExists: the index is already right, nothing is written
  std::ifstream second(Generation());
  std::uint64_t after = 0;
  second >> after;
  EXPECT_EQ(after, before);
}

TEST_F(SimSnapshot, ABrokenSnapshotIsIgnored) {
  auto [real, loaded] = ObserveAnew();
  const fs::path file = dir_.path() / "hv1.xml.d" / "observed.snapshot";
  const auto size = fs::file_size(file);
  fs::resize_file(file, size - 7);
  auto [after, loaded_after] = ObserveAnew();
  EXPECT_TRUE(loaded_after);
  EXPECT_EQ(after, real);
}

TEST(ObservedCodec, RoundTripsAndRefusesTruncatedInput) {
  ObservedNode node;
  node.name = "hv1";
  node.reachable = true;
  node.cpus = 8;
  node.memory = 64 * kGiB;
  node.capabilities.driver = "TEST";
  node.capabilities.volume_resize = true;
  ObservedVm vm;
  vm.name = "a";
  vm.power = PowerState::kPaused;
  vm.actual = Vm("a").spec;
  vm.actual.max_vcpus = 4;
  vm.owner = Ownership{};
  vm.owner->labels = {{"k", "v"}};
  vm.last_applied = vm.actual;
  vm.snapshots.push_back(ObservedSnapshot{"s", TimePoint(std::chrono::seconds(1700000000)), "running", "d", "p", true});
  node.vms = {vm, ObservedVm{}};
  node.pools.push_back(ObservedPool{"default", "/p", true, {ObservedVolume{"default", "v", "/p/v", 1, 2, 3, "qcow2", ""}}});
  node.networks = {"default"};
  const std::string bytes = EncodeObservedNode(node);
  auto back = DecodeObservedNode(bytes);
  ASSERT_TRUE(back) << back.error().ToString();
  EXPECT_EQ(*back, node);
  for (std::size_t cut : {std::size_t{1}, bytes.size() / 2, bytes.size() - 1}) {
    EXPECT_FALSE(DecodeObservedNode(std::string_view(bytes).substr(0, cut))) << cut;
  }
  EXPECT_FALSE(DecodeObservedNode(bytes + "x"));
}

}  // namespace
}  // namespace gitvirt
