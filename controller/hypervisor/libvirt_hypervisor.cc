#include "gitvirt/hypervisor/libvirt_hypervisor.h"

#include <pugixml.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <sstream>
#include <thread>
#include <type_traits>

#include "gitvirt/core/json.h"
#include "gitvirt/hypervisor/domain_xml.h"
#include "gitvirt/hypervisor/fault_injection.h"
#include "libvirt_util.h"
#include "sim_store.h"

namespace gitvirt {
namespace {

using namespace libvirt;

constexpr std::string_view kPolicyPrefix = "[gitvirt policy=";

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

// qcow2's virtual size: big-endian u64 at offset 24 of the header ("QFI\xfb").
std::optional<std::uint64_t> Qcow2VirtualSize(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  unsigned char header[32];
  if (!in.read(reinterpret_cast<char*>(header), sizeof header)) return std::nullopt;
  if (header[0] != 'Q' || header[1] != 'F' || header[2] != 'I' || header[3] != 0xfb) return std::nullopt;
  std::uint64_t size = 0;
  for (int i = 24; i < 32; ++i) size = (size << 8) | header[i];
  return size;
}

std::string VolumeXml(const std::string& name, std::uint64_t capacity, const std::string& format,
                      const std::string& backing_path, const std::string& backing_format) {
  pugi::xml_document doc;
  pugi::xml_node v = doc.append_child("volume");
  v.append_child("name").text().set(name.c_str());
  pugi::xml_node cap = v.append_child("capacity");
  cap.append_attribute("unit") = "bytes";
  cap.text().set(std::to_string(capacity).c_str());
  pugi::xml_node alloc = v.append_child("allocation");
  alloc.append_attribute("unit") = "bytes";
  alloc.text().set("0");
  pugi::xml_node target = v.append_child("target");
  target.append_child("format").append_attribute("type") = format.c_str();
  // qcow2 v3: needed for dirty bitmaps (incremental backups) and by today's QEMU defaults.
  if (format == "qcow2") target.append_child("compat").text().set("1.1");
  if (!backing_path.empty()) {
    pugi::xml_node b = v.append_child("backingStore");
    b.append_child("path").text().set(backing_path.c_str());
    b.append_child("format").append_attribute("type") = backing_format.c_str();
  }
  std::ostringstream out;
  doc.save(out, "", pugi::format_raw | pugi::format_no_declaration);
  return out.str();
}

// libvirt validates a definition against its RELAX NG schema with libxml2, whose first use
// initialises shared type tables without a lock (libxml2 2.9): two validations at once in one
// process can fail with "Unable to parse RNG ...". A remote daemon is libvirt's business; the
// in-process test driver is ours, so its validated defines take turns.
std::mutex& InProcessValidationMutex() {
  static std::mutex mu;
  return mu;
}

class LibvirtHypervisor final : public Hypervisor {
 public:
  LibvirtHypervisor(NodeConfig config, HypervisorOptions options)
      : config_(std::move(config)), options_(std::move(options)) {
    log_ = options_.logger ? options_.logger : spdlog::default_logger();
    if (config_.IsSimulated()) sim_.emplace(config_.SimPath());
  }

  ~LibvirtHypervisor() override {
    std::unique_lock lock(conn_mu_);
    if (conn_) virConnectUnregisterCloseCallback(conn_.get(), &OnClose);
  }

  Result<void> Open() {
    EnsureEventLoop();
    if (sim_) {
      if (auto ok = sim_->EnsureExists(config_); !ok) return ok;
      uri_ = sim_->Uri();
    } else {
      uri_ = config_.uri;
    }
    std::unique_lock lock(conn_mu_);
    if (auto ok = OpenLocked(); !ok) return ok;
    virConnectPtr c = conn_.get();
    const char* type = virConnectGetType(c);
    caps_.driver = type != nullptr ? type : "?";
    if (caps_.driver == "TEST") {
      caps_.persistent_simulation = sim_.has_value();
      // The test driver cannot resize volumes; a simulated node emulates it (its volumes are
      // only metadata anyway).
      caps_.volume_resize = sim_.has_value();
      virt_type_ = "kvm";
    } else {
      caps_.live_device_changes = true;
      caps_.block_resize = true;
      caps_.volume_resize = true;
      caps_.backup = caps_.driver == "QEMU";
      caps_.migration = caps_.driver == "QEMU";
      caps_.volume_upload = true;
      if (const char* forced = std::getenv("GITVIRT_VIRT_TYPE"); forced != nullptr && *forced) {
        virt_type_ = forced;
      } else {
        char* domcaps = virConnectGetDomainCapabilities(c, nullptr, "x86_64", nullptr, "kvm", 0);
        virt_type_ = domcaps != nullptr ? "kvm" : "qemu";
        free(domcaps);
      }
    }
    if (sim_) return sim_->AfterOpen(c);
    return {};
  }

  const std::string& node() const override { return config_.name; }
  const NodeCapabilities& capabilities() const override { return caps_; }

  // ---- observation -------------------------------------------------------------------------

  Result<ObservedNode> Observe() override {
    return Run<ObservedNode>("observe", false, "observing node " + config_.name,
                             [&](virConnectPtr c) { return ObserveLocked(c); });
  }

  Result<ObservedVm> ObserveVm(const std::string& name) override {
    return Run<ObservedVm>("observe", false, "observing " + name, [&](virConnectPtr c) -> Result<ObservedVm> {
      auto dom = LookupDomain(c, name);
      if (!dom) return std::unexpected(dom.error());
      auto pools = ObservePools(c);
      if (!pools) return std::unexpected(pools.error());
      return ObserveDomain(dom->get(), *pools);
    });
  }

  // ---- definitions -------------------------------------------------------------------------

