#pragma once
// Reads gitvirt.yaml (kind ControllerConfig) with the same diagnostics as manifests.

#include <filesystem>
#include <vector>

#include "gitvirt/core/config.h"
#include "gitvirt/core/diagnostic.h"

namespace gitvirt {

struct ConfigLoadResult {
  ControllerConfig config;
  std::vector<Diagnostic> diagnostics;
  bool ok() const { return !HasErrors(diagnostics); }
};

// Parses `content` as if read from `file` (for diagnostics and relative paths).
ConfigLoadResult ParseControllerConfig(const std::string& content,
                                       const std::filesystem::path& file);

ConfigLoadResult LoadControllerConfig(const std::filesystem::path& file);

}  // namespace gitvirt
