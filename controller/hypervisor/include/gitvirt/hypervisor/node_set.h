#pragma once
// The nodes of a configuration: connected in parallel, observed in parallel into one
// ObservedState value, and the one operation that needs two of them at once (moving a running
// domain). A node that cannot be reached is recorded as unreachable, never fatal: the planner
// leaves its VMs alone and says so; RetryUnreachable connects it again (serve, every pass).
//
// Thread-safety: every method may be called from several threads; a Node* stays valid as long
// as the set (RetryUnreachable only adds nodes). Put is for tests, before use.

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "gitvirt/core/config.h"
#include "gitvirt/core/observed.h"
#include "gitvirt/hypervisor/connect.h"
#include "gitvirt/hypervisor/node.h"

namespace gitvirt {

// Moves running domains between nodes of one set (a live migration needs both nodes' own
// connections, which only the set that made them holds).
class Migrations {
 public:
  virtual ~Migrations() = default;
  // Moves the running (or paused) domain `vm` from `source` to `target` while it runs,
  // persistently, undefining it on the source. kUnsupported unless both nodes can migrate
  // (NodeCapabilities::migration).
  virtual Result<void> MigrateLive(const std::string& vm, const std::string& source, const std::string& target,
                                   const LiveMigration& options) = 0;
};

class NodeSet {
 public:
  // Connects every node of `nodes`, in parallel.
  static std::unique_ptr<NodeSet> Connect(std::vector<NodeConfig> nodes, const HypervisorOptions& options);
  // An empty set for tests: add nodes with Put.
  explicit NodeSet(std::vector<NodeConfig> nodes);
  ~NodeSet();

  // Null when the node is unknown or could not be reached.
  Node* Find(const std::string& node) const;
  // Why a node is not connected ("" when it is, or is unknown).
  std::string ConnectError(const std::string& node) const;
  const std::vector<NodeConfig>& configs() const { return configs_; }
  const NodeConfig* FindConfig(const std::string& node) const;

  // Observes every node in parallel, in configuration order.
  ObservedState ObserveAll() const;
  // Tries again, in parallel, to connect every node that could not be reached.
  void RetryUnreachable();

  Migrations& migrations();

  // Tests: use this node (and its migrations, when given) instead of connecting one.
  void Put(const std::string& node, std::unique_ptr<Node> hypervisor);

 private:
  struct Connected;
  std::vector<NodeConfig> configs_;
  HypervisorOptions options_;
  mutable std::mutex mu_;  // guards nodes_ and errors_ against ObserveAll's reconnects
  std::map<std::string, std::unique_ptr<Connected>> nodes_;
  std::map<std::string, std::string> errors_;
  std::unique_ptr<Migrations> migrations_;
};

}  // namespace gitvirt
