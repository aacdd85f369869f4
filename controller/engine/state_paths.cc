#include "gitvirt/engine/state_paths.h"

#include <filesystem>

namespace gitvirt {

StatePaths StatePaths::For(const ControllerConfig& config) { return ForState(config.state); }

StatePaths StatePaths::ForState(const std::string& state_file) {
  namespace fs = std::filesystem;
  StatePaths p;
  p.state = state_file;
  p.cache = state_file + ".cache";
  p.git = (fs::path(p.cache) / "git").string();
  p.seeds = (fs::path(p.cache) / "seeds").string();
  p.images = (fs::path(p.cache) / "images").string();
  p.console = (fs::path(p.cache) / "console").string();
  p.restore = (fs::path(p.cache) / "restore").string();
  return p;
}

}  // namespace gitvirt
