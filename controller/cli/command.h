#pragma once
// How commands plug into the command table (internal to the cli folder). Each command file
// defines one Add*Command that declares its flags (through flags.h, so that every command
// speaks the same grammar: docs/cli.md) and sets the code it runs.

#include <CLI/CLI.hpp>

#include <functional>
#include <string>

namespace gitvirt {
class Session;
}

namespace gitvirt::cli {

// The options every command takes, anywhere on the line (kubectl's habit).
struct GlobalOptions {
  std::string config;                  // --config; see ConfigFile()
  CLI::Option* config_option = nullptr;
  int verbosity = 0;
  bool no_color = false;               // --no-color
  // Set by the commands that need every node (--ignore-unreachable): plan around the nodes
  // that cannot be reached instead of failing.
  bool ignore_unreachable = false;

  // The controller configuration, like KUBECONFIG: --config, else $GITVIRT_CONFIG, else
  // ./gitvirt.yaml.
  std::string ConfigFile() const;
  // Named on purpose (--config or GITVIRT_CONFIG), rather than the default.
  bool ConfigGiven() const;
};

// The selected command stores its result here.
struct CommandResult {
  int exit_code = 0;
};

using CommandAdder = void (*)(CLI::App& app, GlobalOptions& global, CommandResult& result);

void AddVersionCommand(CLI::App& app, GlobalOptions& global, CommandResult& result);
void AddValidateCommand(CLI::App& app, GlobalOptions& global, CommandResult& result);
void AddPlanCommand(CLI::App& app, GlobalOptions& global, CommandResult& result);
void AddApplyCommand(CLI::App& app, GlobalOptions& global, CommandResult& result);
void AddDiffCommand(CLI::App& app, GlobalOptions& global, CommandResult& result);
void AddGetCommand(CLI::App& app, GlobalOptions& global, CommandResult& result);
void AddDescribeCommand(CLI::App& app, GlobalOptions& global, CommandResult& result);
void AddJobsCommand(CLI::App& app, GlobalOptions& global, CommandResult& result);
void AddServeCommand(CLI::App& app, GlobalOptions& global, CommandResult& result);
void AddSnapshotCommand(CLI::App& app, GlobalOptions& global, CommandResult& result);
void AddBackupCommand(CLI::App& app, GlobalOptions& global, CommandResult& result);
void AddPowerCommand(CLI::App& app, GlobalOptions& global, CommandResult& result);
void AddImportCommand(CLI::App& app, GlobalOptions& global, CommandResult& result);
void AddStateCommand(CLI::App& app, GlobalOptions& global, CommandResult& result);
// help, completion and the hidden man-page writer: they read the command table itself.
// `jobs ID` in `format` (table, json, yaml, name); also what `apply -o FORMAT` prints of its job.
int ShowJob(Session& session, const std::string& id, const std::string& format);

void AddHelpCommands(CLI::App& app, GlobalOptions& global, CommandResult& result);

}  // namespace gitvirt::cli
