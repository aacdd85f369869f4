#pragma once
// What gitvirt exits with: apart from app.h, so the usage reporter can name them without
// depending on the command table.

namespace gitvirt::cli {

// Exit codes, as documented in `gitvirt --help` and the README.
enum ExitCode : int {
  kExitOk = 0,       // success; for plan --detailed-exitcode: no changes
  kExitError = 1,    // invalid input, usage error, failed step, refused action
  kExitChanges = 2,  // plan --detailed-exitcode: there are changes (terraform's convention)
};

// `gitvirt diff` follows kubectl diff (and diff(1)) instead: 1 means differences, so an error,
// a usage error included, is 2.
enum DiffExitCode : int {
  kDiffNone = 0,   // the hypervisors run what the manifests say
  kDiffFound = 1,  // differences, printed
  kDiffError = 2,  // anything went wrong: usage, configuration, manifests, nodes, diff(1)
};

}  // namespace gitvirt::cli
