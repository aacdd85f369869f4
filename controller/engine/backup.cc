#include "gitvirt/engine/backup.h"

#include "gitvirt/engine/step_records.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>

#include "gitvirt/engine/artifacts.h"
#include "gitvirt/engine/subprocess.h"

namespace gitvirt {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Steady = std::chrono::steady_clock;

constexpr std::size_t kChunk = 1 << 20;

// ---- hashing and files -------------------------------------------------------------------

struct FileCloser {
  void operator()(std::FILE* f) const {
    if (f != nullptr) std::fclose(f);
  }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

Result<File> OpenFile(const std::string& path, const char* mode) {
  File f(std::fopen(path.c_str(), mode));
  if (!f) return Fail(ErrorCode::kIo, std::string("cannot open: ") + std::strerror(errno), path);
  return f;
}

// Writes `n` bytes to `out` (null: discards them) and hashes them.
Result<void> Emit(std::FILE* out, Sha256& sha, const void* data, std::size_t n, const std::string& path) {
  sha.Update(data, n);
  if (out != nullptr && n > 0 && std::fwrite(data, 1, n, out) != n) {
    return Fail(ErrorCode::kIo, std::string("write failed: ") + std::strerror(errno), path);
  }
  return {};
}

// Flushes a written file to stable storage.
Result<void> Sync(std::FILE* f, const std::string& path) {
  if (std::fflush(f) != 0 || fsync(fileno(f)) != 0) {
    return Fail(ErrorCode::kIo, std::string("cannot flush: ") + std::strerror(errno), path);
  }
  return {};
}

void SyncDirectory(const std::string& dir) {
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
}

Result<void> WriteText(const std::string& path, const std::string& text) {
  auto f = OpenFile(path, "wb");
  if (!f) return std::unexpected(f.error());
  if (std::fwrite(text.data(), 1, text.size(), f->get()) != text.size()) {
    return Fail(ErrorCode::kIo, "write failed", path);
  }
  return Sync(f->get(), path);
}

std::string Extension(Compression c) {
  switch (c) {
    case Compression::kZstd: return ".zst";
    case Compression::kGzip: return ".gz";
    case Compression::kNone: return "";
  }
  return "";
}


}  // namespace

// ---- compression -------------------------------------------------------------------------

Result<StreamDigest> CompressFile(const std::string& in_path, const std::string& out_path, Compression compression,
                                  int level) {
  auto in = OpenFile(in_path, "rb");
  if (!in) return std::unexpected(in.error());
  auto out = OpenFile(out_path, "wb");
  if (!out) return std::unexpected(out.error());
  Sha256 raw, stored;
  std::vector<char> buf(kChunk);
  std::vector<char> obuf(compression == Compression::kZstd ? ZSTD_CStreamOutSize() : kChunk);
  if (compression == Compression::kZstd) {
    std::unique_ptr<ZSTD_CCtx, decltype(&ZSTD_freeCCtx)> cctx(ZSTD_createCCtx(), ZSTD_freeCCtx);
    ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_compressionLevel, level);
    ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_checksumFlag, 1);
    // Worker threads where libzstd has them (Debian's does); ignored otherwise.
    const unsigned workers = std::min(4u, std::max(1u, std::thread::hardware_concurrency()));
    if (workers > 1) ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_nbWorkers, static_cast<int>(workers));
    while (true) {
      const std::size_t n = std::fread(buf.data(), 1, buf.size(), in->get());
      if (std::ferror(in->get())) return Fail(ErrorCode::kIo, "read failed", in_path);
      raw.Update(buf.data(), n);
      const bool last = n < buf.size();
      ZSTD_inBuffer input{buf.data(), n, 0};
      const ZSTD_EndDirective mode = last ? ZSTD_e_end : ZSTD_e_continue;
      bool finished = false;
      while (!finished) {
        ZSTD_outBuffer output{obuf.data(), obuf.size(), 0};
        const std::size_t remaining = ZSTD_compressStream2(cctx.get(), &output, &input, mode);
        if (ZSTD_isError(remaining)) {
          return Fail(ErrorCode::kInternal, std::string("zstd: ") + ZSTD_getErrorName(remaining), in_path);
        }
        if (auto ok = Emit(out->get(), stored, obuf.data(), output.pos, out_path); !ok) return std::unexpected(ok.error());
        finished = last ? remaining == 0 : input.pos == input.size;
      }
      if (last) break;
    }
  } else if (compression == Compression::kGzip) {
    z_stream z{};
    if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
      return Fail(ErrorCode::kInternal, "zlib: cannot start deflate", in_path);
    }
    std::unique_ptr<z_stream, decltype(&deflateEnd)> guard(&z, deflateEnd);
    while (true) {
      const std::size_t n = std::fread(buf.data(), 1, buf.size(), in->get());
      if (std::ferror(in->get())) return Fail(ErrorCode::kIo, "read failed", in_path);
      raw.Update(buf.data(), n);
      const bool last = n < buf.size();
      z.next_in = reinterpret_cast<Bytef*>(buf.data());
      z.avail_in = static_cast<uInt>(n);
      do {
        z.next_out = reinterpret_cast<Bytef*>(obuf.data());
        z.avail_out = static_cast<uInt>(obuf.size());
        const int rc = deflate(&z, last ? Z_FINISH : Z_NO_FLUSH);
        if (rc == Z_STREAM_ERROR) return Fail(ErrorCode::kInternal, "zlib: deflate failed", in_path);
        if (auto ok = Emit(out->get(), stored, obuf.data(), obuf.size() - z.avail_out, out_path); !ok) {
          return std::unexpected(ok.error());
        }
      } while (z.avail_out == 0);
      if (last) break;
    }
  } else {
    while (true) {
      const std::size_t n = std::fread(buf.data(), 1, buf.size(), in->get());
      if (std::ferror(in->get())) return Fail(ErrorCode::kIo, "read failed", in_path);
      raw.Update(buf.data(), n);
      if (auto ok = Emit(out->get(), stored, buf.data(), n, out_path); !ok) return std::unexpected(ok.error());
      if (n < buf.size()) break;
    }
  }
  if (auto ok = Sync(out->get(), out_path); !ok) return std::unexpected(ok.error());
  StreamDigest d;
  d.raw_size = raw.size();
  d.raw_sha256 = raw.Hex();
  d.size = stored.size();
  d.sha256 = stored.Hex();
  return d;
}

