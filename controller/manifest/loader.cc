#include "gitvirt/manifest/loader.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include "documents.h"
#include "gitvirt/core/cluster.h"
#include "gitvirt/core/json.h"
#include "yaml_reader.h"

namespace gitvirt {
namespace {

using manifest_internal::DiagnosticSink;
using manifest_internal::DocumentFacts;
using manifest_internal::ParsedDocument;
using manifest_internal::Reference;

void AddError(std::vector<Diagnostic>& out, SourceLocation where, std::string path,
              std::string message) {
  out.push_back(Diagnostic{Severity::kError, std::move(where), std::move(path), std::move(message)});
}

// yaml-cpp reads past NUL bytes and invalid UTF-8 in surprising ways; refuse anything that is
// not text before parsing, pointing at the first bad byte.
bool CheckText(const ManifestFile& file, std::vector<Diagnostic>& out) {
  const std::string& s = file.content;
  int line = 1, column = 1;
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = 1;
    bool bad = false;
    if (c < 0x80) {
      bad = c < 0x20 && c != '\n' && c != '\r' && c != '\t';
      bad = bad || c == 0x7f;
    } else if ((c & 0xE0) == 0xC0 && c >= 0xC2) {
      len = 2;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
    } else if ((c & 0xF8) == 0xF0 && c <= 0xF4) {
      len = 4;
    } else {
      bad = true;
    }
    for (std::size_t k = 1; !bad && k < len; ++k) {
      bad = i + k >= s.size() || (static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80;
    }
    if (bad) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", c);
      AddError(out, {file.path, line, column}, "",
               std::string("the file is not UTF-8 text (byte ") + hex +
                   "): manifests must be YAML text");
      return false;
    }
    if (c == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
    i += len;
  }
  return true;
}

// Tabs are not allowed in YAML indentation, and yaml-cpp's complaint about them ("illegal map
// value") does not say so.
bool CheckIndentation(const ManifestFile& file, std::vector<Diagnostic>& out) {
  std::istringstream in(file.content);
  std::string text;
  int line = 0;
  bool ok = true;
  while (std::getline(in, text)) {
    ++line;
    for (std::size_t i = 0; i < text.size() && (text[i] == ' ' || text[i] == '\t'); ++i) {
      if (text[i] == '\t') {
        AddError(out, {file.path, line, static_cast<int>(i) + 1}, "",
                 "yaml: tab character in indentation; YAML indentation must use spaces");
        ok = false;
        break;
      }
    }
  }
  return ok;
}

bool LocatedBefore(const SourceLocation& a, const SourceLocation& b) {
  return std::tie(a.file, a.line, a.column) < std::tie(b.file, b.line, b.column);
}

struct Parsed {
  ParsedDocument doc;
  std::string file;
};

const std::string& NameOf(const ParsedDocument& d) {
  if (d.vm) return d.vm->meta.name;
  if (d.cluster) return d.cluster->meta.name;
  if (d.snapshot_policy) return d.snapshot_policy->meta.name;
  if (d.backup_policy) return d.backup_policy->meta.name;
  if (d.sync_window) return d.sync_window->meta.name;
  if (d.disruption_budget) return d.disruption_budget->meta.name;
  return d.image->meta.name;
}

// Reports each dependsOn cycle once, at the edge leaving the member that comes first in the
// repository.
void CheckCycles(const std::map<std::string, std::vector<std::pair<std::string, const Reference*>>>& edges,
                 const std::map<std::string, SourceLocation>& vm_locations,
                 std::vector<Diagnostic>& out) {
  enum class Color { kWhite, kGrey, kBlack };
  std::map<std::string, Color> color;
  std::vector<std::pair<std::string, const Reference*>> stack;  // (vm, edge taken from it)
  std::set<std::set<std::string>> reported;

  std::function<void(const std::string&)> visit = [&](const std::string& vm) {
    color[vm] = Color::kGrey;
    auto it = edges.find(vm);
    if (it != edges.end()) {
      for (const auto& [next, ref] : it->second) {
        stack.emplace_back(vm, ref);
        const Color c = color[next];
        if (c == Color::kGrey) {
          // The cycle is the stack suffix starting where `next` was entered.
          auto start = std::find_if(stack.begin(), stack.end(),
                                    [&](const auto& e) { return e.first == next; });
          std::vector<std::pair<std::string, const Reference*>> cycle(start, stack.end());
          std::set<std::string> members;
          for (const auto& e : cycle) members.insert(e.first);
          if (reported.insert(members).second) {
            auto first = std::min_element(cycle.begin(), cycle.end(), [&](const auto& a, const auto& b) {
              return LocatedBefore(vm_locations.at(a.first), vm_locations.at(b.first));
            });
            std::rotate(cycle.begin(), first, cycle.end());
            std::string path_text;
            for (const auto& e : cycle) path_text += e.first + " -> ";
            path_text += cycle.front().first;
            AddError(out, cycle.front().second->location, cycle.front().second->path,
                     "dependsOn cycle: " + path_text);
          }
        } else if (c == Color::kWhite) {
          visit(next);
        }
        stack.pop_back();
      }
    }
    color[vm] = Color::kBlack;
  };
  for (const auto& [vm, _] : vm_locations) {
    if (color[vm] == Color::kWhite) visit(vm);
  }
}

// What one file contributes; files are parsed independently (in parallel) and merged in order.
struct FileResult {
  std::vector<Diagnostic> diagnostics;
  std::vector<Parsed> parsed;
  DocumentFacts facts;
  int documents = 0;
};

// Limits on what one reads (docs/limits.md): a manifest file of 200 MB took 43 s and 1 GB
// before its one error; a limit says what is wrong at once.
constexpr std::size_t kMaxFileBytes = 8u << 20;

FileResult ParseFile(const ManifestFile& file, const LoadOptions& options) {
  FileResult out;
  if (file.content.size() > kMaxFileBytes) {
    AddError(out.diagnostics, {file.path, 1, 1}, "",
             "the file is " + std::to_string(file.content.size()) + " bytes; a manifest file may hold at most " +
                 std::to_string(kMaxFileBytes >> 20) + " MiB (split it into several files)");
    return out;
  }
  if (!CheckText(file, out.diagnostics)) return out;
  if (!CheckIndentation(file, out.diagnostics)) return out;
  DiagnosticSink sink(file.path, &out.diagnostics);
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(file.content);
  } catch (const YAML::Exception& e) {
    sink.Error(e.mark, "", "yaml: " + e.msg);
    return out;
  }
  std::string file_dir;
  if (!options.root_dir.empty()) {
    file_dir = (std::filesystem::path(options.root_dir) / file.path).parent_path().string();
  }
  for (const YAML::Node& doc : documents) {
    if (doc.IsNull()) continue;
    ++out.documents;
    if (auto p = manifest_internal::ParseDocument(doc, sink, file_dir, out.facts)) {
      out.parsed.push_back(Parsed{std::move(*p), file.path});
    }
  }
  if (out.documents == 0) {
    AddError(out.diagnostics, {file.path, 1, 1}, "",
             "the file has no documents (it is empty or only comments); remove it or add a "
             "manifest");
  }
  return out;
}

std::vector<FileResult> ParseFiles(std::span<const ManifestFile> files, const LoadOptions& options) {
  std::vector<FileResult> results(files.size());
  const unsigned workers =
      std::min<unsigned>(std::max(1u, std::thread::hardware_concurrency()), (files.size() + 7) / 8);
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    for (std::size_t i = next++; i < files.size(); i = next++) results[i] = ParseFile(files[i], options);
  };
  std::vector<std::thread> threads;
  for (unsigned t = 1; t < workers; ++t) threads.emplace_back(work);
  work();
  for (std::thread& t : threads) t.join();
  return results;
}

}  // namespace

