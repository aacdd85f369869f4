#pragma once
// How commands plug into the command table (internal to the cli folder). Each command file
// defines one Add*Command that declares its flags and sets the code it runs.

#include <CLI/CLI.hpp>

#include <functional>
#include <string>

namespace gitvirt::cli {

struct GlobalOptions {
  std::string config = "gitvirt.yaml";
  CLI::Option* config_option = nullptr;
  int verbosity = 0;
  bool ConfigGiven() const { return config_option != nullptr && config_option->count() > 0; }
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

}  // namespace gitvirt::cli