Result<StreamDigest> DecompressFile(const std::string& in_path, const std::string& out_path, Compression compression) {
  auto in = OpenFile(in_path, "rb");
  if (!in) return std::unexpected(in.error());
  File out;
  if (!out_path.empty()) {
    auto opened = OpenFile(out_path, "wb");
    if (!opened) return std::unexpected(opened.error());
    out = std::move(*opened);
  }
  Sha256 raw, stored;
  std::vector<char> buf(kChunk);
  std::vector<char> obuf(compression == Compression::kZstd ? ZSTD_DStreamOutSize() : kChunk);
  if (compression == Compression::kZstd) {
    std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> dctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
    std::size_t pending = 0;  // last return value: 0 at a frame's end
    bool any = false;
    while (true) {
      const std::size_t n = std::fread(buf.data(), 1, buf.size(), in->get());
      if (std::ferror(in->get())) return Fail(ErrorCode::kIo, "read failed", in_path);
      if (n == 0) break;
      any = true;
      stored.Update(buf.data(), n);
      ZSTD_inBuffer input{buf.data(), n, 0};
      while (input.pos < input.size) {
        ZSTD_outBuffer output{obuf.data(), obuf.size(), 0};
        pending = ZSTD_decompressStream(dctx.get(), &output, &input);
        if (ZSTD_isError(pending)) {
          return Fail(ErrorCode::kIo, std::string("zstd: ") + ZSTD_getErrorName(pending) + " (corrupt backup file?)", in_path);
        }
        if (auto ok = Emit(out.get(), raw, obuf.data(), output.pos, out_path); !ok) return std::unexpected(ok.error());
      }
    }
    // Drain what the decoder still holds.
    while (any && pending != 0) {
      ZSTD_inBuffer input{nullptr, 0, 0};
      ZSTD_outBuffer output{obuf.data(), obuf.size(), 0};
      pending = ZSTD_decompressStream(dctx.get(), &output, &input);
      if (ZSTD_isError(pending)) return Fail(ErrorCode::kIo, std::string("zstd: ") + ZSTD_getErrorName(pending), in_path);
      if (output.pos == 0) break;
      if (auto ok = Emit(out.get(), raw, obuf.data(), output.pos, out_path); !ok) return std::unexpected(ok.error());
    }
    if (pending != 0) return Fail(ErrorCode::kIo, "zstd: the file ends in the middle of a frame (truncated?)", in_path);
  } else if (compression == Compression::kGzip) {
    z_stream z{};
    if (inflateInit2(&z, 15 + 16) != Z_OK) return Fail(ErrorCode::kInternal, "zlib: cannot start inflate", in_path);
    std::unique_ptr<z_stream, decltype(&inflateEnd)> guard(&z, inflateEnd);
    int rc = Z_OK;
    while (rc != Z_STREAM_END) {
      const std::size_t n = std::fread(buf.data(), 1, buf.size(), in->get());
      if (std::ferror(in->get())) return Fail(ErrorCode::kIo, "read failed", in_path);
      if (n == 0) return Fail(ErrorCode::kIo, "gzip: the file ends early (truncated?)", in_path);
      stored.Update(buf.data(), n);
      z.next_in = reinterpret_cast<Bytef*>(buf.data());
      z.avail_in = static_cast<uInt>(n);
      // Until the input is used up and inflate has nothing more to give for it.
      do {
        z.next_out = reinterpret_cast<Bytef*>(obuf.data());
        z.avail_out = static_cast<uInt>(obuf.size());
        rc = inflate(&z, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
          return Fail(ErrorCode::kIo, std::string("gzip: ") + (z.msg != nullptr ? z.msg : "corrupt data"), in_path);
        }
        if (auto ok = Emit(out.get(), raw, obuf.data(), obuf.size() - z.avail_out, out_path); !ok) {
          return std::unexpected(ok.error());
        }
      } while ((z.avail_in > 0 || z.avail_out == 0) && rc != Z_STREAM_END);
    }
    // Whatever follows the stream still counts toward the stored file's hash.
    while (true) {
      const std::size_t n = std::fread(buf.data(), 1, buf.size(), in->get());
      if (n == 0) break;
      stored.Update(buf.data(), n);
    }
  } else {
    while (true) {
      const std::size_t n = std::fread(buf.data(), 1, buf.size(), in->get());
      if (std::ferror(in->get())) return Fail(ErrorCode::kIo, "read failed", in_path);
      if (n == 0) break;
      stored.Update(buf.data(), n);
      if (auto ok = Emit(out.get(), raw, buf.data(), n, out_path); !ok) return std::unexpected(ok.error());
    }
  }
  if (out) {
    if (auto ok = Sync(out.get(), out_path); !ok) return std::unexpected(ok.error());
  }
  StreamDigest d;
  d.raw_size = raw.size();
  d.raw_sha256 = raw.Hex();
  d.size = stored.size();
  d.sha256 = stored.Hex();
  return d;
}

// ---- manifest ----------------------------------------------------------------------------

std::uint64_t BackupManifest::Bytes() const {
  std::uint64_t total = 0;
  for (const BackupFile& f : files) total += f.size;
  return total;
}

