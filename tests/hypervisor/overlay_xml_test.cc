// External (disk-only) snapshots in a definition read back: a disk running on gitvirt's
// overlays keeps its storage (so a snapshot is not a change of the disk), the overlays are
// listed, the one in use first; an overlay somebody else made is the disk's source, as it is.
// The XML is what libvirt 9.0 wrote (virsh dumpxml --inactive) after two external snapshots of
// a running UEFI domain.
#include <gtest/gtest.h>

#include "domain_xml.h"

namespace gitvirt {
namespace {

// Where disk `name` is, as Domains::Disks reports it.
DiskLocation Location(const ParsedDomain& parsed, const std::string& disk) {
  for (const DiskLocation& l : DiskLocations(parsed)) {
    if (l.disk == disk) return l;
  }
  ADD_FAILURE() << "no disk " << disk;
  return {};
}

std::string Domain(const std::string& disk) {
  return "<domain type='qemu'><name>u1</name><memory unit='KiB'>262144</memory><vcpu>1</vcpu>"
         "<os firmware='efi'><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os><devices>" +
         disk + "</devices></domain>";
}

TEST(OverlayXml, OverlayNamesAreTheStoragePlusTheSnapshot) {
  EXPECT_EQ(ExternalSnapshotOverlay("/pool/u1-root.qcow2", "hourly-u1-20260301T010000"),
            "/pool/u1-root.qcow2.gvsnap-hourly-u1-20260301T010000");
  EXPECT_EQ(ExternalSnapshotOverlay("/pool/d.raw", "by hand/2 <x>"), "/pool/d.raw.gvsnap-by_hand_2__x_");
}

TEST(OverlayXml, ADiskOnGitvirtOverlaysKeepsItsVolume) {
  const std::string xml = Domain(
      "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
      "<source file='/pool/u1-root.qcow2.gvsnap-b'/>"
      "<backingStore type='file'><format type='qcow2'/><source file='/pool/u1-root.qcow2.gvsnap-a'/>"
      "<backingStore type='volume'><format type='qcow2'/><source pool='default' volume='u1-root.qcow2'/>"
      "</backingStore></backingStore>"
      "<target dev='vda' bus='virtio'/><alias name='ua-disk-root'/></disk>");
  auto parsed = ParseDomainXml(xml);
  ASSERT_TRUE(parsed) << parsed.error().ToString();
  EXPECT_EQ(parsed->disk_storage.at("root"), (StorageRef{"default", "u1-root.qcow2", ""}));
  EXPECT_EQ(parsed->disk_overlays.at("root"),
            (std::vector<std::string>{"/pool/u1-root.qcow2.gvsnap-b", "/pool/u1-root.qcow2.gvsnap-a"}));
  EXPECT_EQ(Location(*parsed, "root").TopPath(), "/pool/u1-root.qcow2.gvsnap-b");
  ASSERT_EQ(parsed->spec.disks.size(), 1u);
  EXPECT_EQ(parsed->spec.disks[0].pool, "default");
  EXPECT_EQ(parsed->spec.disks[0].source.type, DiskSourceType::kVolume);
  EXPECT_EQ(parsed->spec.disks[0].source.ref, "u1-root.qcow2");
}

TEST(OverlayXml, AFileDiskOnAnOverlayKeepsItsFile) {
  auto parsed = ParseDomainXml(Domain(
      "<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
      "<source file='/data/x.img.gvsnap-s1'/>"
      "<backingStore type='file'><format type='raw'/><source file='/data/x.img'/></backingStore>"
      "<target dev='vda' bus='virtio'/><alias name='ua-disk-data'/></disk>"));
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->disk_storage.at("data").path, "/data/x.img");
  EXPECT_EQ(Location(*parsed, "data").TopPath(), "/data/x.img.gvsnap-s1");
}

TEST(OverlayXml, WithoutOverlaysNothingChanges) {
  auto parsed = ParseDomainXml(Domain(
      "<disk type='volume' device='disk'><driver name='qemu' type='qcow2'/>"
      "<source pool='default' volume='u1-root.qcow2'/>"
      "<target dev='vda' bus='virtio'/><alias name='ua-disk-root'/></disk>"));
  ASSERT_TRUE(parsed);
  EXPECT_TRUE(parsed->disk_overlays.empty());
  EXPECT_EQ(Location(*parsed, "root").TopPath(), "") << "a volume: ask its pool";
}

TEST(OverlayXml, AnOverlayMadeByHandIsTheDisksSource) {
  // virsh snapshot-create-as --disk-only names overlays after the snapshot, without gitvirt's
  // infix: the disk really changed source, and that shows.
  auto parsed = ParseDomainXml(Domain(
      "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
      "<source file='/pool/u1-root.1700000000'/>"
      "<backingStore type='volume'><format type='qcow2'/><source pool='default' volume='u1-root.qcow2'/>"
      "</backingStore><target dev='vda' bus='virtio'/><alias name='ua-disk-root'/></disk>"));
  ASSERT_TRUE(parsed);
  EXPECT_TRUE(parsed->disk_overlays.empty());
  EXPECT_EQ(parsed->disk_storage.at("root").path, "/pool/u1-root.1700000000");
}

}  // namespace
}  // namespace gitvirt
