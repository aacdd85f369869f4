#include "gitvirt/engine/nodes.h"

#include <chrono>
#include <future>
#include <thread>

namespace gitvirt {

std::unique_ptr<NodeSet> NodeSet::Connect(const ControllerConfig& config, const HypervisorOptions& options) {
  auto set = std::make_unique<NodeSet>(config);
  set->options_ = options;
  std::vector<std::future<Result<std::unique_ptr<Hypervisor>>>> pending;
  for (const NodeConfig& node : config.nodes) {
    pending.push_back(std::async(std::launch::async, [&node, &options] { return ConnectNode(node, options); }));
  }
  for (std::size_t i = 0; i < pending.size(); ++i) {
    auto hv = pending[i].get();
    if (hv) {
      set->nodes_[config.nodes[i].name] = std::move(*hv);
    } else {
      set->errors_[config.nodes[i].name] = hv.error().ToString();
    }
  }
  return set;
}

Hypervisor* NodeSet::Find(const std::string& node) const {
  auto it = nodes_.find(node);
  return it == nodes_.end() ? nullptr : it->second.get();
}

const std::string& NodeSet::ConnectError(const std::string& node) const {
  static const std::string kNone;
  auto it = errors_.find(node);
  return it == errors_.end() ? kNone : it->second;
}

void NodeSet::RetryUnreachable() {
  for (const NodeConfig& node : config_.nodes) {
    if (nodes_.contains(node.name)) continue;
    auto hv = ConnectNode(node, options_);
    if (hv) {
      nodes_[node.name] = std::move(*hv);
      errors_.erase(node.name);
    } else {
      errors_[node.name] = hv.error().ToString();
    }
  }
}

void NodeSet::Put(const std::string& node, std::unique_ptr<Hypervisor> hypervisor) {
  nodes_[node] = std::move(hypervisor);
  errors_.erase(node);
}

ObservedState NodeSet::ObserveAll() const {
  ObservedState state;
  state.observed_at = std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
  std::vector<std::future<ObservedNode>> pending;
  for (const NodeConfig& node : config_.nodes) {
    pending.push_back(std::async(std::launch::async, [this, &node] {
      ObservedNode out;
      out.name = node.name;
      Hypervisor* hv = Find(node.name);
      if (hv == nullptr) {
        out.error = ConnectError(node.name);
        return out;
      }
      auto observed = hv->Observe();
      if (!observed) {
        out.error = observed.error().ToString();
        out.capabilities = hv->capabilities();
        return out;
      }
      return std::move(*observed);
    }));
  }
  for (auto& f : pending) state.nodes.push_back(f.get());
  return state;
}

}  // namespace gitvirt
