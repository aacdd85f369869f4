// The definition of a VM restored from a backup (Domains::DefineRestored): renamed, on the
// restored volumes, without what belongs to the original (UUID, MACs, NVRAM, seed, a disk the
// backup does not hold), with gitvirt's owner mark only when the VM is managed.
#include <gtest/gtest.h>

#include "domain_xml.h"
#include "restore_xml.h"

namespace gitvirt {
namespace {

TEST(RewriteDomainForRestore, RenamesRepointsAndDropsWhatBelongsToTheOriginal) {
  VirtualMachine vm;
  vm.meta.name = "db-01";
  vm.spec.node = "hv1";
  vm.spec.memory = 1ULL << 30;
  vm.spec.firmware.type = FirmwareType::kUefi;
  Disk root;
  root.name = "root";
  root.size = 1ULL << 30;
  Disk scratch;
  scratch.name = "scratch";
  scratch.size = 1ULL << 30;
  vm.spec.disks = {root, scratch};
  Nic nic;
  nic.network = "default";
  nic.mac = "52:54:00:12:34:56";
  vm.spec.networks = {nic};
  DomainDefinition def;
  def.vm = vm;
  def.owner.name = "db-01";
  def.owner.created_volumes = {"default/db-01-root.qcow2"};
  def.owner.spec_hash = "h";
  def.seed = StorageRef{"default", "db-01-cidata-1234.iso", ""};
  def.console_log = "/var/log/gitvirt/db-01.log";
  const std::string xml = RenderDomainXml(def, "kvm");
  const std::map<std::string, StorageRef> volumes = {{"root", StorageRef{"fast", "db-02-root.qcow2", ""}}};

  auto unmanaged = RewriteDomainForRestore(xml, "db-02", volumes, false, "job-1");
  ASSERT_TRUE(unmanaged) << unmanaged.error().ToString();
  auto parsed = ParseDomainXml(*unmanaged);
  ASSERT_TRUE(parsed) << parsed.error().ToString();
  EXPECT_EQ(parsed->name, "db-02");
  EXPECT_EQ(parsed->uuid, "");
  EXPECT_FALSE(parsed->owner);
  ASSERT_EQ(parsed->spec.disks.size(), 1u) << "a disk not in the backup cannot be restored";
  EXPECT_EQ(parsed->disk_storage.at("root"), (StorageRef{"fast", "db-02-root.qcow2", ""}));
  EXPECT_FALSE(parsed->seed);
  EXPECT_EQ(unmanaged->find("52:54:00:12:34:56"), std::string::npos);
  EXPECT_EQ(unmanaged->find("<nvram"), std::string::npos);
  EXPECT_NE(unmanaged->find("/var/log/gitvirt/db-02.log"), std::string::npos);

  auto managed = RewriteDomainForRestore(xml, "db-02", volumes, true, "job-1");
  ASSERT_TRUE(managed);
  parsed = ParseDomainXml(*managed);
  ASSERT_TRUE(parsed && parsed->owner);
  EXPECT_EQ(parsed->owner->name, "db-02");
  EXPECT_EQ(parsed->owner->job, "job-1");
  EXPECT_EQ(parsed->owner->created_volumes, std::vector<std::string>{"fast/db-02-root.qcow2"});

  EXPECT_FALSE(RewriteDomainForRestore(xml, "x", {{"nope", StorageRef{"p", "v", ""}}}, false, ""));
}

}  // namespace
}  // namespace gitvirt
