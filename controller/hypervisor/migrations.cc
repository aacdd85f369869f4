#include "migrations.h"

#include <pugixml.hpp>

#include <algorithm>

#include "libvirt_node.h"
#include "lookup.h"

namespace gitvirt {

using namespace libvirt;

Result<void> MigrateLive(LibvirtNode& source, LibvirtNode& target, const std::string& vm,
                         const LiveMigration& options) {
  const std::string context = "migrating " + vm + " live from " + source.name() + " to " + target.name();
  if (!source.capabilities().migration || !target.capabilities().migration) {
    return Fail(ErrorCode::kUnsupported, "live migration needs QEMU on both nodes (" + source.capabilities().driver +
                                             " -> " + target.capabilities().driver + ")",
                context);
  }
  return source.connection().Change<void>(context, Touched::Domain(vm), [&](virConnectPtr c) -> Result<void> {
    auto dom = LookupDomain(c, vm);
    if (!dom) return std::unexpected(dom.error());
    // The target devices of the disks whose storage is copied, found by their pool/volume in
    // the live definition.
    pugi::xml_document live;
    live.load_string(TakeString(virDomainGetXMLDesc(dom->get(), 0)).c_str());
    std::vector<std::string> devices;
    for (pugi::xml_node dn : live.child("domain").child("devices").children("disk")) {
      const std::string key = std::string(dn.child("source").attribute("pool").as_string()) + "/" +
                              dn.child("source").attribute("volume").as_string();
      if (std::find(options.copy_volumes.begin(), options.copy_volumes.end(), key) != options.copy_volumes.end()) {
        devices.emplace_back(dn.child("target").attribute("dev").as_string());
      }
    }
    if (devices.size() != options.copy_volumes.size()) {
      return Fail(ErrorCode::kNotFound, "the running domain does not use every volume to copy (" +
                                            std::to_string(devices.size()) + " of " +
                                            std::to_string(options.copy_volumes.size()) + " found)");
    }
    virTypedParameterPtr params = nullptr;
    int n = 0, max = 0;
    const std::string uri = options.address.empty() ? "" : "tcp://" + options.address;
    if (!options.address.empty()) {
      virTypedParamsAddString(&params, &n, &max, VIR_MIGRATE_PARAM_URI, uri.c_str());
      virTypedParamsAddString(&params, &n, &max, VIR_MIGRATE_PARAM_LISTEN_ADDRESS, options.address.c_str());
    }
    for (const std::string& dev : devices) {
      virTypedParamsAddString(&params, &n, &max, VIR_MIGRATE_PARAM_MIGRATE_DISKS, dev.c_str());
    }
    if (options.bandwidth) {
      // MiB/s, at least 1.
      virTypedParamsAddULLong(&params, &n, &max, VIR_MIGRATE_PARAM_BANDWIDTH,
                              std::max<std::uint64_t>(1, *options.bandwidth >> 20));
    }
    unsigned int flags = VIR_MIGRATE_LIVE | VIR_MIGRATE_PERSIST_DEST | VIR_MIGRATE_UNDEFINE_SOURCE;
    // The whole disk: libvirt 9.0 refuses NON_SHARED_INC for volume disks ("pre-creation of
    // storage targets for incremental storage migration is not supported"), even when the
    // target volumes exist.
    if (!devices.empty()) flags |= VIR_MIGRATE_NON_SHARED_DISK;
    if (options.trust_storage) flags |= VIR_MIGRATE_UNSAFE;
    auto moved = target.connection().Borrow<void>([&](virConnectPtr destination) -> Result<void> {
      Domain arrived(virDomainMigrate3(dom->get(), destination, params, static_cast<unsigned>(n), flags));
      if (!arrived) return std::unexpected(LastError(""));
      return {};
    });
    virTypedParamsFree(params, n);
    return moved;
  });
}

}  // namespace gitvirt
