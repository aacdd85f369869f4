#pragma once
// The libvirt adapter: a Hypervisor for one node, over any libvirt URI (qemu:///system,
// qemu+ssh://, qemu+tls://, qemu+unix://...?socket=, test:///..., test+unix://...) or a
// simulated node (sim:PATH: the test driver, its state saved to PATH after every change).
//
// A lost connection (daemon restarted, network blip) is reopened with backoff for up to
// `reconnect_timeout` and the call retried once; remote connections use libvirt keepalive.

#include <chrono>
#include <memory>

#include <spdlog/fwd.h>  // the logger by name: spdlog/logger.h costs seconds per file

#include "gitvirt/core/config.h"
#include "gitvirt/hypervisor/hypervisor.h"

namespace gitvirt {

struct HypervisorOptions {
  std::chrono::seconds reconnect_timeout{60};
  std::shared_ptr<spdlog::logger> logger;  // null: spdlog's default logger
  static HypervisorOptions FromEnvironment() { return {}; }
};

// A simulated node (sim:PATH) connects at its first call that needs libvirt; until it does,
// Observe() is answered from the node's observation snapshot when that is current (see
// sim_store.h), so a no-op plan does not pay the test driver's parse of every domain.
Result<std::unique_ptr<Hypervisor>> ConnectNode(const NodeConfig& node,
                                                const HypervisorOptions& options);

// How many times this process has loaded a simulated node's files into libvirt's test driver
// (the expensive part of observing one): tests prove with it that a snapshot answered.
std::uint64_t SimulatedNodeLoads();

}  // namespace gitvirt
