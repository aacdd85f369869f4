#include "gitvirt/cli/app.h"

#include <iostream>

#include "command.h"
#include "flags.h"
#include "usage.h"

namespace gitvirt::cli {

int Run(int argc, char** argv) {
  CLI::App app{
      "gitvirt: GitOps for libvirt virtual machines.\n"
      "Reads manifests from git or a directory, compares them with what the hypervisors run,\n"
      "and plans and applies the difference.\n\n"
      "Exit codes: 0 success, 1 error (a usage error included), 2 changes (plan --detailed-exitcode,\n"
      "apply --dry-run, and apply when changes stay pending).\n"
      "diff, like kubectl diff: 0 no differences, 1 differences, 2 error.\n"
      "Configuration: --config FILE, else $GITVIRT_CONFIG, else ./gitvirt.yaml.",
      "gitvirt"};
  app.require_subcommand(1);
  // Global options anywhere on the line, as kubectl takes them: `gitvirt apply -f m --config
  // x.yaml`. Subcommands added after this inherit it, theirs included (snapshot create ...).
  app.fallthrough();
  app.set_help_all_flag("--help-all", "Show help for every command");
  app.set_version_flag("--version", std::string("gitvirt ") + Version(), "Print the gitvirt version and exit");
  GlobalOptions global;
  global.config_option =
      app.add_option("--config", global.config, "Controller configuration (default $GITVIRT_CONFIG, else ./gitvirt.yaml)")
          ->check(CLI::ExistingFile)
          ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // the last one wins, as in kubectl
  app.add_flag("-v,--verbose", global.verbosity, "More log output (repeat for debug)");
  app.add_flag("--no-color", global.no_color, "No colours (also NO_COLOR, TERM=dumb, or output not a terminal)");
  SetExamples(&app, {"gitvirt validate -f examples/manifests",
                     "gitvirt --config examples/gitvirt.yaml plan",
                     "gitvirt apply --auto-approve",
                     "gitvirt help plan  # every command's flags and examples"});

  CommandResult result;
  for (CommandAdder add : {AddValidateCommand, AddPlanCommand, AddApplyCommand, AddDiffCommand, AddGetCommand,
                           AddDescribeCommand, AddJobsCommand, AddServeCommand, AddVersionCommand,
                           AddSnapshotCommand, AddBackupCommand, AddPowerCommand, AddImportCommand, AddStateCommand,
                           AddHelpCommands}) {
    add(app, global, result);
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return ReportParseError(app, e);
  }
  return result.exit_code;
}

}  // namespace gitvirt::cli
