// The Storage port of the libvirt adapter: directory pools, their volumes, and the volumes'
// bytes through libvirt's streams (so a node's files need not be the controller's).
#include <pugixml.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "domain_xml.h"
#include "libvirt_node.h"
#include "lookup.h"

namespace gitvirt {
namespace {

using namespace libvirt;

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

std::unexpected<Error> HoldsNoBytes(const LibvirtNode& node, const std::string& context) {
  return Fail(ErrorCode::kUnsupported,
              "node " + node.name() + " (" + node.capabilities().driver + " driver) holds no volume bytes", context);
}

}  // namespace

Result<void> LibvirtStorage::EnsurePool(const PoolConfig& pool) {
  // A pool that could not be ensured may not be there to keep.
  return node_.connection().Change<void>(
      "ensuring pool " + pool.name + " on " + node_.name(), Touched::Pool(pool.name, /*even_if_failed=*/false),
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
        return {};
      });
}

Result<ObservedVolume> LibvirtStorage::GetVolume(const std::string& pool, const std::string& name) {
  return node_.connection().Query<ObservedVolume>("reading volume " + pool + "/" + name,
                                                  [&](virConnectPtr c) -> Result<ObservedVolume> {
                                                    auto vol = LookupVolume(c, pool, name);
                                                    if (!vol) return std::unexpected(vol.error());
                                                    return DescribeVolume(vol->get(), pool, true);
                                                  });
}

Result<void> LibvirtStorage::CreateVolume(const VolumeSpec& spec) {
  return node_.connection().Change<void>(
      "creating volume " + spec.pool + "/" + spec.name, Touched::Pool(spec.pool), [&](virConnectPtr c) -> Result<void> {
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
            if (auto found = LookupVolume(c, spec.copy_from->pool, spec.copy_from->volume)) from = std::move(*found);
          } else {
            from.reset(virStorageVolLookupByPath(c, spec.copy_from->path.c_str()));
          }
          Volume v(from ? virStorageVolCreateXMLFrom(p.get(), xml.c_str(), from.get(), 0) : nullptr);
          if (v) return {};
          if (node_.capabilities().driver != "TEST") return std::unexpected(LastError("copying"));
          // The test driver copies only within one pool; a test-driver volume is metadata, so a
          // fresh one of the same size is the same thing.
        }
        const std::string xml = VolumeXml(spec.name, capacity, spec.format, backing_path, spec.backing_format);
        Volume v(virStorageVolCreateXML(p.get(), xml.c_str(), 0));
        if (!v) return std::unexpected(LastError(""));
        return {};
      });
}

