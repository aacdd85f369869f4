// Connecting to a node: the libvirt adapter and the decorators around it, outermost last:
// fault(sim(libvirt)), so a fault injected on a simulated node touches none of its files.
#include "node_stack.h"

#include "faulty_node.h"
#include "libvirt_node.h"
#include "sim_node.h"

namespace gitvirt {

Result<NodeStack> ConnectStack(const NodeConfig& config, const HypervisorOptions& options) {
  libvirt::EnsureEventLoop();
  NodeStack stack;
  if (config.IsSimulated()) {
    auto sim = SimNode::Open(config, options);
    if (!sim) return std::unexpected(sim.error());
    stack.adapter = &(*sim)->adapter();
    stack.node = std::move(*sim);
  } else {
    auto node = LibvirtNode::Connect(config, options);
    if (!node) return std::unexpected(node.error());
    stack.adapter = node->get();
    stack.node = std::move(*node);
  }
#ifdef GITVIRT_FAULT_INJECTION
  LibvirtNode* adapter = stack.adapter;
  stack.node = std::make_unique<FaultyNode>(
      std::move(stack.node), [adapter](const std::string& why) { return adapter->connection().Reopen(why); },
      options.logger);
#endif
  stack.adapter->SetOutermost(*stack.node);
  return stack;
}

Result<std::unique_ptr<Node>> ConnectNode(const NodeConfig& node, const HypervisorOptions& options) {
  auto stack = ConnectStack(node, options);
  if (!stack) return std::unexpected(stack.error());
  return std::move(stack->node);
}

}  // namespace gitvirt