json ManifestToJson(const BackupManifest& m) {
  json files = json::array();
  for (const BackupFile& f : m.files) {
    files.push_back({{"name", f.name},
                     {"disk", f.disk},
                     {"format", f.format},
                     {"pool", f.pool},
                     {"volume", f.volume},
                     {"path", f.path},
                     {"capacity", f.capacity},
                     {"size", f.size},
                     {"sha256", f.sha256},
                     {"rawSize", f.raw_size},
                     {"rawSha256", f.raw_sha256}});
  }
  return json{{"formatVersion", BackupManifest::kFormatVersion},
              {"kind", "gitvirt-backup"},
              {"id", m.id},
              {"vm", m.vm},
              {"node", m.node},
              {"policy", m.policy},
              {"mode", m.mode},
              {"compression", m.compression},
              {"compressionLevel", m.level},
              {"created", FormatTime(m.created)},
              {"createdUnix", m.created.time_since_epoch().count()},
              {"seconds", m.seconds},
              {"revision", m.revision},
              {"job", m.job_id},
              {"description", m.description},
              {"simulated", m.simulated},
              {"protect", m.is_protected},
              {"verified", m.verified},
              {"bytes", m.Bytes()},
              {"files", files},
              {"domainXml", m.definition}};
}

Result<BackupManifest> ManifestFromJson(const json& j) {
  if (!j.is_object() || j.value("kind", "") != "gitvirt-backup") {
    return Fail(ErrorCode::kInvalidArgument, "not a gitvirt backup manifest");
  }
  if (j.value("formatVersion", 0) != BackupManifest::kFormatVersion) {
    return Fail(ErrorCode::kInvalidArgument,
                "backup manifest format " + std::to_string(j.value("formatVersion", 0)) + " is not supported");
  }
  try {
    BackupManifest m;
    m.id = j.at("id").get<std::string>();
    m.vm = j.at("vm").get<std::string>();
    m.node = j.value("node", "");
    m.policy = j.value("policy", "");
    m.mode = j.value("mode", "");
    m.compression = j.value("compression", "none");
    m.level = j.value("compressionLevel", 0);
    m.created = TimePoint{std::chrono::seconds{j.value("createdUnix", std::int64_t{0})}};
    m.seconds = j.value("seconds", 0.0);
    m.revision = j.value("revision", "");
    m.job_id = j.value("job", "");
    m.description = j.value("description", "");
    m.simulated = j.value("simulated", false);
    m.is_protected = j.value("protect", false);
    m.verified = j.value("verified", false);
    m.definition = j.value("domainXml", "");
    for (const json& f : j.at("files")) {
      BackupFile file;
      file.name = f.at("name").get<std::string>();
      file.disk = f.value("disk", "");
      file.format = f.value("format", "");
      file.pool = f.value("pool", "");
      file.volume = f.value("volume", "");
      file.path = f.value("path", "");
      file.capacity = f.value("capacity", std::uint64_t{0});
      file.size = f.value("size", std::uint64_t{0});
      file.sha256 = f.at("sha256").get<std::string>();
      file.raw_size = f.value("rawSize", std::uint64_t{0});
      file.raw_sha256 = f.value("rawSha256", "");
      if (file.name.find('/') != std::string::npos || file.name.starts_with(".")) {
        return Fail(ErrorCode::kInvalidArgument, "backup manifest names a file outside its directory: " + file.name);
      }
      m.files.push_back(std::move(file));
    }
    return m;
  } catch (const std::exception& e) {
    return Fail(ErrorCode::kInvalidArgument, std::string("backup manifest: ") + e.what());
  }
}

Result<BackupManifest> ReadManifest(const std::string& dir) {
  const std::string path = (fs::path(dir) / "manifest.json").string();
  std::ifstream in(path);
  if (!in) return Fail(ErrorCode::kNotFound, "no backup here (no manifest.json)", dir);
  const json j = json::parse(in, nullptr, false);
  if (j.is_discarded()) return Fail(ErrorCode::kInvalidArgument, "manifest.json is not JSON", dir);
  auto m = ManifestFromJson(j);
  if (!m) return std::unexpected(m.error().Wrap(path));
  return m;
}

BackupRecord RecordOf(const BackupManifest& m, const std::string& dir) {
  BackupRecord r;
  r.id = m.id;
  r.vm = m.vm;
  r.node = m.node;
  r.policy = m.policy;
  r.location = fs::absolute(dir).lexically_normal().string();
  r.mode = m.mode;
  r.compression = m.compression;
  r.bytes = m.Bytes();
  r.verified = m.verified;
  r.is_protected = m.is_protected;
  r.simulated = m.simulated;
  r.status = "complete";
  r.revision = m.revision;
  r.job_id = m.job_id;
  r.created = m.created;
  return r;
}

Result<void> VerifyBackup(const BackupManifest& m, const std::string& dir) {
  const Compression compression = ParseEnum<Compression>(m.compression).value_or(Compression::kNone);
  for (const BackupFile& f : m.files) {
    const std::string path = (fs::path(dir) / f.name).string();
    auto d = DecompressFile(path, "", f.name == "domain.xml" ? Compression::kNone : compression);
    if (!d) return std::unexpected(d.error().Wrap("verifying backup " + m.id));
    if (d->sha256 != f.sha256 || d->size != f.size) {
      return Fail(ErrorCode::kFailedPrecondition,
                  f.name + ": checksum mismatch (sha256 " + d->sha256 + ", manifest says " + f.sha256 + ")",
                  "verifying backup " + m.id);
    }
    if (!f.raw_sha256.empty() && (d->raw_sha256 != f.raw_sha256 || d->raw_size != f.raw_size)) {
      return Fail(ErrorCode::kFailedPrecondition,
                  f.name + ": the decompressed content does not match (sha256 " + d->raw_sha256 + ", manifest says " +
                      f.raw_sha256 + ")",
                  "verifying backup " + m.id);
    }
  }
  return {};
}

