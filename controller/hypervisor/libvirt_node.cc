#include "libvirt_node.h"

#include <spdlog/spdlog.h>

namespace gitvirt {

LibvirtNode::LibvirtNode(const NodeConfig& config, std::string uri, NodeConnection::Opener opener,
                         const HypervisorOptions& options, ChangeObserver* observer)
    : config_(config),
      uri_(std::move(uri)),
      log_(options.logger ? options.logger : spdlog::default_logger()),
      connection_(config.name, uri_, std::move(opener), options.reconnect_timeout, log_, observer) {}

Result<std::unique_ptr<LibvirtNode>> LibvirtNode::Connect(const NodeConfig& config, const HypervisorOptions& options) {
  std::unique_ptr<LibvirtNode> node(
      new LibvirtNode(config, config.uri, NodeConnection::OpenUri(config.name, config.uri), options, nullptr));
  if (auto ok = node->connection_.Open(); !ok) return std::unexpected(ok.error());
  if (auto ok = node->LearnCapabilities(options); !ok) return std::unexpected(ok.error());
  return node;
}

std::unique_ptr<LibvirtNode> LibvirtNode::TestDriver(const NodeConfig& config, std::string uri,
                                                     NodeConnection::Opener opener, ChangeObserver& observer,
                                                     const HypervisorOptions& options) {
  std::unique_ptr<LibvirtNode> node(new LibvirtNode(config, std::move(uri), std::move(opener), options, &observer));
  node->caps_.driver = "TEST";  // which cannot resize volumes: volume_resize stays off
  return node;
}

Result<void> LibvirtNode::LearnCapabilities(const HypervisorOptions& options) {
  return connection_.Borrow<void>([&](virConnectPtr c) -> Result<void> {
    const char* type = virConnectGetType(c);
    caps_.driver = type != nullptr ? type : "?";
    if (caps_.driver == "TEST") return {};  // it cannot resize volumes: volume_resize stays off
    caps_.live_device_changes = true;
    caps_.block_resize = true;
    caps_.volume_resize = true;
    caps_.backup = caps_.driver == "QEMU";
    caps_.migration = caps_.driver == "QEMU";
    caps_.volume_upload = true;
    caps_.guests = true;
    if (!options.virt_type.empty()) {
      virt_type_ = options.virt_type;
    } else {
      char* domcaps = virConnectGetDomainCapabilities(c, nullptr, "x86_64", nullptr, "kvm", 0);
      virt_type_ = domcaps != nullptr ? "kvm" : "qemu";
      free(domcaps);
    }
    return {};
  });
}

}  // namespace gitvirt