Result<void> LibvirtStorage::DeleteVolume(const std::string& pool, const std::string& name) {
  return node_.connection().Change<void>(
      "deleting volume " + pool + "/" + name, Touched::Pool(pool), [&](virConnectPtr c) -> Result<void> {
        // External-snapshot overlays of the volume (ExternalSnapshotOverlay) live and die with
        // it: nothing else can use them. The test driver never has any (its snapshots are
        // internal), so it is not asked to refresh and list the pool for them.
        if (node_.capabilities().driver != "TEST") {
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

Result<void> LibvirtStorage::ResizeVolume(const std::string& pool, const std::string& name, std::uint64_t capacity) {
  return node_.connection().Change<void>("growing volume " + pool + "/" + name, Touched::Pool(pool),
                                         [&](virConnectPtr c) -> Result<void> {
    auto vol = LookupVolume(c, pool, name);
    if (!vol) return std::unexpected(vol.error());
    if (virStorageVolResize(vol->get(), capacity, 0) < 0) return std::unexpected(LastError(""));
    return {};
  });
}

Result<void> LibvirtStorage::UploadVolume(const std::string& pool, const std::string& name, const std::string& file,
                                          const std::string& format) {
  std::error_code ec;
  const std::uint64_t size = std::filesystem::file_size(file, ec);
  if (ec) return Fail(ErrorCode::kIo, ec.message(), "reading " + file);
  return node_.connection().Change<void>(
      "importing " + file + " as " + pool + "/" + name, Touched::Pool(pool), [&](virConnectPtr c) -> Result<void> {
        Pool p(virStoragePoolLookupByName(c, pool.c_str()));
        if (!p) return std::unexpected(LastError("looking up the pool"));
        if (auto old = LookupVolume(c, pool, name)) virStorageVolDelete(old->get(), 0);
        if (!node_.capabilities().volume_upload) {
          // The test driver stores no bytes: a volume of the image's size stands in.
          const std::uint64_t capacity = format == "qcow2" ? Qcow2VirtualSize(file).value_or(size) : size;
          Volume v(virStorageVolCreateXML(p.get(), VolumeXml(name, capacity, format, "", "").c_str(), 0));
          if (!v) return std::unexpected(LastError(""));
          return {};
        }
        // A raw volume of the file's size receives the bytes as they are; the pool refresh then
        // sees the real format (qcow2 images keep theirs).
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

Result<void> LibvirtStorage::ReadVolume(const std::string& pool, const std::string& name, VolumeSink& sink) {
  if (!node_.capabilities().volume_upload) return HoldsNoBytes(node_, "reading volume " + pool + "/" + name);
  return node_.connection().Query<void>(
      "reading volume " + pool + "/" + name + " on " + node_.name(), [&](virConnectPtr c) -> Result<void> {
        auto vol = LookupVolume(c, pool, name);
        if (!vol) return std::unexpected(vol.error());
        Stream st(virStreamNew(c, 0));
        if (!st ||
            virStorageVolDownload(vol->get(), st.get(), 0, 0, VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM) < 0) {
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

Result<std::unique_ptr<VolumeSink>> LibvirtStorage::WriteVolume(const VolumeSpec& spec) {
  const std::string what = spec.pool + "/" + spec.name;
  if (!node_.capabilities().volume_upload) return HoldsNoBytes(node_, "writing volume " + what);
  // Its bytes arrive after the call, through the sink: the pool's refresh, then, shows it.
  return node_.connection().Change<std::unique_ptr<VolumeSink>>(
      "writing volume " + what + " on " + node_.name(), Touched{},
      [&](virConnectPtr c) -> Result<std::unique_ptr<VolumeSink>> {
        Pool p(virStoragePoolLookupByName(c, spec.pool.c_str()));
        if (!p) return std::unexpected(LastError("looking up the pool"));
        Volume v(virStorageVolCreateXML(p.get(), VolumeXml(spec.name, spec.capacity, "raw", "", "").c_str(), 0));
        if (!v) return std::unexpected(LastError("creating the volume"));
        Stream st(virStreamNew(c, 0));
        if (!st ||
            virStorageVolUpload(v.get(), st.get(), 0, spec.capacity, VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM) < 0) {
          const Error e = LastError("starting the upload");
          virStorageVolDelete(v.get(), 0);
          return std::unexpected(e);
        }
        return std::unique_ptr<VolumeSink>(
            std::make_unique<UploadSink>(std::move(p), std::move(v), std::move(st), what));
      });
}

Result<ObservedVolume> LibvirtStorage::GetVolumeByPath(const std::string& path) {
  return node_.connection().Query<ObservedVolume>(
      "looking up " + path + " on " + node_.name(), [&](virConnectPtr c) -> Result<ObservedVolume> {
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
        if (!v) return Fail(ErrorCode::kNotFound, "no pool of node " + node_.name() + " holds " + path);
        Pool p(virStoragePoolLookupByVolume(v.get()));
        if (!p) return std::unexpected(LastError("finding the pool of " + path));
        return DescribeVolume(v.get(), virStoragePoolGetName(p.get()), true);
      });
}

Result<std::string> LibvirtStorage::GetPoolPath(const std::string& pool) {
  return node_.connection().Query<std::string>(
      "reading pool " + pool + " on " + node_.name(), [&](virConnectPtr c) -> Result<std::string> {
        Pool p(virStoragePoolLookupByName(c, pool.c_str()));
        if (!p) return std::unexpected(LastError("looking up the pool"));
        std::string path = PoolTargetPath(p.get());
        if (path.empty()) return Fail(ErrorCode::kFailedPrecondition, "the pool has no target path");
        return path;
      });
}

Result<void> LibvirtStorage::RefreshPool(const std::string& pool) {
  return node_.connection().Query<void>(
      "refreshing pool " + pool + " on " + node_.name(), [&](virConnectPtr c) -> Result<void> {
        Pool p(virStoragePoolLookupByName(c, pool.c_str()));
        if (!p) return std::unexpected(LastError("looking up the pool"));
        if (virStoragePoolRefresh(p.get(), 0) < 0) return std::unexpected(LastError(""));
        return {};
      });
}

}  // namespace gitvirt