Result<void> DeleteBackupDirectory(const std::string& dir, bool force) {
  auto m = ReadManifest(dir);
  if (!m) {
    if (m.error().code == ErrorCode::kNotFound && !fs::exists(dir)) return {};  // gone already
    return std::unexpected(m.error());
  }
  if (m->is_protected && !force) {
    return Fail(ErrorCode::kFailedPrecondition, "backup " + m->id + " is protected", dir);
  }
  // The manifest goes first: a half-deleted directory is then never taken for a backup.
  std::error_code ec;
  fs::remove(fs::path(dir) / "manifest.json", ec);
  if (ec) return Fail(ErrorCode::kIo, ec.message(), dir);
  fs::remove_all(dir, ec);
  if (ec) return Fail(ErrorCode::kIo, ec.message(), dir);
  return {};
}

std::vector<BackupRecord> ScanBackups(const std::string& target, std::vector<std::string>* problems) {
  std::vector<BackupRecord> out;
  std::error_code ec;
  if (!fs::is_directory(target, ec)) return out;
  for (const auto& vm_dir : fs::directory_iterator(target, ec)) {
    if (!vm_dir.is_directory()) continue;
    for (const auto& backup_dir : fs::directory_iterator(vm_dir.path(), ec)) {
      if (!backup_dir.is_directory() || backup_dir.path().extension() == ".partial") continue;
      auto m = ReadManifest(backup_dir.path().string());
      if (!m) {
        if (problems != nullptr) problems->push_back(m.error().ToString());
        continue;
      }
      out.push_back(RecordOf(*m, backup_dir.path().string()));
    }
  }
  std::sort(out.begin(), out.end(), [](const BackupRecord& a, const BackupRecord& b) {
    return std::tie(a.created, a.id) < std::tie(b.created, b.id);
  });
  return out;
}

Result<int> SyncCatalogWithTarget(BackupCatalog& catalog, const std::string& target, std::vector<std::string>* problems) {
  const std::string root = fs::absolute(target).lexically_normal().string();
  std::map<std::string, BackupRecord> found;
  for (BackupRecord& r : ScanBackups(root, problems)) {
    std::string id = r.id;
    found.emplace(std::move(id), std::move(r));
  }
  auto known = catalog.List(BackupFilter{});
  if (!known) return std::unexpected(known.error());
  int changed = 0;
  for (const BackupRecord& r : *known) {
    const bool under = r.location.starts_with(root + "/");
    if (!under || r.status != "complete") continue;
    auto it = found.find(r.id);
    if (it == found.end() && !fs::exists(fs::path(r.location) / "manifest.json")) {
      if (auto ok = catalog.Remove(r.id); !ok) return std::unexpected(ok.error());
      ++changed;
    } else if (it != found.end() && it->second == r) {
      found.erase(it);  // as recorded
    }
  }
  for (const auto& [id, r] : found) {
    if (auto ok = catalog.Put(r); !ok) return std::unexpected(ok.error());
    ++changed;
  }
  return changed;
}

// ---- taking a backup ---------------------------------------------------------------------

namespace {

struct DiskToCopy {
  std::string disk;
  std::string format;  // qcow2 | raw
  std::string pool;
  std::string volume;
  std::string path;
  std::string read_path;  // what qemu-img reads, when not `path` (the top overlay)
  std::string read_format;  // the format of `read_path`, when known (else qemu-img probes)
  std::uint64_t capacity = 0;
};

// `remote`: the node's files are not the controller's, so a disk that is a plain file is
// described by the node.
Result<std::vector<DiskToCopy>> DisksOf(Node& hv, const std::string& vm, const std::vector<std::string>& skip,
                                        bool remote) {
  auto disks = hv.domains().Disks(vm);
  if (!disks) return std::unexpected(disks.error());
  std::vector<DiskToCopy> out;
  for (const DiskLocation& d : *disks) {
    if (std::find(skip.begin(), skip.end(), d.disk) != skip.end()) continue;
    DiskToCopy s;
    s.disk = d.disk;
    s.format = std::string(EnumName(d.format));
    s.pool = d.storage.pool;
    s.volume = d.storage.volume;
    s.path = d.storage.path;
    if (d.storage.IsVolume()) {
      auto vol = hv.storage().GetVolume(d.storage.pool, d.storage.volume);
      if (!vol) return std::unexpected(vol.error().Wrap("disk " + d.disk + " of " + vm));
      s.path = vol->path;
      s.capacity = vol->capacity;
      if (!vol->format.empty() && (vol->format == "qcow2" || vol->format == "raw")) s.format = vol->format;
    } else if (remote) {
      auto vol = hv.storage().GetVolumeByPath(s.path);
      if (!vol) return std::unexpected(vol.error().Wrap("disk " + d.disk + " of " + vm));
      s.capacity = vol->capacity;
    } else {
      std::error_code ec;
      s.capacity = fs::file_size(s.path, ec);
    }
    // A disk on external-snapshot overlays is read through the one in use (qemu-img convert
    // flattens the chain); the manifest still names its storage.
    if (auto top = d.TopPath(); !top.empty()) s.read_path = top;
    out.push_back(std::move(s));
  }
  if (out.empty()) return Fail(ErrorCode::kFailedPrecondition, vm + " has no disk to back up");
  return out;
}

Result<void> Convert(const DiskToCopy& d, const std::string& out) {
  std::vector<std::string> argv = {"qemu-img", "convert", "-U", "-O", d.format};
  if (!d.read_format.empty()) argv.insert(argv.end(), {"-f", d.read_format});
  if (d.format == "qcow2") argv.insert(argv.end(), {"-o", "compat=1.1"});
  argv.insert(argv.end(), {d.read_path.empty() ? d.path : d.read_path, out});
  auto ran = RunChecked(argv);
  if (!ran) return std::unexpected(ran.error().Wrap("copying disk " + d.disk));
  return {};
}

// ---- nodes whose files the controller cannot read: everything through libvirt ----

// Writes a volume downloaded from a node into a file, holes as holes (sparse). One pass only: a
// download restarted after an abort fails instead of appending to what was written.
class FileSink final : public VolumeSink {
 public:
  explicit FileSink(std::string path) : path_(std::move(path)) {}
  ~FileSink() override {
    if (fd_ >= 0) ::close(fd_);
  }
  Result<void> Open() {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd_ < 0) return Fail(ErrorCode::kIo, std::string("cannot create: ") + std::strerror(errno), path_);
    return {};
  }
  Result<void> Write(const char* data, std::size_t size) override {
    if (fd_ < 0) return Fail(ErrorCode::kIo, "the download was interrupted", path_);
    while (size > 0) {
      const ssize_t n = ::write(fd_, data, size);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Fail(ErrorCode::kIo, std::string("write failed: ") + std::strerror(errno), path_);
      data += n;
      size -= static_cast<std::size_t>(n);
      offset_ += static_cast<std::uint64_t>(n);
    }
    return {};
  }
  Result<void> Hole(std::uint64_t length) override {
    if (fd_ < 0) return Fail(ErrorCode::kIo, "the download was interrupted", path_);
    offset_ += length;
    if (::lseek(fd_, static_cast<off_t>(offset_), SEEK_SET) < 0) {
      return Fail(ErrorCode::kIo, std::string("seek failed: ") + std::strerror(errno), path_);
    }
    return {};
  }
  Result<void> Finish() override {
    if (fd_ < 0) return Fail(ErrorCode::kIo, "the download was interrupted", path_);
    const bool ok = ::ftruncate(fd_, static_cast<off_t>(offset_)) == 0;  // a trailing hole
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    if (!ok) return Fail(ErrorCode::kIo, std::string("cannot set the size: ") + std::strerror(err), path_);
    return {};
  }
  void Abort() override {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    ::unlink(path_.c_str());
  }

