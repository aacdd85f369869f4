#include "domain_xml.h"

#include <pugixml.hpp>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "gitvirt/core/cloud_init.h"
#include "gitvirt/core/json.h"
#include "gitvirt/core/planner.h"
#include "gitvirt/core/storage.h"

namespace gitvirt {
namespace {

using pugi::xml_node;

std::string_view LocalName(const char* qualified) {
  std::string_view name(qualified);
  const auto colon = name.find(':');
  return colon == std::string_view::npos ? name : name.substr(colon + 1);
}

xml_node Child(xml_node parent, std::string_view local) {
  for (xml_node c : parent.children()) {
    if (LocalName(c.name()) == local) return c;
  }
  return {};
}

void Text(xml_node parent, const char* name, const std::string& value) {
  parent.append_child(name).text().set(value.c_str());
}

void Attr(xml_node node, const char* name, const std::string& value) {
  node.append_attribute(name).set_value(value.c_str());
}

std::string ToXml(const pugi::xml_document& doc) {
  std::ostringstream out;
  doc.save(out, "  ", pugi::format_indent | pugi::format_no_declaration);
  return out.str();
}

// Device names by bus: virtio vda.., sata/scsi sda.., ide hda..
class TargetNames {
 public:
  std::string Next(DiskBus bus) {
    int& n = counters_[bus == DiskBus::kScsi ? DiskBus::kSata : bus];
    const char* prefix = bus == DiskBus::kVirtio ? "vd" : bus == DiskBus::kIde ? "hd" : "sd";
    return std::string(prefix) + Letters(n++);
  }