  Result<void> Define(const DomainDefinition& def) override {
    const std::string& name = def.vm.meta.name;
    const std::string rendered = RenderDomainXml(def, virt_type_);
    return Mutate("define", "defining " + name + " on " + config_.name, name, [&](virConnectPtr c) -> Result<void> {
      std::string xml = rendered;
      // A redefinition must carry the domain's UUID: without one libvirt makes up a new UUID
      // and refuses ("domain 'x' already exists with uuid ...").
      if (Domain existing{virDomainLookupByName(c, name.c_str())}) {
        char uuid[VIR_UUID_STRING_BUFLEN];
        if (virDomainGetUUIDString(existing.get(), uuid) == 0) {
          pugi::xml_document doc;
          doc.load_string(xml.c_str());
          pugi::xml_node dom = doc.child("domain");
          dom.insert_child_after("uuid", dom.child("name")).text().set(uuid);
          std::ostringstream out;
          doc.save(out, "  ", pugi::format_indent | pugi::format_no_declaration);
          xml = out.str();
        }
      }
      std::unique_lock<std::mutex> validating;
      if (uri_.starts_with("test:///")) validating = std::unique_lock(InProcessValidationMutex());
      Domain dom(virDomainDefineXMLFlags(c, xml.c_str(), VIR_DOMAIN_DEFINE_VALIDATE));
      validating = {};
      if (!dom) return std::unexpected(LastError(""));
      if (virDomainSetAutostart(dom.get(), def.vm.spec.autostart ? 1 : 0) < 0) {
        return std::unexpected(LastError("setting autostart"));
      }
      return {};
    });
  }

  Result<std::string> GetDefinitionXml(const std::string& name) override {
    return Run<std::string>("get-xml", false, "reading the definition of " + name,
                            [&](virConnectPtr c) -> Result<std::string> {
                              auto dom = LookupDomain(c, name);
                              if (!dom) return std::unexpected(dom.error());
                              return TakeString(virDomainGetXMLDesc(dom->get(), VIR_DOMAIN_XML_INACTIVE));
                            });
  }

  Result<void> DefineXml(const std::string& xml) override {
    pugi::xml_document doc;
    doc.load_string(xml.c_str());
    const std::string name = doc.child("domain").child("name").text().as_string();
    return Mutate("define", "restoring the definition of " + name, name, [&](virConnectPtr c) -> Result<void> {
      Domain dom(virDomainDefineXML(c, xml.c_str()));
      if (!dom) return std::unexpected(LastError(""));
      return {};
    });
  }

  Result<void> Undefine(const std::string& name) override {
    return Mutate("undefine", "undefining " + name + " on " + config_.name, name, [&](virConnectPtr c) -> Result<void> {
      auto dom = LookupDomain(c, name);
      if (!dom) return std::unexpected(dom.error());
      if (virDomainIsActive(dom->get()) == 1 && virDomainDestroy(dom->get()) < 0) {
        return std::unexpected(LastError("destroying before undefine"));
      }
      unsigned int flags = VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | VIR_DOMAIN_UNDEFINE_MANAGED_SAVE;
      if (caps_.driver != "TEST") flags |= VIR_DOMAIN_UNDEFINE_NVRAM | VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA;
      if (virDomainUndefineFlags(dom->get(), flags) < 0) return std::unexpected(LastError(""));
      return {};
    });
  }

  Result<void> SetOwner(const std::string& name, const std::optional<Ownership>& owner) override {
    return Mutate("set-metadata", "setting the owner of " + name, name, [&](virConnectPtr c) -> Result<void> {
      auto dom = LookupDomain(c, name);
      if (!dom) return std::unexpected(dom.error());
      unsigned int flags = VIR_DOMAIN_AFFECT_CONFIG;
      if (virDomainIsActive(dom->get()) == 1) flags |= VIR_DOMAIN_AFFECT_LIVE;
      std::string xml;
      if (owner) {
        // SetMetadata wants the element without its xmlns; libvirt adds the key's namespace.
        pugi::xml_document doc;
        doc.load_string(RenderOwnerXml(*owner).c_str());
        pugi::xml_node root = doc.first_child();
        root.set_name("owner");
        root.remove_attribute(("xmlns:" + std::string(kOwnerPrefix)).c_str());
        std::ostringstream out;
        doc.save(out, "", pugi::format_raw | pugi::format_no_declaration);
        xml = out.str();
      }
      const std::string key(kOwnerPrefix), uri(kOwnerNamespace);
      if (virDomainSetMetadata(dom->get(), VIR_DOMAIN_METADATA_ELEMENT, owner ? xml.c_str() : nullptr,
                               owner ? key.c_str() : nullptr, uri.c_str(), flags) < 0) {
        return std::unexpected(LastError(""));
      }
      return {};
    });
  }

  Result<void> SetAutostart(const std::string& name, bool autostart) override {
    return Mutate("set-autostart", "setting autostart of " + name, name, [&](virConnectPtr c) -> Result<void> {
      auto dom = LookupDomain(c, name);
      if (!dom) return std::unexpected(dom.error());
      if (virDomainSetAutostart(dom->get(), autostart ? 1 : 0) < 0) return std::unexpected(LastError(""));
      return {};
    });
  }

  // ---- power -------------------------------------------------------------------------------

  Result<PowerState> GetPower(const std::string& name) override {
    return Run<PowerState>("get-state", false, "reading the state of " + name,
                           [&](virConnectPtr c) -> Result<PowerState> {
                             auto dom = LookupDomain(c, name);
                             if (!dom) return std::unexpected(dom.error());
                             int state = 0, reason = 0;
                             if (virDomainGetState(dom->get(), &state, &reason, 0) < 0) {
                               return std::unexpected(LastError(""));
                             }
                             return ToPower(state);
                           });
  }

