// What a domain definition holds that a manifest cannot say: named, so an update never drops it
// silently; and what libvirt or gitvirt's own simulation add: never named, so no VM is noisy.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <initializer_list>
#include <string_view>

#include "domain_xml.h"

namespace gitvirt {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

// Built with append: GCC 12 at -O2 calls `literal + std::string` an out-of-bounds memcpy
// (-Warray-bounds, GCC bug 105329).
std::string Cat(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (std::string_view p : parts) out.append(p);
  return out;
}

std::vector<std::string> Unexpressed(const std::string& os, const std::string& devices,
                                     const std::string& metadata = "") {
  const std::string xml = Cat({"<domain type='kvm'><name>web-01</name><memory unit='KiB'>524288</memory><vcpu>1</vcpu>",
                               metadata, "<os", os, "</os><devices>", devices, "</devices></domain>"});
  auto parsed = ParseDomainXml(xml);
  EXPECT_TRUE(parsed.has_value()) << xml;
  if (!parsed) return {};
  return UnexpressedElements(*parsed, std::nullopt);
}

TEST(Unexpressed, AHandChosenLoaderAndAVariableStoreElsewhereAreNamed) {
  const auto u = Unexpressed(
      "><type arch='x86_64' machine='q35'>hvm</type>"
      "<loader readonly='yes' secure='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.secboot.fd</loader>"
      "<nvram>/srv/vars/legacy_VARS.fd</nvram>",
      "");
  EXPECT_THAT(u, Contains("os/loader[/usr/share/OVMF/OVMF_CODE.secboot.fd]"));
  EXPECT_THAT(u, Contains("os/nvram[/srv/vars/legacy_VARS.fd]"));
}

TEST(Unexpressed, FirmwareLibvirtChoseIsNotNamed) {
  const auto u = Unexpressed(
      " firmware='efi'><type arch='x86_64' machine='q35'>hvm</type>"
      "<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>"
      "<nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'>/var/lib/libvirt/qemu/nvram/web-01_VARS.fd</nvram>",
      "");
  for (const std::string& e : u) EXPECT_THAT(e, Not(HasSubstr("os/"))) << e;
}

TEST(Unexpressed, TapNamesLibvirtMadeUpAreNotNamedOnesChosenByHandAre) {
  const std::string os = "><type arch='x86_64' machine='q35'>hvm</type>";
  for (const char* dev : {"vnet0", "vnet12", "testnet3", "macvtap1"}) {
    const auto u = Unexpressed(os, Cat({"<interface type='network'><mac address='52:54:00:00:00:01'/>"
                                        "<source network='default'/><target dev='",
                                        dev, "'/><model type='virtio'/></interface>"}));
    EXPECT_TRUE(u.empty()) << dev << ": " << ::testing::PrintToString(u);
  }
  const auto u = Unexpressed(os, "<interface type='network'><source network='default'/><target dev='mytap'/>"
                                 "<model type='virtio'/></interface>");
  EXPECT_THAT(u, Contains(HasSubstr("target[dev=mytap]")));
}

TEST(Unexpressed, TheSimulationsOwnMetadataIsNotTheVms) {
  const std::string os = "><type arch='x86_64' machine='q35'>hvm</type>";
  const std::string sim = Cat({"<metadata><sim:state xmlns:sim='", kSimNamespace, "' autostart='no'/></metadata>"});
  EXPECT_TRUE(Unexpressed(os, "", sim).empty());
  const auto other = Unexpressed(os, "", "<metadata><app:info xmlns:app='https://example.com/app'/></metadata>");
  EXPECT_THAT(other, Contains("metadata/app:info"));
}

}  // namespace
}  // namespace gitvirt
