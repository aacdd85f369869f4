// The libvirt adapter against simulated nodes (libvirt's test driver, persisted to a file):
// definitions round-trip to an empty diff, and state survives into a new connection, as it must
// for `plan`, `apply` and `get` run as separate processes.

#include <gtest/gtest.h>

#include "gitvirt/core/diff.h"
#include "gitvirt/core/json.h"
#include "gitvirt/core/planner.h"
#include "gitvirt/core/storage.h"
#include "domain_xml.h"
#include "gitvirt/hypervisor/connect.h"
#include "temp_dir.h"

namespace gitvirt {
namespace {

NodeConfig SimNode(const std::filesystem::path& dir, const std::string& name = "hv1") {
  NodeConfig node;
  node.name = name;
  node.uri = "sim:" + (dir / (name + ".xml")).string();
  node.capacity_vcpus = 32;
  node.capacity_memory = 64 * kGiB;
  node.pools = {PoolConfig{"default", (dir / "images").string()}};
  return node;
}

VirtualMachine WebVm() {
  VirtualMachine vm;
  vm.meta.name = "web-01";
  vm.meta.labels = {{"tier", "web"}};
  vm.spec.node = "hv1";
  vm.spec.vcpus = 2;
  vm.spec.max_vcpus = 4;
  vm.spec.memory = 2 * kGiB;
  vm.spec.max_memory = 4 * kGiB;
  vm.spec.description = "web <front> & 'quoted'";
  Disk root;
  root.name = "root";
  root.size = 20 * kGiB;
  Disk data;
  data.name = "data";
  data.size = 50 * kGiB;
  data.bus = DiskBus::kScsi;
  data.cache = DiskCache::kNone;
  data.discard = true;
  data.ssd = true;
  data.iothread = true;
  data.boot_order = 2;
  vm.spec.disks = {root, data};
  Nic nic;
  nic.network = "default";
  nic.mac = "52:54:00:aa:bb:01";
  nic.vlan = 100;
  vm.spec.networks = {nic, Nic{"", "br0", NicModel::kE1000e}};
  vm.spec.cpu.mode = CpuMode::kHostPassthrough;
  vm.spec.cpu.topology = CpuTopology{1, 4, 1};
  vm.spec.graphics.type = GraphicsType::kVnc;
  vm.spec.guest_agent = true;
  vm.spec.autostart = true;
  vm.spec.update_policy.restart = RestartPolicy::kAllowed;
  vm.spec.boot = DirectBoot{"/srv/boot/vmlinuz", "/srv/boot/initrd.img", "root=/dev/vda rw console=ttyS0"};
  return vm;
}

DomainDefinition Definition(const VirtualMachine& vm) {
  DomainDefinition def;
  def.vm = vm;
  def.owner.name = vm.meta.name;
  def.owner.spec_hash = SpecHash(vm.spec);
  def.owner.revision = "test";
  def.owner.labels = vm.meta.labels;
  def.owner.applied_spec = ToJson(vm.spec).dump();
  return def;
}

std::unique_ptr<Node> Connect(const NodeConfig& node) {
  auto hv = ConnectNode(node, HypervisorOptions{});
  EXPECT_TRUE(hv.has_value()) << (hv ? "" : hv.error().ToString());
  return hv ? std::move(*hv) : nullptr;
}

TEST(SimNodeTest, DefinitionRoundTripsToAnEmptyDiff) {
  testing::TempDir dir;
  const NodeConfig node = SimNode(dir.path());
  auto hv = Connect(node);
  ASSERT_TRUE(hv);
  const VirtualMachine vm = WebVm();
  for (const Disk& d : vm.spec.disks) {
    ASSERT_TRUE(hv->storage().CreateVolume(VolumeSpec{"default", DiskVolumeName(vm.meta.name, d), *d.size}));
  }
  auto defined = hv->domains().Define(Definition(vm));
  ASSERT_TRUE(defined) << defined.error().ToString();
  ASSERT_TRUE(hv->power().Start(vm.meta.name));

  auto observed = hv->domains().ObserveVm(vm.meta.name);
  ASSERT_TRUE(observed) << observed.error().ToString();
  ASSERT_TRUE(observed->Owned());
  EXPECT_EQ(observed->power, PowerState::kRunning);
  VmDiff diff = DiffVm(vm.spec, observed->actual, DiffContext{true, hv->capabilities()});
  for (const FieldChange& c : diff.changes) ADD_FAILURE() << c.path << ": " << c.before << " -> " << c.after;
  EXPECT_TRUE(diff.Empty());
}

TEST(SimNodeTest, StateSurvivesIntoANewConnection) {
  testing::TempDir dir;
  const NodeConfig node = SimNode(dir.path());
  const VirtualMachine vm = WebVm();
  {
    auto hv = Connect(node);
    ASSERT_TRUE(hv);
    ASSERT_TRUE(hv->storage().CreateVolume(VolumeSpec{"default", "web-01-root.qcow2", 20 * kGiB}));
    ASSERT_TRUE(hv->storage().CreateVolume(VolumeSpec{"default", "web-01-data.qcow2", 50 * kGiB}));
    ASSERT_TRUE(hv->domains().Define(Definition(vm)));
    ASSERT_TRUE(hv->power().Start(vm.meta.name));
    ASSERT_TRUE(hv->snapshots().Create(vm.meta.name, SnapshotRequest{"before-upgrade", "by hand", "", false, false}));
    ASSERT_TRUE(hv->snapshots().Create(vm.meta.name, SnapshotRequest{"auto-1", "hourly", "hourly", false, false}));
  }
  auto hv = Connect(node);  // a new test-driver host, built from the files
  ASSERT_TRUE(hv);
  auto observed = hv->Observe();
  ASSERT_TRUE(observed) << observed.error().ToString();
  ASSERT_EQ(observed->vms.size(), 1u);
  const ObservedVm& got = observed->vms.front();
  EXPECT_EQ(got.power, PowerState::kRunning);
  EXPECT_TRUE(got.autostart);
  ASSERT_TRUE(got.owner);
  EXPECT_EQ(got.owner->spec_hash, SpecHash(vm.spec));
  EXPECT_TRUE(DiffVm(vm.spec, got.actual, DiffContext{true, hv->capabilities()}).Empty());
  const ObservedPool* pool = observed->FindPool("default");
  ASSERT_NE(pool, nullptr);
  ASSERT_NE(pool->FindVolume("web-01-data.qcow2"), nullptr);
  EXPECT_EQ(pool->FindVolume("web-01-data.qcow2")->capacity, 50 * kGiB);
  auto snaps = hv->snapshots().List(vm.meta.name);
  ASSERT_TRUE(snaps);
  ASSERT_EQ(snaps->size(), 2u);
  EXPECT_EQ((*snaps)[0].policy == "hourly" ? (*snaps)[0].name : (*snaps)[1].name, "auto-1");
}

TEST(SimNodeTest, UnownedDomainsAreReportedUnowned) {
  testing::TempDir dir;
  auto hv = Connect(SimNode(dir.path()));
  ASSERT_TRUE(hv);
  VirtualMachine vm = WebVm();
  vm.meta.name = "by-hand";
  DomainDefinition def = Definition(vm);
  std::string xml = RenderDomainXml(def, "kvm");
  // Strip gitvirt's metadata: this is a domain someone made with virsh.
  const auto begin = xml.find("<metadata>");
  const auto end = xml.find("</metadata>") + std::string("</metadata>").size();
  xml.erase(begin, end - begin);
  ASSERT_TRUE(hv->domains().Restore(SavedDomain{xml}));
  auto observed = hv->domains().ObserveVm("by-hand");
  ASSERT_TRUE(observed);
  EXPECT_FALSE(observed->Owned());
}

TEST(SimNodeTest, GrowingAVolumeIsEmulated) {
  testing::TempDir dir;
  auto hv = Connect(SimNode(dir.path()));
  ASSERT_TRUE(hv);
  ASSERT_TRUE(hv->capabilities().volume_resize);
  ASSERT_TRUE(hv->storage().CreateVolume(VolumeSpec{"default", "v.qcow2", kGiB}));
  auto grown = hv->storage().ResizeVolume("default", "v.qcow2", 2 * kGiB);
  ASSERT_TRUE(grown) << grown.error().ToString();
  auto vol = hv->storage().GetVolume("default", "v.qcow2");
  ASSERT_TRUE(vol);
  EXPECT_EQ(vol->capacity, 2 * kGiB);
}

TEST(SimNodeTest, MissingDomainIsNotFound) {
  testing::TempDir dir;
  auto hv = Connect(SimNode(dir.path()));
  ASSERT_TRUE(hv);
  auto r = hv->power().Start("nope");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
}

}  // namespace
}  // namespace gitvirt
