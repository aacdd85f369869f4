#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "command.h"
#include "gitvirt/cli/app.h"
#include "flags.h"
#include "gitvirt/engine/subprocess.h"
#include "output.h"
#include "view.h"

namespace gitvirt::cli {
namespace {

namespace fs = std::filesystem;

int RunDiff(const GlobalOptions& global, const SourceSelection& source) {
  auto view = GatherView(global, source);
  if (!view || !view->desired) return kDiffError;
  // A node it cannot see would read as "no differences" there.
  if (auto reachable = view->session->RequireReachable(view->observed); !reachable) {
    PrintError(reachable.error());
    return kDiffError;
  }
  char tmpl[] = "/tmp/gitvirt-diff-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return kDiffError;
  const fs::path root(tmpl);
  fs::create_directories(root / "live");
  fs::create_directories(root / "desired");
  for (const ResourceStatus& r : view->resources) {
    if (r.kind != Kind::kVirtualMachine || r.sync == SyncStatus::kSynced) continue;
    // As the manifest says it (kubectl diff shows YAML too): the same fields, the same units.
    std::ofstream(root / "live" / r.name) << SpecManifest(r.name, r.observed_json);
    std::ofstream(root / "desired" / r.name) << SpecManifest(r.name, r.desired_json);
  }
  // The same external diff kubectl uses: unified, with new and removed files shown in full.
  auto result = RunProcess({"diff", "-u", "-N", "-r", (root / "live").string(), (root / "desired").string()});
  std::error_code ec;
  fs::remove_all(root, ec);
  if (!result) {
    std::cerr << "gitvirt: " << result.error().ToString() << "\n";
    return kDiffError;
  }
  std::string out = result->output;
  // Name the sides like kubectl: live/NAME and desired/NAME.
  for (const char* side : {"live", "desired"}) {
    const std::string from = (root / side).string();
    for (auto pos = out.find(from); pos != std::string::npos; pos = out.find(from, pos)) {
      out.replace(pos, from.size(), side);
    }
  }
  std::cout << out;
  // Drift an ignoreDifferences rule covers is not a difference gitvirt acts on: said, after.
  for (const ResourceStatus& r : view->resources) {
    for (const Condition& c : r.conditions) {
      if (c.type == "DifferencesIgnored") std::cout << "# " << EnumName(r.kind) << "/" << r.name << ": " << c.message << "\n";
    }
  }
  if (result->exit_code > 1) return kDiffError;
  return result->exit_code == 0 ? kDiffNone : kDiffFound;
}

}  // namespace

void AddDiffCommand(CLI::App& app, GlobalOptions& global, CommandResult& result) {
  auto source = std::make_shared<SourceSelection>();
  auto* cmd = app.add_subcommand(
      "diff", "Unified diff of what runs (live/) against the manifests (desired/); exit 0 none, 1 some, 2 error");
  AddSourceOptions(cmd, *source);
  AddIgnoreUnreachableFlag(cmd, global);
  SetExamples(cmd, {"gitvirt diff", "gitvirt diff -f web.yaml", "gitvirt diff | less  # exit 0 none, 1 some, 2 error"});
  cmd->callback([&global, &result, source] { result.exit_code = RunDiff(global, *source); });
}

}  // namespace gitvirt::cli
