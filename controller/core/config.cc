#include "gitvirt/core/config.h"

namespace gitvirt {

const NodeConfig* ControllerConfig::FindNode(std::string_view name) const {
  for (const NodeConfig& node : nodes) {
    if (node.name == name) return &node;
  }
  return nullptr;
}

}  // namespace gitvirt
