#include "gitvirt/engine/state_paths.h"

#include <filesystem>

namespace gitvirt {

StatePaths StatePaths::For(const ControllerConfig& config) {
  namespace fs = std::filesystem;
  StatePaths p;
  p.state = config.state;
  p.cache = config.state + ".cache";
  p.git = (fs::path(p.cache) / "git").string();
  p.seeds = (fs::path(p.cache) / "seeds").string();
  p.images = (fs::path(p.cache) / "images").string();
  p.console = (fs::path(p.cache) / "console").string();
  p.restore = (fs::path(p.cache) / "restore").string();
  return p;
}

}  // namespace gitvirt
