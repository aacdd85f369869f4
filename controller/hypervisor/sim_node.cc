#include "sim_node.h"

#include <spdlog/spdlog.h>

#include <pugixml.hpp>

#include <cstring>
#include <sstream>

#include <elf.h>
#include <link.h>

#include "gitvirt/core/observed_codec.h"
#include "lookup.h"

namespace gitvirt {
namespace {

using namespace libvirt;

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

}  // namespace

std::uint64_t SimulatedNodeLoads() { return g_simulated_loads.load(); }

// ---- the node ------------------------------------------------------------------------------

SimNode::SimNode(const NodeConfig& config, const HypervisorOptions& options)
    : store_(config.SimPath()), snapshots_enabled_(options.sim_snapshots) {
  adapter_ = LibvirtNode::TestDriver(config, store_.Uri(), [this] { return Load(); }, *this, options);
  caps_ = adapter_->capabilities();
  caps_.persistent_simulation = true;
  caps_.volume_resize = true;  // emulated: a simulated volume is only metadata (SimStorage)
}

Result<std::unique_ptr<SimNode>> SimNode::Open(const NodeConfig& config, const HypervisorOptions& options) {
  std::unique_ptr<SimNode> node(new SimNode(config, options));
  if (auto ok = node->store_.EnsureExists(config); !ok) return std::unexpected(ok.error());
  return node;
}

Result<Connection> SimNode::Load() {
  std::optional<std::uint64_t> generation;
  auto opened = store_.Open(generation);
  if (!opened) return std::unexpected(opened.error().Wrap("connecting to node " + name()));
  ++g_simulated_loads;
  if (auto ok = store_.AfterOpen(opened->get()); !ok) return std::unexpected(ok.error());
  {
    std::lock_guard lock(mu_);
    loaded_generation_ = generation;
  }
  adapter_->log().debug("node={} loaded its files through the test driver (generation {})", name(),
                        generation ? std::to_string(*generation) : "unknown");
  return std::move(*opened);
}

Result<void> SimNode::Changed(virConnectPtr c, const Touched& touched, bool succeeded) {
  if (!succeeded && !touched.even_if_failed) return {};
  switch (touched.kind) {
    case Touched::Kind::kDomain: return store_.SaveDomain(c, touched.name);
    case Touched::Kind::kPool: return store_.SavePool(c, touched.name);
    case Touched::Kind::kNothing: break;
  }
  return {};
}

// A node not yet connected is answered from its snapshot when the snapshot was made from the
// files as they are now (same generation: nothing changed them since) by this build with this
// node's configuration; that is what the test driver would load and the adapter would
// observe, without parsing every domain. Otherwise the node is observed for real, and the
// result kept as the snapshot when it shows the files of one generation.
Result<ObservedNode> SimNode::Observe() {
  if (auto snapshot = FromSnapshot()) return std::move(*snapshot);
  auto observed = adapter_->Observe();
  if (!observed) return observed;
  observed->capabilities = caps_;
  KeepSnapshot(*observed);
  return observed;
}

std::string SimNode::SnapshotKey() const {
  const NodeConfig& config = adapter_->config();
  unsigned long libvirt_version = 0;
  virGetVersion(&libvirt_version, nullptr, nullptr);
  return "build=" + ExecutableBuildId() + " libvirt=" + std::to_string(libvirt_version) + " node=" + config.name +
         " cpus=" + (config.capacity_vcpus ? std::to_string(*config.capacity_vcpus) : "-") +
         " memory=" + (config.capacity_memory ? std::to_string(*config.capacity_memory) : "-") +
         " uri=" + adapter_->uri();
}

bool SimNode::SnapshotsUsable() const { return snapshots_enabled_ && !ExecutableBuildId().empty(); }

// Before this process connects or changes anything: its files are the whole truth of the
// node, and the snapshot of their generation is what observing them would give.
std::optional<ObservedNode> SimNode::FromSnapshot() {
  if (!SnapshotsUsable() || adapter_->connection().opened() || changed_.load()) return std::nullopt;
  const auto generation = store_.Generation();
  if (!generation) return std::nullopt;
  auto payload = store_.ReadSnapshot(*generation, SnapshotKey());
  if (!payload) return std::nullopt;
  auto node = DecodeObservedNode(*payload);
  if (!node) {
    adapter_->log().warn("node={} ignoring its observation snapshot: {}", name(), node.error().ToString());
    return std::nullopt;
  }
  adapter_->log().debug("node={} observed from its snapshot (generation {}, {} domains)", name(), *generation,
                        node->vms.size());
  return std::move(*node);
}

// Keeps an observation as the snapshot when it shows exactly the files of the generation it
// loaded: this process changed nothing (changed_ is set before any change reaches the test
// driver, and read after the observation), and no one else has since (else the snapshot
// would be outdated at once: not wrong, as its generation is the old one, but useless).
void SimNode::KeepSnapshot(const ObservedNode& node) {
  if (!SnapshotsUsable()) return;
  std::lock_guard lock(mu_);
  const std::optional<std::uint64_t> loaded = loaded_generation_;
  if (!loaded || changed_.load() || store_.Generation() != loaded) return;
  if (snapshot_written_ == loaded) return;
  if (auto ok = store_.WriteSnapshot(*loaded, SnapshotKey(), EncodeObservedNode(node)); !ok) {
    adapter_->log().warn("node={} could not keep its observation snapshot: {}", name(), ok.error().ToString());
    return;
  }
  snapshot_written_ = loaded;
}

// ---- storage -------------------------------------------------------------------------------

Storage& SimStorage::in() { return node_.adapter().storage(); }

Result<void> SimStorage::EnsurePool(const PoolConfig& pool) { return in().EnsurePool(pool); }

Result<ObservedVolume> SimStorage::GetVolume(const std::string& pool, const std::string& name) {
  return in().GetVolume(pool, name);
}

Result<void> SimStorage::CreateVolume(const VolumeSpec& spec) { return in().CreateVolume(spec); }

Result<void> SimStorage::DeleteVolume(const std::string& pool, const std::string& name) {
  return in().DeleteVolume(pool, name);
}

Result<void> SimStorage::ResizeVolume(const std::string& pool, const std::string& name, std::uint64_t capacity) {
  auto resized = in().ResizeVolume(pool, name, capacity);
  // The test driver cannot resize volumes: a volume that is there is recreated.
  if (!resized && resized.error().code != ErrorCode::kNotFound) return RecreateVolume(pool, name, capacity);
  return resized;
}

Result<void> SimStorage::RecreateVolume(const std::string& pool, const std::string& name, std::uint64_t capacity) {
  return node_.adapter().connection().Change<void>(
      "growing volume " + pool + "/" + name, Touched::Pool(pool), [&](virConnectPtr c) -> Result<void> {
        auto vol = LookupVolume(c, pool, name);
        if (!vol) return std::unexpected(vol.error());
        const std::string xml = TakeString(virStorageVolGetXMLDesc(vol->get(), 0));
        pugi::xml_document doc;
        doc.load_string(xml.c_str());
        pugi::xml_node cap = doc.child("volume").child("capacity");
        cap.attribute("unit").set_value("bytes");
        // The test driver derives key and path from the pool and the name, and leaks the ones
        // it is given (libvirt 9.0), so it is given none.
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

Result<void> SimStorage::UploadVolume(const std::string& pool, const std::string& name, const std::string& local_file,
                                      const std::string& format) {
  return in().UploadVolume(pool, name, local_file, format);
}

Result<void> SimStorage::ReadVolume(const std::string& pool, const std::string& name, VolumeSink& sink) {
  return in().ReadVolume(pool, name, sink);
}

Result<std::unique_ptr<VolumeSink>> SimStorage::WriteVolume(const VolumeSpec& spec) {
  return in().WriteVolume(spec);  // refused: the test driver holds no bytes
}

Result<ObservedVolume> SimStorage::GetVolumeByPath(const std::string& path) {
  return in().GetVolumeByPath(path);
}

Result<std::string> SimStorage::GetPoolPath(const std::string& pool) {
  return in().GetPoolPath(pool);
}

Result<void> SimStorage::RefreshPool(const std::string& pool) { return in().RefreshPool(pool); }

}  // namespace gitvirt
