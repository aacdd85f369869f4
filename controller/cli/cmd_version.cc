#include <iostream>
#include <memory>

#include "command.h"
#include "flags.h"
#include "gitvirt/cli/app.h"
#include "output.h"

namespace gitvirt::cli {

void AddVersionCommand(CLI::App& app, GlobalOptions& /*global*/, CommandResult& result) {
  auto output = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("version", "Print the gitvirt version");
  AddOutputOption(cmd, *output, {"table", "json", "yaml"});
  SetExamples(cmd, {"gitvirt version", "gitvirt version -o json", "gitvirt --version"});
  cmd->callback([&result, output] {
    if (*output == "table") {
      std::cout << "gitvirt " << Version() << "\n";
    } else {
      PrintDocument(std::cout, {{"name", "gitvirt"}, {"version", Version()}}, *output);
    }
    result.exit_code = kExitOk;
  });
}

}  // namespace gitvirt::cli
