// The LiveChanges port of the libvirt adapter: a running domain brought in line with its new
// definition without a restart (AFFECT_LIVE only; the persistent definition is Define's).
#include <pugixml.hpp>

#include <functional>

#include "domain_xml.h"
#include "libvirt_node.h"
#include "lookup.h"

namespace gitvirt {
namespace {

using namespace libvirt;

Result<void> DomainOp(LibvirtNode& node, const std::string& context, const std::string& name,
                      const std::function<int(virDomainPtr)>& fn) {
  return node.connection().Change<void>(context, Touched::Domain(name), [&](virConnectPtr c) -> Result<void> {
    auto dom = LookupDomain(c, name);
    if (!dom) return std::unexpected(dom.error());
    if (fn(dom->get()) < 0) return std::unexpected(LastError(""));
    return {};
  });
}

}  // namespace

Result<void> LibvirtLiveChanges::SetVcpus(const std::string& name, int vcpus) {
  return DomainOp(node_, "setting vCPUs of " + name, name, [&](virDomainPtr d) {
    return virDomainSetVcpusFlags(d, static_cast<unsigned>(vcpus), VIR_DOMAIN_AFFECT_LIVE);
  });
}

Result<void> LibvirtLiveChanges::SetMemory(const std::string& name, std::uint64_t bytes) {
  return DomainOp(node_, "setting memory of " + name, name, [&](virDomainPtr d) {
    return virDomainSetMemoryFlags(d, bytes / 1024, VIR_DOMAIN_AFFECT_LIVE);
  });
}

Result<void> LibvirtLiveChanges::AttachDisk(const DomainDefinition& def, const std::string& disk) {
  auto xml = RenderDiskXml(def, disk);
  if (!xml) return std::unexpected(xml.error());
  return DomainOp(node_, "attaching disk " + disk + " to " + def.vm.meta.name, def.vm.meta.name,
                  [&](virDomainPtr d) { return virDomainAttachDeviceFlags(d, xml->c_str(), VIR_DOMAIN_AFFECT_LIVE); });
}

Result<void> LibvirtLiveChanges::DetachDisk(const std::string& name, const std::string& disk) {
  return DomainOp(node_, "detaching disk " + disk + " from " + name, name, [&](virDomainPtr d) {
    return virDomainDetachDeviceAlias(d, ("ua-disk-" + disk).c_str(), VIR_DOMAIN_AFFECT_LIVE);
  });
}

Result<void> LibvirtLiveChanges::AttachNic(const DomainDefinition& def, std::size_t index) {
  auto xml = RenderNicXml(def, index);
  if (!xml) return std::unexpected(xml.error());
  return DomainOp(node_, "attaching NIC " + std::to_string(index) + " to " + def.vm.meta.name, def.vm.meta.name,
                  [&](virDomainPtr d) { return virDomainAttachDeviceFlags(d, xml->c_str(), VIR_DOMAIN_AFFECT_LIVE); });
}

Result<void> LibvirtLiveChanges::DetachNic(const std::string& name, std::size_t index) {
  return DomainOp(node_, "detaching NIC " + std::to_string(index) + " from " + name, name, [&](virDomainPtr d) {
    return virDomainDetachDeviceAlias(d, ("ua-net-" + std::to_string(index)).c_str(), VIR_DOMAIN_AFFECT_LIVE);
  });
}

Result<void> LibvirtLiveChanges::ResizeDisk(const std::string& name, const std::string& disk, std::uint64_t bytes) {
  return node_.connection().Change<void>("growing disk " + disk + " of " + name, Touched::Domain(name),
                                         [&](virConnectPtr c) -> Result<void> {
    auto dom = LookupDomain(c, name);
    if (!dom) return std::unexpected(dom.error());
    // The block device by its target name, found through our alias in the live XML.
    pugi::xml_document doc;
    doc.load_string(TakeString(virDomainGetXMLDesc(dom->get(), 0)).c_str());
    std::string target;
    for (pugi::xml_node dn : doc.child("domain").child("devices").children("disk")) {
      if (std::string_view(dn.child("alias").attribute("name").as_string()) == "ua-disk-" + disk) {
        target = dn.child("target").attribute("dev").as_string();
      }
    }
    if (target.empty()) return Fail(ErrorCode::kNotFound, "the running domain has no disk " + disk);
    if (virDomainBlockResize(dom->get(), target.c_str(), bytes, VIR_DOMAIN_BLOCK_RESIZE_BYTES) < 0) {
      return std::unexpected(LastError(""));
    }
    return {};
  });
}

}  // namespace gitvirt