LoadResult LoadManifests(std::span<const ManifestFile> files, const LoadOptions& options) {
  LoadResult result;
  DocumentFacts facts;
  std::vector<Parsed> parsed;
  result.summary.files = static_cast<int>(files.size());

  for (FileResult& file : ParseFiles(files, options)) {
    result.summary.documents += file.documents;
    std::move(file.diagnostics.begin(), file.diagnostics.end(), std::back_inserter(result.diagnostics));
    for (Parsed& p : file.parsed) {
      ++result.summary.by_kind[std::string(EnumName(p.doc.kind))];
      parsed.push_back(std::move(p));
    }
    std::move(file.facts.references.begin(), file.facts.references.end(),
              std::back_inserter(facts.references));
    std::move(file.facts.addresses.begin(), file.facts.addresses.end(),
              std::back_inserter(facts.addresses));
    std::move(file.facts.nodes.begin(), file.facts.nodes.end(), std::back_inserter(facts.nodes));
  }

  // Duplicate names, per kind; VMs share their namespace with Cluster members.
  std::map<std::pair<Kind, std::string>, SourceLocation> first_seen;
  std::map<std::string, SourceLocation> vm_name_locations;  // where each VM's name is written
  DesiredState desired;
  for (Parsed& p : parsed) {
    const std::string& name = NameOf(p.doc);
    auto [it, inserted] = first_seen.emplace(std::make_pair(p.doc.kind, name), p.doc.name_location);
    if (!inserted) {
      AddError(result.diagnostics, p.doc.name_location, "metadata.name",
               "duplicate " + std::string(EnumName(p.doc.kind)) + " \"" + name +
                   "\" (first defined at " + it->second.ToString() + ")");
      continue;
    }
    if (p.doc.vm) {
      vm_name_locations.emplace(name, p.doc.name_location);
      desired.vms.push_back(std::move(*p.doc.vm));
    }
    if (p.doc.cluster) desired.clusters.push_back(std::move(*p.doc.cluster));
    if (p.doc.snapshot_policy) desired.snapshot_policies.push_back(std::move(*p.doc.snapshot_policy));
    if (p.doc.backup_policy) desired.backup_policies.push_back(std::move(*p.doc.backup_policy));
    if (p.doc.image) desired.images.push_back(std::move(*p.doc.image));
    if (p.doc.sync_window) desired.sync_windows.push_back(std::move(*p.doc.sync_window));
    if (p.doc.disruption_budget) desired.disruption_budgets.push_back(std::move(*p.doc.disruption_budget));
  }

  // Cluster members join the VMs.
  std::map<std::string, SourceLocation> vm_locations;
  for (const VirtualMachine& vm : desired.vms) vm_locations[vm.meta.name] = vm.meta.location;
  std::map<std::string, std::vector<std::string>> members_of;
  const std::size_t standalone = desired.vms.size();
  for (const Cluster& cluster : desired.clusters) {
    auto members = ExpandCluster(cluster);
    if (!members) {
      AddError(result.diagnostics, cluster.meta.location, "spec.nodeGroups",
               "cannot expand cluster: " + members.error().ToString());
      continue;
    }
    for (VirtualMachine& vm : *members) {
      auto [it, inserted] = vm_locations.emplace(vm.meta.name, vm.meta.location);
      if (!inserted) {
        auto named = vm_name_locations.find(vm.meta.name);
        const SourceLocation where = named != vm_name_locations.end() ? named->second : vm.meta.location;
        AddError(result.diagnostics, where, "metadata.name",
                 "VirtualMachine \"" + vm.meta.name + "\" has the same name as a member of Cluster \"" +
                     cluster.meta.name + "\" (node group \"" + vm.cluster->group + "\" at " +
                     vm.meta.location.ToString() + ")");
        continue;
      }
      members_of[cluster.meta.name].push_back(vm.meta.name);
      members_of[cluster.meta.name + "/" + vm.cluster->group].push_back(vm.meta.name);
      desired.vms.push_back(std::move(vm));
    }
  }
  result.summary.cluster_members = static_cast<int>(desired.vms.size() - standalone);
  result.summary.vms_total = static_cast<int>(desired.vms.size());

  // References: images, dependsOn.
  std::map<std::string, const Image*> images;
  for (const Image& image : desired.images) images[image.meta.name] = &image;
  std::map<std::string, std::vector<std::pair<std::string, const Reference*>>> edges;
  for (const Reference& ref : facts.references) {
    const std::string& target = ref.target.name;
    switch (ref.target.kind) {
      case Kind::kImage: {
        auto it = images.find(target);
        if (it == images.end()) {
          AddError(result.diagnostics, ref.location, ref.path,
                   "Image \"" + target + "\" is not defined in the repository");
        } else if (ref.use == Reference::Use::kCdromImage &&
                   it->second->spec.format != ImageFormat::kIso) {
          AddError(result.diagnostics, ref.location, ref.path,
                   "Image \"" + target + "\" has format " +
                       std::string(EnumName(it->second->spec.format)) +
                       "; a cdrom needs an Image of format iso");
        } else if (ref.use == Reference::Use::kDiskImage &&
                   it->second->spec.format == ImageFormat::kIso) {
          AddError(result.diagnostics, ref.location, ref.path,
                   "Image \"" + target + "\" is an ISO; attach it as a cdrom, not a disk");
        }
        break;
      }
      case Kind::kVirtualMachine:
      case Kind::kCluster: {
        std::vector<std::string> targets;
        if (ref.target.kind == Kind::kCluster) {
          if (std::none_of(desired.clusters.begin(), desired.clusters.end(),
                           [&](const Cluster& c) { return c.meta.name == target; })) {
            AddError(result.diagnostics, ref.location, ref.path,
                     "Cluster \"" + target + "\" is not defined in the repository");
            break;
          }
          targets = members_of[target];
        } else if (!vm_locations.contains(target)) {
          AddError(result.diagnostics, ref.location, ref.path,
                   "VirtualMachine \"" + target + "\" is not defined in the repository");
          break;
        } else {
          targets = {target};
        }
        std::vector<std::string> sources;
        if (ref.from.kind == Kind::kCluster) {
          sources = members_of[ref.from.name + "/" + ref.group];
        } else {
          sources = {ref.from.name};
        }
        for (const std::string& s : sources) {
          for (const std::string& t : targets) {
            if (s == t) {
              AddError(result.diagnostics, ref.location, ref.path,
                       "\"" + s + "\" cannot depend on itself");
            } else {
              edges[s].emplace_back(t, &ref);
            }
          }
        }
        break;
      }
      default:
        break;
    }
  }
  CheckCycles(edges, vm_locations, result.diagnostics);

  // Static addresses must be unique across the repository.
  std::map<std::string, const manifest_internal::StaticAddress*> addresses;
  for (const auto& a : facts.addresses) {
    auto [it, inserted] = addresses.emplace(a.address, &a);
    if (!inserted) {
      const std::string other = it->second->vm == a.vm ? "" : " by VM \"" + it->second->vm + "\"";
      AddError(result.diagnostics, a.location, a.path,
               "address " + a.address + " is already used" + other + " (at " +
                   it->second->location.ToString() + ")");
    }
  }

  // Nodes named by VMs: those of the configuration, when the caller knows them.
  if (options.nodes) {
    std::string known;
    for (const std::string& n : *options.nodes) known += (known.empty() ? "" : ", ") + n;
    for (const manifest_internal::NodeReference& ref : facts.nodes) {
      if (std::find(options.nodes->begin(), options.nodes->end(), ref.node) != options.nodes->end()) continue;
      AddError(result.diagnostics, ref.location, ref.path,
               "node \"" + ref.node + "\" is not in the configuration" +
                   DidYouMean(ClosestNames(ref.node, *options.nodes)) + " (its nodes: " +
                   (known.empty() ? "none" : known) + ")");
    }
  }

  // A mediated device without a uuid gets a stable one from the VM's name and the device's
  // position, so re-planning never sees a change (and cluster members get distinct ones).
  for (VirtualMachine& vm : desired.vms) {
    for (std::size_t i = 0; i < vm.spec.gpus.size(); ++i) {
      Gpu& gpu = vm.spec.gpus[i];
      if (gpu.mdev_type.empty() || !gpu.mdev_uuid.empty()) continue;
      const std::string h = Fingerprint(vm.meta.name + "#gpu" + std::to_string(i)) +
                            Fingerprint("gitvirt-mdev:" + vm.meta.name + "#" + std::to_string(i));
      gpu.mdev_uuid = h.substr(0, 8) + "-" + h.substr(8, 4) + "-4" + h.substr(13, 3) + "-8" + h.substr(17, 3) +
                      "-" + h.substr(20, 12);
    }
  }

  SortDiagnostics(result.diagnostics);
  if (result.ok()) {
    auto by_name = [](const auto& a, const auto& b) { return a.meta.name < b.meta.name; };
    std::sort(desired.vms.begin(), desired.vms.end(), by_name);
    std::sort(desired.clusters.begin(), desired.clusters.end(), by_name);
    std::sort(desired.snapshot_policies.begin(), desired.snapshot_policies.end(), by_name);
    std::sort(desired.backup_policies.begin(), desired.backup_policies.end(), by_name);
    std::sort(desired.images.begin(), desired.images.end(), by_name);
    std::sort(desired.sync_windows.begin(), desired.sync_windows.end(), by_name);
    std::sort(desired.disruption_budgets.begin(), desired.disruption_budgets.end(), by_name);
    result.desired = std::move(desired);
  }
  return result;
}

