#pragma once
// Connecting to a node: the libvirt adapter for any libvirt URI (qemu:///system, qemu+ssh://,
// qemu+tls://, qemu+unix://...?socket=, test:///..., test+unix://...) or a simulated node
// (sim:PATH: libvirt's test driver, its state kept in files by a decorator around the adapter).
// In test builds (GITVIRT_FAULT_INJECTION) a second decorator, around the first, makes chosen
// operations fail when GITVIRT_FAULTS says so.
//
// A lost connection (daemon restarted, network blip) is reopened with backoff for up to
// `reconnect_timeout` and the call retried once; remote connections use libvirt keepalive.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <spdlog/fwd.h>  // the logger by name: spdlog/logger.h costs seconds per file

#include "gitvirt/core/config.h"
#include "gitvirt/core/error.h"
#include "gitvirt/hypervisor/node.h"

namespace gitvirt {

struct HypervisorOptions {
  std::chrono::seconds reconnect_timeout{60};
  std::shared_ptr<spdlog::logger> logger;  // null: spdlog's default logger
  // Simulated nodes answer Observe() from their observation snapshot when it is current
  // (GITVIRT_SIM_SNAPSHOTS=0 turns it off).
  bool sim_snapshots = true;
  // The <domain type> of QEMU nodes: "" = kvm where the node offers KVM, else qemu (TCG);
  // GITVIRT_VIRT_TYPE forces one.
  std::string virt_type;

  // The defaults, with what the environment overrides (GITVIRT_SIM_SNAPSHOTS,
  // GITVIRT_VIRT_TYPE): the one place the hypervisor layer reads the environment. (The fault
  // seam of test builds reads GITVIRT_FAULTS itself: what it counts is the process's, across
  // every node, not one connection's.)
  static HypervisorOptions FromEnvironment();
};

// A simulated node connects at its first call that needs libvirt; until then, Observe() is
// answered from the node's observation snapshot when that is current, so a no-op plan does not
// pay the test driver's parse of every domain.
Result<std::unique_ptr<Node>> ConnectNode(const NodeConfig& node, const HypervisorOptions& options);

// How many times this process has loaded a simulated node's files into libvirt's test driver
// (the expensive part of observing one): tests prove with it that a snapshot answered.
std::uint64_t SimulatedNodeLoads();

}  // namespace gitvirt
