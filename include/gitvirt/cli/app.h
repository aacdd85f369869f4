#pragma once
// The gitvirt command line: a table of commands built with CLI11. main() calls Run().

namespace gitvirt::cli {

// Exit codes, as documented in `gitvirt --help` and the README.
enum ExitCode : int {
  kExitOk = 0,       // success; for plan --detailed-exitcode: no changes
  kExitError = 1,    // invalid input, failed step, refused action
  kExitChanges = 2,  // plan --detailed-exitcode / diff: there are changes
};

int Run(int argc, char** argv);

}  // namespace gitvirt::cli
