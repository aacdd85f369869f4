#include "gitvirt/cli/app.h"

#include <iostream>

#include "command.h"

namespace gitvirt::cli {

int Run(int argc, char** argv) {
  CLI::App app{
      "gitvirt: GitOps for libvirt virtual machines.\n"
      "Reads manifests from git or a directory, compares them with what the hypervisors run,\n"
      "and plans and applies the difference.\n\n"
      "Exit codes: 0 success, 1 error, 2 changes (plan --detailed-exitcode).\n"
      "diff, like kubectl diff: 0 no differences, 1 differences, 2 error."};
  app.require_subcommand(1);
  // Global options anywhere on the line, as kubectl takes them: `gitvirt apply -f m --config
  // x.yaml`. Subcommands added after this inherit it, theirs included (snapshot create ...).
  app.fallthrough();
  app.set_help_all_flag("--help-all", "Show help for every command");
  GlobalOptions global;
  auto* config = app.add_option("--config", global.config,
                                "Controller configuration (default ./gitvirt.yaml)");
  app.add_flag("-v,--verbose", global.verbosity, "More log output (repeat for debug)");
  config->check(CLI::ExistingFile);
  global.config_option = config;

  CommandResult result;
  for (CommandAdder add : {AddValidateCommand, AddPlanCommand, AddApplyCommand, AddDiffCommand, AddGetCommand,
                           AddDescribeCommand, AddJobsCommand, AddServeCommand, AddVersionCommand,
                           AddSnapshotCommand, AddBackupCommand, AddPowerCommand, AddImportCommand}) {
    add(app, global, result);
  }
  const CLI::App* diff = app.get_subcommand("diff");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    if (code == 0) return kExitOk;  // --help
    // diff's 1 means "differences": a mistyped diff must not look like one.
    return diff->parsed() ? int{kDiffError} : int{kExitError};
  }
  return result.exit_code;
}

}  // namespace gitvirt::cli