 private:
  static std::string Letters(int n) {
    std::string s;
    do {
      s.insert(s.begin(), static_cast<char>('a' + n % 26));
      n = n / 26 - 1;
    } while (n >= 0);
    return s;
  }
  std::map<DiskBus, int> counters_;
};

void AppendSource(xml_node disk, const StorageRef& ref) {
  xml_node source = disk.append_child("source");
  if (ref.IsVolume()) {
    Attr(source, "pool", ref.pool);
    Attr(source, "volume", ref.volume);
  } else {
    Attr(source, "file", ref.path);
  }
}

void AppendDisk(xml_node devices, const VirtualMachine& vm, const Disk& disk, const std::string& dev,
                int iothread) {
  const StorageRef ref = DiskStorage(vm, disk);
  xml_node d = devices.append_child("disk");
  Attr(d, "type", ref.IsVolume() ? "volume" : "file");
  Attr(d, "device", "disk");
  xml_node driver = d.append_child("driver");
  Attr(driver, "name", "qemu");
  Attr(driver, "type", std::string(EnumName(disk.format)));
  if (disk.cache != DiskCache::kDefault) Attr(driver, "cache", std::string(EnumName(disk.cache)));
  if (disk.discard) Attr(driver, "discard", "unmap");
  if (iothread > 0) Attr(driver, "iothread", std::to_string(iothread));
  AppendSource(d, ref);
  xml_node target = d.append_child("target");
  Attr(target, "dev", dev);
  Attr(target, "bus", std::string(EnumName(disk.bus)));
  if (disk.ssd && disk.bus != DiskBus::kVirtio) Attr(target, "rotation_rate", "1");
  if (disk.readonly) d.append_child("readonly");
  if (disk.boot_order) Attr(d.append_child("boot"), "order", std::to_string(*disk.boot_order));
  Attr(d.append_child("alias"), "name", "ua-disk-" + disk.name);
}

void AppendCdrom(xml_node devices, const StorageRef& ref, DiskBus bus, const std::string& dev,
                 std::optional<int> boot_order, const std::string& alias) {
  xml_node d = devices.append_child("disk");
  Attr(d, "type", ref.IsVolume() ? "volume" : "file");
  Attr(d, "device", "cdrom");
  xml_node driver = d.append_child("driver");
  Attr(driver, "name", "qemu");
  Attr(driver, "type", "raw");
  AppendSource(d, ref);
  xml_node target = d.append_child("target");
  Attr(target, "dev", dev);
  Attr(target, "bus", std::string(EnumName(bus)));
  d.append_child("readonly");
  if (boot_order) Attr(d.append_child("boot"), "order", std::to_string(*boot_order));
  Attr(d.append_child("alias"), "name", alias);
}

void AppendNic(xml_node devices, const Nic& nic, std::size_t index, const std::string& mac) {
  xml_node n = devices.append_child("interface");
  Attr(n, "type", nic.network.empty() ? "bridge" : "network");
  xml_node source = n.append_child("source");
  if (nic.network.empty()) {
    Attr(source, "bridge", nic.bridge);
  } else {
    Attr(source, "network", nic.network);
  }
  Attr(n.append_child("mac"), "address", mac);
  Attr(n.append_child("model"), "type", std::string(EnumName(nic.model)));
  if (nic.vlan) Attr(n.append_child("vlan").append_child("tag"), "id", std::to_string(*nic.vlan));
  if (!nic.filter.empty()) Attr(n.append_child("filterref"), "filter", nic.filter);
  if (nic.boot_order) Attr(n.append_child("boot"), "order", std::to_string(*nic.boot_order));
  Attr(n.append_child("alias"), "name", "ua-net-" + std::to_string(index));
}

// Device names are assigned in a fixed order: disks, cdroms, then the seed.
struct DeviceLayout {
  std::map<std::string, std::string> disk_dev;
  std::map<std::string, std::string> cdrom_dev;
  std::string seed_dev;
  std::map<std::string, int> iothread;
  int iothreads = 0;
};

DeviceLayout Layout(const DomainDefinition& def) {
  DeviceLayout layout;
  TargetNames names;
  for (const Disk& disk : def.vm.spec.disks) {
    layout.disk_dev[disk.name] = names.Next(disk.bus);
    if (disk.iothread) layout.iothread[disk.name] = ++layout.iothreads;
  }
  for (const Cdrom& c : def.vm.spec.cdroms) layout.cdrom_dev[c.name] = names.Next(c.bus);
  if (def.seed) layout.seed_dev = names.Next(DiskBus::kSata);
  return layout;
}

std::string PciAttr(const std::string& value) { return "0x" + value; }

}  // namespace

std::string RenderOwnerXml(const Ownership& owner) {
  pugi::xml_document doc;
  xml_node o = doc.append_child((std::string(kOwnerPrefix) + ":owner").c_str());
  Attr(o, ("xmlns:" + std::string(kOwnerPrefix)).c_str(), std::string(kOwnerNamespace));
  Text(o, "kind", std::string(EnumName(owner.kind)));
  Text(o, "name", owner.name);
  if (!owner.cluster.empty()) Text(o, "cluster", owner.cluster);
  if (!owner.group.empty()) Text(o, "group", owner.group);
  Text(o, "specHash", owner.spec_hash);
  Text(o, "revision", owner.revision);
  if (!owner.job.empty()) Text(o, "job", owner.job);
  if (!owner.cloud_init_hash.empty()) Text(o, "cloudInitHash", owner.cloud_init_hash);
  for (const std::string& v : owner.created_volumes) Text(o, "createdVolume", v);
  if (!owner.labels.empty()) {
    xml_node labels = o.append_child("labels");
    for (const auto& [k, v] : owner.labels) {
      xml_node l = labels.append_child("label");
      Attr(l, "key", k);
      l.text().set(v.c_str());
    }
  }
  for (const std::string& t : owner.tags) Text(o, "tag", t);
  if (!owner.applied_spec.empty()) Text(o, "applied", owner.applied_spec);
  return ToXml(doc);
}

namespace {
std::optional<Ownership> ReadOwner(xml_node o) {
  if (!o) return std::nullopt;
  Ownership owner;
  owner.kind = ParseEnum<Kind>(Child(o, "kind").text().as_string()).value_or(Kind::kVirtualMachine);
  owner.name = Child(o, "name").text().as_string();
  owner.cluster = Child(o, "cluster").text().as_string();
  owner.group = Child(o, "group").text().as_string();
  owner.spec_hash = Child(o, "specHash").text().as_string();
  owner.revision = Child(o, "revision").text().as_string();
  owner.job = Child(o, "job").text().as_string();
  owner.cloud_init_hash = Child(o, "cloudInitHash").text().as_string();
  owner.applied_spec = Child(o, "applied").text().as_string();
  for (xml_node c : o.children()) {
    const std::string_view local = LocalName(c.name());
    if (local == "createdVolume") owner.created_volumes.emplace_back(c.text().as_string());
    if (local == "tag") owner.tags.emplace_back(c.text().as_string());
    if (local == "labels") {
      for (xml_node l : c.children()) owner.labels[l.attribute("key").as_string()] = l.text().as_string();
    }
  }
  return owner;
}

// gitvirt's element in <metadata>, whatever prefix the namespace was given.
xml_node FindOwner(xml_node metadata) {
  for (xml_node c : metadata.children()) {
    if (LocalName(c.name()) != "owner") continue;
    for (pugi::xml_attribute a : c.attributes()) {
      if (std::string_view(a.name()).starts_with("xmlns") && a.value() == kOwnerNamespace) return c;
    }
  }
  return {};
}
}  // namespace

Result<Ownership> ParseOwnerXml(std::string_view xml) {
  pugi::xml_document doc;
  if (!doc.load_buffer(xml.data(), xml.size())) {
    return Fail(ErrorCode::kInvalidArgument, "owner metadata is not XML");
  }
  auto owner = ReadOwner(doc.first_child());
  if (!owner) return Fail(ErrorCode::kInvalidArgument, "no owner element");
  return *owner;
}

std::string RenderDomainXml(const DomainDefinition& def, std::string_view virt_type) {
  const VmSpec& spec = def.vm.spec;
  const DeviceLayout layout = Layout(def);
  pugi::xml_document doc;
  xml_node dom = doc.append_child("domain");
  Attr(dom, "type", std::string(virt_type));
  Text(dom, "name", def.vm.meta.name);
  if (!spec.description.empty()) Text(dom, "description", spec.description);
  {
    pugi::xml_document owner_doc;
    owner_doc.load_string(RenderOwnerXml(def.owner).c_str());
    dom.append_child("metadata").append_copy(owner_doc.first_child());
  }
  const std::uint64_t max_memory = spec.max_memory.value_or(spec.memory);
  xml_node memory = dom.append_child("memory");
  Attr(memory, "unit", "KiB");
  memory.text().set(std::to_string(max_memory / 1024).c_str());
  xml_node current_memory = dom.append_child("currentMemory");
  Attr(current_memory, "unit", "KiB");
  current_memory.text().set(std::to_string(spec.memory / 1024).c_str());
  xml_node vcpu = dom.append_child("vcpu");
  Attr(vcpu, "placement", "static");
  const int max_vcpus = spec.max_vcpus.value_or(spec.vcpus);
  if (max_vcpus != spec.vcpus) Attr(vcpu, "current", std::to_string(spec.vcpus));
  vcpu.text().set(std::to_string(max_vcpus).c_str());
  if (layout.iothreads > 0) dom.append_child("iothreads").text().set(layout.iothreads);

  xml_node os = dom.append_child("os");
  if (spec.firmware.type == FirmwareType::kUefi) {
    Attr(os, "firmware", "efi");
  }
  xml_node type = os.append_child("type");
  Attr(type, "arch", "x86_64");
  Attr(type, "machine", spec.machine);
  type.text().set("hvm");
  if (spec.boot) {
    Text(os, "kernel", spec.boot->kernel);
    if (!spec.boot->initrd.empty()) Text(os, "initrd", spec.boot->initrd);
    if (!spec.boot->cmdline.empty()) Text(os, "cmdline", spec.boot->cmdline);
  }
  if (spec.firmware.type == FirmwareType::kUefi) {
    xml_node fw = os.append_child("firmware");
    for (const char* feature : {"secure-boot", "enrolled-keys"}) {
      xml_node f = fw.append_child("feature");
      Attr(f, "enabled", spec.firmware.secure_boot ? "yes" : "no");
      Attr(f, "name", feature);
    }
  }
  xml_node features = dom.append_child("features");
  features.append_child("acpi");
  features.append_child("apic");
  if (spec.firmware.secure_boot) Attr(features.append_child("smm"), "state", "on");

  if (spec.cpu.mode != CpuMode::kDefault || spec.cpu.topology) {
    xml_node cpu = dom.append_child("cpu");
    if (spec.cpu.mode != CpuMode::kDefault) Attr(cpu, "mode", std::string(EnumName(spec.cpu.mode)));
    if (!spec.cpu.model.empty()) Text(cpu, "model", spec.cpu.model);
    if (spec.cpu.topology) {
      xml_node t = cpu.append_child("topology");
      Attr(t, "sockets", std::to_string(spec.cpu.topology->sockets));
      Attr(t, "dies", "1");
      Attr(t, "cores", std::to_string(spec.cpu.topology->cores));
      Attr(t, "threads", std::to_string(spec.cpu.topology->threads));
    }
  }
  Attr(dom.append_child("clock"), "offset", "utc");
  Text(dom, "on_poweroff", "destroy");
  Text(dom, "on_reboot", "restart");
  Text(dom, "on_crash", "destroy");

  xml_node devices = dom.append_child("devices");
  for (const Disk& disk : spec.disks) {
    auto io = layout.iothread.find(disk.name);
    AppendDisk(devices, def.vm, disk, layout.disk_dev.at(disk.name), io == layout.iothread.end() ? 0 : io->second);
  }
  for (const Cdrom& c : spec.cdroms) {
    auto src = def.cdrom_sources.find(c.name);
    const StorageRef ref = src != def.cdrom_sources.end() ? src->second : StorageRef{"", "", c.path};
    AppendCdrom(devices, ref, c.bus, layout.cdrom_dev.at(c.name), c.boot_order, "ua-cdrom-" + c.name);
  }
  if (def.seed) AppendCdrom(devices, *def.seed, DiskBus::kSata, layout.seed_dev, std::nullopt, "ua-cidata");
  if (std::any_of(spec.disks.begin(), spec.disks.end(), [](const Disk& d) { return d.bus == DiskBus::kScsi; })) {
    xml_node controller = devices.append_child("controller");
    Attr(controller, "type", "scsi");
    Attr(controller, "model", "virtio-scsi");
  }
  // Every NIC gets a stable MAC (the manifest's, or derived from the VM's name), so the
  // cloud-init network config can match it and DHCP leases survive redefinitions.
  for (std::size_t i = 0; i < spec.networks.size(); ++i) {
    AppendNic(devices, spec.networks[i], i, NicMac(def.vm, i));
  }
  if (spec.graphics.type != GraphicsType::kNone) {
    xml_node g = devices.append_child("graphics");
    Attr(g, "type", std::string(EnumName(spec.graphics.type)));
    if (spec.graphics.port) {
      Attr(g, "port", std::to_string(*spec.graphics.port));
      Attr(g, "autoport", "no");
    } else {
      Attr(g, "port", "-1");
      Attr(g, "autoport", "yes");
    }
    if (!def.graphics_password.empty()) Attr(g, "passwd", def.graphics_password);
    xml_node listen = g.append_child("listen");
    Attr(listen, "type", "address");
    Attr(listen, "address", spec.graphics.listen);
  }
  if (spec.graphics.video != VideoModel::kNone && spec.graphics.type != GraphicsType::kNone) {
    Attr(devices.append_child("video").append_child("model"), "type",
         std::string(EnumName(spec.graphics.video)));
  }
  for (std::size_t i = 0; i < spec.gpus.size(); ++i) {
    const Gpu& gpu = spec.gpus[i];
    xml_node h = devices.append_child("hostdev");
    Attr(h, "mode", "subsystem");
    if (!gpu.pci_address.empty()) {
      Attr(h, "type", "pci");
      Attr(h, "managed", "yes");
      // dddd:bb:ss.f
      xml_node a = h.append_child("source").append_child("address");
      Attr(a, "domain", PciAttr(gpu.pci_address.substr(0, 4)));
      Attr(a, "bus", PciAttr(gpu.pci_address.substr(5, 2)));
      Attr(a, "slot", PciAttr(gpu.pci_address.substr(8, 2)));
      Attr(a, "function", PciAttr(gpu.pci_address.substr(11, 1)));
    } else {
      Attr(h, "type", "mdev");
      Attr(h, "model", "vfio-pci");
      Attr(h.append_child("source").append_child("address"), "uuid", gpu.mdev_uuid);
    }
    Attr(h.append_child("alias"), "name", "ua-gpu-" + std::to_string(i));
  }
  if (spec.guest_agent) {
    xml_node ch = devices.append_child("channel");
    Attr(ch, "type", "unix");
    xml_node t = ch.append_child("target");
    Attr(t, "type", "virtio");
    Attr(t, "name", "org.qemu.guest_agent.0");
  }
  if (spec.firmware.tpm) {
    xml_node tpm = devices.append_child("tpm");
    Attr(tpm, "model", "tpm-crb");
    xml_node backend = tpm.append_child("backend");
    Attr(backend, "type", "emulator");
    Attr(backend, "version", "2.0");
  }
  xml_node serial = devices.append_child("serial");
  Attr(serial, "type", "pty");
  if (!def.console_log.empty()) {
    xml_node log = serial.append_child("log");
    Attr(log, "file", def.console_log);
    // Truncated at every start: the log is this boot's, which is what readiness by
    // consoleMarker needs (an old boot's marker must not count).
    Attr(log, "append", "off");
  }
  Attr(serial.append_child("target"), "port", "0");
  Attr(devices.append_child("memballoon"), "model", "virtio");
  return ToXml(doc);
}

Result<std::string> RenderDiskXml(const DomainDefinition& def, const std::string& name) {
  const DeviceLayout layout = Layout(def);
  for (const Disk& disk : def.vm.spec.disks) {
    if (disk.name != name) continue;
    pugi::xml_document doc;
    xml_node devices = doc.append_child("devices");
    auto io = layout.iothread.find(disk.name);
    AppendDisk(devices, def.vm, disk, layout.disk_dev.at(disk.name), io == layout.iothread.end() ? 0 : io->second);
    pugi::xml_document out;
    out.append_copy(devices.first_child());
    return ToXml(out);
  }
  return Fail(ErrorCode::kNotFound, "no disk named " + name);
}

Result<std::string> RenderNicXml(const DomainDefinition& def, std::size_t index) {
  if (index >= def.vm.spec.networks.size()) {
    return Fail(ErrorCode::kNotFound, "no NIC " + std::to_string(index));
  }
  pugi::xml_document doc;
  xml_node devices = doc.append_child("devices");
  AppendNic(devices, def.vm.spec.networks[index], index, NicMac(def.vm, index));
  pugi::xml_document out;
  out.append_copy(devices.first_child());
  return ToXml(out);
}

namespace {

std::uint64_t MemoryBytes(xml_node node) {
  const std::uint64_t value = node.text().as_ullong();
  const std::string unit = node.attribute("unit").as_string("KiB");
  if (unit == "b" || unit == "bytes") return value;
  if (unit == "M" || unit == "MiB") return value * kMiB;
  if (unit == "G" || unit == "GiB") return value * kGiB;
  return value * kKiB;  // KiB is what libvirt writes back
}

std::optional<int> BootOrder(xml_node device) {
  if (xml_node boot = device.child("boot")) return boot.attribute("order").as_int();
  return std::nullopt;
}

StorageRef ReadSource(xml_node disk) {
  xml_node source = disk.child("source");
  StorageRef ref;
  ref.pool = source.attribute("pool").as_string();
  ref.volume = source.attribute("volume").as_string();
  ref.path = source.attribute("file").as_string();
  if (ref.path.empty()) ref.path = source.attribute("dev").as_string();
  return ref;
}

bool IsGitvirtOverlay(const std::string& path) {
  return std::filesystem::path(path).filename().string().find(kOverlayInfix) != std::string::npos;
}

// A disk's storage: its <source>, or, when that is one of gitvirt's external-snapshot overlays,
// the first element down its <backingStore> chain that is not one; the overlays passed on the
// way go to `overlays`, the one in use first.
StorageRef ReadDiskSource(xml_node disk, std::vector<std::string>& overlays) {
  xml_node at = disk;
  while (true) {
    const StorageRef ref = ReadSource(at);
    xml_node below = at.child("backingStore");
    if (ref.IsVolume() || !IsGitvirtOverlay(ref.path) || !below.child("source")) return ref;
    overlays.push_back(ref.path);
    at = below;
  }
}

std::string Hex(const char* value, int width) {
  const unsigned long n = std::strtoul(value, nullptr, 16);
  char buf[16];
  std::snprintf(buf, sizeof buf, "%0*lx", width, n);
  return buf;
}

}  // namespace

std::string ExternalSnapshotOverlay(const std::string& base, const std::string& snapshot) {
  std::string safe = snapshot;
  for (char& c : safe) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') c = '_';
  }
  return base + std::string(kOverlayInfix) + safe;
}

