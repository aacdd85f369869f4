#include "domain_xml.h"

#include <pugixml.hpp>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "gitvirt/core/cloud_init.h"
#include "gitvirt/core/diff.h"
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

// A path under /dev is a block device, which QEMU opens as one (a <disk type='block'>).
bool IsBlockDevice(const StorageRef& ref) { return !ref.IsVolume() && ref.path.starts_with("/dev/"); }

std::string DiskType(const StorageRef& ref) {
  return ref.IsVolume() ? "volume" : IsBlockDevice(ref) ? "block" : "file";
}

void AppendSource(xml_node disk, const StorageRef& ref) {
  xml_node source = disk.append_child("source");
  if (ref.IsVolume()) {
    Attr(source, "pool", ref.pool);
    Attr(source, "volume", ref.volume);
  } else {
    Attr(source, IsBlockDevice(ref) ? "dev" : "file", ref.path);
  }
}

void AppendDisk(xml_node devices, const VirtualMachine& vm, const Disk& disk, const std::string& dev,
                int iothread) {
  const StorageRef ref = DiskStorage(vm, disk);
  xml_node d = devices.append_child("disk");
  Attr(d, "type", DiskType(ref));
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
  Attr(d, "type", DiskType(ref));
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
  Attr(n, "type", nic.user ? "user" : nic.network.empty() ? "bridge" : "network");
  if (!nic.user) {
    xml_node source = n.append_child("source");
    if (nic.network.empty()) {
      Attr(source, "bridge", nic.bridge);
    } else {
      Attr(source, "network", nic.network);
    }
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

// ---- what a manifest cannot express -----------------------------------------------------------
//
// A definition read back is compared with what RenderDomainXml would write for the spec the
// parse makes of it. What the spec cannot carry is named by its XML path, with the attributes
// that tell it from its siblings: "devices/sound[model=ich9]", "cputune", "on_crash=restart".
// What libvirt adds by itself to any definition (controllers, the PS/2 mouse and keyboard, the
// serial console's <console>, a firmware's loader and variable store, addresses, aliases) is not
// named: a redefinition gets it again. Everything else is, so nothing is dropped unannounced.

bool Is(xml_node node, const char* attribute, std::string_view value) {
  return std::string_view(node.attribute(attribute).as_string()) == value;
}

// "sound[model=ich9]": the element's name and what tells it from its siblings.
std::string Describe(xml_node node) {
  std::vector<std::pair<std::string, std::string>> ids;
  auto add = [&](const char* key, const char* value) {
    if (value != nullptr && *value != '\0') ids.emplace_back(key, value);
  };
  for (const char* a : {"device", "type", "model", "bus"}) add(a, node.attribute(a).as_string());
  if (!node.attribute("model")) add("model", node.child("model").attribute("type").as_string());
  add("target", node.child("target").attribute("dev").as_string());
  add("name", node.child("target").attribute("name").as_string());
  if (std::string_view(node.name()) == "serial") add("port", node.child("target").attribute("port").as_string());
  add("mac", node.child("mac").attribute("address").as_string());
  std::string out = node.name();
  if (ids.empty()) return out;
  out += "[";
  for (std::size_t i = 0; i < ids.size(); ++i) out += (i ? "," : "") + ids[i].first + "=" + ids[i].second;
  return out + "]";
}

// "driver[io=native]": the attributes of `node` that are not in `known`, or "" when none.
std::string ExtraAttributes(xml_node node, std::initializer_list<std::string_view> known) {
  std::string extra;
  for (pugi::xml_attribute a : node.attributes()) {
    const std::string_view name = a.name();
    if (std::find(known.begin(), known.end(), name) != known.end()) continue;
    extra += (extra.empty() ? "" : ",") + std::string(name) + "=" + a.value();
  }
  return extra.empty() ? "" : std::string(node.name()) + "[" + extra + "]";
}

class Unexpressed {
 public:
  explicit Unexpressed(std::vector<std::string>& out) : out_(out) {}

  void Add(std::string path) {
    if (std::find(out_.begin(), out_.end(), path) == out_.end()) out_.push_back(std::move(path));
  }
  // The children of `node` (at `path`) that are not in `known`.
  void Children(xml_node node, const std::string& path, std::initializer_list<std::string_view> known) {
    for (xml_node c : node.children()) {
      if (c.type() != pugi::node_element) continue;
      if (std::find(known.begin(), known.end(), std::string_view(c.name())) != known.end()) continue;
      Add(path + "/" + Describe(c));
    }
  }
  void Attributes(xml_node node, const std::string& path, std::initializer_list<std::string_view> known) {
    if (std::string extra = ExtraAttributes(node, known); !extra.empty()) Add(path.empty() ? extra : path + "/" + extra);
  }
  // The element's text is not what gitvirt writes.
  void TextUnless(xml_node node, std::string_view expected) {
    if (node && std::string_view(node.text().as_string()) != expected) {
      Add(std::string(node.name()) + "=" + node.text().as_string());
    }
  }

 private:
  std::vector<std::string>& out_;
};

// The top-level elements and what is in them outside <devices>.
void CheckDomain(xml_node dom, Unexpressed& u) {
  static constexpr std::string_view kKnown[] = {"name",  "uuid",     "description", "metadata",    "memory",
                                                "currentMemory", "vcpu", "iothreads", "os",  "features",
                                                "cpu",   "clock",    "on_poweroff", "on_reboot", "on_crash",
                                                "devices", "resource", "seclabel"};
  for (xml_node c : dom.children()) {
    if (c.type() != pugi::node_element) continue;
    const std::string_view name = c.name();
    if (std::find(std::begin(kKnown), std::end(kKnown), name) == std::end(kKnown)) u.Add(Describe(c));
  }
  for (xml_node m : dom.child("metadata").children()) {
    if (m.type() != pugi::node_element || m == FindOwner(dom.child("metadata"))) continue;
    const bool sim = std::any_of(m.attributes().begin(), m.attributes().end(), [](pugi::xml_attribute a) {
      return std::string_view(a.name()).starts_with("xmlns") && std::string_view(a.value()) == kSimNamespace;
    });
    if (!sim) u.Add("metadata/" + std::string(m.name()));
  }
  for (xml_node s : dom.children("seclabel")) {
    if (!Is(s, "type", "dynamic")) u.Add(Describe(s));  // libvirt's own labelling is dynamic
  }
  if (xml_node r = dom.child("resource")) {
    if (std::string_view(r.child("partition").text().as_string()) != "/machine" ||
        std::distance(r.children().begin(), r.children().end()) != 1) {
      u.Add("resource");
    }
  }
  u.Attributes(dom.child("vcpu"), "", {"placement", "current"});
  if (xml_node v = dom.child("vcpu"); v.attribute("placement") && !Is(v, "placement", "static")) {
    u.Add("vcpu[placement=" + std::string(v.attribute("placement").as_string()) + "]");
  }

  xml_node os = dom.child("os");
  u.Attributes(os, "", {"firmware"});
  if (xml_node type = os.child("type"); !Is(type, "arch", "x86_64") || std::string_view(type.text().as_string()) != "hvm") {
    u.Add("os/type[arch=" + std::string(type.attribute("arch").as_string()) + "," + type.text().as_string() + "]");
  }
  u.Children(os, "os", {"type", "loader", "nvram", "kernel", "initrd", "cmdline", "firmware", "boot"});
  // A redefinition says only `firmware='efi'` and lets libvirt choose the loader and keep the
  // variable store in its own place. A loader chosen by hand (a path, without firmware
  // autoselection) or a variable store elsewhere would be replaced, and a new store loses the
  // boot entries and keys of the old one: name them.
  if (xml_node loader = os.child("loader"); loader && !os.attribute("firmware") && *loader.text().as_string() != '\0') {
    u.Add("os/loader[" + std::string(loader.text().as_string()) + "]");
  }
  if (xml_node nvram = os.child("nvram"); nvram && *nvram.text().as_string() != '\0') {
    const std::filesystem::path store = nvram.text().as_string();
    const std::string own = std::string(dom.child("name").text().as_string()) + "_VARS.fd";
    if (store.filename() != own || store.parent_path().filename() != "nvram") {
      u.Add("os/nvram[" + store.string() + "]");
    }
  }
  for (xml_node f : os.child("firmware").children()) {
    if (!Is(f, "name", "secure-boot") && !Is(f, "name", "enrolled-keys")) u.Add("os/firmware/" + Describe(f) + "[name=" + f.attribute("name").as_string() + "]");
  }
  // libvirt writes <boot dev='hd'/> into a definition that names no boot order: the only
  // whole-domain boot list a redefinition gets back.
  const auto boots = os.children("boot");
  if (std::distance(boots.begin(), boots.end()) > 1 || (os.child("boot") && !Is(os.child("boot"), "dev", "hd"))) {
    for (xml_node b : boots) u.Add("os/boot[dev=" + std::string(b.attribute("dev").as_string()) + "]");
  }
  u.Children(dom.child("features"), "features", {"acpi", "apic", "smm", "pae"});

  if (xml_node cpu = dom.child("cpu")) {
    u.Children(cpu, "cpu", {"model", "topology"});
    for (xml_node f : cpu.children("feature")) u.Add("cpu/feature[name=" + std::string(f.attribute("name").as_string()) + "]");
    if (xml_node t = cpu.child("topology"); t && t.attribute("dies").as_int(1) != 1) u.Add("cpu/topology[dies=" + std::string(t.attribute("dies").as_string()) + "]");
  }
  if (xml_node clock = dom.child("clock")) {
    if (!Is(clock, "offset", "utc")) u.Add(Describe(clock) + "[offset=" + clock.attribute("offset").as_string() + "]");
    for (xml_node t : clock.children()) {
      if (t.type() == pugi::node_element) u.Add("clock/" + std::string(t.name()) + "[name=" + t.attribute("name").as_string() + "]");
    }
  }
  u.TextUnless(dom.child("on_poweroff"), "destroy");
  u.TextUnless(dom.child("on_reboot"), "restart");
  u.TextUnless(dom.child("on_crash"), "destroy");
}

// A disk or cdrom the spec holds: what of it the spec does not.
void CheckDisk(xml_node d, const std::string& path, Unexpressed& u) {
  u.Children(d, path, {"driver", "source", "backingStore", "target", "readonly", "boot", "alias", "address"});
  u.Attributes(d.child("source"), path, {"file", "dev", "pool", "volume", "index"});
  xml_node driver = d.child("driver");
  u.Attributes(driver, path, {"name", "type", "cache", "discard", "iothread"});
  if (driver.attribute("type") && !ParseEnum<DiskFormat>(driver.attribute("type").as_string())) {
    u.Add(path + "/driver[type=" + driver.attribute("type").as_string() + "]");
  }
  if (driver.attribute("discard") && !Is(driver, "discard", "unmap")) {
    u.Add(path + "/driver[discard=" + driver.attribute("discard").as_string() + "]");
  }
  xml_node target = d.child("target");
  u.Attributes(target, path, {"dev", "bus", "rotation_rate", "tray"});
  if (!ParseEnum<DiskBus>(target.attribute("bus").as_string())) {
    u.Add(path + "/target[bus=" + target.attribute("bus").as_string() + "]");
  }
}

void CheckNic(xml_node n, const std::string& path, Unexpressed& u) {
  u.Children(n, path, {"source", "mac", "model", "vlan", "filterref", "boot", "alias", "address", "target"});
  u.Attributes(n.child("source"), path, {"network", "bridge"});
  // A tap device's name libvirt made up (vnetN; testnetN on the test driver) comes back with any
  // definition; one chosen by hand would not.
  if (xml_node target = n.child("target")) {
    const std::string_view dev = target.attribute("dev").as_string();
    const auto generated = [&dev](std::string_view prefix) {
      return dev.starts_with(prefix) && dev.size() > prefix.size() &&
             std::all_of(dev.begin() + static_cast<std::ptrdiff_t>(prefix.size()), dev.end(),
                         [](unsigned char c) { return std::isdigit(c) != 0; });
    };
    if (!dev.empty() && !generated("vnet") && !generated("testnet") && !generated("macvtap")) {
      u.Add(path + "/target[dev=" + std::string(dev) + "]");
    }
  }
  if (xml_node model = n.child("model"); model && !ParseEnum<NicModel>(model.attribute("type").as_string())) {
    u.Add(path + "/model[type=" + model.attribute("type").as_string() + "]");
  }
  if (xml_node vlan = n.child("vlan")) {
    const auto tags = vlan.children("tag");
    if (vlan.attribute("trunk") || std::distance(tags.begin(), tags.end()) != 1) u.Add(path + "/vlan");
  }
  u.Children(n.child("filterref"), path + "/filterref", {});
}

// A <disk> element: a disk or cdrom of the spec, the cloud-init seed, or (a floppy, a LUN, a
// network, NVMe or vhost-user disk, an empty drive) something a manifest cannot say.
void ReadDisk(xml_node d, const std::string& path, ParsedDomain& parsed, Unexpressed& u) {
  const std::string device = d.attribute("device").as_string("disk");
  const std::string type = d.attribute("type").as_string("file");
  if ((device != "disk" && device != "cdrom") || (type != "file" && type != "volume" && type != "block")) {
    u.Add(path);
    return;
  }
  const std::string alias = d.child("alias").attribute("name").as_string();
  std::vector<std::string> overlays;
  const StorageRef ref = device == "disk" ? ReadDiskSource(d, overlays) : ReadSource(d);
  xml_node target = d.child("target");
  const DiskBus bus = ParseEnum<DiskBus>(target.attribute("bus").as_string()).value_or(DiskBus::kVirtio);
  if (device == "cdrom" && alias == "ua-cidata") {
    parsed.seed = ref;
    return;
  }
  if (!ref.IsVolume() && ref.path.empty()) {
    u.Add(path);  // no medium
    return;
  }
  CheckDisk(d, path, u);
  if (device == "cdrom") {
    Cdrom c;
    c.name = alias.starts_with("ua-cdrom-") ? alias.substr(9) : target.attribute("dev").as_string();
    c.bus = bus;
    c.boot_order = BootOrder(d);
    if (!ref.IsVolume()) c.path = ref.path;
    parsed.cdrom_storage[c.name] = ref;
    parsed.spec.cdroms.push_back(std::move(c));
    return;
  }
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
  parsed.spec.disks.push_back(std::move(disk));
}

void ReadGraphics(xml_node g, const std::string& path, Graphics& out, Unexpressed& u) {
  if (auto type = ParseEnum<GraphicsType>(g.attribute("type").as_string())) out.type = *type;
  const bool autoport = std::string_view(g.attribute("autoport").as_string("yes")) == "yes";
  if (!autoport) out.port = g.attribute("port").as_int();
  std::string listen = g.child("listen").attribute("address").as_string();
  if (listen.empty()) listen = g.attribute("listen").as_string("127.0.0.1");
  out.listen = listen;
  out.video = VideoModel::kNone;  // unless a <video> says otherwise
  u.Attributes(g, path, {"type", "port", "autoport", "listen", "passwd"});
  u.Children(g, path, {"listen"});
  for (xml_node l : g.children("listen")) {
    if (!Is(l, "type", "address")) u.Add(path + "/listen[type=" + l.attribute("type").as_string() + "]");
  }
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

  Unexpressed unexpressed(parsed.unexpressed);
  CheckDomain(dom, unexpressed);
  xml_node devices = dom.child("devices");
  bool console = false, graphics = false, video = false, balloon = false;
  for (xml_node d : devices.children()) {
    if (d.type() != pugi::node_element) continue;
    const std::string_view kind = d.name();
    const std::string path = "devices/" + Describe(d);
    if (kind == "disk") {
      ReadDisk(d, path, parsed, unexpressed);
    } else if (kind == "interface") {
      if (!Is(d, "type", "network") && !Is(d, "type", "bridge") && !Is(d, "type", "user")) {
        unexpressed.Add(path);
        continue;
      }
      CheckNic(d, path, unexpressed);
      Nic nic;
      if (Is(d, "type", "network")) {
        nic.network = d.child("source").attribute("network").as_string();
      } else if (Is(d, "type", "bridge")) {
        nic.bridge = d.child("source").attribute("bridge").as_string();
      } else {
        nic.user = true;
      }
      nic.mac = d.child("mac").attribute("address").as_string();
      nic.model = ParseEnum<NicModel>(d.child("model").attribute("type").as_string()).value_or(NicModel::kVirtio);
      if (xml_node tag = d.child("vlan").child("tag")) nic.vlan = tag.attribute("id").as_int();
      nic.filter = d.child("filterref").attribute("filter").as_string();
      nic.boot_order = BootOrder(d);
      spec.networks.push_back(std::move(nic));
    } else if (kind == "graphics") {
      if (graphics || (!Is(d, "type", "vnc") && !Is(d, "type", "spice"))) {
        unexpressed.Add(path);  // a second display, or one of a kind the manifest has not
        continue;
      }
      graphics = true;
      ReadGraphics(d, path, spec.graphics, unexpressed);
    } else if (kind == "video") {
      // Read below, with the graphics it belongs to.
    } else if (kind == "hostdev") {
      const bool pci = Is(d, "type", "pci") && Is(d, "mode", "subsystem");
      if (!pci && !Is(d, "type", "mdev")) {
        unexpressed.Add(path);  // USB, SCSI, a host device by capability
        continue;
      }
      unexpressed.Children(d, path, {"source", "alias", "address"});
      Gpu gpu;
      xml_node a = d.child("source").child("address");
      if (pci) {
        gpu.pci_address = Hex(a.attribute("domain").as_string("0"), 4) + ":" + Hex(a.attribute("bus").as_string("0"), 2) +
                          ":" + Hex(a.attribute("slot").as_string("0"), 2) + "." +
                          Hex(a.attribute("function").as_string("0"), 1);
      } else {
        gpu.mdev_uuid = a.attribute("uuid").as_string();
        parsed.mdev_uuids.push_back(gpu.mdev_uuid);
      }
      spec.gpus.push_back(std::move(gpu));
    } else if (kind == "channel") {
      if (Is(d.child("target"), "name", "org.qemu.guest_agent.0")) {
        spec.guest_agent = true;
      } else {
        unexpressed.Add(path);
      }
    } else if (kind == "tpm") {
      spec.firmware.tpm = true;
      xml_node backend = d.child("backend");
      if ((d.attribute("model") && !Is(d, "model", "tpm-crb")) || !Is(backend, "type", "emulator") ||
          (backend.attribute("version") && !Is(backend, "version", "2.0"))) {
        unexpressed.Add(path + (backend ? "/" + Describe(backend) + (backend.attribute("version") ? "[version=" + std::string(backend.attribute("version").as_string()) + "]" : "") : ""));
      }
    } else if (kind == "serial") {
      // The first pty serial port is the console gitvirt writes (and logs).
      const bool port0 = !d.child("target").attribute("port") || Is(d.child("target"), "port", "0");
      if (console || !Is(d, "type", "pty") || !port0) {
        unexpressed.Add(path);
        continue;
      }
      console = true;
      unexpressed.Children(d, path, {"target", "log", "alias", "address", "source"});
    } else if (kind == "console") {
      // libvirt's mirror of the first serial port.
      if (!Is(d, "type", "pty") || !Is(d.child("target"), "type", "serial")) unexpressed.Add(path);
    } else if (kind == "memballoon") {
      if (balloon || !Is(d, "model", "virtio")) unexpressed.Add(path);
      balloon = true;
      unexpressed.Children(d, path, {"alias", "address"});
    } else if (kind == "input") {
      // libvirt gives every x86 guest a PS/2 mouse and keyboard.
      if (!Is(d, "bus", "ps2") || (!Is(d, "type", "mouse") && !Is(d, "type", "keyboard"))) unexpressed.Add(path);
    } else if (kind == "watchdog") {
      // libvirt's implicit iTCO watchdog of q35 machines.
      if (!Is(d, "model", "itco") || (d.attribute("action") && !Is(d, "action", "reset"))) unexpressed.Add(path);
    } else if (kind != "emulator" && kind != "controller" && kind != "audio") {
      unexpressed.Add(path);  // sound, rng, redirdev, smartcard, filesystem, vsock, ...
    }
  }
  // Video is written only with graphics: one video of a kind the manifest has, with a display.
  for (xml_node v : devices.children("video")) {
    const std::string path = "devices/" + Describe(v);
    const auto model = ParseEnum<VideoModel>(v.child("model").attribute("type").as_string());
    if (!model || video || (!graphics && *model != VideoModel::kNone)) {
      unexpressed.Add(path);
      continue;
    }
    video = true;
    unexpressed.Children(v, path, {"model", "alias", "address"});
    unexpressed.Children(v.child("model"), path + "/model", {});
    if (graphics) spec.graphics.video = *model;
  }
  return parsed;
}

VmSpec NormalizeObserved(const ParsedDomain& parsed, const std::optional<VmSpec>& last_applied,
                         const CapacityLookup& capacity_of) {
  VmSpec spec = parsed.spec;
  for (Disk& disk : spec.disks) {
    if (auto capacity = capacity_of(parsed.disk_storage.at(disk.name))) disk.size = *capacity;
  }
  if (!last_applied) return spec;
  // A seed attached means the cloud-init we last applied (its inputs are hashed in the owner
  // metadata; a change of inputs shows up as a difference against the desired cloudInit).
  if (parsed.seed) spec.cloud_init = last_applied->cloud_init;
  return FillFromApplied(std::move(spec), *last_applied, parsed.name);
}

std::vector<std::string> UnexpressedElements(const ParsedDomain& parsed, const std::optional<VmSpec>& last_applied) {
  std::vector<std::string> out = parsed.unexpressed;
  if (parsed.seed && !(last_applied && last_applied->cloud_init)) {
    out.push_back("devices/disk[device=cdrom,alias=ua-cidata]");
  }
  return out;
}

}  // namespace gitvirt
