#include "observe.h"

#include <pugixml.hpp>

#include <algorithm>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "domain_xml.h"
#include "gitvirt/core/fingerprint.h"
#include "gitvirt/core/json.h"
#include "libvirt_node.h"
#include "lookup.h"

namespace gitvirt {
namespace {

using namespace libvirt;

// What a node-wide observation learns once instead of asking every domain: the names of the
// persistent, autostarted and snapshotted domains (one listing each), and the pools' volumes
// by "pool/name" and by path.
struct NodeFacts {
  std::set<std::string, std::less<>> persistent, autostart, with_snapshots;
  std::map<std::string, std::uint64_t, std::less<>> capacity_by_volume, capacity_by_path;
  virConnectPtr ask = nullptr;  // set: one domain's observation, volumes are looked up one by one
};

// The same for one domain, asked of the domain itself.
NodeFacts SingleDomainFacts(virConnectPtr c, virDomainPtr dom) {
  NodeFacts f;
  const std::string name = virDomainGetName(dom);
  if (virDomainIsPersistent(dom) == 1) f.persistent.insert(name);
  int autostart = 0;
  if (virDomainGetAutostart(dom, &autostart) == 0 && autostart != 0) f.autostart.insert(name);
  if (virDomainSnapshotNum(dom, 0) > 0) f.with_snapshots.insert(name);
  f.ask = c;
  return f;
}

std::optional<std::uint64_t> AskCapacity(virConnectPtr c, const StorageRef& ref) {
  Volume v;
  if (ref.IsVolume()) {
    Pool pool(virStoragePoolLookupByName(c, ref.pool.c_str()));
    if (pool) v.reset(virStorageVolLookupByName(pool.get(), ref.volume.c_str()));
  } else {
    v.reset(virStorageVolLookupByPath(c, ref.path.c_str()));
  }
  virStorageVolInfo info;
  if (!v || virStorageVolGetInfo(v.get(), &info) != 0) return std::nullopt;
  return info.capacity;
}

std::set<std::string, std::less<>> DomainNames(virConnectPtr c, unsigned int flags) {
  std::set<std::string, std::less<>> names;
  virDomainPtr* domains = nullptr;
  const int n = virConnectListAllDomains(c, &domains, flags);
  for (int i = 0; i < n; ++i) {
    Domain dom(domains[i]);
    names.emplace(virDomainGetName(dom.get()));
  }
  free(domains);
  return names;
}

NodeFacts GatherFacts(virConnectPtr c, const std::vector<ObservedPool>& pools) {
  NodeFacts f;
  f.persistent = DomainNames(c, VIR_CONNECT_LIST_DOMAINS_PERSISTENT);
  f.autostart = DomainNames(c, VIR_CONNECT_LIST_DOMAINS_AUTOSTART);
  f.with_snapshots = DomainNames(c, VIR_CONNECT_LIST_DOMAINS_HAS_SNAPSHOT);
  for (const ObservedPool& p : pools) {
    for (const ObservedVolume& v : p.volumes) {
      f.capacity_by_volume.emplace(p.name + "/" + v.name, v.capacity);
      if (!v.path.empty()) f.capacity_by_path.emplace(v.path, v.capacity);
    }
  }
  return f;
}

ObservedVm DescribeDomain(const LibvirtNode& node, virDomainPtr dom, const NodeFacts& facts) {
  ObservedVm vm;
  vm.node = node.name();
  vm.name = virDomainGetName(dom);
  char uuid[VIR_UUID_STRING_BUFLEN];
  if (virDomainGetUUIDString(dom, uuid) == 0) vm.uuid = uuid;
  int state = 0, reason = 0;
  virDomainGetState(dom, &state, &reason, 0);
  vm.power = ToPower(state);
  vm.state_detail = StateName(state);
  vm.persistent = facts.persistent.contains(vm.name);
  vm.autostart = facts.autostart.contains(vm.name);
  const std::string xml = TakeString(virDomainGetXMLDesc(dom, VIR_DOMAIN_XML_INACTIVE));
  vm.definition_fingerprint = Fingerprint(xml);
  auto parsed = ParseDomainXml(xml);
  if (!parsed) {
    vm.state_detail += " (unreadable definition: " + parsed.error().message + ")";
    return vm;
  }
  vm.owner = parsed->owner;
  if (vm.owner && !vm.owner->applied_spec.empty()) {
    auto json = nlohmann::json::parse(vm.owner->applied_spec, nullptr, false);
    if (!json.is_discarded()) {
      if (auto spec = VmSpecFromJson(json)) vm.last_applied = std::move(*spec);
    }
  }
  auto capacity_of = [&](const StorageRef& ref) -> std::optional<std::uint64_t> {
    if (facts.ask != nullptr) return AskCapacity(facts.ask, ref);
    const auto& index = ref.IsVolume() ? facts.capacity_by_volume : facts.capacity_by_path;
    auto it = index.find(ref.IsVolume() ? ref.pool + "/" + ref.volume : ref.path);
    if (it == index.end()) return std::nullopt;
    return it->second;
  };
  vm.actual = NormalizeObserved(*parsed, vm.last_applied, capacity_of);
  vm.unexpressed = UnexpressedElements(*parsed, vm.last_applied);
  vm.actual.node = node.name();
  vm.actual.power_state = vm.power;
  vm.actual.autostart = vm.autostart;
  if (facts.with_snapshots.contains(vm.name)) {
    if (auto snapshots = ReadSnapshots(dom)) vm.snapshots = std::move(*snapshots);
  }
  return vm;
}

Result<std::vector<ObservedPool>> ObservePools(virConnectPtr c) {
  virStoragePoolPtr* pools = nullptr;
  const int n = virConnectListAllStoragePools(c, &pools, 0);
  if (n < 0) return std::unexpected(LastError("listing pools"));
  std::vector<ObservedPool> out;
  for (int i = 0; i < n; ++i) {
    Pool p(pools[i]);
    ObservedPool pool;
    pool.name = virStoragePoolGetName(p.get());
    pool.active = virStoragePoolIsActive(p.get()) == 1;
    pool.path = PoolTargetPath(p.get());
    if (pool.active) {
      virStorageVolPtr* vols = nullptr;
      const int m = virStoragePoolListAllVolumes(p.get(), &vols, 0);
      for (int j = 0; j < m; ++j) {
        Volume v(vols[j]);
        pool.volumes.push_back(DescribeVolume(v.get(), pool.name, false));
      }
      free(vols);
      std::sort(pool.volumes.begin(), pool.volumes.end(),
                [](const auto& a, const auto& b) { return a.name < b.name; });
    }
    out.push_back(std::move(pool));
  }
  free(pools);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

Result<ObservedNode> ObserveNode(const LibvirtNode& self, virConnectPtr c) {
  const NodeConfig& config = self.config();
  ObservedNode node;
  node.name = config.name;
  node.capabilities = self.capabilities();
  virNodeInfo info;
  if (virNodeGetInfo(c, &info) < 0) return std::unexpected(LastError("reading node info"));
  node.cpus = config.capacity_vcpus.value_or(static_cast<int>(info.cpus));
  node.memory = config.capacity_memory.value_or(static_cast<std::uint64_t>(info.memory) * 1024);
  auto pools = ObservePools(c);
  if (!pools) return std::unexpected(pools.error());
  node.pools = std::move(*pools);
  virNetworkPtr* nets = nullptr;
  const int nn = virConnectListAllNetworks(c, &nets, 0);
  for (int i = 0; i < nn; ++i) {
    Network n(nets[i]);
    node.networks.emplace_back(virNetworkGetName(n.get()));
  }
  free(nets);
  std::sort(node.networks.begin(), node.networks.end());
  if (self.capabilities().driver != "TEST") {
    // Host interfaces, for the bridges NICs name (the interface driver lists them from udev;
    // a daemon without it leaves them unchecked).
    virInterfacePtr* ifaces = nullptr;
    const int ni = virConnectListAllInterfaces(c, &ifaces, 0);
    if (ni >= 0) {
      node.interfaces.emplace();
      for (int i = 0; i < ni; ++i) {
        Interface iface(ifaces[i]);
        node.interfaces->emplace_back(virInterfaceGetName(iface.get()));
      }
      free(ifaces);
      std::sort(node.interfaces->begin(), node.interfaces->end());
    } else {
      virResetLastError();
    }
  }
  virDomainPtr* domains = nullptr;
  const int nd = virConnectListAllDomains(c, &domains, 0);
  if (nd < 0) return std::unexpected(LastError("listing domains"));
  const NodeFacts facts = GatherFacts(c, node.pools);
  node.vms.reserve(nd);
  for (int i = 0; i < nd; ++i) {
    Domain dom(domains[i]);
    node.vms.push_back(DescribeDomain(self, dom.get(), facts));
  }
  free(domains);
  std::sort(node.vms.begin(), node.vms.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  node.reachable = true;
  return node;
}

}  // namespace

ObservedVm ObserveDomain(const LibvirtNode& node, virConnectPtr c, virDomainPtr dom) {
  return DescribeDomain(node, dom, SingleDomainFacts(c, dom));
}

Result<ObservedNode> LibvirtNode::Observe() {
  return connection_.Query<ObservedNode>("observing node " + config_.name,
                                         [&](virConnectPtr c) { return ObserveNode(*this, c); });
}

}  // namespace gitvirt
