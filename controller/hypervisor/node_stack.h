#pragma once
// Connecting to a node (ConnectNode, connect.h, is defined here too): the libvirt adapter with
// its decorators around it, and, for NodeSet, the adapter inside, which a live migration needs
// as the other end of its source's connection.

#include <memory>

#include "gitvirt/core/config.h"
#include "gitvirt/hypervisor/connect.h"
#include "gitvirt/hypervisor/node.h"

namespace gitvirt {

class LibvirtNode;

struct NodeStack {
  std::unique_ptr<Node> node;
  LibvirtNode* adapter = nullptr;  // owned by `node`
};

// fault(sim(libvirt)) for a simulated node, fault(libvirt) for any other; no fault decorator
// in release builds.
Result<NodeStack> ConnectStack(const NodeConfig& node, const HypervisorOptions& options);

}  // namespace gitvirt