  // Power operations are idempotent: asking for the state a domain is in succeeds at once, so a
  // step retried after a crash does not fail on its own earlier success.
  Result<void> Start(const std::string& name) override {
    auto started = PowerOp("start", name, [](virDomainPtr d, int state) {
      if (ToPower(state) != PowerState::kStopped) return 0;
      return virDomainCreate(d);
    });
    if (!started) return started;
    // A guest that stops itself at once (firmware emulation failure, I/O error) starts
    // "successfully" and sits paused: that is a failed start, not a running VM.
    return Run<void>("get-state", false, "starting " + name, [&](virConnectPtr c) -> Result<void> {
      auto dom = LookupDomain(c, name);
      if (!dom) return std::unexpected(dom.error());
      int state = 0, reason = 0;
      if (virDomainGetState(dom->get(), &state, &reason, 0) < 0) return std::unexpected(LastError(""));
      if (state == VIR_DOMAIN_PAUSED && reason != VIR_DOMAIN_PAUSED_USER) {
        return Fail(ErrorCode::kFailedPrecondition,
                    "the domain paused itself right after starting (libvirt paused reason " +
                        std::to_string(reason) + "); see the node's QEMU log for " + name);
      }
      if (state == VIR_DOMAIN_SHUTOFF || state == VIR_DOMAIN_CRASHED) {
        return Fail(ErrorCode::kFailedPrecondition, "the domain stopped right after starting (" +
                                                        StateName(state) + ")");
      }
      return {};
    });
  }

  Result<void> Destroy(const std::string& name) override {
    return PowerOp("destroy", name, [](virDomainPtr d, int) {
      if (virDomainIsActive(d) != 1) return 0;
      return virDomainDestroy(d);
    });
  }

  Result<void> Suspend(const std::string& name) override {
    return PowerOp("suspend", name, [](virDomainPtr d, int state) {
      if (ToPower(state) == PowerState::kPaused) return 0;
      return virDomainSuspend(d);
    });
  }

  Result<void> Resume(const std::string& name) override {
    return PowerOp("resume", name, [](virDomainPtr d, int state) {
      if (ToPower(state) != PowerState::kPaused) return 0;
      return virDomainResume(d);
    });
  }

  Result<void> Reboot(const std::string& name) override {
    return PowerOp("reboot", name, [](virDomainPtr d, int) { return virDomainReboot(d, 0); });
  }

