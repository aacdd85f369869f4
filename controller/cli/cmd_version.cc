#include <iostream>
#include <memory>

#include "command.h"
#include "gitvirt/cli/app.h"
#include "output.h"

namespace gitvirt::cli {

void AddVersionCommand(CLI::App& app, GlobalOptions& /*global*/, CommandResult& result) {
  auto output = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("version", "Print the gitvirt version");
  AddOutputOption(cmd, *output, {"text", "json", "yaml"});
  cmd->callback([&result, output] {
    if (*output == "text") {
      std::cout << "gitvirt " << GITVIRT_VERSION << "\n";
    } else {
      PrintDocument(std::cout, {{"name", "gitvirt"}, {"version", GITVIRT_VERSION}}, *output);
    }
    result.exit_code = kExitOk;
  });
}

}  // namespace gitvirt::cli
