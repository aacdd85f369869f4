#pragma once
// The gitvirt command line: a table of commands built with CLI11. main() calls Run().

#include "gitvirt/cli/exit_code.h"

namespace gitvirt::cli {

int Run(int argc, char** argv);

// "0.1.0": the project's version, or the GITVIRT_VERSION_STRING the build was configured with
// (a package build bumps it without recompiling more than one file).
const char* Version();

}  // namespace gitvirt::cli
