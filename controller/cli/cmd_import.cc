#include <iostream>

#include "command.h"
#include "flags.h"
#include "gitvirt/cli/app.h"
#include "gitvirt/engine/import.h"
#include "session.h"

namespace gitvirt::cli {
namespace {

struct ImportOptionsCli {
  ImportRequest request;
  std::string out = "-";
  bool dry_run = false;
};

int RunImportCommand(const GlobalOptions& global, const ImportOptionsCli& opts) {
  auto session = OpenSession(global);
  if (!session) return kExitError;
  auto imported = ImportDomains(*session, opts.request);
  if (!imported) {
    PrintError(imported.error());
    return kExitError;
  }
  for (const std::string& s : imported->skipped) std::cerr << "gitvirt: skipped " << s << "\n";
  for (const std::string& w : imported->warnings) std::cerr << "gitvirt: warning: " << w << "\n";
  const bool to_stdout = opts.out.empty() || opts.out == "-";
  if (opts.dry_run) {
    // The same refusal the real run would give: a dry run never says yes where the run says no.
    if (!to_stdout) {
      if (auto checked = CheckImportTargets(*imported, opts.out); !checked) {
        PrintError(checked.error());
        return kExitError;
      }
    }
    for (const ImportedFile& f : imported->files) {
      std::cout << "would write " << (to_stdout ? f.name + " (to stdout)" : opts.out + "/" + f.name) << "\n";
    }
    return kExitOk;
  }
  if (to_stdout) {
    std::cout << ImportStream(*imported);
    return kExitOk;
  }
  auto written = WriteImport(*imported, opts.out);
  if (!written) {
    PrintError(written.error());
    return kExitError;
  }
  for (const std::string& path : *written) std::cout << "wrote " << path << "\n";
  return kExitOk;
}

}  // namespace

void AddImportCommand(CLI::App& app, GlobalOptions& global, CommandResult& result) {
  auto opts = std::make_shared<ImportOptionsCli>();
  auto* cmd = app.add_subcommand("import", "Write manifests for domains gitvirt does not own (adopt them later)");
  AddSourceOptions(cmd, opts->request.source);
  cmd->add_option("names", opts->request.selection.patterns, "Domain names or shell globs (web-*)");
  cmd->add_option("--node", opts->request.selection.node, "Only domains on this node");
  cmd->add_flag("--all", opts->request.selection.all, "Every domain gitvirt does not own");
  cmd->add_option("--out", opts->out, "Directory to write NAME.yaml into (never overwrites), or - for stdout");
  cmd->add_flag("--adopt", opts->request.selection.adopt,
                "Write spec.adopt: true, so the next apply takes the domains over as they run");
  cmd->add_flag("--dry-run", opts->dry_run, "Check and say what would be written; write nothing");
  AddIgnoreUnreachableFlag(cmd, global);
  SetExamples(cmd, {"gitvirt import --all  # every unowned domain, as YAML on stdout",
                    "gitvirt import 'web-*' --node hv2 --out manifests/  # NAME.yaml each, never overwritten",
                    "gitvirt import db-01 --adopt --out manifests/  # then: gitvirt plan shows & adopt",
                    "gitvirt import --all --dry-run --out manifests/"});
  cmd->callback([&global, &result, opts] { result.exit_code = RunImportCommand(global, *opts); });
}

}  // namespace gitvirt::cli