std::vector<DiskLocation> DiskLocations(const ParsedDomain& parsed) {
  std::vector<DiskLocation> out;
  for (const Disk& d : parsed.spec.disks) {
    auto storage = parsed.disk_storage.find(d.name);
    if (storage == parsed.disk_storage.end()) continue;
    DiskLocation location{d.name, d.format, storage->second, {}};
    if (auto it = parsed.disk_overlays.find(d.name); it != parsed.disk_overlays.end()) location.overlays = it->second;
    out.push_back(std::move(location));
  }
  return out;
}

std::string DefinitionName(const SavedDomain& saved) {
  pugi::xml_document doc;
  doc.load_buffer(saved.bytes.data(), saved.bytes.size());
  return doc.child("domain").child("name").text().as_string();
}

Result<ParsedDomain> ParseDomainXml(std::string_view xml) {
  pugi::xml_document doc;
  const pugi::xml_parse_result ok = doc.load_buffer(xml.data(), xml.size());
  if (!ok) return Fail(ErrorCode::kInvalidArgument, std::string("domain XML: ") + ok.description());
  xml_node dom = doc.child("domain");
  if (!dom) return Fail(ErrorCode::kInvalidArgument, "domain XML has no <domain>");
  ParsedDomain parsed;
  VmSpec& spec = parsed.spec;
  parsed.name = dom.child("name").text().as_string();
  parsed.uuid = dom.child("uuid").text().as_string();
  spec.description = dom.child("description").text().as_string();
  if (xml_node metadata = dom.child("metadata")) parsed.owner = ReadOwner(FindOwner(metadata));

  const std::uint64_t max_memory = MemoryBytes(dom.child("memory"));
  const std::uint64_t current = dom.child("currentMemory") ? MemoryBytes(dom.child("currentMemory")) : max_memory;
  spec.memory = current;
  if (max_memory != current) spec.max_memory = max_memory;
  xml_node vcpu = dom.child("vcpu");
  const int max_vcpus = vcpu.text().as_int(1);
  spec.vcpus = vcpu.attribute("current") ? vcpu.attribute("current").as_int() : max_vcpus;
  if (spec.vcpus != max_vcpus) spec.max_vcpus = max_vcpus;

  xml_node os = dom.child("os");
  spec.machine = os.child("type").attribute("machine").as_string();
  if (xml_node kernel = os.child("kernel")) {
    spec.boot = DirectBoot{kernel.text().as_string(), os.child("initrd").text().as_string(),
                           os.child("cmdline").text().as_string()};
  }
  const std::string firmware = os.attribute("firmware").as_string();
  if (firmware == "efi" || os.child("loader").attribute("type").as_string() == std::string("pflash")) {
    spec.firmware.type = FirmwareType::kUefi;
  }
  for (xml_node f : os.child("firmware").children("feature")) {
    if (std::string_view(f.attribute("name").as_string()) == "secure-boot") {
      spec.firmware.secure_boot = std::string_view(f.attribute("enabled").as_string()) == "yes";
    }
  }
  if (std::string_view(os.child("loader").attribute("secure").as_string()) == "yes") {
    spec.firmware.secure_boot = true;
  }

  if (xml_node cpu = dom.child("cpu")) {
    if (auto mode = ParseEnum<CpuMode>(cpu.attribute("mode").as_string())) spec.cpu.mode = *mode;
    spec.cpu.model = cpu.child("model").text().as_string();
    if (!spec.cpu.model.empty() && !cpu.attribute("mode")) spec.cpu.mode = CpuMode::kCustom;
    if (xml_node t = cpu.child("topology")) {
      spec.cpu.topology = CpuTopology{t.attribute("sockets").as_int(1), t.attribute("cores").as_int(1),
                                      t.attribute("threads").as_int(1)};
    }
  }

  xml_node devices = dom.child("devices");
  for (xml_node d : devices.children("disk")) {
    const std::string device = d.attribute("device").as_string("disk");
    const std::string alias = d.child("alias").attribute("name").as_string();
    std::vector<std::string> overlays;
    const StorageRef ref = device == "disk" ? ReadDiskSource(d, overlays) : ReadSource(d);
    xml_node target = d.child("target");
    const DiskBus bus = ParseEnum<DiskBus>(target.attribute("bus").as_string()).value_or(DiskBus::kVirtio);
    if (device == "cdrom") {
      if (alias == "ua-cidata") {
        parsed.seed = ref;
        continue;
      }
      Cdrom c;
      c.name = alias.starts_with("ua-cdrom-") ? alias.substr(9) : target.attribute("dev").as_string();
      c.bus = bus;
      c.boot_order = BootOrder(d);
      if (!ref.IsVolume()) c.path = ref.path;
      parsed.cdrom_storage[c.name] = ref;
      spec.cdroms.push_back(std::move(c));
      continue;
    }
    if (device != "disk") continue;
    Disk disk;
    disk.name = alias.starts_with("ua-disk-") ? alias.substr(8) : target.attribute("dev").as_string();
    disk.bus = bus;
    xml_node driver = d.child("driver");
    disk.format = ParseEnum<DiskFormat>(driver.attribute("type").as_string()).value_or(DiskFormat::kRaw);
    disk.cache = ParseEnum<DiskCache>(driver.attribute("cache").as_string("default")).value_or(DiskCache::kDefault);
    disk.discard = std::string_view(driver.attribute("discard").as_string()) == "unmap";
    disk.iothread = driver.attribute("iothread").as_int(0) > 0;
    disk.ssd = target.attribute("rotation_rate").as_int(0) == 1;
    disk.readonly = static_cast<bool>(d.child("readonly"));
    disk.boot_order = BootOrder(d);
    if (ref.IsVolume()) {
      disk.pool = ref.pool;
      disk.source = DiskSource{DiskSourceType::kVolume, ref.volume, CloneMode::kNone};
    } else {
      disk.source = DiskSource{DiskSourceType::kPath, ref.path, CloneMode::kNone};
    }
    parsed.disk_storage[disk.name] = ref;
    if (!overlays.empty()) parsed.disk_overlays[disk.name] = std::move(overlays);
    spec.disks.push_back(std::move(disk));
  }
  for (xml_node n : devices.children("interface")) {
    Nic nic;
    const std::string type = n.attribute("type").as_string();
    if (type == "network") {
      nic.network = n.child("source").attribute("network").as_string();
    } else {
      nic.bridge = n.child("source").attribute("bridge").as_string();
    }
    nic.mac = n.child("mac").attribute("address").as_string();
    nic.model = ParseEnum<NicModel>(n.child("model").attribute("type").as_string()).value_or(NicModel::kVirtio);
    if (xml_node tag = n.child("vlan").child("tag")) nic.vlan = tag.attribute("id").as_int();
    nic.filter = n.child("filterref").attribute("filter").as_string();
    nic.boot_order = BootOrder(n);
    spec.networks.push_back(std::move(nic));
  }
  if (xml_node g = devices.child("graphics")) {
    if (auto type = ParseEnum<GraphicsType>(g.attribute("type").as_string())) spec.graphics.type = *type;
    const bool autoport = std::string_view(g.attribute("autoport").as_string("yes")) == "yes";
    if (!autoport) spec.graphics.port = g.attribute("port").as_int();
    std::string listen = g.child("listen").attribute("address").as_string();
    if (listen.empty()) listen = g.attribute("listen").as_string("127.0.0.1");
    spec.graphics.listen = listen;
    spec.graphics.video = VideoModel::kNone;
    if (xml_node video = devices.child("video")) {
      spec.graphics.video =
          ParseEnum<VideoModel>(video.child("model").attribute("type").as_string()).value_or(VideoModel::kVirtio);
    }
  } else {
    spec.graphics.type = GraphicsType::kNone;
  }
  for (xml_node h : devices.children("hostdev")) {
    Gpu gpu;
    xml_node a = h.child("source").child("address");
    if (std::string_view(h.attribute("type").as_string()) == "pci") {
      gpu.pci_address = Hex(a.attribute("domain").as_string("0"), 4) + ":" + Hex(a.attribute("bus").as_string("0"), 2) +
                        ":" + Hex(a.attribute("slot").as_string("0"), 2) + "." +
                        Hex(a.attribute("function").as_string("0"), 1);
    } else {
      gpu.mdev_uuid = a.attribute("uuid").as_string();
      parsed.mdev_uuids.push_back(gpu.mdev_uuid);
    }
    spec.gpus.push_back(std::move(gpu));
  }
  for (xml_node ch : devices.children("channel")) {
    if (std::string_view(ch.child("target").attribute("name").as_string()) == "org.qemu.guest_agent.0") {
      spec.guest_agent = true;
    }
  }
  spec.firmware.tpm = static_cast<bool>(devices.child("tpm"));
  return parsed;
}