 private:
  std::string path_;
  int fd_ = -1;
  std::uint64_t offset_ = 0;
};

Result<void> Download(Storage& hv, const std::string& pool, const std::string& volume, const std::string& to) {
  FileSink sink(to);
  if (auto ok = sink.Open(); !ok) return ok;
  return hv.ReadVolume(pool, volume, sink);
}

// Deletes files the controller made and only needs for a moment.
struct TemporaryFiles {
  std::vector<std::string> paths;
  ~TemporaryFiles() {
    std::error_code ec;
    for (const std::string& p : paths) fs::remove(p, ec);
  }
};

// A disk of a remote node, copied as Convert copies a local one: every file of its chain (the
// overlay in use, then each backing file: a linked clone's image, the layers under external
// snapshots) downloaded next to `out` (virStorageVolDownload), each local copy pointed at the
// local copy of its backing file (qemu-img rebase -u), and the chain flattened into `out` by
// Convert, so the backup is self-contained; the downloads are deleted.
Result<void> FetchRemoteDisk(Storage& hv, const DiskToCopy& d, const std::string& out) {
  constexpr std::size_t kMaxChain = 16;
  TemporaryFiles chain;
  std::vector<std::string> formats;
  const std::string top = d.read_path.empty() ? d.path : d.read_path;
  Result<ObservedVolume> vol = d.read_path.empty() && !d.volume.empty() ? hv.GetVolume(d.pool, d.volume)
                                                                         : hv.GetVolumeByPath(top);
  while (true) {
    if (!vol) return std::unexpected(vol.error().Wrap("reading disk " + d.disk));
    if (chain.paths.size() == kMaxChain) {
      return Fail(ErrorCode::kFailedPrecondition, "its backing chain is longer than " + std::to_string(kMaxChain) +
                                                      " files", "reading disk " + d.disk);
    }
    const std::string file = fs::absolute(out + ".chain" + std::to_string(chain.paths.size())).string();
    chain.paths.push_back(file);
    formats.push_back(vol->format == "qcow2" ? "qcow2" : "raw");
    if (auto ok = Download(hv, vol->pool, vol->name, file); !ok) {
      return std::unexpected(ok.error().Wrap("downloading " + vol->pool + "/" + vol->name + " (disk " + d.disk + ")"));
    }
    if (vol->backing.empty()) break;
    vol = hv.GetVolumeByPath(vol->backing);
  }
  for (std::size_t i = 0; i + 1 < chain.paths.size(); ++i) {
    auto ran = RunChecked({"qemu-img", "rebase", "-u", "-f", formats[i], "-b", chain.paths[i + 1], "-F", formats[i + 1],
                           chain.paths[i]});
    if (!ran) return std::unexpected(ran.error().Wrap("re-pointing the downloaded chain of disk " + d.disk));
  }
  DiskToCopy local = d;
  local.read_path = chain.paths.front();
  local.read_format = formats.front();
  return Convert(local, out);
}

// The scratch file a live backup of a remote node's disk is pushed into: hidden, in the disk's
// own pool, named after the backup, so it is recognisable and two backups never share one.
std::string ScratchName(const std::string& backup_id, const DiskToCopy& d) {
  return ".gitvirt-backup-" + backup_id + "-" + d.disk + "." + d.format;
}

// Deletes scratch volumes ("pool/name"); those already gone are fine.
Result<void> DeleteScratch(Storage& hv, const std::vector<std::string>& keys) {
  std::set<std::string> refreshed;
  Result<void> result;
  for (const std::string& key : keys) {
    const auto slash = key.find('/');
    if (slash == std::string::npos) continue;
    const std::string pool = key.substr(0, slash);
    const std::string name = key.substr(slash + 1);
    if (refreshed.insert(pool).second) (void)hv.RefreshPool(pool);  // QEMU made the files
    if (!hv.GetVolume(pool, name)) continue;
    if (auto ok = hv.DeleteVolume(pool, name); !ok && result) result = ok;
  }
  return result;
}

