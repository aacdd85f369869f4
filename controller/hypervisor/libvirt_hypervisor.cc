#include "gitvirt/hypervisor/libvirt_hypervisor.h"

#include <pugixml.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
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
#include "gitvirt/core/observed_codec.h"
#include "gitvirt/hypervisor/domain_xml.h"
#include "gitvirt/hypervisor/fault_injection.h"
#include "libvirt_util.h"
#include "sim_store.h"

#include <libvirt/libvirt-qemu.h>

#include <elf.h>
#include <link.h>

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

std::atomic<std::uint64_t> g_simulated_loads{0};

// The GNU build ID of the executable (which links this code statically): it names the code
// that made an observation snapshot, so a rebuilt gitvirt never trusts an older one's (its
// parser or normaliser may have changed). "" when the executable has none.
const std::string& ExecutableBuildId() {
  static const std::string id = [] {
    std::string out;
    dl_iterate_phdr(
        [](dl_phdr_info* info, std::size_t, void* data) -> int {
          auto* hex = static_cast<std::string*>(data);
          for (int i = 0; i < info->dlpi_phnum; ++i) {
            const ElfW(Phdr)& ph = info->dlpi_phdr[i];
            if (ph.p_type != PT_NOTE) continue;
            const char* p = reinterpret_cast<const char*>(info->dlpi_addr + ph.p_vaddr);
            const char* end = p + ph.p_memsz;
            while (p + sizeof(ElfW(Nhdr)) <= end) {
              const auto* note = reinterpret_cast<const ElfW(Nhdr)*>(p);
              const char* name = p + sizeof(ElfW(Nhdr));
              const char* desc = name + ((note->n_namesz + 3) & ~3U);
              if (desc + note->n_descsz > end) break;
              if (note->n_type == NT_GNU_BUILD_ID && note->n_namesz == 4 && std::memcmp(name, "GNU", 4) == 0) {
                static constexpr char kDigits[] = "0123456789abcdef";
                for (std::size_t k = 0; k < note->n_descsz; ++k) {
                  const auto byte = static_cast<unsigned char>(desc[k]);
                  hex->push_back(kDigits[byte >> 4]);
                  hex->push_back(kDigits[byte & 15]);
                }
                return 1;
              }
              p = desc + ((note->n_descsz + 3) & ~3U);
            }
          }
          return 1;  // the first object is the executable: stop there
        },
        &out);
    return out;
  }();
  return id;
}

