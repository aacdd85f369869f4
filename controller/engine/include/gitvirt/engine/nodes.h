#pragma once
// The hypervisor nodes of a configuration: connected in parallel, observed in parallel into one
// ObservedState value. A node that cannot be reached is recorded as unreachable, never fatal:
// the planner leaves its VMs alone and says so.
//
// Thread-safety: Find/ObserveAll may be called from several threads; the set is fixed after
// construction (Put is for tests, before use).

#include <map>
#include <memory>
#include <string>

#include "gitvirt/core/config.h"
#include "gitvirt/core/observed.h"
#include "gitvirt/hypervisor/hypervisor.h"
#include "gitvirt/hypervisor/libvirt_hypervisor.h"

namespace gitvirt {

class NodeSet {
 public:
  explicit NodeSet(ControllerConfig config) : config_(std::move(config)) {}

  static std::unique_ptr<NodeSet> Connect(const ControllerConfig& config, const HypervisorOptions& options);

  // Null when the node is unknown or could not be reached.
  Hypervisor* Find(const std::string& node) const;
  const std::string& ConnectError(const std::string& node) const;
  ObservedState ObserveAll() const;
  // Tries again to connect every node that could not be reached.
  void RetryUnreachable();
  const ControllerConfig& config() const { return config_; }
  void Put(const std::string& node, std::unique_ptr<Hypervisor> hypervisor);

 private:
  ControllerConfig config_;  // a copy: a NodeSet outlives the config it was made from
  std::map<std::string, std::unique_ptr<Hypervisor>> nodes_;
  std::map<std::string, std::string> errors_;
  HypervisorOptions options_;
};

}  // namespace gitvirt
