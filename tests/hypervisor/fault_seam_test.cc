// The fault decorator around a simulated node (test builds): every change a port makes passes
// the seam under the kind the sweeps and the tests name (GITVIRT_FAULTS=kind:N), a call the node
// refuses by what it is and every read pass none, an injected failure reaches nothing (not even
// the simulated node's files), and a lost answer costs the connection, which is reopened, and
// the call is asked again and found done.

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>

#include "fault_injection.h"
#include "gitvirt/core/json.h"
#include "gitvirt/hypervisor/connect.h"
#include "temp_dir.h"

namespace gitvirt {
namespace {

namespace fs = std::filesystem;

void Faults(const std::string& spec) {
  ::setenv("GITVIRT_FAULTS", spec.c_str(), 1);
  ResetFaultInjection();
}

bool SeamBuilt() {
  Faults("define:1");
  const bool built = InjectedFault("define").has_value();
  ::unsetenv("GITVIRT_FAULTS");
  ResetFaultInjection();
  return built;
}

VirtualMachine Vm(const std::string& name) {
  VirtualMachine vm;
  vm.meta.name = name;
  vm.spec.node = "hv1";
  vm.spec.vcpus = 1;
  vm.spec.max_vcpus = 2;
  vm.spec.memory = 512ULL << 20;
  vm.spec.max_memory = 1ULL << 30;
  Disk root;
  root.name = "root";
  root.size = 1ULL << 30;
  vm.spec.disks = {root};
  Nic nic;
  nic.network = "default";
  vm.spec.networks = {nic};
  return vm;
}

DomainDefinition Definition(const std::string& name) {
  DomainDefinition def;
  def.vm = Vm(name);
  def.owner.name = name;
  def.owner.applied_spec = ToJson(def.vm.spec).dump();
  return def;
}

// Every file of the node's directory, with its content.
std::map<std::string, std::string> Files(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    out[entry.path().string()] = std::string(std::istreambuf_iterator<char>(in), {});
  }
  return out;
}

class FaultSeamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!SeamBuilt()) GTEST_SKIP() << "built without GITVIRT_FAULT_INJECTION";
    node_.name = "hv1";
    node_.uri = "sim:" + (dir_.path() / "hv1.xml").string();
    node_.pools = {PoolConfig{"default", (dir_.path() / "images").string()}};
    auto hv = ConnectNode(node_, HypervisorOptions{});
    ASSERT_TRUE(hv) << hv.error().ToString();
    hv_ = std::move(*hv);
    const VirtualMachine vm = Vm("web-01");
    ASSERT_TRUE(hv_->storage().CreateVolume(VolumeSpec{"default", "web-01-root.qcow2", 1ULL << 30}));
    ASSERT_TRUE(hv_->domains().Define(Definition("web-01")));
    ASSERT_TRUE(hv_->power().Start("web-01"));
    ASSERT_TRUE(hv_->snapshots().Create("web-01", SnapshotRequest{"s1", "", "", false, false}));
  }
  void TearDown() override {
    ::unsetenv("GITVIRT_FAULTS");
    ResetFaultInjection();
  }

  testing::TempDir dir_{"gv-seam"};
  NodeConfig node_;
  std::unique_ptr<Node> hv_;
};

TEST_F(FaultSeamTest, EveryChangePassesTheSeamUnderItsKind) {
  Node& hv = *hv_;
  const DomainDefinition def = Definition("web-01");
  auto saved = hv.domains().Save("web-01");
  ASSERT_TRUE(saved);
  auto exported = hv.snapshots().Export("web-01");
  ASSERT_TRUE(exported);
  const std::string image = (dir_.path() / "image.raw").string();
  std::ofstream(image) << "bytes";
  const std::vector<std::pair<std::string, std::function<Result<void>()>>> calls = {
      {"define", [&] { return hv.domains().Define(def); }},
      {"define", [&] { return hv.domains().Restore(*saved); }},
      {"define", [&] { return hv.domains().DefineRestored(RestoredDomain{*saved, "web-02", {}, false, ""}); }},
      {"undefine", [&] { return hv.domains().Undefine("web-01"); }},
      {"undefine", [&] { return hv.domains().UndefineKeepingFirmwareState("web-01"); }},
      {"set-metadata", [&] { return hv.domains().SetOwner("web-01", std::nullopt); }},
      {"set-autostart", [&] { return hv.domains().SetAutostart("web-01", true); }},
      {"start", [&] { return hv.power().Start("web-01"); }},
      {"destroy", [&] { return hv.power().Destroy("web-01"); }},
      {"shutdown", [&] { return hv.power().Shutdown("web-01", Seconds(1), true); }},
      {"reboot", [&] { return hv.power().Reboot("web-01"); }},
      {"suspend", [&] { return hv.power().Suspend("web-01"); }},
      {"resume", [&] { return hv.power().Resume("web-01"); }},
      {"set-vcpus", [&] { return hv.live().SetVcpus("web-01", 2); }},
      {"set-memory", [&] { return hv.live().SetMemory("web-01", 1ULL << 30); }},
      {"attach", [&] { return hv.live().AttachDisk(def, "root"); }},
      {"attach", [&] { return hv.live().AttachNic(def, 0); }},
      {"detach", [&] { return hv.live().DetachDisk("web-01", "root"); }},
      {"detach", [&] { return hv.live().DetachNic("web-01", 0); }},
      {"resize-disk", [&] { return hv.live().ResizeDisk("web-01", "root", 2ULL << 30); }},
      {"ensure-pool", [&] { return hv.storage().EnsurePool(node_.pools[0]); }},
      {"create-volume", [&] { return hv.storage().CreateVolume(VolumeSpec{"default", "x.qcow2", 1 << 20}); }},
      {"delete-volume", [&] { return hv.storage().DeleteVolume("default", "web-01-root.qcow2"); }},
      {"resize-volume", [&] { return hv.storage().ResizeVolume("default", "web-01-root.qcow2", 2ULL << 30); }},
      {"upload-volume", [&] { return hv.storage().UploadVolume("default", "img.raw", image, "raw"); }},
      {"snapshot-create",
       [&]() -> Result<void> {
         auto taken = hv.snapshots().Create("web-01", SnapshotRequest{"s2", "", "", false, false});
         if (!taken) return std::unexpected(taken.error());
         return {};
       }},
      {"snapshot-create", [&] { return hv.snapshots().Import("web-01", *exported); }},
      {"snapshot-delete", [&] { return hv.snapshots().Delete("web-01", "s1"); }},
      {"snapshot-revert", [&] { return hv.snapshots().Revert("web-01", "s1"); }},
  };
  for (const auto& [kind, call] : calls) {
    Faults(kind + ":1");
    auto r = call();
    ASSERT_FALSE(r) << kind << " passed no seam";
    EXPECT_NE(r.error().message.find("injected fault: " + kind + " "), std::string::npos) << r.error().ToString();
  }
}