// GITVIRT_SIM_SNAPSHOTS=0 (or off): always observe simulated nodes through the test driver.
bool SimSnapshotsEnabled() {
  const char* v = std::getenv("GITVIRT_SIM_SNAPSHOTS");
  return v == nullptr || (std::string_view(v) != "0" && std::string_view(v) != "off");
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
      // The test driver, always. Its connection opens (and parses every domain of the node's
      // files) at the first call that needs it: an observation that a snapshot can answer
      // does not (see Observe).
      caps_.driver = "TEST";
      caps_.persistent_simulation = true;
      caps_.volume_resize = true;  // emulated: a simulated volume is only metadata
      virt_type_ = "kvm";
      return {};
    }
    uri_ = config_.uri;
    std::unique_lock lock(conn_mu_);
    if (auto ok = OpenLocked(); !ok) return ok;
    connected_ = true;
    virConnectPtr c = conn_.get();
    const char* type = virConnectGetType(c);
    caps_.driver = type != nullptr ? type : "?";
    if (caps_.driver == "TEST") {
      virt_type_ = "kvm";  // the test driver cannot resize volumes: caps_.volume_resize stays off
    } else {
      caps_.live_device_changes = true;
      caps_.block_resize = true;
      caps_.volume_resize = true;
      caps_.backup = caps_.driver == "QEMU";
      caps_.migration = caps_.driver == "QEMU";
      caps_.volume_upload = true;
      caps_.guests = true;
      if (const char* forced = std::getenv("GITVIRT_VIRT_TYPE"); forced != nullptr && *forced) {
        virt_type_ = forced;
      } else {
        char* domcaps = virConnectGetDomainCapabilities(c, nullptr, "x86_64", nullptr, "kvm", 0);
        virt_type_ = domcaps != nullptr ? "kvm" : "qemu";
        free(domcaps);
      }
    }
    return {};
  }

  const std::string& node() const override { return config_.name; }
  const NodeCapabilities& capabilities() const override { return caps_; }

  // ---- observation -------------------------------------------------------------------------

  // A simulated node not yet connected is answered from its snapshot when the snapshot was
  // made from the files as they are now (same generation: nothing changed them since) by this
  // build with this node's configuration; that is what the test driver would load and this
  // code would observe, without parsing every domain. Otherwise the node is observed for real,
  // and the result kept as the snapshot when it shows the files of one generation.
  Result<ObservedNode> Observe() override {
    if (auto snapshot = FromSnapshot()) return std::move(*snapshot);
    auto observed = Run<ObservedNode>("observe", false, "observing node " + config_.name,
                                      [&](virConnectPtr c) { return ObserveLocked(c); });
    if (observed) KeepSnapshot(*observed);
    return observed;
  }

  Result<ObservedVm> ObserveVm(const std::string& name) override {
    return Run<ObservedVm>("observe", false, "observing " + name, [&](virConnectPtr c) -> Result<ObservedVm> {
      auto dom = LookupDomain(c, name);
      if (!dom) return std::unexpected(dom.error());
      return ObserveDomain(dom->get(), SingleDomainFacts(c, dom->get()));
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
      // An existing domain's disks may run on external snapshot overlays: the new definition
      // keeps them. A new domain (def.uuid == "") has neither.
      std::string uuid = def.uuid.value_or("");
      std::string existing_xml;
      if (!def.uuid || !def.uuid->empty()) {
        if (Domain existing{virDomainLookupByName(c, name.c_str())}) {
          char buf[VIR_UUID_STRING_BUFLEN];
          if (virDomainGetUUIDString(existing.get(), buf) == 0) uuid = buf;
          existing_xml = TakeString(virDomainGetXMLDesc(existing.get(), VIR_DOMAIN_XML_INACTIVE));
        }
      }
      if (!uuid.empty()) {
        pugi::xml_document doc;
        doc.load_string(xml.c_str());
        pugi::xml_node dom = doc.child("domain");
        dom.insert_child_after("uuid", dom.child("name")).text().set(uuid.c_str());
        if (!existing_xml.empty()) KeepOverlays(doc, existing_xml);
        std::ostringstream out;
        doc.save(out, "  ", pugi::format_indent | pugi::format_no_declaration);
        xml = out.str();
      }
      std::unique_lock<std::mutex> validating;
      if (uri_.starts_with("test:///")) validating = std::unique_lock(InProcessValidationMutex());
      Domain dom(virDomainDefineXMLFlags(c, xml.c_str(), VIR_DOMAIN_DEFINE_VALIDATE));
      validating = {};
      if (!dom) return std::unexpected(LastError(""));
      // A new domain starts with autostart off: only say otherwise.
      const bool is_new = def.uuid && def.uuid->empty();
      if ((!is_new || def.vm.spec.autostart) && virDomainSetAutostart(dom.get(), def.vm.spec.autostart ? 1 : 0) < 0) {
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

  Result<void> Undefine(const std::string& name) override { return UndefineDomain(name, false); }
  Result<void> UndefineKeepingFirmwareState(const std::string& name) override { return UndefineDomain(name, true); }

  Result<void> UndefineDomain(const std::string& name, bool keep_firmware_state) {
    return Mutate("undefine", "undefining " + name + " on " + config_.name, name, [&](virConnectPtr c) -> Result<void> {
      auto dom = LookupDomain(c, name);
      if (!dom) return std::unexpected(dom.error());
      if (virDomainIsActive(dom->get()) == 1 && virDomainDestroy(dom->get()) < 0) {
        return std::unexpected(LastError("destroying before undefine"));
      }
      unsigned int flags = VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | VIR_DOMAIN_UNDEFINE_MANAGED_SAVE;
      if (caps_.driver != "TEST") {
        flags |= VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA;
        flags |= keep_firmware_state ? VIR_DOMAIN_UNDEFINE_KEEP_NVRAM | VIR_DOMAIN_UNDEFINE_KEEP_TPM
                                     : VIR_DOMAIN_UNDEFINE_NVRAM;
      }
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
    return Mutate("start", "start " + name + " on " + config_.name, name, [&](virConnectPtr c) -> Result<void> {
      auto dom = LookupDomain(c, name);
      if (!dom) return std::unexpected(dom.error());
      int state = 0, reason = 0;
      // Start first, ask after: a domain that already runs refuses, and is then fine as it is.
      if (virDomainCreate(dom->get()) < 0) {
        Error refused = LastError("");
        if (virDomainGetState(dom->get(), &state, &reason, 0) < 0) return std::unexpected(LastError(""));
        if (ToPower(state) != PowerState::kStopped) return {};
        return std::unexpected(std::move(refused));
      }
      // A guest that stops itself at once (firmware emulation failure, I/O error) starts
      // "successfully" and sits paused: that is a failed start, not a running VM.
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
                        // External-snapshot overlays of the volume (ExternalSnapshotOverlay) live
                        // and die with it: nothing else can use them.
                        if (!sim_) {
                          Pool p(virStoragePoolLookupByName(c, pool.c_str()));
                          if (p && virStoragePoolRefresh(p.get(), 0) == 0) {
                            const std::string prefix = name + std::string(kOverlayInfix);
                            virStorageVolPtr* vols = nullptr;
                            const int n = virStoragePoolListAllVolumes(p.get(), &vols, 0);
                            std::vector<Volume> all;
                            for (int i = 0; i < n; ++i) all.emplace_back(vols[i]);
                            free(vols);
                            for (const Volume& v : all) {
                              if (std::string_view(virStorageVolGetName(v.get())).starts_with(prefix) &&
                                  virStorageVolDelete(v.get(), 0) < 0) {
                                return std::unexpected(LastError("deleting an overlay of " + name));
                              }
                            }
                          }
                        }
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

  Result<void> ReadVolume(const std::string& pool, const std::string& name, VolumeSink& sink) override {
    if (!caps_.volume_upload) {
      return Fail(ErrorCode::kUnsupported, "node " + config_.name + " (" + caps_.driver + " driver) holds no volume bytes",
                  "reading volume " + pool + "/" + name);
    }
    return Run<void>("download-volume", false, "reading volume " + pool + "/" + name + " on " + config_.name,
                     [&](virConnectPtr c) -> Result<void> {
                       auto vol = LookupVolume(c, pool, name);
                       if (!vol) return std::unexpected(vol.error());
                       Stream st(virStreamNew(c, 0));
                       if (!st || virStorageVolDownload(vol->get(), st.get(), 0, 0,
                                                        VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM) < 0) {
                         return std::unexpected(LastError("starting the download"));
                       }
                       std::vector<char> buf(1 << 20);
                       while (true) {
                         const int got = virStreamRecvFlags(st.get(), buf.data(), buf.size(), VIR_STREAM_RECV_STOP_AT_HOLE);
                         Result<void> passed;
                         if (got > 0) {
                           passed = sink.Write(buf.data(), static_cast<std::size_t>(got));
                         } else if (got == -3) {
                           long long hole = 0;
                           if (virStreamRecvHole(st.get(), &hole, 0) < 0) {
                             const Error e = LastError("reading a hole");
                             virStreamAbort(st.get());
                             sink.Abort();
                             return std::unexpected(e);
                           }
                           passed = sink.Hole(static_cast<std::uint64_t>(hole));
                         } else if (got == 0) {
                           break;
                         } else {
                           const Error e = LastError("downloading");
                           virStreamAbort(st.get());
                           sink.Abort();
                           return std::unexpected(e);
                         }
                         if (!passed) {
                           virStreamAbort(st.get());
                           sink.Abort();
                           return passed;
                         }
                       }
                       if (virStreamFinish(st.get()) < 0) {
                         const Error e = LastError("finishing the download");
                         sink.Abort();
                         return std::unexpected(e);
                       }
                       return sink.Finish();
                     });
  }

  // Fills a fresh raw volume through a sparse upload stream; the pool refresh afterwards reads
  // the format from what arrived.
  class UploadSink final : public VolumeSink {
   public:
    UploadSink(Pool pool, Volume vol, Stream st, std::string what)
        : pool_(std::move(pool)), vol_(std::move(vol)), st_(std::move(st)), what_(std::move(what)) {}
    ~UploadSink() override {
      if (!done_) Abort();
    }
    Result<void> Write(const char* data, std::size_t size) override {
      for (std::size_t off = 0; off < size;) {
        const int sent = virStreamSend(st_.get(), data + off, size - off);
        if (sent < 0) return std::unexpected(LastError("uploading " + what_));
        off += static_cast<std::size_t>(sent);
      }
      return {};
    }
    Result<void> Hole(std::uint64_t length) override {
      if (virStreamSendHole(st_.get(), static_cast<long long>(length), 0) < 0) {
        return std::unexpected(LastError("uploading a hole of " + what_));
      }
      return {};
    }
    Result<void> Finish() override {
      done_ = true;
      if (virStreamFinish(st_.get()) < 0) return std::unexpected(LastError("finishing the upload of " + what_));
      virStoragePoolRefresh(pool_.get(), 0);
      return {};
    }
    void Abort() override {
      if (done_) return;
      done_ = true;
      virStreamAbort(st_.get());
    }

   private:
    Pool pool_;
    Volume vol_;
    Stream st_;
    std::string what_;
    bool done_ = false;
  };

  Result<std::unique_ptr<VolumeSink>> WriteVolume(const VolumeSpec& spec) override {
    const std::string what = spec.pool + "/" + spec.name;
    if (!caps_.volume_upload) {
      return Fail(ErrorCode::kUnsupported, "node " + config_.name + " (" + caps_.driver + " driver) holds no volume bytes",
                  "writing volume " + what);
    }
    return Run<std::unique_ptr<VolumeSink>>(
        "upload-volume", true, "writing volume " + what + " on " + config_.name,
        [&](virConnectPtr c) -> Result<std::unique_ptr<VolumeSink>> {
          Pool p(virStoragePoolLookupByName(c, spec.pool.c_str()));
          if (!p) return std::unexpected(LastError("looking up the pool"));
          Volume v(virStorageVolCreateXML(p.get(), VolumeXml(spec.name, spec.capacity, "raw", "", "").c_str(), 0));
          if (!v) return std::unexpected(LastError("creating the volume"));
          Stream st(virStreamNew(c, 0));
          if (!st || virStorageVolUpload(v.get(), st.get(), 0, spec.capacity, VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM) < 0) {
            const Error e = LastError("starting the upload");
            virStorageVolDelete(v.get(), 0);
            return std::unexpected(e);
          }
          return std::unique_ptr<VolumeSink>(std::make_unique<UploadSink>(std::move(p), std::move(v), std::move(st), what));
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

  Result<SnapshotTaken> CreateSnapshot(const std::string& name, const SnapshotRequest& request) override {
    // The mark is what lets a policy's retention delete a snapshot: a snapshot made by hand may
    // not carry it, or retention would take it for the policy's own.
    if (request.policy.empty() && request.description.starts_with(kPolicyPrefix)) {
      return Fail(ErrorCode::kInvalidArgument, "a snapshot description may not start with \"" +
                                                   std::string(kPolicyPrefix) +
                                                   "\": that prefix marks the snapshots a SnapshotPolicy owns");
    }
    SnapshotTaken taken;
    auto made = Mutate(
        "snapshot-create", "creating snapshot " + request.name + " of " + name, name,
        [&](virConnectPtr c) -> Result<void> {
          taken = SnapshotTaken{};
          auto dom = LookupDomain(c, name);
          if (!dom) return std::unexpected(dom.error());
          const bool active = virDomainIsActive(dom->get()) == 1;
          pugi::xml_document live;
          live.load_string(TakeString(virDomainGetXMLDesc(dom->get(), 0)).c_str());
          pugi::xml_document doc;
          pugi::xml_node root = doc.append_child("domainsnapshot");
          root.append_child("name").text().set(request.name.c_str());
          std::string description = request.description;
          if (!request.policy.empty()) description = std::string(kPolicyPrefix) + request.policy + "] " + description;
          if (!description.empty()) root.append_child("description").text().set(description.c_str());
          unsigned int flags = 0;
          bool started_paused = false;
          if (caps_.driver != "TEST" && UsesPflash(live)) {
            // libvirt 9.0 refuses internal snapshots of a VM with pflash firmware, and cannot
            // delete the external snapshots it takes of a stopped one (their overlay chain is
            // not recorded): external, always of a running domain. A stopped VM is started
            // paused for it (its CPUs never run a guest instruction) and destroyed after.
            if (!active) {
              if (virDomainCreateWithFlags(dom->get(), VIR_DOMAIN_START_PAUSED) < 0) {
                return std::unexpected(LastError("starting it paused for an external snapshot"));
              }
              started_paused = true;
              live.reset();
              live.load_string(TakeString(virDomainGetXMLDesc(dom->get(), 0)).c_str());
            }
            if (auto disks = ExternalSnapshotDisks(c, live, request.name, root); !disks) {
              if (started_paused) virDomainDestroy(dom->get());
              return std::unexpected(disks.error());
            }
            flags = VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY | VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC;
            taken.kind = "external";
            if (started_paused) taken.note = "the VM was stopped: started paused for the snapshot and stopped again";
          }
          std::ostringstream xml;
          doc.save(xml, "", pugi::format_raw | pugi::format_no_declaration);
          // Quiesce: the guest agent freezes the filesystems around the snapshot (for internal
          // snapshots QEMU takes no QUIESCE flag, so the freeze is done here for both kinds).
          bool frozen = false;
          if (request.quiesce) {
            if (!active) {
              taken.note = "the VM is not running: nothing to quiesce";
            } else if (caps_.driver == "TEST") {
              taken.note = "simulated node: no guest agent";
            } else if (const int n = virDomainFSFreeze(dom->get(), nullptr, 0, 0); n >= 0) {
              frozen = true;
              taken.frozen_filesystems = n;
            } else {
              taken.note = "the guest agent did not freeze the filesystems (" + LastError("").message + ")";
              log_->warn("node={} vm={} quiesce impossible: {}; snapshot taken without it", config_.name, name,
                         taken.note);
            }
          }
          Snapshot s(virDomainSnapshotCreateXML(dom->get(), xml.str().c_str(), flags));
          const Error failed = s ? Error{} : LastError("");
          if (frozen) {
            if (virDomainFSThaw(dom->get(), nullptr, 0, 0) < 0) {
              log_->error("node={} vm={} thawing the guest's filesystems failed: {}", config_.name, name,
                          LastError("").message);
            }
          }
          if (started_paused && virDomainDestroy(dom->get()) < 0) {
            const Error stop = LastError("stopping it again after the snapshot");
            return std::unexpected(s ? stop : failed);
          }
          if (!s) return std::unexpected(failed);
          taken.quiesced = frozen;
          return {};
        });
    if (!made) return std::unexpected(made.error());
    return taken;
  }

  Result<void> DeleteSnapshot(const std::string& name, const std::string& snapshot) override {
    return SnapshotOp("snapshot-delete", "deleting snapshot " + snapshot + " of " + name, name, snapshot,
                      [](virDomainSnapshotPtr s) { return virDomainSnapshotDelete(s, 0); });
  }

  Result<void> RevertSnapshot(const std::string& name, const std::string& snapshot) override {
    return Mutate("snapshot-revert", "reverting " + name + " to snapshot " + snapshot, name,
                  [&](virConnectPtr c) -> Result<void> {
                    auto dom = LookupDomain(c, name);
                    if (!dom) return std::unexpected(dom.error());
                    Snapshot s(virDomainSnapshotLookupByName(dom->get(), snapshot.c_str(), 0));
                    if (!s) return std::unexpected(LastError(""));
                    pugi::xml_document xml;
                    xml.load_string(TakeString(virDomainSnapshotGetXMLDesc(s.get(), VIR_DOMAIN_SNAPSHOT_XML_SECURE)).c_str());
                    for (pugi::xml_node d : xml.child("domainsnapshot").child("disks").children("disk")) {
                      if (std::string_view(d.attribute("snapshot").as_string()) == "external") {
                        return RevertExternal(c, dom->get(), s.get(), xml);
                      }
                    }
                    if (virDomainRevertToSnapshot(s.get(), 0) < 0) return std::unexpected(LastError(""));
                    return {};
                  });
  }

  // Reverting to an external disk-only snapshot, which libvirt 9.0 cannot do itself. The
  // snapshot S put each disk on a new overlay O whose backing file holds the disk as it was at
  // S; the snapshots taken after S are overlays stacked on O. So: the VM is stopped, the later
  // snapshots are dropped (their metadata and their overlay files: they record states that no
  // longer lead anywhere), O is recreated empty on the same backing file, the disk runs on O
  // again, S is the current snapshot, and the VM is started again if it ran. As with
  // `zfs rollback -r`, the snapshots after S are gone.
  Result<void> RevertExternal(virConnectPtr c, virDomainPtr dom, virDomainSnapshotPtr snap,
                              const pugi::xml_document& snapshot_xml) {
    const bool was_running = virDomainIsActive(dom) == 1;
    if (was_running && virDomainDestroy(dom) < 0) return std::unexpected(LastError("stopping it for the revert"));
    // QEMU and qemu-img made the overlay files: the pools list them after a refresh.
    virStoragePoolPtr* pools = nullptr;
    const int np = virConnectListAllStoragePools(c, &pools, VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE);
    for (int i = 0; i < np; ++i) {
      Pool p(pools[i]);
      if (virStoragePoolRefresh(p.get(), 0) < 0) virResetLastError();
    }
    free(pools);
    // Later snapshots, deepest first.
    virDomainSnapshotPtr* later = nullptr;
    const int n = virDomainSnapshotListAllChildren(snap, &later, VIR_DOMAIN_SNAPSHOT_LIST_DESCENDANTS);
    if (n < 0) return std::unexpected(LastError("listing the snapshots after it"));
    std::vector<Snapshot> descendants;
    for (int i = 0; i < n; ++i) descendants.emplace_back(later[i]);
    free(later);
    std::vector<std::string> dropped_overlays;
    for (auto it = descendants.rbegin(); it != descendants.rend(); ++it) {
      pugi::xml_document child;
      child.load_string(TakeString(virDomainSnapshotGetXMLDesc(it->get(), 0)).c_str());
      for (pugi::xml_node d : child.child("domainsnapshot").child("disks").children("disk")) {
        if (std::string_view(d.attribute("snapshot").as_string()) != "external") continue;
        dropped_overlays.push_back(d.child("source").attribute("file").as_string());
      }
      if (virDomainSnapshotDelete(it->get(), VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY) < 0) {
        return std::unexpected(LastError(std::string("dropping snapshot ") + virDomainSnapshotGetName(it->get())));
      }
    }
    // The definition: each snapshotted disk runs on S's overlay, with the chain below it.
    pugi::xml_document domain;
    domain.load_string(TakeString(virDomainGetXMLDesc(dom, VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE)).c_str());
    for (pugi::xml_node d : snapshot_xml.child("domainsnapshot").child("disks").children("disk")) {
      if (std::string_view(d.attribute("snapshot").as_string()) != "external") continue;
      const std::string target = d.attribute("name").as_string();
      const std::string overlay = d.child("source").attribute("file").as_string();
      pugi::xml_node disk;
      for (pugi::xml_node x : domain.child("domain").child("devices").children("disk")) {
        if (target == x.child("target").attribute("dev").as_string()) disk = x;
      }
      if (!disk) return Fail(ErrorCode::kFailedPrecondition, "disk " + target + " is no longer defined");
      pugi::xml_node at = disk;  // S's overlay in the disk's chain
      while (at && overlay != at.child("source").attribute("file").as_string()) at = at.child("backingStore");
      if (!at || !at.child("backingStore").child("source")) {
        return Fail(ErrorCode::kFailedPrecondition,
                    "disk " + target + " no longer runs on " + overlay + ": cannot revert to this snapshot");
      }
      const std::string below = at.child("backingStore").child("source").attribute("file").as_string();
      const std::string below_format = at.child("backingStore").child("format").attribute("type").as_string("qcow2");
      if (below.empty()) return Fail(ErrorCode::kFailedPrecondition, "the layer under " + overlay + " is not a file");
      if (auto made = RecreateOverlay(c, overlay, below, below_format); !made) return made;
      pugi::xml_node source = disk.child("source");
      pugi::xml_node chain = disk.child("backingStore");
      disk.insert_copy_after(at.child("source"), source).remove_attribute("index");
      disk.insert_copy_after(at.child("backingStore"), chain);
      disk.remove_child(source);
      disk.remove_child(chain);
    }
    std::ostringstream redefined;
    domain.save(redefined, "", pugi::format_raw | pugi::format_no_declaration);
    Domain defined(virDomainDefineXML(c, redefined.str().c_str()));
    if (!defined) return std::unexpected(LastError("redefining it on the snapshot's overlays"));
    for (const std::string& file : dropped_overlays) {
      Volume v(virStorageVolLookupByPath(c, file.c_str()));
      if (v && virStorageVolDelete(v.get(), 0) < 0) {
        log_->warn("node={} deleting overlay {} of a dropped snapshot failed: {}", config_.name, file,
                   LastError("").message);
      }
      if (!v) virResetLastError();
    }
    // S is the current snapshot again.
    const std::string xml = TakeString(virDomainSnapshotGetXMLDesc(snap, VIR_DOMAIN_SNAPSHOT_XML_SECURE));
    Snapshot current(virDomainSnapshotCreateXML(
        dom, xml.c_str(), VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE | VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT));
    if (!current) return std::unexpected(LastError("marking the snapshot current"));
    if (was_running && virDomainCreate(dom) < 0) return std::unexpected(LastError("starting it again"));
    return {};
  }

  // Replaces an overlay file with an empty qcow2 one on `below`, through its pool.
  Result<void> RecreateOverlay(virConnectPtr c, const std::string& overlay, const std::string& below,
                               const std::string& below_format) {
    Volume old(virStorageVolLookupByPath(c, overlay.c_str()));
    if (!old) return std::unexpected(LastError("looking up " + overlay));
    virStorageVolInfo info;
    if (virStorageVolGetInfo(old.get(), &info) < 0) return std::unexpected(LastError("reading " + overlay));
    Pool pool(virStoragePoolLookupByVolume(old.get()));
    if (!pool) return std::unexpected(LastError("finding the pool of " + overlay));
    const std::string volume_name = virStorageVolGetName(old.get());
    if (virStorageVolDelete(old.get(), 0) < 0) return std::unexpected(LastError("deleting " + overlay));
    pugi::xml_document doc;
    pugi::xml_node v = doc.append_child("volume");
    v.append_child("name").text().set(volume_name.c_str());
    v.append_child("capacity").text().set(std::to_string(info.capacity).c_str());
    pugi::xml_node target = v.append_child("target");
    target.append_child("format").append_attribute("type") = "qcow2";
    target.append_child("compat").text().set("1.1");
    pugi::xml_node backing = v.append_child("backingStore");
    backing.append_child("path").text().set(below.c_str());
    backing.append_child("format").append_attribute("type") = below_format.c_str();
    std::ostringstream xml;
    doc.save(xml, "", pugi::format_raw | pugi::format_no_declaration);
    Volume made(virStorageVolCreateXML(pool.get(), xml.str().c_str(), 0));
    if (!made) return std::unexpected(LastError("recreating " + overlay));
    return {};
  }

  Result<std::vector<std::string>> GetSnapshotXmls(const std::string& name) override {
    return Run<std::vector<std::string>>(
        "list-snapshots", false, "reading the snapshots of " + name,
        [&](virConnectPtr c) -> Result<std::vector<std::string>> {
          auto dom = LookupDomain(c, name);
          if (!dom) return std::unexpected(dom.error());
          virDomainSnapshotPtr* snaps = nullptr;
          const int n = virDomainListAllSnapshots(dom->get(), &snaps, VIR_DOMAIN_SNAPSHOT_LIST_TOPOLOGICAL);
          if (n < 0) return std::unexpected(LastError(""));
          std::vector<std::string> out;
          for (int i = 0; i < n; ++i) {
            Snapshot snap(snaps[i]);
            std::string xml = TakeString(virDomainSnapshotGetXMLDesc(snap.get(), VIR_DOMAIN_SNAPSHOT_XML_SECURE));
            if (virDomainSnapshotIsCurrent(snap.get(), 0) == 1) {
              // Marked for RedefineSnapshots, which takes the mark off again.
              pugi::xml_document doc;
              doc.load_string(xml.c_str());
              doc.child("domainsnapshot").append_child("active").text().set(1);
              std::ostringstream marked;
              doc.save(marked, "", pugi::format_raw | pugi::format_no_declaration);
              xml = marked.str();
            }
            out.push_back(std::move(xml));
          }
          free(snaps);
          return out;
        });
  }

  Result<void> RedefineSnapshots(const std::string& name, const std::vector<std::string>& xmls) override {
    if (xmls.empty()) return {};
    return Mutate("snapshot-create", "redefining the snapshots of " + name + " on " + config_.name, name,
                  [&](virConnectPtr c) -> Result<void> {
                    auto dom = LookupDomain(c, name);
                    if (!dom) return std::unexpected(dom.error());
                    for (const std::string& xml : xmls) {
                      // The current one is marked so in its XML (<active>1</active>).
                      pugi::xml_document doc;
                      doc.load_string(xml.c_str());
                      pugi::xml_node root = doc.child("domainsnapshot");
                      const bool current = root.child("active").text().as_int() == 1;
                      root.remove_child("active");
                      std::ostringstream plain;
                      doc.save(plain, "", pugi::format_raw | pugi::format_no_declaration);
                      unsigned int flags = VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE;
                      if (current) flags |= VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT;
                      Snapshot s(virDomainSnapshotCreateXML(dom->get(), plain.str().c_str(), flags));
                      if (!s) return std::unexpected(LastError("redefining a snapshot"));
                    }
                    return {};
                  });
  }

  // ---- migration ---------------------------------------------------------------------------

  Result<void> MigrateLive(const std::string& name, Hypervisor& target, const LiveMigration& options) override {
    auto* dst = dynamic_cast<LibvirtHypervisor*>(&target);
    const std::string context = "migrating " + name + " live from " + config_.name + " to " + target.node();
    if (dst == nullptr || !caps_.migration || !dst->caps_.migration) {
      return Fail(ErrorCode::kUnsupported, "live migration needs QEMU on both nodes (" + caps_.driver + " -> " +
                                               target.capabilities().driver + ")", context);
    }
    return Mutate("migrate", context, name, [&](virConnectPtr c) -> Result<void> {
      auto dom = LookupDomain(c, name);
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
      for (const std::string& dev : devices) virTypedParamsAddString(&params, &n, &max, VIR_MIGRATE_PARAM_MIGRATE_DISKS, dev.c_str());
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
      std::shared_lock target_lock(dst->conn_mu_);
      Domain moved(virDomainMigrate3(dom->get(), dst->conn_.get(), params, static_cast<unsigned>(n), flags));
      const Error failed = moved ? Error{} : LastError("");
      virTypedParamsFree(params, n);
      if (!moved) return std::unexpected(failed);
      return {};
    });
  }

  // ---- the guest ---------------------------------------------------------------------------

  Result<void> GuestPing(const std::string& name, std::chrono::seconds timeout) override {
    if (!caps_.guests) return Hypervisor::GuestPing(name, timeout);
    return Run<void>("agent", false, "asking the guest agent of " + name, [&](virConnectPtr c) -> Result<void> {
      auto dom = LookupDomain(c, name);
      if (!dom) return std::unexpected(dom.error());
      char* reply = virDomainQemuAgentCommand(dom->get(), R"({"execute":"guest-ping"})",
                                              static_cast<int>(timeout.count()), 0);
      if (reply == nullptr) return std::unexpected(AgentError());
      free(reply);
      return {};
    });
  }

  Result<std::vector<GuestAddress>> InterfaceAddresses(const std::string& name, AddressSource source) override {
    if (!caps_.guests) return Hypervisor::InterfaceAddresses(name, source);
    const bool agent = source == AddressSource::kAgent;
    return Run<std::vector<GuestAddress>>(
        "addresses", false, std::string("reading the addresses of ") + name + (agent ? " from its agent" : " from DHCP leases"),
        [&](virConnectPtr c) -> Result<std::vector<GuestAddress>> {
          auto dom = LookupDomain(c, name);
          if (!dom) return std::unexpected(dom.error());
          virDomainInterfacePtr* ifaces = nullptr;
          const int n = virDomainInterfaceAddresses(
              dom->get(), &ifaces,
              agent ? VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT : VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, 0);
          if (n < 0) return std::unexpected(agent ? AgentError() : LastError(""));
          std::vector<GuestAddress> out;
          for (int i = 0; i < n; ++i) {
            const virDomainInterfacePtr iface = ifaces[i];
            std::string mac = iface->hwaddr != nullptr ? iface->hwaddr : "";
            std::transform(mac.begin(), mac.end(), mac.begin(), [](unsigned char ch) { return std::tolower(ch); });
            for (unsigned j = 0; j < iface->naddrs; ++j) {
              GuestAddress a;
              a.interface = iface->name != nullptr ? iface->name : "";
              a.mac = mac;
              a.address = iface->addrs[j].addr != nullptr ? iface->addrs[j].addr : "";
              a.prefix = static_cast<int>(iface->addrs[j].prefix);
              a.ipv6 = iface->addrs[j].type == VIR_IP_ADDR_TYPE_IPV6;
              if (a.address.empty() || a.address.starts_with("127.") || a.address == "::1") continue;
              out.push_back(std::move(a));
            }
            virDomainInterfaceFree(iface);
          }
          free(ifaces);
          return out;
        });
  }

  // The log file of the first serial port (<serial><log file=...>), read when the controller
  // shares the node's filesystem. It is truncated at every start (append='off').
  Result<std::string> ReadConsoleLog(const std::string& name) override {
    if (!caps_.guests) return Hypervisor::ReadConsoleLog(name);
    auto file = Run<std::string>("get-xml", false, "reading the console log of " + name,
                                 [&](virConnectPtr c) -> Result<std::string> {
                                   auto dom = LookupDomain(c, name);
                                   if (!dom) return std::unexpected(dom.error());
                                   pugi::xml_document doc;
                                   doc.load_string(TakeString(virDomainGetXMLDesc(dom->get(), 0)).c_str());
                                   pugi::xml_node serial = doc.child("domain").child("devices").child("serial");
                                   std::string path = serial.child("log").attribute("file").as_string();
                                   if (path.empty() && std::string_view(serial.attribute("type").as_string()) == "file") {
                                     path = serial.child("source").attribute("path").as_string();
                                   }
                                   return path;
                                 });
    if (!file) return std::unexpected(file.error());
    if (file->empty()) {
      return Fail(ErrorCode::kFailedPrecondition, "its serial console is not logged to a file", "console of " + name);
    }
    if (!config_.IsLocal()) {
      return Fail(ErrorCode::kUnsupported,
                  "the console log " + *file + " is on node " + config_.name +
                      ", whose files the controller cannot read (it reads console logs on local nodes only)",
                  "console of " + name);
    }
    std::ifstream in(*file, std::ios::binary);
    if (!in) return Fail(ErrorCode::kNotFound, "cannot open " + *file, "console of " + name);
    // A chatty guest can log a lot; the marker is looked for in the first 64 MiB.
    std::error_code ec;
    const std::size_t size = std::min<std::uintmax_t>(std::filesystem::file_size(*file, ec), 64u << 20);
    std::string text(ec ? 0 : size, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<std::size_t>(in.gcount()));
    return text;
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
        // A file of this node's, where the controller can see it; elsewhere the caller deletes
        // its leftovers through libvirt.
        if (config_.IsLocal()) {
          std::error_code ec;
          std::filesystem::remove(it->second.file, ec);
        }
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

  Result<ObservedVolume> GetVolumeByPath(const std::string& path) override {
    return Run<ObservedVolume>(
        "get-volume", false, "looking up " + path + " on " + config_.name, [&](virConnectPtr c) -> Result<ObservedVolume> {
          Volume v(virStorageVolLookupByPath(c, path.c_str()));
          if (!v) {
            // A file written into a pool's directory since its last refresh (an external
            // snapshot's overlay, a backup job's target) is not a volume yet.
            const std::string dir = std::filesystem::path(path).parent_path().string();
            virStoragePoolPtr* pools = nullptr;
            const int n = virConnectListAllStoragePools(c, &pools, VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE);
            for (int i = 0; i < n; ++i) {
              Pool p(pools[i]);
              if (PoolTargetPath(p.get()) == dir) virStoragePoolRefresh(p.get(), 0);
            }
            free(pools);
            v.reset(virStorageVolLookupByPath(c, path.c_str()));
          }
          if (!v) return Fail(ErrorCode::kNotFound, "no pool of node " + config_.name + " holds " + path);
          Pool p(virStoragePoolLookupByVolume(v.get()));
          if (!p) return std::unexpected(LastError("finding the pool of " + path));
          return DescribeVolume(v.get(), virStoragePoolGetName(p.get()), true);
        });
  }

  Result<std::string> GetPoolPath(const std::string& pool) override {
    return Run<std::string>("get-pool", false, "reading pool " + pool + " on " + config_.name,
                            [&](virConnectPtr c) -> Result<std::string> {
                              Pool p(virStoragePoolLookupByName(c, pool.c_str()));
                              if (!p) return std::unexpected(LastError("looking up the pool"));
                              std::string path = PoolTargetPath(p.get());
                              if (path.empty()) return Fail(ErrorCode::kFailedPrecondition, "the pool has no target path");
                              return path;
                            });
  }

  Result<void> RefreshPool(const std::string& pool) override {
    return Run<void>("refresh-pool", false, "refreshing pool " + pool + " on " + config_.name,
                     [&](virConnectPtr c) -> Result<void> {
                       Pool p(virStoragePoolLookupByName(c, pool.c_str()));
                       if (!p) return std::unexpected(LastError("looking up the pool"));
                       if (virStoragePoolRefresh(p.get(), 0) < 0) return std::unexpected(LastError(""));
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
    Connection c;
    std::optional<std::uint64_t> generation;
    if (sim_) {
      auto opened = sim_->Open(generation);
      if (!opened) return std::unexpected(opened.error().Wrap("connecting to node " + config_.name));
      c = std::move(*opened);
      ++g_simulated_loads;
      if (auto ok = sim_->AfterOpen(c.get()); !ok) return ok;
    } else {
      c.reset(virConnectOpen(uri_.c_str()));
    }
    if (!c) return std::unexpected(LastError("connecting to node " + config_.name + " (" + uri_ + ")"));
    const bool remote = uri_.find("+ssh") != std::string::npos || uri_.find("+tls") != std::string::npos ||
                        uri_.find("+tcp") != std::string::npos;
    if (remote) virConnectSetKeepAlive(c.get(), 5, 3);
    virConnectRegisterCloseCallback(c.get(), &OnClose, this, nullptr);
    if (conn_) virConnectUnregisterCloseCallback(conn_.get(), &OnClose);
    conn_ = std::move(c);
    loaded_generation_ = generation;
    lost_ = false;
    return {};
  }

  // Opens the connection of a simulated node at its first use (others open in Open()).
  Result<void> EnsureConnected() {
    if (connected_.load()) return {};
    std::unique_lock lock(conn_mu_);
    if (!conn_) {
      if (auto ok = OpenLocked(); !ok) return ok;
      log_->debug("node={} loaded its files through the test driver (generation {})", config_.name,
                  loaded_generation_ ? std::to_string(*loaded_generation_) : "unknown");
    }
    connected_ = true;
    return {};
  }

  std::string SnapshotKey() const {
    unsigned long libvirt_version = 0;
    virGetVersion(&libvirt_version, nullptr, nullptr);
    return "build=" + ExecutableBuildId() + " libvirt=" + std::to_string(libvirt_version) + " node=" +
           config_.name + " cpus=" + (config_.capacity_vcpus ? std::to_string(*config_.capacity_vcpus) : "-") +
           " memory=" + (config_.capacity_memory ? std::to_string(*config_.capacity_memory) : "-") + " uri=" + uri_;
  }

  bool SnapshotsUsable() const { return sim_ && !ExecutableBuildId().empty() && SimSnapshotsEnabled(); }

  // Before this process connects or changes anything: its files are the whole truth of the
  // node, and the snapshot of their generation is what observing them would give.
  std::optional<ObservedNode> FromSnapshot() {
    if (!SnapshotsUsable() || connected_.load() || mutated_.load()) return std::nullopt;
    const auto generation = sim_->Generation();
    if (!generation) return std::nullopt;
    auto payload = sim_->ReadSnapshot(*generation, SnapshotKey());
    if (!payload) return std::nullopt;
    auto node = DecodeObservedNode(*payload);
    if (!node) {
      log_->warn("node={} ignoring its observation snapshot: {}", config_.name, node.error().ToString());
      return std::nullopt;
    }
    log_->debug("node={} observed from its snapshot (generation {}, {} domains)", config_.name, *generation,
                node->vms.size());
    return std::move(*node);
  }

  // Keeps an observation as the snapshot when it shows exactly the files of the generation it
  // loaded: this process changed nothing (mutated_ is set before any change reaches the test
  // driver, and read after the observation), and no one else has since (else the snapshot
  // would be outdated at once: not wrong, as its generation is the old one, but useless).
  void KeepSnapshot(const ObservedNode& node) {
    if (!SnapshotsUsable()) return;
    std::optional<std::uint64_t> loaded;
    {
      std::shared_lock lock(conn_mu_);
      loaded = loaded_generation_;
    }
    if (!loaded || mutated_.load() || sim_->Generation() != loaded) return;
    std::lock_guard lock(snapshot_mu_);
    if (snapshot_written_ == loaded) return;
    if (auto ok = sim_->WriteSnapshot(*loaded, SnapshotKey(), EncodeObservedNode(node)); !ok) {
      log_->warn("node={} could not keep its observation snapshot: {}", config_.name, ok.error().ToString());
      return;
    }
    snapshot_written_ = loaded;
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
    // Before anything can reach the test driver's state: no snapshot is written from it now.
    if (mutating) mutated_ = true;
    if (mutating) {
      if (auto fault = InjectedFault(kind)) return std::unexpected(fault->Wrap(context));
    }
    if (auto ok = EnsureConnected(); !ok) return std::unexpected(ok.error().Wrap(context));
    for (int attempt = 0;; ++attempt) {
      Result<T> result = [&] {
        std::shared_lock lock(conn_mu_);
        return fn(conn_.get());
      }();
      if (mutating && attempt == 0) InjectedKill(kind);
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
      // An answer such as "no such domain" proves the connection works: no need to ask.
      if (result.error().code == ErrorCode::kNotFound && !lost_) return std::unexpected(result.error().Wrap(context));
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

  // A guest-agent failure: "not connected" and "not responding" mean the guest is not (yet)
  // answering, which is kUnavailable for readiness but must not look like a lost connection.
  static Error AgentError() {
    Error e = LastError("");
    const int code = LastErrorCode();
    if (code == VIR_ERR_AGENT_UNRESPONSIVE || code == VIR_ERR_AGENT_UNSYNCED || code == VIR_ERR_OPERATION_TIMEOUT) {
      e.code = ErrorCode::kTimeout;
    } else if (code == VIR_ERR_OPERATION_INVALID || code == VIR_ERR_ARGUMENT_UNSUPPORTED) {
      e.code = ErrorCode::kFailedPrecondition;  // no agent channel, or the domain is not running
    }
    return e;
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

  // A redefinition renders each disk on its storage; a disk that runs on external-snapshot
  // overlays of that storage keeps them (its current source and the <backingStore> chain down
  // to the storage), or the writes since the snapshot would be dropped and the snapshots broken.
  static void KeepOverlays(pugi::xml_document& rendered, const std::string& existing_xml) {
    pugi::xml_document existing;
    if (!existing.load_string(existing_xml.c_str())) return;
    auto is_overlay = [](pugi::xml_node at) {
      const std::string file = at.child("source").attribute("file").as_string();
      return std::filesystem::path(file).filename().string().find(kOverlayInfix) != std::string::npos &&
             at.child("backingStore").child("source");
    };
    auto same_source = [](pugi::xml_node a, pugi::xml_node b) {
      for (const char* attr : {"pool", "volume", "file", "dev"}) {
        if (std::string_view(a.attribute(attr).as_string()) != b.attribute(attr).as_string()) return false;
      }
      return true;
    };
    for (pugi::xml_node d : existing.child("domain").child("devices").children("disk")) {
      if (!is_overlay(d)) continue;
      pugi::xml_node storage = d;
      while (is_overlay(storage)) storage = storage.child("backingStore");
      const std::string alias = d.child("alias").attribute("name").as_string();
      for (pugi::xml_node r : rendered.child("domain").child("devices").children("disk")) {
        if (alias.empty() || alias != r.child("alias").attribute("name").as_string()) continue;
        if (!same_source(storage.child("source"), r.child("source"))) break;  // new storage: no overlays
        if (pugi::xml_attribute type = r.attribute("type")) {
          type.set_value("file");
        } else {
          r.append_attribute("type") = "file";
        }
        r.remove_child("source");
        r.remove_child("backingStore");
        pugi::xml_node source = r.child("driver") ? r.insert_copy_after(d.child("source"), r.child("driver"))
                                                  : r.prepend_copy(d.child("source"));
        source.remove_attribute("index");
        r.insert_copy_after(d.child("backingStore"), source);
        break;
      }
    }
  }

  // Whether a domain boots pflash (UEFI) firmware.
  static bool UsesPflash(const pugi::xml_document& xml) {
    pugi::xml_node os = xml.child("domain").child("os");
    return std::string_view(os.attribute("firmware").as_string()) == "efi" ||
           std::string_view(os.child("loader").attribute("type").as_string()) == "pflash";
  }

  // The <disks> of an external disk-only snapshot named `snapshot`: every writable disk goes on
  // a new qcow2 overlay next to its storage (ExternalSnapshotOverlay of the volume's or file's
  // path, below any overlays it has already), cdroms and read-only disks are left out.
  static Result<void> ExternalSnapshotDisks(virConnectPtr c, const pugi::xml_document& live,
                                            const std::string& snapshot, pugi::xml_node root) {
    pugi::xml_node list = root.append_child("disks");
    for (pugi::xml_node d : live.child("domain").child("devices").children("disk")) {
      const std::string target = d.child("target").attribute("dev").as_string();
      if (target.empty()) continue;
      pugi::xml_node out = list.append_child("disk");
      out.append_attribute("name") = target.c_str();
      if (std::string_view(d.attribute("device").as_string("disk")) != "disk" || d.child("readonly")) {
        out.append_attribute("snapshot") = "no";
        continue;
      }
      pugi::xml_node source = d.child("source");
      std::string base = source.attribute("file").as_string();
      if (const std::string volume = source.attribute("volume").as_string(); !volume.empty()) {
        auto vol = LookupVolume(c, source.attribute("pool").as_string(), volume);
        if (!vol) return std::unexpected(vol.error());
        base = TakeString(virStorageVolGetPath(vol->get()));
      } else if (const auto at = base.find(kOverlayInfix); at != std::string::npos) {
        base = base.substr(0, at);  // on an overlay already: the new one goes next to the storage
      }
      if (base.empty()) {
        return Fail(ErrorCode::kUnsupported, "disk " + target + " is neither a volume nor a file: no external snapshot");
      }
      const std::string overlay = ExternalSnapshotOverlay(base, snapshot);
      std::error_code ec;
      if (std::filesystem::exists(overlay, ec)) {
        return Fail(ErrorCode::kAlreadyExists, "the overlay file " + overlay + " exists already");
      }
      out.append_attribute("snapshot") = "external";
      out.append_attribute("type") = "file";
      out.append_child("driver").append_attribute("type") = "qcow2";
      out.append_child("source").append_attribute("file") = overlay.c_str();
    }
    return {};
  }

  // A pool's directory on its node, from its XML ("" if it has none).
  static std::string PoolTargetPath(virStoragePoolPtr p) {
    pugi::xml_document doc;
    doc.load_string(TakeString(virStoragePoolGetXMLDesc(p, 0)).c_str());
    return doc.child("pool").child("target").child("path").text().as_string();
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
      virStorageVolInfo physical;
      if (virStorageVolGetInfoFlags(v, &physical, VIR_STORAGE_VOL_GET_PHYSICAL) == 0) out.physical = physical.allocation;
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

  // What a node-wide observation learns once instead of asking every domain: the names of the
  // persistent, autostarted and snapshotted domains (one listing each), and the pools' volumes
  // by "pool/name" and by path.
  struct NodeFacts {
    std::set<std::string, std::less<>> persistent, autostart, with_snapshots;
    std::map<std::string, std::uint64_t, std::less<>> capacity_by_volume, capacity_by_path;
    virConnectPtr ask = nullptr;  // set: one domain's observation, volumes are looked up one by one
  };

  // The same for one domain, asked of the domain itself (cheaper than listing a large node).
  static NodeFacts SingleDomainFacts(virConnectPtr c, virDomainPtr dom) {
    NodeFacts f;
    const std::string name = virDomainGetName(dom);
    if (virDomainIsPersistent(dom) == 1) f.persistent.insert(name);
    int autostart = 0;
    if (virDomainGetAutostart(dom, &autostart) == 0 && autostart != 0) f.autostart.insert(name);
    if (virDomainSnapshotNum(dom, 0) > 0) f.with_snapshots.insert(name);
    f.ask = c;
    return f;
  }

  static std::optional<std::uint64_t> AskCapacity(virConnectPtr c, const StorageRef& ref) {
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

  static std::set<std::string, std::less<>> DomainNames(virConnectPtr c, unsigned int flags) {
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

  static NodeFacts GatherFacts(virConnectPtr c, const std::vector<ObservedPool>& pools) {
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

  ObservedVm ObserveDomain(virDomainPtr dom, const NodeFacts& facts) {
    ObservedVm vm;
    vm.node = config_.name;
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
    vm.actual.node = config_.name;
    vm.actual.power_state = vm.power;
    vm.actual.autostart = vm.autostart;
    if (facts.with_snapshots.contains(vm.name)) {
      if (auto snapshots = ReadSnapshots(dom)) vm.snapshots = std::move(*snapshots);
    }
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
    if (caps_.driver != "TEST") {
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
      node.vms.push_back(ObserveDomain(dom.get(), facts));
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
  std::atomic<bool> connected_{false};  // conn_ has been opened (simulated nodes open lazily)
  std::atomic<bool> mutated_{false};    // a mutating call has started in this process
  std::optional<std::uint64_t> loaded_generation_;  // of the simulated node's files conn_ loaded
  std::mutex snapshot_mu_;
  std::optional<std::uint64_t> snapshot_written_;
  NodeCapabilities caps_;
  std::string virt_type_ = "kvm";
};

}  // namespace

std::uint64_t SimulatedNodeLoads() { return g_simulated_loads.load(); }

Result<std::unique_ptr<Hypervisor>> ConnectNode(const NodeConfig& node, const HypervisorOptions& options) {
  auto hv = std::make_unique<LibvirtHypervisor>(node, options);
  if (auto ok = hv->Open(); !ok) return std::unexpected(ok.error());
  return std::unique_ptr<Hypervisor>(std::move(hv));
}

}  // namespace gitvirt
