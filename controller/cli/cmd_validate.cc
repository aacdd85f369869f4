#include <filesystem>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "command.h"
#include "gitvirt/cli/app.h"
#include "gitvirt/engine/desired_source.h"
#include "output.h"
#include "session.h"

namespace gitvirt::cli {
namespace {

struct ValidateOptions {
  std::string dir;
  std::string output = "text";
};

int RunValidate(const GlobalOptions& global, const ValidateOptions& opts) {
  std::string dir = opts.dir;
  if (dir.empty()) {
    // No -f: the configuration's source path, if there is a configuration.
    if (global.ConfigGiven() || std::filesystem::exists(global.config)) {
      auto session = OpenSession(global, MakeLogger(global.verbosity));
      if (!session) return kExitError;
      dir = session->config().source.path;
    }
    if (dir.empty()) {
      std::cerr << "gitvirt validate: give the manifest directory with -f DIR\n";
      return kExitError;
    }
  }
  LoadResult loaded = ValidateDirectory(dir);
  // Diagnostics name files from here, like the summary: "examples/manifests/web.yaml:3:1",
  // also when the directory came from the configuration (an absolute source.path).
  for (Diagnostic& d : loaded.diagnostics) {
    if (d.location.line > 0) d.location.file = (std::filesystem::path(dir) / d.location.file).string();
  }
  const std::string shown = DisplayPath(dir);
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
    std::cerr << shown << ": " << errors << " error" << (errors == 1 ? "" : "s")
              << "; nothing was planned\n";
    return kExitError;
  }
  const LoadSummary& s = loaded.summary;
  std::cout << shown << ": " << s.files << " file" << (s.files == 1 ? "" : "s") << ", "
            << s.documents << " document" << (s.documents == 1 ? "" : "s") << ", valid\n";
  for (const auto& [kind, count] : s.by_kind) {
    std::cout << "  " << std::left << std::setw(std::max<int>(16, static_cast<int>(kind.size()) + 1)) << kind << count << "\n";
  }
  std::cout << "  VirtualMachines after cluster expansion: " << s.vms_total << " ("
            << s.cluster_members << " from clusters)\n";
  return kExitOk;
}

}  // namespace

void AddValidateCommand(CLI::App& app, GlobalOptions& global, CommandResult& result) {
  auto opts = std::make_shared<ValidateOptions>();
  auto* cmd = app.add_subcommand(
      "validate", "Check every manifest in a directory; print all problems as file:line:column");
  cmd->add_option("-f,--filename", opts->dir, "Manifest directory (default: source.path of --config)");
  AddOutputOption(cmd, opts->output, {"text", "json", "yaml"});
  cmd->callback([&global, &result, opts] { result.exit_code = RunValidate(global, *opts); });
}

}  // namespace gitvirt::cli