// A live backup on a remote node: QEMU pushes every disk at one instant into scratch files in
// the disks' pools on the node (Backups::CopyDisks), which are then downloaded into
// `images` and deleted, whatever happened. The scratch names are recorded in the step's undo
// information before QEMU writes them, so an undo or an attempt after a crash deletes them too.
Result<void> LiveBackupRemote(Node& hv, const std::string& backup_id, const std::string& vm,
                              const std::vector<DiskToCopy>& disks, const std::map<std::string, std::string>& images,
                              StepContext& ctx) {
  std::map<std::string, DiskBackupFile> targets;
  std::map<std::string, std::pair<std::string, std::string>> scratch;  // disk -> pool, volume
  std::map<std::string, std::string> pool_dirs;
  for (const DiskToCopy& d : disks) {
    std::string pool = d.pool;
    if (pool.empty()) {
      auto vol = hv.storage().GetVolumeByPath(d.path);
      if (!vol) return std::unexpected(vol.error().Wrap("disk " + d.disk + " is in no pool of node " + hv.name()));
      pool = vol->pool;
    }
    if (!pool_dirs.contains(pool)) {
      auto dir = hv.storage().GetPoolPath(pool);
      if (!dir) return std::unexpected(dir.error());
      pool_dirs[pool] = *dir;
    }
    const std::string name = ScratchName(backup_id, d);
    targets[d.disk] = DiskBackupFile{(fs::path(pool_dirs[pool]) / name).string(), d.format};
    scratch[d.disk] = {pool, name};
  }
  auto undo = UndoSoFar<BackupUndo>(ctx);  // an earlier attempt's scratch files, if any
  if (!undo) return std::unexpected(undo.error());
  std::vector<std::string>& keys = undo->scratch;
  for (const auto& [disk, where] : scratch) {
    const std::string key = where.first + "/" + where.second;
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
  }
  if (auto ok = RecordUndo(ctx, *undo); !ok) return ok;
  if (auto ok = DeleteScratch(hv.storage(), keys); !ok) {
    return std::unexpected(ok.error().Wrap("deleting leftover scratch files"));
  }

  const auto left = std::chrono::duration_cast<std::chrono::seconds>(ctx.deadline() - Steady::now());
  Result<void> fetched = hv.backups().CopyDisks(vm, targets, std::max(left, std::chrono::seconds(10)));
  if (fetched) {
    std::set<std::string> refreshed;
    for (const auto& [disk, where] : scratch) {
      if (refreshed.insert(where.first).second) {
        if (fetched = hv.storage().RefreshPool(where.first); !fetched) break;
      }
      fetched = Download(hv.storage(), where.first, where.second, images.at(disk));
      if (!fetched) {
        fetched = std::unexpected(fetched.error().Wrap("downloading the live backup of disk " + disk));
        break;
      }
    }
  }
  auto removed = DeleteScratch(hv.storage(), keys);
  if (!fetched) return fetched;
  if (!removed) {
    ctx.Event(EventLevel::kWarning, "the backup is complete, but a scratch file on node " + hv.name() +
                                        " could not be deleted (" + removed.error().ToString() + ")");
  }
  return {};
}

Result<void> RestorePowerAfter(Power& hv, const std::string& vm, PowerState before, StepContext& ctx) {
  auto now = hv.Get(vm);
  if (!now) return std::unexpected(now.error());
  if (*now == before) return {};
  if (before == PowerState::kRunning) {
    auto ok = *now == PowerState::kPaused ? hv.Resume(vm) : hv.Start(vm);
    if (ok) ctx.Event(EventLevel::kInfo, vm + " is running again");
    return ok;
  }
  if (before == PowerState::kPaused && *now == PowerState::kStopped) {
    if (auto ok = hv.Start(vm); !ok) return ok;
    return hv.Suspend(vm);
  }
  return {};
}

}  // namespace