Result<std::vector<ManifestFile>> ReadManifestDirectory(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return Fail(ErrorCode::kNotFound, "not a directory", dir.string());
  }
  // Symlinks are followed only while they stay inside the directory: a link out of it (or a
  // loop, or one that points nowhere) is an error, so no file outside the manifests is ever
  // read, and so never quoted in a diagnostic that serve publishes. Every filesystem call takes
  // an error_code: a hostile tree must give an error, never an exception.
  const fs::path root = fs::canonical(dir, ec);
  if (ec) return Fail(ErrorCode::kIo, ec.message(), dir.string());
  const auto inside = [&root](const fs::path& target) {
    const fs::path rel = target.lexically_relative(root);
    return !rel.empty() && *rel.begin() != "..";
  };
  std::vector<ManifestFile> files;
  fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec);
  if (ec) return Fail(ErrorCode::kIo, ec.message(), dir.string());
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) return Fail(ErrorCode::kIo, ec.message(), dir.string());
    const fs::path& p = it->path();
    const std::string ext = p.extension().string();
    const bool manifest = ext == ".yaml" || ext == ".yml";
    if (it->is_symlink(ec)) {
      const fs::path target = fs::canonical(p, ec);
      if (ec) {
        // A loop or a link to nothing: worth an error only where a manifest is expected.
        if (!manifest) continue;
        return Fail(ErrorCode::kInvalidArgument,
                    "a symbolic link that cannot be followed (" + ec.message() + ")", p.string());
      }
      if (!inside(target)) {
        return Fail(ErrorCode::kInvalidArgument,
                    "a symbolic link that points outside the manifest directory; gitvirt reads only the "
                    "files inside it (copy the file in, or link to one inside)",
                    p.string());
      }
      // A linked directory is not descended into: the tree is read once, as it is.
      if (fs::is_directory(target, ec)) continue;
    }
    if (it->is_directory(ec) && p.filename().string().starts_with(".")) {
      it.disable_recursion_pending();
      continue;
    }
    if (!manifest || !it->is_regular_file(ec)) continue;
    std::ifstream in(p, std::ios::binary);
    if (!in) return Fail(ErrorCode::kIo, "cannot read file", p.string());
    std::ostringstream content;
    content << in.rdbuf();
    files.push_back(ManifestFile{p.lexically_relative(dir).string(), std::move(content).str()});
  }
  std::sort(files.begin(), files.end(),
            [](const ManifestFile& a, const ManifestFile& b) { return a.path < b.path; });
  return files;
}

LoadResult LoadDirectory(const std::filesystem::path& dir) {
  auto files = ReadManifestDirectory(dir);
  if (!files) {
    LoadResult result;
    result.diagnostics.push_back(
        Diagnostic{Severity::kError, {dir.string(), 0, 0}, "", files.error().ToString()});
    return result;
  }
  return LoadManifests(*files, LoadOptions{std::filesystem::absolute(dir).lexically_normal().string()});
}

}  // namespace gitvirt