VmSpec NormalizeObserved(const ParsedDomain& parsed, const std::optional<VmSpec>& last_applied,
                         const CapacityLookup& capacity_of) {
  VmSpec spec = parsed.spec;
  for (Disk& disk : spec.disks) {
    if (auto capacity = capacity_of(parsed.disk_storage.at(disk.name))) disk.size = *capacity;
  }
  if (!last_applied) return spec;
  const VmSpec& applied = *last_applied;

  // What the XML cannot say: take it from the spec last applied.
  spec.placement = applied.placement;
  spec.update_policy = applied.update_policy;
  spec.deletion_policy = applied.deletion_policy;
  spec.depends_on = applied.depends_on;
  spec.readiness = applied.readiness;
  spec.migration = applied.migration;
  spec.ignore_differences = applied.ignore_differences;
  spec.os = applied.os;
  spec.graphics.password_from = applied.graphics.password_from;
  // A seed attached means the cloud-init we last applied (its inputs are hashed in the owner
  // metadata; a change of inputs shows up as a difference against the desired cloudInit).
  if (parsed.seed) spec.cloud_init = applied.cloud_init;

  // libvirt expands machine aliases: q35 -> pc-q35-7.2, pc -> pc-i440fx-7.2.
  if ((applied.machine == "q35" && spec.machine.starts_with("pc-q35-")) ||
      (applied.machine == "pc" && spec.machine.starts_with("pc-i440fx-"))) {
    spec.machine = applied.machine;
  }
  // Given no <cpu> model, libvirt 9.0's QEMU driver writes the machine type's default in:
  // <cpu mode='custom' match='exact' check='none'><model fallback='forbid'>qemu64</model>.
  if (applied.cpu.mode == CpuMode::kDefault && spec.cpu.mode == CpuMode::kCustom && spec.cpu.model == "qemu64") {
    spec.cpu.mode = CpuMode::kDefault;
    spec.cpu.model.clear();
  }
  // Graphics video is only rendered with graphics; keep the applied choice when there is none.
  if (spec.graphics.type == GraphicsType::kNone && applied.graphics.type == GraphicsType::kNone) {
    spec.graphics = applied.graphics;
  }
  for (Disk& disk : spec.disks) {
    auto it = std::find_if(applied.disks.begin(), applied.disks.end(),
                           [&](const Disk& d) { return d.name == disk.name; });
    if (it == applied.disks.end()) continue;
    // The storage is where the applied spec put it: the source is the applied one.
    VirtualMachine probe;
    probe.meta.name = parsed.name;
    if (DiskStorage(probe, *it) == parsed.disk_storage.at(disk.name)) {
      disk.source = it->source;
      disk.pool = it->pool;
      if (!it->size) disk.size.reset();  // a clone at the image's size
    }
    disk.backup = it->backup;
    if (disk.bus == DiskBus::kVirtio) disk.ssd = it->ssd;  // virtio has no rotation rate
  }
  for (Cdrom& c : spec.cdroms) {
    auto it = std::find_if(applied.cdroms.begin(), applied.cdroms.end(),
                           [&](const Cdrom& a) { return a.name == c.name; });
    if (it == applied.cdroms.end()) continue;
    const StorageRef& ref = parsed.cdrom_storage.at(c.name);
    if ((!it->image.empty() && ref.IsVolume()) || (!it->path.empty() && ref.path == it->path)) {
      c.image = it->image;
      c.path = it->path;
    }
  }
  for (std::size_t i = 0; i < spec.gpus.size() && i < applied.gpus.size(); ++i) {
    if (!spec.gpus[i].mdev_uuid.empty() && spec.gpus[i].mdev_uuid == applied.gpus[i].mdev_uuid) {
      spec.gpus[i].mdev_type = applied.gpus[i].mdev_type;
    }
  }
  return spec;
}

}  // namespace gitvirt