TEST_F(FaultSeamTest, ReadsAndRefusedCallsPassNoSeam) {
  Node& hv = *hv_;
  Faults("any:1+");
  EXPECT_TRUE(hv.Observe());
  EXPECT_TRUE(hv.domains().ObserveVm("web-01"));
  EXPECT_TRUE(hv.domains().Save("web-01"));
  EXPECT_TRUE(hv.domains().Disks("web-01"));
  EXPECT_TRUE(hv.power().Get("web-01"));
  EXPECT_TRUE(hv.storage().GetVolume("default", "web-01-root.qcow2"));
  EXPECT_TRUE(hv.storage().GetPoolPath("default"));
  EXPECT_TRUE(hv.snapshots().List("web-01"));
  EXPECT_TRUE(hv.snapshots().Export("web-01"));
  EXPECT_TRUE(hv.snapshots().Import("web-01", SavedSnapshots{})) << "importing nothing changes nothing";
  // What a simulated node cannot do is refused as it is, and was no change.
  EXPECT_EQ(hv.backups().CopyDisks("web-01", {{"root", DiskBackupFile{"/tmp/x", "qcow2"}}}, std::chrono::seconds(1))
                .error()
                .code,
            ErrorCode::kUnsupported);
  EXPECT_EQ(hv.storage().WriteVolume(VolumeSpec{"default", "w.raw", 1 << 20}).error().code, ErrorCode::kUnsupported);
  EXPECT_EQ(hv.guest().Ping("web-01", std::chrono::seconds(1)).error().code, ErrorCode::kUnsupported);
  EXPECT_FALSE(hv.power().Start("web-01")) << "the seam was armed all along";
}

TEST_F(FaultSeamTest, AnInjectedFaultTouchesNoFileOfASimulatedNode) {
  const auto before = Files(dir_.path() / "hv1.xml.d");
  const std::uint64_t loads = SimulatedNodeLoads();
  // A new connection (a new process, as far as the files go): not loaded yet.
  auto fresh = ConnectNode(node_, HypervisorOptions{});
  ASSERT_TRUE(fresh) << fresh.error().ToString();
  Faults("define:1,create-volume:1,destroy:1");
  EXPECT_FALSE((*fresh)->domains().Define(Definition("web-02")));
  EXPECT_FALSE((*fresh)->storage().CreateVolume(VolumeSpec{"default", "web-02-root.qcow2", 1ULL << 30}));
  EXPECT_FALSE((*fresh)->power().Destroy("web-01"));
  EXPECT_EQ(SimulatedNodeLoads(), loads) << "nothing reached the test driver";
  EXPECT_EQ(Files(dir_.path() / "hv1.xml.d"), before) << "the generation and every file as they were";
  auto observed = (*fresh)->Observe();
  ASSERT_TRUE(observed) << observed.error().ToString();
  EXPECT_EQ(observed->FindVm("web-02"), nullptr);
  ASSERT_NE(observed->FindVm("web-01"), nullptr);
  EXPECT_EQ(observed->FindVm("web-01")->power, PowerState::kRunning);
}

TEST_F(FaultSeamTest, ALostAnswerIsAskedAgainAndFoundDone) {
  Node& hv = *hv_;
  const std::uint64_t loads = SimulatedNodeLoads();
  Faults("lost:1");
  ASSERT_TRUE(hv.storage().CreateVolume(VolumeSpec{"default", "web-02-root.qcow2", 1ULL << 30}))
      << "the repeat found the volume made: done";
  EXPECT_EQ(SimulatedNodeLoads(), loads + 1) << "reconnected, as after a daemon restart: the files loaded again";
  Faults("lost:1");
  auto taken = hv.snapshots().Create("web-01", SnapshotRequest{"s2", "", "", false, false});
  ASSERT_TRUE(taken) << taken.error().ToString();
  EXPECT_EQ(taken->kind, "internal") << "the first call's answer";
  auto snapshots = hv.snapshots().List("web-01");
  ASSERT_TRUE(snapshots);
  EXPECT_EQ(snapshots->size(), 2u);
  auto observed = hv.Observe();
  ASSERT_TRUE(observed);
  const ObservedPool* pool = observed->FindPool("default");
  ASSERT_NE(pool, nullptr);
  EXPECT_NE(pool->FindVolume("web-02-root.qcow2"), nullptr);
}

}  // namespace
}  // namespace gitvirt