Result<BackupManifest> TakeBackup(Node& hv, const BackupRequest& req, StepContext& ctx) {
  const auto started = Steady::now();
  if (req.directory.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "a backup needs a target directory");
  }
  // Done already (a step run again after a crash)?
  auto undo = UndoSoFar<BackupUndo>(ctx);
  if (!undo) return std::unexpected(undo.error());
  if (fs::exists(fs::path(req.directory) / "manifest.json")) {
    auto done = ReadManifest(req.directory);
    if (done) {
      if (undo->power_before) (void)RestorePowerAfter(hv.power(), req.vm, *undo->power_before, ctx);
      if (!undo->scratch.empty()) (void)DeleteScratch(hv.storage(), undo->scratch);
      ctx.Event(EventLevel::kInfo, "backup " + req.id + " was already complete");
      return done;
    }
  }
  auto observed = hv.domains().ObserveVm(req.vm);
  if (!observed) return std::unexpected(observed.error());
  const bool simulated = hv.capabilities().driver == "TEST";
  // A node whose files the controller cannot read: disks come through libvirt's streams.
  const bool remote = !simulated && !req.local_node;
  // The power state before the backup, as the first attempt saw it: a step run again after a
  // crash finds the VM suspended or stopped by its earlier self.
  PowerState before = observed->power;
  if (undo->power_before) {
    before = *undo->power_before;
  } else {
    undo->power_before = before;
    undo->directory = req.directory;
    if (auto ok = RecordUndo(ctx, *undo); !ok) return std::unexpected(ok.error());
  }
  auto saved = hv.domains().Save(req.vm);
  if (!saved) return std::unexpected(saved.error());
  auto disks = DisksOf(hv, req.vm, req.skip_disks, remote);
  if (!disks) return std::unexpected(disks.error());

  const std::string partial = req.directory + ".partial";
  std::error_code ec;
  fs::remove_all(partial, ec);
  fs::create_directories(partial, ec);
  if (ec) return Fail(ErrorCode::kIo, ec.message(), "creating " + partial);

  BackupManifest m;
  m.id = req.id;
  m.vm = req.vm;
  m.node = hv.name();
  m.policy = req.policy;
  m.compression = std::string(EnumName(req.compression));
  m.level = req.compression == Compression::kNone ? 0 : req.level;
  m.created = req.created;
  m.revision = req.revision;
  m.job_id = req.job_id;
  m.description = req.description;
  m.simulated = simulated;
  m.is_protected = req.is_protected;
  m.definition = saved->bytes;

  // Raw images of each disk, in the partial directory: disk name -> file.
  std::map<std::string, std::string> images;
  for (const DiskToCopy& d : *disks) {
    images[d.disk] = (fs::path(partial) / ("disk-" + d.disk + "." + (simulated ? "sim.json" : d.format))).string();
  }
  auto convert_all = [&]() -> Result<void> {
    for (const DiskToCopy& d : *disks) {
      auto ok = remote ? FetchRemoteDisk(hv.storage(), d, images[d.disk]) : Convert(d, images[d.disk]);
      if (!ok) return ok;
    }
    if (remote) ctx.Event(EventLevel::kInfo, "disks of " + req.vm + " downloaded from node " + hv.name() + " through libvirt");
    return {};
  };
  const std::string policy_of = req.policy.empty() ? "" : " (policy " + req.policy + ")";
  if (simulated) {
    m.mode = "simulated";
    for (const DiskToCopy& d : *disks) {
      const json meta = {{"simulated", true},
                         {"note", "made on a simulated node (libvirt test driver): there are no disk bytes; "
                                  "this file stands in for the disk image"},
                         {"vm", req.vm},
                         {"disk", d.disk},
                         {"pool", d.pool},
                         {"volume", d.volume},
                         {"path", d.path},
                         {"capacity", d.capacity},
                         {"format", d.format}};
      if (auto ok = WriteText(images[d.disk], meta.dump(2) + "\n"); !ok) return std::unexpected(ok.error());
    }
    ctx.Event(EventLevel::kWarning, "simulated node " + hv.name() + ": backup " + req.id +
                                        " holds the volumes' metadata only, not disk images");
  } else if (before == PowerState::kStopped) {
    m.mode = "offline";
    if (auto ok = convert_all(); !ok) return std::unexpected(ok.error());
  } else if (req.mode == BackupMode::kSnapshot) {
    m.mode = "snapshot";
    if (remote) {
      if (auto ok = LiveBackupRemote(hv, req.id, req.vm, *disks, images, ctx); !ok) return std::unexpected(ok.error());
      ctx.Event(EventLevel::kInfo, "live backup of " + req.vm + " taken (push mode on node " + hv.name() +
                                       ", downloaded through libvirt)" + policy_of);
    } else {
      std::map<std::string, DiskBackupFile> targets;
      for (const DiskToCopy& d : *disks) targets[d.disk] = DiskBackupFile{images[d.disk], d.format};
      const auto left = std::chrono::duration_cast<std::chrono::seconds>(ctx.deadline() - Steady::now());
      if (auto ok = hv.backups().CopyDisks(req.vm, targets, std::max(left, std::chrono::seconds(10))); !ok) {
        return std::unexpected(ok.error());
      }
      ctx.Event(EventLevel::kInfo, "live backup of " + req.vm + " taken (push mode)" + policy_of);
    }
  } else if (before == PowerState::kPaused) {
    m.mode = std::string(EnumName(req.mode));
    if (auto ok = convert_all(); !ok) return std::unexpected(ok.error());
  } else if (req.mode == BackupMode::kSuspend) {
    m.mode = "suspend";
    if (auto ok = hv.power().Suspend(req.vm); !ok) return std::unexpected(ok.error());
    ctx.Event(EventLevel::kInfo, req.vm + " suspended for its backup");
    auto copied = convert_all();
    auto resumed = RestorePowerAfter(hv.power(), req.vm, before, ctx);
    if (!copied) return std::unexpected(copied.error());
    if (!resumed) return std::unexpected(resumed.error().Wrap("resuming after the backup"));
  } else {
    m.mode = "stop";
    if (auto ok = hv.power().Shutdown(req.vm, req.update_policy.shutdown_timeout, req.update_policy.force_off); !ok) {
      return std::unexpected(ok.error().Wrap("stopping " + req.vm + " for its backup"));
    }
    ctx.Event(EventLevel::kInfo, req.vm + " stopped for its backup");
    auto copied = convert_all();
    auto started_again = RestorePowerAfter(hv.power(), req.vm, before, ctx);
    if (!copied) return std::unexpected(copied.error());
    if (!started_again) return std::unexpected(started_again.error().Wrap("starting after the backup"));
  }

  // Compress each image into its final name; hash both sides.
  for (const DiskToCopy& d : *disks) {
    const std::string& image = images[d.disk];
    const std::string name = fs::path(image).filename().string() + Extension(req.compression);
    const std::string stored = (fs::path(partial) / name).string();
    Result<StreamDigest> digest = req.compression == Compression::kNone
                                      ? DecompressFile(image, "", Compression::kNone)
                                      : CompressFile(image, stored, req.compression, req.level);
    if (!digest) return std::unexpected(digest.error().Wrap("compressing disk " + d.disk));
    if (req.compression != Compression::kNone) fs::remove(image, ec);
    BackupFile f;
    f.name = name;
    f.disk = d.disk;
    f.format = simulated ? "simulated" : d.format;
    f.pool = d.pool;
    f.volume = d.volume;
    f.path = d.path;
    f.capacity = d.capacity;
    f.size = digest->size;
    f.sha256 = digest->sha256;
    f.raw_size = digest->raw_size;
    f.raw_sha256 = digest->raw_sha256;
    m.files.push_back(std::move(f));
  }
  {
    const std::string path = (fs::path(partial) / "domain.xml").string();
    if (auto ok = WriteText(path, saved->bytes); !ok) return std::unexpected(ok.error());
    auto digest = DecompressFile(path, "", Compression::kNone);
    if (!digest) return std::unexpected(digest.error());
    BackupFile f;
    f.name = "domain.xml";
    f.size = digest->size;
    f.sha256 = digest->sha256;
    m.files.push_back(std::move(f));
  }
  if (req.verify) {
    if (auto ok = VerifyBackup(m, partial); !ok) return std::unexpected(ok.error());
    m.verified = true;
    ctx.Event(EventLevel::kInfo, "backup " + req.id + " verified: every checksum matches");
  }
  m.seconds = std::chrono::duration<double>(Steady::now() - started).count();
  if (auto ok = WriteText((fs::path(partial) / "manifest.json").string(), ManifestToJson(m).dump(2) + "\n"); !ok) {
    return std::unexpected(ok.error());
  }
  SyncDirectory(partial);
  fs::rename(partial, req.directory, ec);
  if (ec) return Fail(ErrorCode::kIo, ec.message(), "moving " + partial + " into place");
  SyncDirectory(fs::path(req.directory).parent_path().string());
  return m;
}

