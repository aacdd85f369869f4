#include <filesystem>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "command.h"
#include "flags.h"
#include "gitvirt/cli/app.h"
#include "gitvirt/engine/desired_source.h"
#include "output.h"
#include "session.h"

namespace gitvirt::cli {
namespace {

struct ValidateOptions {
  std::string path;
  std::string output = "table";
};

// `-o name`: every resource the manifests declare (VMs after cluster expansion), Kind/name.
void PrintNames(const DesiredState& d) {
  for (const Image& i : d.images) std::cout << ResourceRef{Kind::kImage, i.meta.name}.ToString() << "\n";
  for (const Cluster& c : d.clusters) std::cout << ResourceRef{Kind::kCluster, c.meta.name}.ToString() << "\n";
  for (const VirtualMachine& v : d.vms) std::cout << ResourceRef{Kind::kVirtualMachine, v.meta.name}.ToString() << "\n";
  for (const SnapshotPolicy& p : d.snapshot_policies) {
    std::cout << ResourceRef{Kind::kSnapshotPolicy, p.meta.name}.ToString() << "\n";
  }
  for (const BackupPolicy& p : d.backup_policies) std::cout << ResourceRef{Kind::kBackupPolicy, p.meta.name}.ToString() << "\n";
}

int RunValidate(const GlobalOptions& global, const ValidateOptions& opts) {
  std::string path = opts.path;
  // With a configuration at hand (--config, GITVIRT_CONFIG or ./gitvirt.yaml), VMs pinned to a
  // node are checked against its nodes; without -f, its source path is what is validated.
  std::optional<std::vector<std::string>> nodes;
  if (global.ConfigGiven() || std::filesystem::exists(global.ConfigFile())) {
    auto session = OpenSession(global);
    if (!session) return kExitError;
    nodes.emplace();
    for (const NodeConfig& n : session->config().nodes) nodes->push_back(n.name);
    if (path.empty()) path = session->config().source.path;
  }
  if (path.empty()) {
    std::cerr << "gitvirt validate: give the manifests with -f PATH (a directory, a file or -)\n";
    return kExitError;
  }
  Validation validation = ValidateManifests(path, nodes);
  LoadResult& loaded = validation.loaded;
  // Diagnostics name files from here, like the summary: "examples/manifests/web.yaml:3:1",
  // also when the directory came from the configuration (an absolute source.path).
  for (Diagnostic& d : loaded.diagnostics) {
    if (d.location.line > 0 && !validation.shown_root.empty()) {
      d.location.file = (std::filesystem::path(validation.shown_root) / d.location.file).string();
    }
  }
  const std::string shown = path == "-" ? "<stdin>" : DisplayPath(path);
  if (opts.output == "json" || opts.output == "yaml") {
    nlohmann::ordered_json out;
    out["ok"] = loaded.ok();
    out["directory"] = shown;
    out["diagnostics"] = DiagnosticsJson(loaded.diagnostics);
    out["summary"] = {{"files", loaded.summary.files},
                      {"documents", loaded.summary.documents},
                      {"byKind", loaded.summary.by_kind},
                      {"virtualMachines", loaded.summary.vms_total},
                      {"clusterMembers", loaded.summary.cluster_members}};
    PrintDocument(std::cout, out, opts.output);
    return loaded.ok() ? kExitOk : kExitError;
  }
  PrintDiagnostics(std::cerr, loaded.diagnostics);
  if (!loaded.ok()) {
    const auto errors = std::count_if(loaded.diagnostics.begin(), loaded.diagnostics.end(),
                                      [](const Diagnostic& d) { return d.severity == Severity::kError; });
    std::cerr << shown << ": " << errors << " error" << (errors == 1 ? "" : "s") << "; nothing was planned\n";
    return kExitError;
  }
  if (opts.output == "name") {
    PrintNames(loaded.desired);
    return kExitOk;
  }
  const LoadSummary& s = loaded.summary;
  std::cout << shown << ": " << s.files << " file" << (s.files == 1 ? "" : "s") << ", " << s.documents
            << " document" << (s.documents == 1 ? "" : "s") << ", valid\n";
  for (const auto& [kind, count] : s.by_kind) {
    std::cout << "  " << std::left << std::setw(std::max<int>(16, static_cast<int>(kind.size()) + 1)) << kind << count << "\n";
  }
  std::cout << "  VirtualMachines after cluster expansion: " << s.vms_total << " (" << s.cluster_members
            << " from clusters)\n";
  return kExitOk;
}

}  // namespace

void AddValidateCommand(CLI::App& app, GlobalOptions& global, CommandResult& result) {
  auto opts = std::make_shared<ValidateOptions>();
  auto* cmd = app.add_subcommand(
      "validate", "Check every manifest (a directory, a file or stdin); print all problems as file:line:column");
  cmd->add_option("-f,--filename", opts->path,
                  "Manifests: a directory, a file, or - for standard input (default: source.path of the configuration)");
  AddOutputOption(cmd, opts->output, {"table", "json", "yaml", "name"});
  SetExamples(cmd, {"gitvirt validate -f examples/manifests",
                    "gitvirt --config examples/gitvirt.yaml validate  # its source.path, and its node names",
                    "gitvirt validate -f web.yaml -o json",
                    "cat web.yaml | gitvirt validate -f -"});
  cmd->callback([&global, &result, opts] { result.exit_code = RunValidate(global, *opts); });
}

}  // namespace gitvirt::cli
