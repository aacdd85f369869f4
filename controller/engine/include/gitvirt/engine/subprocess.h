#pragma once
// Running a helper program (xorrisofs, qemu-img, curl) and capturing its output. Arguments are
// passed as a vector straight to execvp: no shell, so no quoting problems and no injection.

#include <map>
#include <string>
#include <vector>

#include "gitvirt/core/error.h"

namespace gitvirt {

struct ProcessResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

Result<ProcessResult> RunProcess(const std::vector<std::string>& argv,
                                 const std::map<std::string, std::string>& extra_env = {});

// Like RunProcess, and an error (with the program's output) unless it exits 0.
Result<std::string> RunChecked(const std::vector<std::string>& argv,
                               const std::map<std::string, std::string>& extra_env = {});

}  // namespace gitvirt
