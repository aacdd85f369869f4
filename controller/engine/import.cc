#include "gitvirt/engine/import.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <regex>

#include "gitvirt/core/storage.h"
#include "gitvirt/engine/artifacts.h"
#include "gitvirt/engine/session.h"
#include "gitvirt/hypervisor/node_set.h"
#include "gitvirt/manifest/emitter.h"
#include "gitvirt/manifest/loader.h"

namespace gitvirt {
namespace fs = std::filesystem;

namespace {

// The comment above an imported manifest: where it came from and what it leaves out.
std::vector<std::string> HeaderOf(const ImportedVm& imported) {
  std::vector<std::string> lines = {"Imported by `gitvirt import` from the domain " + imported.vm.meta.name +
                                    " on node " + imported.node + "."};
  if (!imported.vm.spec.adopt) {
    lines.push_back("gitvirt takes it over (owner metadata only, no restart) once this manifest says");
    lines.push_back("spec.adopt: true, or with `gitvirt plan|apply --adopt`.");
  }
  if (!imported.unexpressed.empty()) {
    lines.push_back("");
    lines.push_back("The domain holds what a manifest cannot express. Adopting keeps it; an update that");
    lines.push_back("redefines the domain drops it (plans list it):");
    for (const std::string& e : imported.unexpressed) lines.push_back("  unexpressed: " + e);
  }
  for (const std::string& note : imported.notes) lines.push_back("note: " + note);
  return lines;
}

// The hex SHA-256 of a volume read through libvirt: an Image's checksum, for a base that exists
// only on a node. A hole reads as zeros, as the file does.
class Sha256Sink final : public VolumeSink {
 public:
  Result<void> Write(const char* data, std::size_t size) override {
    sum_.Update(data, size);
    return {};
  }
  Result<void> Hole(std::uint64_t length) override {
    static const std::vector<char> kZeros(1 << 16, '\0');
    while (length > 0) {
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(length, kZeros.size()));
      sum_.Update(kZeros.data(), n);
      length -= n;
    }
    return {};
  }
  Result<void> Finish() override { return {}; }
  void Abort() override {}
  std::string Hex() { return sum_.Hex(); }

 private:
  Sha256 sum_;
};

// Linked clones: a disk on a volume with a backing file. Its base is an Image where it is one:
// an Image the manifests declare with that volume, or a volume named as an Image's volume
// ("<name>.<format>", format qcow2 or raw), which is then written as an Image manifest of its
// own (its sha256 read through libvirt). The disk says `image: NAME, clone: linked` where that
// is the volume gitvirt would make for it ("<vm>-<disk>.<format>"), so adopting changes nothing;
// otherwise it stays the volume it is and a note names its Image.
class CloneBases {
 public:
  CloneBases(Session& session, const std::vector<Image>& declared) : session_(session), declared_(declared) {}

  void Resolve(ImportedVm& imported) {
    Node* node = session_.nodes().Find(imported.node);
    if (node == nullptr) return;
    for (Disk& disk : imported.vm.spec.disks) {
      if (disk.source.type != DiskSourceType::kVolume) continue;
      auto volume = node->storage().GetVolume(disk.pool, disk.source.ref);
      if (!volume || volume->backing.empty()) continue;
      const std::string what = "disks[" + disk.name + "] is a linked clone of " + volume->backing;
      auto base = node->storage().GetVolumeByPath(volume->backing);
      if (!base) {
        imported.notes.push_back(what + ", which is no pool's volume: written as the volume it is");
        continue;
      }
      bool unreadable = false;
      const std::string image = ImageOf(*node, imported.node, *base, what, imported.notes, unreadable);
      if (unreadable) continue;  // noted
      if (image.empty()) {
        imported.notes.push_back(what + " (volume " + base->name + " in pool " + base->pool +
                                 "), which is not named as an Image's volume (NAME.qcow2 or NAME.raw): written as "
                                 "the volume it is");
        continue;
      }
      Disk clone = disk;
      clone.source = DiskSource{DiskSourceType::kImage, image, CloneMode::kLinked};
      if (DiskStorage(imported.vm, clone) == DiskStorage(imported.vm, disk)) {
        disk = clone;
      } else {
        imported.notes.push_back(what + ", the volume of Image " + image + ": written as its volume " + disk.source.ref +
                                 ", as gitvirt would name a clone's volume " + DiskVolumeName(imported.vm.meta.name, clone));
      }
    }
  }

  // The Image manifests to write: bases no manifest declared.
  const std::vector<Image>& found() const { return found_; }

 private:
  // The Image whose volume `base` is, or "" when it is not named as one. `unreadable`: it is,
  // but its bytes could not be read for the checksum (noted).
  std::string ImageOf(Node& node, const std::string& node_name, const ObservedVolume& base, const std::string& what,
                      std::vector<std::string>& notes, bool& unreadable) {
    for (const Image& i : declared_) {
      if (i.spec.pool == base.pool && i.VolumeName() == base.name) return i.meta.name;
    }
    static const std::regex kImageVolume(R"(([a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?)\.(qcow2|raw))");
    std::smatch m;
    if (!std::regex_match(base.name, m, kImageVolume)) return "";
    const auto format = ParseEnum<ImageFormat>(m[3].str());
    if (!format || (!base.format.empty() && base.format != m[3].str())) return "";
    const std::string name = m[1].str();
    const std::string key = node_name + "/" + base.pool + "/" + base.name;
    if (auto it = made_.find(key); it != made_.end()) return it->second;
    // The same name on another node or pool, or declared for another volume: not guessed.
    for (const Image& i : found_) {
      if (i.meta.name == name) return "";
    }
    for (const Image& i : declared_) {
      if (i.meta.name == name) return "";
    }
    Sha256Sink sum;
    if (auto read = node.storage().ReadVolume(base.pool, base.name, sum); !read) {
      notes.push_back(what + " (volume " + base.name + " in pool " + base.pool + "), which could not be read for its "
                      "sha256 (" + read.error().ToString() + "): no Image written, the disk stays its volume");
      unreadable = true;
      return "";
    }
    Image image;
    image.meta.name = name;
    image.spec.source = base.path;
    image.spec.sha256 = sum.Hex();
    image.spec.format = *format;
    image.spec.pool = base.pool;
    image.spec.description = "The base of linked clones on node " + node_name + ", imported by gitvirt import.";
    found_.push_back(image);
    made_[key] = name;
    return name;
  }

