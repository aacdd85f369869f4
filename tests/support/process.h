// Running a child process from a test and capturing what it prints.
#pragma once

#include <string>
#include <vector>

namespace gitvirt::testing {

// Runs argv[0] (looked up in PATH) with the given arguments, stdin from /dev/null and
// stdout and stderr both captured, interleaved, into *output (if output is not null; it
// is overwritten). The child inherits the environment but no file descriptors beyond
// 0-2. Blocks until the child exits.
//
// Returns the exit status (0-255); 128 + N if the child was killed by signal N; 127 if
// the program could not be executed (the reason is in *output); -1 if the child could
// not be started at all (the reason is in *output).
int RunCommand(std::vector<std::string> argv, std::string* output);

}  // namespace gitvirt::testing
