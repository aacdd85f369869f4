#include <iostream>

#include "command.h"
#include "gitvirt/cli/app.h"

namespace gitvirt::cli {

void AddVersionCommand(CLI::App& app, GlobalOptions& /*global*/, CommandResult& result) {
  auto* cmd = app.add_subcommand("version", "Print the gitvirt version");
  cmd->callback([&result] {
    std::cout << "gitvirt " << GITVIRT_VERSION << "\n";
    result.exit_code = kExitOk;
  });
}

}  // namespace gitvirt::cli
