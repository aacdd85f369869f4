#include "gitvirt/hypervisor/node_set.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <functional>
#include <future>

#include "faulty_node.h"
#include "libvirt_node.h"
#include "migrations.h"
#include "node_stack.h"

namespace gitvirt {

struct NodeSet::Connected {
  std::unique_ptr<Node> node;
  LibvirtNode* adapter = nullptr;  // null for a node given with Put
};

namespace {

// Live migrations between the set's libvirt nodes, through the fault seam of test builds.
class AdapterMigrations final : public Migrations {
 public:
  using Find = std::function<LibvirtNode*(const std::string&)>;
  AdapterMigrations(Find find, const HypervisorOptions& options) : find_(std::move(find)), options_(options) {}

  Result<void> MigrateLive(const std::string& vm, const std::string& source, const std::string& target,
                           const LiveMigration& options) override {
    LibvirtNode* from = find_(source);
    LibvirtNode* to = find_(target);
    if (from == nullptr || to == nullptr) {
      return Fail(ErrorCode::kUnsupported, "live migration needs two libvirt nodes of this set",
                  "migrating " + vm + " live from " + source + " to " + target);
    }
    if (!from->capabilities().migration || !to->capabilities().migration) {
      return gitvirt::MigrateLive(*from, *to, vm, options);  // refused, and no change to count
    }
#ifdef GITVIRT_FAULT_INJECTION
    spdlog::logger& log = options_.logger ? *options_.logger : *spdlog::default_logger();
    return FaultSeam(
        log, source, [from](const std::string& why) { return from->connection().Reopen(why); }, "migrate", vm,
        [&] { return gitvirt::MigrateLive(*from, *to, vm, options); });
#else
    return gitvirt::MigrateLive(*from, *to, vm, options);
#endif
  }

 private:
  Find find_;
  const HypervisorOptions& options_;  // the set's
};

}  // namespace

NodeSet::NodeSet(std::vector<NodeConfig> nodes) : configs_(std::move(nodes)) {
  migrations_ = std::make_unique<AdapterMigrations>(
      [this](const std::string& node) -> LibvirtNode* {
        std::lock_guard lock(mu_);
        auto it = nodes_.find(node);
        return it == nodes_.end() ? nullptr : it->second->adapter;
      },
      options_);
}

NodeSet::~NodeSet() = default;

std::unique_ptr<NodeSet> NodeSet::Connect(std::vector<NodeConfig> nodes, const HypervisorOptions& options) {
  auto set = std::make_unique<NodeSet>(std::move(nodes));
  set->options_ = options;
  set->RetryUnreachable();
  return set;
}

Node* NodeSet::Find(const std::string& node) const {
  std::lock_guard lock(mu_);
  auto it = nodes_.find(node);
  return it == nodes_.end() ? nullptr : it->second->node.get();
}

std::string NodeSet::ConnectError(const std::string& node) const {
  std::lock_guard lock(mu_);
  auto it = errors_.find(node);
  return it == errors_.end() ? std::string() : it->second;
}

const NodeConfig* NodeSet::FindConfig(const std::string& node) const {
  for (const NodeConfig& c : configs_) {
    if (c.name == node) return &c;
  }
  return nullptr;
}

void NodeSet::RetryUnreachable() {
  std::vector<const NodeConfig*> missing;
  {
    std::lock_guard lock(mu_);
    for (const NodeConfig& c : configs_) {
      if (!nodes_.contains(c.name)) missing.push_back(&c);
    }
  }
  std::vector<std::future<Result<NodeStack>>> pending;
  for (const NodeConfig* node : missing) {
    pending.push_back(std::async(std::launch::async, [node, this] { return ConnectStack(*node, options_); }));
  }
  for (std::size_t i = 0; i < pending.size(); ++i) {
    auto stack = pending[i].get();
    std::lock_guard lock(mu_);
    if (stack) {
      nodes_[missing[i]->name] = std::make_unique<Connected>(Connected{std::move(stack->node), stack->adapter});
      errors_.erase(missing[i]->name);
    } else {
      errors_[missing[i]->name] = stack.error().ToString();
    }
  }
}

void NodeSet::Put(const std::string& node, std::unique_ptr<Node> hypervisor) {
  std::lock_guard lock(mu_);
  nodes_[node] = std::make_unique<Connected>(Connected{std::move(hypervisor), nullptr});
  errors_.erase(node);
}

Migrations& NodeSet::migrations() { return *migrations_; }

ObservedState NodeSet::ObserveAll() const {
  ObservedState state;
  state.observed_at = std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
  std::vector<std::future<ObservedNode>> pending;
  for (const NodeConfig& node : configs_) {
    pending.push_back(std::async(std::launch::async, [this, &node] {
      ObservedNode out;
      out.name = node.name;
      Node* hv = Find(node.name);
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
