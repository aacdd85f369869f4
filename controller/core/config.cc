#include "gitvirt/core/config.h"

namespace gitvirt {

bool NodeConfig::IsLocal() const {
  if (IsSimulated()) return true;
  const auto sep = uri.find("://");
  if (sep == std::string::npos) return false;
  const std::string scheme = uri.substr(0, sep);
  const auto plus = scheme.find('+');
  const std::string transport = plus == std::string::npos ? "" : scheme.substr(plus + 1);
  std::string host = uri.substr(sep + 3, uri.find('/', sep + 3) - sep - 3);
  if (const auto at = host.find('@'); at != std::string::npos) host = host.substr(at + 1);
  if (const auto colon = host.rfind(':'); colon != std::string::npos && host.find(']') == std::string::npos) {
    host = host.substr(0, colon);
  }
  if (host.empty()) return transport.empty() || transport == "unix";
  return host == "localhost" || host == "127.0.0.1" || host == "[::1]";
}

const NodeConfig* ControllerConfig::FindNode(std::string_view name) const {
  for (const NodeConfig& node : nodes) {
    if (node.name == name) return &node;
  }
  return nullptr;
}

}  // namespace gitvirt
