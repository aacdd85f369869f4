#include "lookup.h"

#include <pugixml.hpp>

#include <algorithm>
#include <tuple>

namespace gitvirt {

using namespace libvirt;

PowerState ToPower(int state) {
  switch (state) {
    case VIR_DOMAIN_RUNNING:
    case VIR_DOMAIN_BLOCKED: return PowerState::kRunning;
    case VIR_DOMAIN_PAUSED:
    case VIR_DOMAIN_PMSUSPENDED: return PowerState::kPaused;
    default: return PowerState::kStopped;
  }
}

std::string StateName(int state) {
  switch (state) {
    case VIR_DOMAIN_RUNNING: return "running";
    case VIR_DOMAIN_BLOCKED: return "blocked";
    case VIR_DOMAIN_PAUSED: return "paused";
    case VIR_DOMAIN_SHUTDOWN: return "shutting down";
    case VIR_DOMAIN_SHUTOFF: return "shut off";
    case VIR_DOMAIN_CRASHED: return "crashed";
    case VIR_DOMAIN_PMSUSPENDED: return "pm-suspended";
    default: return "no state";
  }
}

Result<Domain> LookupDomain(virConnectPtr c, const std::string& name) {
  Domain dom(virDomainLookupByName(c, name.c_str()));
  if (!dom) return std::unexpected(LastError("looking up domain " + name));
  return dom;
}

Result<Volume> LookupVolume(virConnectPtr c, const std::string& pool, const std::string& name) {
  Pool p(virStoragePoolLookupByName(c, pool.c_str()));
  if (!p) return std::unexpected(LastError("looking up pool " + pool));
  Volume v(virStorageVolLookupByName(p.get(), name.c_str()));
  if (!v) return std::unexpected(LastError("looking up volume " + pool + "/" + name));
  return v;
}

ObservedVolume DescribeVolume(virStorageVolPtr v, const std::string& pool, bool with_xml) {
  ObservedVolume out;
  out.pool = pool;
  out.name = virStorageVolGetName(v);
  out.path = TakeString(virStorageVolGetPath(v));
  virStorageVolInfo info;
  if (virStorageVolGetInfo(v, &info) == 0) {
    out.capacity = info.capacity;
    out.allocation = info.allocation;
  }
  if (with_xml) {
    virStorageVolInfo physical;
    if (virStorageVolGetInfoFlags(v, &physical, VIR_STORAGE_VOL_GET_PHYSICAL) == 0) out.physical = physical.allocation;
    pugi::xml_document doc;
    doc.load_string(TakeString(virStorageVolGetXMLDesc(v, 0)).c_str());
    out.format = doc.child("volume").child("target").child("format").attribute("type").as_string();
    out.backing = doc.child("volume").child("backingStore").child("path").text().as_string();
  }
  return out;
}

std::string PoolTargetPath(virStoragePoolPtr p) {
  pugi::xml_document doc;
  doc.load_string(TakeString(virStoragePoolGetXMLDesc(p, 0)).c_str());
  return doc.child("pool").child("target").child("path").text().as_string();
}

Result<std::vector<ObservedSnapshot>> ReadSnapshots(virDomainPtr dom) {
  virDomainSnapshotPtr* snaps = nullptr;
  const int n = virDomainListAllSnapshots(dom, &snaps, 0);
  if (n < 0) return std::unexpected(LastError(""));
  std::vector<ObservedSnapshot> out;
  for (int i = 0; i < n; ++i) {
    Snapshot s(snaps[i]);
    const std::string xml = TakeString(virDomainSnapshotGetXMLDesc(s.get(), 0));
    pugi::xml_document doc;
    doc.load_string(xml.c_str());
    pugi::xml_node root = doc.child("domainsnapshot");
    ObservedSnapshot snap;
    snap.name = root.child("name").text().as_string();
    snap.created = TimePoint(std::chrono::seconds(root.child("creationTime").text().as_llong()));
    snap.state = root.child("state").text().as_string();
    std::string description = root.child("description").text().as_string();
    if (description.starts_with(kPolicyPrefix)) {
      const auto end = description.find(']');
      snap.policy = description.substr(kPolicyPrefix.size(), end - kPolicyPrefix.size());
      description = end + 2 <= description.size() ? description.substr(end + 2) : "";
    }
    snap.description = description;
    snap.current = virDomainSnapshotIsCurrent(s.get(), 0) == 1;
    out.push_back(std::move(snap));
  }
  free(snaps);
  // libvirt's order is not by time: creation time, then name.
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return std::tie(a.created, a.name) < std::tie(b.created, b.name);
  });
  return out;
}

}  // namespace gitvirt
