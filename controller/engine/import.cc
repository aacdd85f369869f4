#include "gitvirt/engine/import.h"

#include <filesystem>
#include <fstream>

#include "gitvirt/engine/session.h"
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

}  // namespace

Result<ImportResult> ImportDomains(Session& session, const ImportRequest& request) {
  std::vector<std::string> declared;
  const SourceConfig& configured = session.config().source;
  if (!request.source.empty() || !configured.path.empty() || configured.IsGit()) {
    auto desired = session.ReadDesired(request.source);
    if (!desired) return std::unexpected(desired.error().Wrap("reading the manifests, to check the names"));
    for (const VirtualMachine& vm : desired->state.vms) declared.push_back(vm.meta.name);
  }
  const ObservedState observed = session.Observe();
  auto choice = ChooseImports(observed, declared, request.selection);
  if (!choice) return std::unexpected(choice.error());

  ImportResult result;
  result.skipped = choice->skipped;
  std::vector<ManifestFile> written;
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