Result<void> DeleteBackupScratch(Storage& hv, const std::vector<std::string>& keys) { return DeleteScratch(hv, keys); }

// ---- restoring ---------------------------------------------------------------------------

Result<std::vector<std::string>> RestoreBackup(Node& hv, const RestoreRequest& req, StepContext& ctx) {
  auto m = ReadManifest(req.directory);
  if (!m) return std::unexpected(m.error());
  // The sums first: nothing is created from a damaged backup.
  if (auto ok = VerifyBackup(*m, req.directory); !ok) return std::unexpected(ok.error());
  const std::string name = req.new_name.empty() ? m->vm : req.new_name;
  auto undo = UndoSoFar<DefinitionUndo>(ctx);
  if (!undo) return std::unexpected(undo.error());
  const std::vector<std::string> recorded = undo->volumes;
  const bool defined_before = undo->defined;
  if (hv.domains().ObserveVm(name)) {
    if (defined_before) {
      ctx.Event(EventLevel::kInfo, name + " was already restored");
      return recorded;
    }
    return Fail(ErrorCode::kAlreadyExists, "a domain named " + name + " exists on " + hv.name() +
                                              "; restore under another name with --as NAME");
  }
  const Compression compression = ParseEnum<Compression>(m->compression).value_or(Compression::kNone);
  std::map<std::string, StorageRef> placed;
  for (const BackupFile& f : m->files) {
    if (f.disk.empty()) continue;  // domain.xml
    const std::string format = m->simulated ? "" : f.format;
    std::string vol_format = format;
    std::uint64_t capacity = f.capacity;
    const std::string stored = (fs::path(req.directory) / f.name).string();
    if (m->simulated) {
      // The stand-in file holds the volume's metadata.
      std::string text;
      {
        const std::string tmp = (fs::path(req.cache_dir) / ("restore-" + m->id + "-" + f.disk + ".json")).string();
        std::error_code ec;
        fs::create_directories(req.cache_dir, ec);
        auto written = DecompressFile(stored, tmp, compression);
        if (!written) return std::unexpected(written.error());
        std::ifstream in(tmp);
        std::ostringstream s;
        s << in.rdbuf();
        text = s.str();
        fs::remove(tmp, ec);
      }
      const json meta = json::parse(text, nullptr, false);
      vol_format = meta.is_object() ? meta.value("format", "qcow2") : "qcow2";
      if (meta.is_object()) capacity = meta.value("capacity", capacity);
    }
    const std::string pool = f.pool.empty() ? "default" : f.pool;
    const std::string volume = name + "-" + f.disk + "." + vol_format;
    const std::string key = pool + "/" + volume;
    const bool ours = std::find(recorded.begin(), recorded.end(), key) != recorded.end();
    if (hv.storage().GetVolume(pool, volume) && !ours) {
      return Fail(ErrorCode::kAlreadyExists, "volume " + key + " exists on " + hv.name() + " and is not this restore's");
    }
    if (!ours) {
      undo->volumes.push_back(key);
      if (auto ok = RecordUndo(ctx, *undo); !ok) return std::unexpected(ok.error());
    }
    if (m->simulated) {
      if (!ours || !hv.storage().GetVolume(pool, volume)) {
        VolumeSpec spec;
        spec.pool = pool;
        spec.name = volume;
        spec.capacity = capacity;
        spec.format = vol_format;
        if (auto ok = hv.storage().CreateVolume(spec); !ok) return std::unexpected(ok.error());
      }
    } else {
      std::error_code ec;
      fs::create_directories(req.cache_dir, ec);
      const std::string tmp = (fs::path(req.cache_dir) / ("restore-" + m->id + "-" + f.disk + "." + format)).string();
      auto d = DecompressFile(stored, tmp, compression);
      if (!d) return std::unexpected(d.error().Wrap("decompressing disk " + f.disk));
      if (!f.raw_sha256.empty() && d->raw_sha256 != f.raw_sha256) {
        fs::remove(tmp, ec);
        return Fail(ErrorCode::kFailedPrecondition, "disk " + f.disk + ": decompressed content does not match its sum");
      }
      auto uploaded = hv.storage().UploadVolume(pool, volume, tmp, format);
      fs::remove(tmp, ec);
      if (!uploaded) return std::unexpected(uploaded.error().Wrap("writing disk " + f.disk));
    }
    ctx.Event(EventLevel::kInfo, "disk " + f.disk + " restored into " + key);
    placed[f.disk] = StorageRef{pool, volume, ""};
  }
  undo->defined = true;
  if (auto ok = RecordUndo(ctx, *undo); !ok) return std::unexpected(ok.error());
  const RestoredDomain restored{SavedDomain{m->definition}, name, placed, req.managed, req.job_id};
  if (auto ok = hv.domains().DefineRestored(restored); !ok) return std::unexpected(ok.error());
  ctx.Event(EventLevel::kInfo, name + " defined from backup " + m->id +
                                   (req.managed ? " (managed: it is in the manifests)" : " (not managed by gitvirt)"));
  return undo->volumes;
}

}  // namespace gitvirt