  Session& session_;
  const std::vector<Image>& declared_;
  std::vector<Image> found_;
  std::map<std::string, std::string> made_;  // node/pool/volume -> Image name
};

}  // namespace

Result<ImportResult> ImportDomains(Session& session, const ImportRequest& request) {
  std::vector<std::string> declared;
  std::vector<Image> declared_images;
  const SourceConfig& configured = session.config().source;
  if (!request.source.empty() || !configured.path.empty() || configured.IsGit()) {
    auto desired = session.ReadDesired(request.source);
    if (!desired) return std::unexpected(desired.error().Wrap("reading the manifests, to check the names"));
    for (const VirtualMachine& vm : desired->state.vms) declared.push_back(vm.meta.name);
    declared_images = desired->state.images;
  }
  // Every node is searched: one that cannot be is an error (a domain of the same name there
  // would go unseen) unless --ignore-unreachable; with --node, only that node matters.
  ObservedState observed = session.Observe();
  if (request.selection.node.empty()) {
    if (auto ok = session.RequireReachable(observed); !ok) {
      return std::unexpected(ok.error().Wrap("searching every node (--node N searches one; --ignore-unreachable "
                                             "skips what cannot be reached)"));
    }
  }
  auto choice = ChooseImports(observed, declared, request.selection);
  if (!choice) return std::unexpected(choice.error());

  ImportResult result;
  result.skipped = choice->skipped;
  std::vector<ManifestFile> written;
  CloneBases bases(session, declared_images);
  for (ImportedVm& imported : choice->vms) bases.Resolve(imported);
  for (const Image& image : bases.found()) {
    ImportedFile file{"image-" + image.meta.name + ".yaml",
                      EmitImage(image, EmitOptions{{"Imported by `gitvirt import`: the base volume " + image.VolumeName() +
                                                    " of linked clones, in pool " + image.spec.pool + "."}})};
    written.push_back(ManifestFile{file.name, file.text});
    result.files.push_back(std::move(file));
  }
  for (const ImportedVm& imported : choice->vms) {
    const std::string& name = imported.vm.meta.name;
    ImportedFile file{name + ".yaml", EmitVirtualMachine(imported.vm, EmitOptions{HeaderOf(imported)})};
    for (const std::string& e : imported.unexpressed) {
      result.warnings.push_back(name + ": " + e + " is not expressible in a manifest (kept while adopted, dropped "
                                "by an update that redefines the domain)");
    }
    for (const std::string& note : imported.notes) result.warnings.push_back(name + ": " + note);
    written.push_back(ManifestFile{file.name, file.text});
    result.files.push_back(std::move(file));
  }
  // What a manifest says that the loader refuses (a name libvirt allows and a manifest does
  // not, memory below the minimum) is said now, not at the next validate.
  for (const Diagnostic& d : LoadManifests(written).diagnostics) {
    result.warnings.push_back(d.ToString() + " (edit the file before applying it)");
  }
  return result;
}

std::string ImportStream(const ImportResult& result) {
  std::vector<std::string> documents;
  for (const ImportedFile& f : result.files) documents.push_back(f.text);
  return JoinDocuments(documents);
}

Result<void> CheckImportTargets(const ImportResult& result, const std::string& dir) {
  std::vector<std::string> exist;
  for (const ImportedFile& f : result.files) {
    std::error_code ec;
    if (fs::exists(fs::path(dir) / f.name, ec)) exist.push_back((fs::path(dir) / f.name).string());
  }
  if (!exist.empty()) {
    std::string message = "import never overwrites a file, and these exist:";
    for (const std::string& e : exist) message += "\n  - " + e;
    message += "\nMove them away (or import into another directory). Nothing was written.";
    return Fail(ErrorCode::kAlreadyExists, message);
  }
  return {};
}

Result<std::vector<std::string>> WriteImport(const ImportResult& result, const std::string& dir) {
  if (auto checked = CheckImportTargets(result, dir); !checked) return std::unexpected(checked.error());
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Fail(ErrorCode::kIo, "cannot create " + dir + ": " + ec.message());
  std::vector<std::string> paths;
  for (const ImportedFile& f : result.files) {
    const std::string path = (fs::path(dir) / f.name).string();
    // Exclusive creation: a file that appeared since the check above is not overwritten either.
    std::FILE* out = std::fopen(path.c_str(), "wx");
    if (out == nullptr) return Fail(ErrorCode::kIo, "cannot create " + path + " (it may exist now)");
    const bool ok = std::fwrite(f.text.data(), 1, f.text.size(), out) == f.text.size();
    if (std::fclose(out) != 0 || !ok) return Fail(ErrorCode::kIo, "cannot write " + path);
    paths.push_back(path);
  }
  return paths;
}

}  // namespace gitvirt