  Result<void> Shutdown(const std::string& name, Seconds timeout, bool force_after) override {
    auto asked = PowerOp("shutdown", name, [](virDomainPtr d, int) {
      if (virDomainIsActive(d) != 1) return 0;
      return virDomainShutdown(d);
    });
    if (!asked) return asked;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      auto power = GetPower(name);
      if (!power) return std::unexpected(power.error());
      if (*power == PowerState::kStopped) return {};
      if (std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (!force_after) {
      return Fail(ErrorCode::kTimeout,
                  "the guest did not shut down within " + FormatDuration(timeout) +
                      " (set updatePolicy.forceOff: true to power it off after the timeout)",
                  "shutting down " + name);
    }
    log_->warn("node={} vm={} graceful shutdown timed out after {}; forcing off", config_.name, name,
               FormatDuration(timeout));
    return Destroy(name);
  }

  // ---- live changes ------------------------------------------------------------------------

  Result<void> SetVcpusLive(const std::string& name, int vcpus) override {
    return DomainOp("set-vcpus", "setting vCPUs of " + name, name, [&](virDomainPtr d) {
      return virDomainSetVcpusFlags(d, static_cast<unsigned>(vcpus), VIR_DOMAIN_AFFECT_LIVE);
    });
  }

  Result<void> SetMemoryLive(const std::string& name, std::uint64_t bytes) override {
    return DomainOp("set-memory", "setting memory of " + name, name, [&](virDomainPtr d) {
      return virDomainSetMemoryFlags(d, bytes / 1024, VIR_DOMAIN_AFFECT_LIVE);
    });
  }

  Result<void> AttachDiskLive(const DomainDefinition& def, const std::string& disk) override {
    auto xml = RenderDiskXml(def, disk);
    if (!xml) return std::unexpected(xml.error());
    return DomainOp("attach", "attaching disk " + disk + " to " + def.vm.meta.name, def.vm.meta.name,
                    [&](virDomainPtr d) { return virDomainAttachDeviceFlags(d, xml->c_str(), VIR_DOMAIN_AFFECT_LIVE); });
  }

  Result<void> DetachDiskLive(const std::string& name, const std::string& disk) override {
    return DomainOp("detach", "detaching disk " + disk + " from " + name, name, [&](virDomainPtr d) {
      return virDomainDetachDeviceAlias(d, ("ua-disk-" + disk).c_str(), VIR_DOMAIN_AFFECT_LIVE);
    });
  }

  Result<void> AttachNicLive(const DomainDefinition& def, std::size_t index) override {
    auto xml = RenderNicXml(def, index);
    if (!xml) return std::unexpected(xml.error());
    return DomainOp("attach", "attaching NIC " + std::to_string(index) + " to " + def.vm.meta.name,
                    def.vm.meta.name,
                    [&](virDomainPtr d) { return virDomainAttachDeviceFlags(d, xml->c_str(), VIR_DOMAIN_AFFECT_LIVE); });
  }

  Result<void> DetachNicLive(const std::string& name, std::size_t index) override {
    return DomainOp("detach", "detaching NIC " + std::to_string(index) + " from " + name, name,
                    [&](virDomainPtr d) {
                      return virDomainDetachDeviceAlias(d, ("ua-net-" + std::to_string(index)).c_str(),
                                                        VIR_DOMAIN_AFFECT_LIVE);
                    });
  }

  Result<void> ResizeDiskLive(const std::string& name, const std::string& disk, std::uint64_t bytes) override {
    return Mutate("resize-disk", "growing disk " + disk + " of " + name, name, [&](virConnectPtr c) -> Result<void> {
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

  // ---- storage -----------------------------------------------------------------------------

  Result<void> EnsurePool(const PoolConfig& pool) override {
    return Run<void>("ensure-pool", true, "ensuring pool " + pool.name + " on " + config_.name,
                     [&](virConnectPtr c) -> Result<void> {
                       Pool p(virStoragePoolLookupByName(c, pool.name.c_str()));
                       if (!p) {
                         pugi::xml_document doc;
                         pugi::xml_node root = doc.append_child("pool");
                         root.append_attribute("type") = "dir";
                         root.append_child("name").text().set(pool.name.c_str());
                         root.append_child("target").append_child("path").text().set(pool.path.c_str());
                         std::ostringstream xml;
                         doc.save(xml, "", pugi::format_raw | pugi::format_no_declaration);
                         p.reset(virStoragePoolDefineXML(c, xml.str().c_str(), 0));
                         if (!p) {
                           // Steps run in parallel: another one may have defined it meanwhile.
                           const Error defining = LastError("defining the pool");
                           p.reset(virStoragePoolLookupByName(c, pool.name.c_str()));
                           if (!p) return std::unexpected(defining);
                         }
                         virStoragePoolBuild(p.get(), 0);  // mkdir; fails harmlessly if it exists
                         virStoragePoolSetAutostart(p.get(), 1);
                       }
                       if (virStoragePoolIsActive(p.get()) != 1 && virStoragePoolCreate(p.get(), 0) < 0) {
                         const Error starting = LastError("starting the pool");
                         if (virStoragePoolIsActive(p.get()) != 1) return std::unexpected(starting);
                       }
                       if (sim_) return sim_->SavePool(c, pool.name);
                       return {};
                     });
  }

  Result<ObservedVolume> GetVolume(const std::string& pool, const std::string& name) override {
    return Run<ObservedVolume>("get-volume", false, "reading volume " + pool + "/" + name,
                               [&](virConnectPtr c) -> Result<ObservedVolume> {
                                 auto vol = LookupVolume(c, pool, name);
                                 if (!vol) return std::unexpected(vol.error());
                                 return DescribeVolume(vol->get(), pool, true);
                               });
  }

  Result<void> CreateVolume(const VolumeSpec& spec) override {
    return MutatePool("create-volume", "creating volume " + spec.pool + "/" + spec.name, spec.pool,
                      [&](virConnectPtr c) -> Result<void> {
                        Pool p(virStoragePoolLookupByName(c, spec.pool.c_str()));
                        if (!p) return std::unexpected(LastError("looking up the pool"));
                        std::uint64_t capacity = spec.capacity;
                        std::string backing_path;
                        if (spec.backing) {
                          auto base = ResolveStorage(c, *spec.backing);
                          if (!base) return std::unexpected(base.error());
                          backing_path = base->path;
                          if (capacity == 0) capacity = base->capacity;
                        }
                        if (spec.copy_from) {
                          auto src = ResolveStorage(c, *spec.copy_from);
                          if (!src) return std::unexpected(src.error());
                          if (capacity == 0) capacity = src->capacity;
                          const std::string xml = VolumeXml(spec.name, capacity, spec.format, "", "");
                          Volume from;
                          if (spec.copy_from->IsVolume()) {
                            if (auto found = LookupVolume(c, spec.copy_from->pool, spec.copy_from->volume)) {
                              from = std::move(*found);
                            }
                          } else {
                            from.reset(virStorageVolLookupByPath(c, spec.copy_from->path.c_str()));
                          }
                          Volume v(from ? virStorageVolCreateXMLFrom(p.get(), xml.c_str(), from.get(), 0) : nullptr);
                          if (v) return {};
                          if (caps_.driver != "TEST") return std::unexpected(LastError("copying"));
                          // The test driver copies only within one pool; a simulated volume is
                          // metadata, so a fresh one of the same size is the same thing.
                        }
                        const std::string xml = VolumeXml(spec.name, capacity, spec.format, backing_path, spec.backing_format);
                        Volume v(virStorageVolCreateXML(p.get(), xml.c_str(), 0));
                        if (!v) return std::unexpected(LastError(""));
                        return {};
                      });
  }

  Result<void> DeleteVolume(const std::string& pool, const std::string& name) override {
    return MutatePool("delete-volume", "deleting volume " + pool + "/" + name, pool,
                      [&](virConnectPtr c) -> Result<void> {
                        auto vol = LookupVolume(c, pool, name);
                        if (!vol) return std::unexpected(vol.error());
                        if (virStorageVolDelete(vol->get(), 0) < 0) return std::unexpected(LastError(""));
                        return {};
                      });
  }

  Result<void> ResizeVolume(const std::string& pool, const std::string& name, std::uint64_t capacity) override {
    return MutatePool("resize-volume", "growing volume " + pool + "/" + name, pool,
                      [&](virConnectPtr c) -> Result<void> {
                        auto vol = LookupVolume(c, pool, name);
                        if (!vol) return std::unexpected(vol.error());
                        if (virStorageVolResize(vol->get(), capacity, 0) == 0) return {};
                        if (!sim_) return std::unexpected(LastError(""));
                        // Simulated: recreate the volume's metadata at the new size.
                        const std::string xml = TakeString(virStorageVolGetXMLDesc(vol->get(), 0));
                        pugi::xml_document doc;
                        doc.load_string(xml.c_str());
                        pugi::xml_node cap = doc.child("volume").child("capacity");
                        cap.attribute("unit").set_value("bytes");
                        // The test driver derives key and path from the pool and the name, and
                        // leaks the ones it is given (libvirt 9.0), so it is given none.
                        doc.child("volume").remove_child("key");
                        doc.child("volume").child("target").remove_child("path");
                        cap.text().set(std::to_string(capacity).c_str());
                        std::ostringstream out;
                        doc.save(out, "", pugi::format_raw | pugi::format_no_declaration);
                        Pool p(virStoragePoolLookupByName(c, pool.c_str()));
                        if (virStorageVolDelete(vol->get(), 0) < 0) return std::unexpected(LastError("resizing"));
                        Volume v(virStorageVolCreateXML(p.get(), out.str().c_str(), 0));
                        if (!v) return std::unexpected(LastError("resizing"));
                        return {};
                      });
  }

  Result<void> UploadVolume(const std::string& pool, const std::string& name, const std::string& file,
                            const std::string& format) override {
    std::error_code ec;
    const std::uint64_t size = std::filesystem::file_size(file, ec);
    if (ec) return Fail(ErrorCode::kIo, ec.message(), "reading " + file);
    return MutatePool("upload-volume", "importing " + file + " as " + pool + "/" + name, pool,
                      [&](virConnectPtr c) -> Result<void> {
                        Pool p(virStoragePoolLookupByName(c, pool.c_str()));
                        if (!p) return std::unexpected(LastError("looking up the pool"));
                        if (auto old = LookupVolume(c, pool, name)) virStorageVolDelete(old->get(), 0);
                        if (!caps_.volume_upload) {
                          // The test driver stores no bytes: a volume of the image's size stands in.
                          const std::uint64_t capacity =
                              format == "qcow2" ? Qcow2VirtualSize(file).value_or(size) : size;
                          Volume v(virStorageVolCreateXML(p.get(), VolumeXml(name, capacity, format, "", "").c_str(), 0));
                          if (!v) return std::unexpected(LastError(""));
                          return {};
                        }
                        // A raw volume of the file's size receives the bytes as they are; the pool
                        // refresh then sees the real format (qcow2 images keep theirs).
                        Volume v(virStorageVolCreateXML(p.get(), VolumeXml(name, size, "raw", "", "").c_str(), 0));
                        if (!v) return std::unexpected(LastError("creating the volume"));
                        Stream st(virStreamNew(c, 0));
                        if (!st || virStorageVolUpload(v.get(), st.get(), 0, size, 0) < 0) {
                          return std::unexpected(LastError("starting the upload"));
                        }
                        std::ifstream in(file, std::ios::binary);
                        char buf[1 << 16];
                        while (in) {
                          in.read(buf, sizeof buf);
                          for (std::streamsize off = 0; off < in.gcount();) {
                            const int sent = virStreamSend(st.get(), buf + off, static_cast<size_t>(in.gcount() - off));
                            if (sent < 0) {
                              virStreamAbort(st.get());
                              return std::unexpected(LastError("uploading"));
                            }
                            off += sent;
                          }
                        }
                        if (virStreamFinish(st.get()) < 0) return std::unexpected(LastError("finishing the upload"));
                        virStoragePoolRefresh(p.get(), 0);
                        return {};
                      });
  }

  // ---- snapshots ---------------------------------------------------------------------------

  Result<std::vector<ObservedSnapshot>> ListSnapshots(const std::string& name) override {
    return Run<std::vector<ObservedSnapshot>>(
        "list-snapshots", false, "listing snapshots of " + name,
        [&](virConnectPtr c) -> Result<std::vector<ObservedSnapshot>> {
          auto dom = LookupDomain(c, name);
          if (!dom) return std::unexpected(dom.error());
          return ReadSnapshots(dom->get());
        });
  }

  Result<void> CreateSnapshot(const std::string& name, const SnapshotRequest& request) override {
    return Mutate("snapshot-create", "creating snapshot " + request.name + " of " + name, name,
                  [&](virConnectPtr c) -> Result<void> {
                    auto dom = LookupDomain(c, name);
                    if (!dom) return std::unexpected(dom.error());
                    pugi::xml_document doc;
                    pugi::xml_node root = doc.append_child("domainsnapshot");
                    root.append_child("name").text().set(request.name.c_str());
                    std::string description = request.description;
                    if (!request.policy.empty()) {
                      description = std::string(kPolicyPrefix) + request.policy + "] " + description;
                    }
                    if (!description.empty()) root.append_child("description").text().set(description.c_str());
                    std::ostringstream xml;
                    doc.save(xml, "", pugi::format_raw | pugi::format_no_declaration);
                    // Quiesce: QEMU takes the QUIESCE flag only with disk-only snapshots, so the
                    // guest agent freezes the filesystems around an internal snapshot instead.
                    unsigned int flags = 0;
                    bool frozen = false;
                    if (request.quiesce && virDomainIsActive(dom->get()) == 1) {
                      if (caps_.driver == "TEST") {
                        flags |= VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE;
                      } else if (virDomainFSFreeze(dom->get(), nullptr, 0, 0) >= 0) {
                        frozen = true;
                      } else {
                        log_->warn("node={} vm={} quiesce impossible ({}); snapshot taken without it",
                                   config_.name, name, LastError("").message);
                      }
                    }
                    Snapshot s(virDomainSnapshotCreateXML(dom->get(), xml.str().c_str(), flags));
                    if (!s && flags != 0) {
                      // No guest agent to freeze filesystems: a crash-consistent snapshot instead.
                      log_->warn("node={} vm={} quiesce failed ({}); snapshot taken without it",
                                 config_.name, name, LastError("").message);
                      s.reset(virDomainSnapshotCreateXML(dom->get(), xml.str().c_str(), 0));
                    }
                    const Error failed = s ? Error{} : LastError("");
                    if (frozen) virDomainFSThaw(dom->get(), nullptr, 0, 0);
                    if (!s) return std::unexpected(failed);
                    return {};
                  });
  }

  Result<void> DeleteSnapshot(const std::string& name, const std::string& snapshot) override {
    return SnapshotOp("snapshot-delete", "deleting snapshot " + snapshot + " of " + name, name, snapshot,
                      [](virDomainSnapshotPtr s) { return virDomainSnapshotDelete(s, 0); });
  }

  Result<void> RevertSnapshot(const std::string& name, const std::string& snapshot) override {
    return SnapshotOp("snapshot-revert", "reverting " + name + " to snapshot " + snapshot, name, snapshot,
                      [](virDomainSnapshotPtr s) { return virDomainRevertToSnapshot(s, 0); });
  }

  // ---- backups -----------------------------------------------------------------------------

  Result<void> BackupDisks(const std::string& name, const std::map<std::string, DiskBackupFile>& disks,
                           std::chrono::seconds timeout) override {
    if (!caps_.backup) {
      return Fail(ErrorCode::kUnsupported,
                  "node " + config_.name + " (" + caps_.driver + " driver) cannot take live backups",
                  "backing up " + name);
    }
    const std::string context = "backing up " + name + " on " + config_.name;
    auto begun = Run<void>("backup", true, context, [&](virConnectPtr c) -> Result<void> {
      auto dom = LookupDomain(c, name);
      if (!dom) return std::unexpected(dom.error());
      if (virDomainIsActive(dom->get()) != 1) {
        return Fail(ErrorCode::kFailedPrecondition, "a live backup needs a running (or paused) domain");
      }
      // A backup job an interrupted earlier attempt left running wrote into files we are about
      // to replace: abort it.
      virDomainJobInfo info{};
      if (virDomainGetJobInfo(dom->get(), &info) == 0 && info.type != VIR_DOMAIN_JOB_NONE) {
        int type = 0, nparams = 0;
        virTypedParameterPtr params = nullptr;
        int operation = 0;
        if (virDomainGetJobStats(dom->get(), &type, &params, &nparams, 0) == 0) {
          virTypedParamsGetInt(params, nparams, VIR_DOMAIN_JOB_OPERATION, &operation);
          virTypedParamsFree(params, nparams);
        }
        if (operation != VIR_DOMAIN_JOB_OPERATION_BACKUP) {
          return Fail(ErrorCode::kFailedPrecondition, "the domain is busy with another job (operation " +
                                                          std::to_string(operation) + ")");
        }
        log_->warn("node={} vm={} aborting a backup job left by an earlier attempt", config_.name, name);
        virDomainAbortJob(dom->get());
        for (int i = 0; i < 100 && virDomainGetJobInfo(dom->get(), &info) == 0 && info.type != VIR_DOMAIN_JOB_NONE; ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
      }
      // Every disk device of the running domain is listed: ours by alias, the rest (cdroms,
      // disks not asked for) with backup='no'.
      pugi::xml_document live;
      live.load_string(TakeString(virDomainGetXMLDesc(dom->get(), 0)).c_str());
      pugi::xml_document doc;
      pugi::xml_node root = doc.append_child("domainbackup");
      root.append_attribute("mode") = "push";
      pugi::xml_node list = root.append_child("disks");
      std::set<std::string> found;
      for (pugi::xml_node dn : live.child("domain").child("devices").children("disk")) {
        const std::string target = dn.child("target").attribute("dev").as_string();
        if (target.empty()) continue;
        const std::string alias = dn.child("alias").attribute("name").as_string();
        pugi::xml_node d = list.append_child("disk");
        d.append_attribute("name") = target.c_str();
        const std::string disk = alias.starts_with("ua-disk-") ? alias.substr(8) : "";
        auto it = disks.find(disk);
        if (disk.empty() || it == disks.end() || std::string_view(dn.attribute("device").as_string()) != "disk") {
          d.append_attribute("backup") = "no";
          continue;
        }
        found.insert(disk);
        d.append_attribute("backup") = "yes";
        d.append_attribute("type") = "file";
        d.append_child("target").append_attribute("file") = it->second.file.c_str();
        d.append_child("driver").append_attribute("type") = it->second.format.c_str();
        std::error_code ec;
        std::filesystem::remove(it->second.file, ec);
      }
      for (const auto& [disk, _] : disks) {
        if (!found.contains(disk)) return Fail(ErrorCode::kNotFound, "the running domain has no disk " + disk);
      }
      std::ostringstream xml;
      doc.save(xml, "", pugi::format_raw | pugi::format_no_declaration);
      if (virDomainBackupBegin(dom->get(), xml.str().c_str(), nullptr, 0) < 0) return std::unexpected(LastError(""));
      return {};
    });
    if (!begun) return begun;
    // Wait for the job in short calls, so a reconnect is never blocked behind the wait.
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      auto state = Run<int>("get-job", false, context, [&](virConnectPtr c) -> Result<int> {
        auto dom = LookupDomain(c, name);
        if (!dom) return std::unexpected(dom.error());
        virDomainJobInfo info{};
        if (virDomainGetJobInfo(dom->get(), &info) < 0) return std::unexpected(LastError("reading the job"));
        return info.type;
      });
      if (!state) return std::unexpected(state.error());
      if (*state == VIR_DOMAIN_JOB_NONE) break;
      if (std::chrono::steady_clock::now() >= deadline) {
        (void)Run<void>("abort-job", false, context, [&](virConnectPtr c) -> Result<void> {
          auto dom = LookupDomain(c, name);
          if (dom) virDomainAbortJob(dom->get());
          return {};
        });
        return Fail(ErrorCode::kTimeout, "the backup job did not finish within " + FormatDuration(timeout) +
                                             "; it was aborted", context);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    // How it ended: the completed job's statistics.
    return Run<void>("get-job", false, context, [&](virConnectPtr c) -> Result<void> {
      auto dom = LookupDomain(c, name);
      if (!dom) return std::unexpected(dom.error());
      int type = 0, nparams = 0;
      virTypedParameterPtr params = nullptr;
      if (virDomainGetJobStats(dom->get(), &type, &params, &nparams, VIR_DOMAIN_JOB_STATS_COMPLETED) < 0) {
        return std::unexpected(LastError("reading the completed job"));
      }
      const char* message = nullptr;
      virTypedParamsGetString(params, nparams, VIR_DOMAIN_JOB_ERRMSG, &message);
      const std::string why = message != nullptr ? message : "";
      virTypedParamsFree(params, nparams);
      if (type != VIR_DOMAIN_JOB_COMPLETED) {
        return Fail(ErrorCode::kInternal, "the backup job failed" + (why.empty() ? "" : ": " + why));
      }
      return {};
    });
  }

 private:
  // ---- connection --------------------------------------------------------------------------

  static void OnClose(virConnectPtr, int reason, void* opaque) {
    auto* self = static_cast<LibvirtHypervisor*>(opaque);
    self->lost_ = true;
    self->log_->warn("node={} connection closed (reason {})", self->config_.name, reason);
  }

  Result<void> OpenLocked() {
    Connection c(virConnectOpen(uri_.c_str()));
    if (!c) return std::unexpected(LastError("connecting to node " + config_.name + " (" + uri_ + ")"));
    const bool remote = uri_.find("+ssh") != std::string::npos || uri_.find("+tls") != std::string::npos ||
                        uri_.find("+tcp") != std::string::npos;
    if (remote) virConnectSetKeepAlive(c.get(), 5, 3);
    virConnectRegisterCloseCallback(c.get(), &OnClose, this, nullptr);
    if (conn_) virConnectUnregisterCloseCallback(conn_.get(), &OnClose);
    conn_ = std::move(c);
    lost_ = false;
    return {};
  }

  // Reopens a lost connection, with backoff, for up to reconnect_timeout.
  Result<void> Reconnect() {
    std::unique_lock lock(conn_mu_);
    if (conn_ && !lost_ && virConnectIsAlive(conn_.get()) == 1) return {};  // another thread did it
    const auto deadline = std::chrono::steady_clock::now() + options_.reconnect_timeout;
    auto delay = std::chrono::milliseconds(200);
    Error last{ErrorCode::kUnavailable, "connection lost", ""};
    while (true) {
      auto ok = OpenLocked();
      if (ok) {
        log_->info("node={} reconnected to {}", config_.name, uri_);
        return {};
      }
      last = ok.error();
      if (std::chrono::steady_clock::now() + delay > deadline) break;
      std::this_thread::sleep_for(delay);
      delay = std::min(delay * 2, std::chrono::milliseconds(5000));
    }
    return Fail(ErrorCode::kUnavailable,
                "node unreachable for " + FormatDuration(options_.reconnect_timeout) + ": " + last.message,
                config_.name);
  }

  // Runs `fn` on a live connection; when the connection was lost, reconnects and runs it again,
  // once. Mutating operations go through the fault-injection seam first.
  template <typename T>
  Result<T> Run(std::string_view kind, bool mutating, const std::string& context,
                const std::function<Result<T>(virConnectPtr)>& fn) {
    if (mutating) {
      if (auto fault = InjectedFault(kind)) return std::unexpected(fault->Wrap(context));
    }
    for (int attempt = 0;; ++attempt) {
      Result<T> result = [&] {
        std::shared_lock lock(conn_mu_);
        return fn(conn_.get());
      }();
      if (mutating && attempt == 0 && result && InjectedConnectionLoss(kind)) {
        lost_ = true;
        result = Fail(ErrorCode::kUnavailable, "connection lost before the answer (GITVIRT_FAULTS lost)");
      }
      if constexpr (std::is_void_v<T>) {
        // Asked again after a lost connection: the first request may have been carried out
        // before the daemon went away. What it was to create is there, so it is done.
        if (mutating && attempt > 0 && !result && result.error().code == ErrorCode::kAlreadyExists) {
          log_->info("node={} {}: done before the connection was lost", config_.name, context);
          return {};
        }
      }
      if (result || attempt > 0) {
        if (!result) return std::unexpected(result.error().Wrap(context));
        return result;
      }
      bool lost = lost_ || IsConnectionLost(result.error());
      {
        std::shared_lock lock(conn_mu_);
        lost = lost || virConnectIsAlive(conn_.get()) != 1;
      }
      if (!lost) return std::unexpected(result.error().Wrap(context));
      log_->warn("node={} lost the connection ({}); reconnecting", config_.name, result.error().message);
      if (auto ok = Reconnect(); !ok) return std::unexpected(ok.error().Wrap(context));
    }
  }

  // A mutating operation on a domain, persisted afterwards on a simulated node.
  Result<void> Mutate(std::string_view kind, const std::string& context, const std::string& domain,
                      const std::function<Result<void>(virConnectPtr)>& fn) {
    return Run<void>(kind, true, context, [&](virConnectPtr c) -> Result<void> {
      auto result = fn(c);
      if (sim_) {
        if (auto saved = sim_->SaveDomain(c, domain); !saved && result) return saved;
      }
      return result;
    });
  }

  Result<void> MutatePool(std::string_view kind, const std::string& context, const std::string& pool,
                          const std::function<Result<void>(virConnectPtr)>& fn) {
    return Run<void>(kind, true, context, [&](virConnectPtr c) -> Result<void> {
      auto result = fn(c);
      if (sim_) {
        if (auto saved = sim_->SavePool(c, pool); !saved && result) return saved;
      }
      return result;
    });
  }

  Result<void> DomainOp(std::string_view kind, const std::string& context, const std::string& name,
                        const std::function<int(virDomainPtr)>& fn) {
    return Mutate(kind, context, name, [&](virConnectPtr c) -> Result<void> {
      auto dom = LookupDomain(c, name);
      if (!dom) return std::unexpected(dom.error());
      if (fn(dom->get()) < 0) return std::unexpected(LastError(""));
      return {};
    });
  }

  Result<void> PowerOp(std::string_view kind, const std::string& name,
                       const std::function<int(virDomainPtr, int)>& fn) {
    return Mutate(kind, std::string(kind) + " " + name + " on " + config_.name, name,
                  [&](virConnectPtr c) -> Result<void> {
                    auto dom = LookupDomain(c, name);
                    if (!dom) return std::unexpected(dom.error());
                    int state = 0, reason = 0;
                    if (virDomainGetState(dom->get(), &state, &reason, 0) < 0) return std::unexpected(LastError(""));
                    if (fn(dom->get(), state) < 0) return std::unexpected(LastError(""));
                    return {};
                  });
  }

  Result<void> SnapshotOp(std::string_view kind, const std::string& context, const std::string& name,
                          const std::string& snapshot, const std::function<int(virDomainSnapshotPtr)>& fn) {
    return Mutate(kind, context, name, [&](virConnectPtr c) -> Result<void> {
      auto dom = LookupDomain(c, name);
      if (!dom) return std::unexpected(dom.error());
      Snapshot s(virDomainSnapshotLookupByName(dom->get(), snapshot.c_str(), 0));
      if (!s) return std::unexpected(LastError(""));
      if (fn(s.get()) < 0) return std::unexpected(LastError(""));
      return {};
    });
  }

  // A domain's snapshots, oldest first; the policy that made each is parsed out of its
  // description ("[gitvirt policy=NAME] ...").
  static Result<std::vector<ObservedSnapshot>> ReadSnapshots(virDomainPtr dom) {
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

  static Result<Domain> LookupDomain(virConnectPtr c, const std::string& name) {
    Domain dom(virDomainLookupByName(c, name.c_str()));
    if (!dom) return std::unexpected(LastError("looking up domain " + name));
    return dom;
  }

  static Result<Volume> LookupVolume(virConnectPtr c, const std::string& pool, const std::string& name) {
    Pool p(virStoragePoolLookupByName(c, pool.c_str()));
    if (!p) return std::unexpected(LastError("looking up pool " + pool));
    Volume v(virStorageVolLookupByName(p.get(), name.c_str()));
    if (!v) return std::unexpected(LastError("looking up volume " + pool + "/" + name));
    return v;
  }

  static ObservedVolume DescribeVolume(virStorageVolPtr v, const std::string& pool, bool with_xml) {
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
      pugi::xml_document doc;
      doc.load_string(TakeString(virStorageVolGetXMLDesc(v, 0)).c_str());
      out.format = doc.child("volume").child("target").child("format").attribute("type").as_string();
      out.backing = doc.child("volume").child("backingStore").child("path").text().as_string();
    }
    return out;
  }

  // The path and size of a pool volume or a file the node knows about.
  Result<ObservedVolume> ResolveStorage(virConnectPtr c, const StorageRef& ref) {
    Volume v;
    if (ref.IsVolume()) {
      auto found = LookupVolume(c, ref.pool, ref.volume);
      if (!found) return std::unexpected(found.error());
      v = std::move(*found);
    } else {
      v.reset(virStorageVolLookupByPath(c, ref.path.c_str()));
      if (!v) {
        ObservedVolume out;
        out.path = ref.path;
        std::error_code ec;
        out.capacity = std::filesystem::file_size(ref.path, ec);
        if (ec) return Fail(ErrorCode::kNotFound, "no such volume or file: " + ref.path);
        return out;
      }
    }
    return DescribeVolume(v.get(), ref.pool, false);
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
      pugi::xml_document doc;
      doc.load_string(TakeString(virStoragePoolGetXMLDesc(p.get(), 0)).c_str());
      pool.path = doc.child("pool").child("target").child("path").text().as_string();
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

  ObservedVm ObserveDomain(virDomainPtr dom, const std::vector<ObservedPool>& pools) {
    ObservedVm vm;
    vm.node = config_.name;
    vm.name = virDomainGetName(dom);
    char uuid[VIR_UUID_STRING_BUFLEN];
    if (virDomainGetUUIDString(dom, uuid) == 0) vm.uuid = uuid;
    int state = 0, reason = 0;
    virDomainGetState(dom, &state, &reason, 0);
    vm.power = ToPower(state);
    vm.state_detail = StateName(state);
    vm.persistent = virDomainIsPersistent(dom) == 1;
    int autostart = 0;
    virDomainGetAutostart(dom, &autostart);
    vm.autostart = autostart != 0;
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
      for (const ObservedPool& p : pools) {
        if (ref.IsVolume() && p.name != ref.pool) continue;
        for (const ObservedVolume& v : p.volumes) {
          if (ref.IsVolume() ? v.name == ref.volume : v.path == ref.path) return v.capacity;
        }
      }
      return std::nullopt;
    };
    vm.actual = NormalizeObserved(*parsed, vm.last_applied, capacity_of);
    vm.actual.node = config_.name;
    vm.actual.power_state = vm.power;
    vm.actual.autostart = vm.autostart;
    if (auto snapshots = ReadSnapshots(dom)) vm.snapshots = std::move(*snapshots);
    return vm;
  }

  Result<ObservedNode> ObserveLocked(virConnectPtr c) {
    ObservedNode node;
    node.name = config_.name;
    node.capabilities = caps_;
    virNodeInfo info;
    if (virNodeGetInfo(c, &info) < 0) return std::unexpected(LastError("reading node info"));
    node.cpus = config_.capacity_vcpus.value_or(static_cast<int>(info.cpus));
    node.memory = config_.capacity_memory.value_or(static_cast<std::uint64_t>(info.memory) * 1024);
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
    virDomainPtr* domains = nullptr;
    const int nd = virConnectListAllDomains(c, &domains, 0);
    if (nd < 0) return std::unexpected(LastError("listing domains"));
    for (int i = 0; i < nd; ++i) {
      Domain dom(domains[i]);
      node.vms.push_back(ObserveDomain(dom.get(), node.pools));
    }
    free(domains);
    std::sort(node.vms.begin(), node.vms.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    node.reachable = true;
    return node;
  }

  NodeConfig config_;
  HypervisorOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  std::optional<SimStore> sim_;
  std::string uri_;
  std::shared_mutex conn_mu_;
  Connection conn_;
  std::atomic<bool> lost_{false};
  NodeCapabilities caps_;
  std::string virt_type_ = "kvm";
};

}  // namespace

Result<std::unique_ptr<Hypervisor>> ConnectNode(const NodeConfig& node, const HypervisorOptions& options) {
  auto hv = std::make_unique<LibvirtHypervisor>(node, options);
  if (auto ok = hv->Open(); !ok) return std::unexpected(ok.error());
  return std::unique_ptr<Hypervisor>(std::move(hv));
}

}  // namespace gitvirt
