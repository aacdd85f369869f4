#include "gitvirt/core/placement.h"

#include <algorithm>
#include <set>

namespace gitvirt {
namespace {

struct NodeState {
  const NodeInventory* node;
  double cpu_free;
  double memory_free;
};

bool SelectorMatches(const Labels& selector, const Labels& labels) {
  for (const auto& [k, v] : selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

std::string DomainOf(const NodeInventory& node, const std::string& topology_key) {
  if (topology_key.empty()) return node.name;
  auto it = node.labels.find(topology_key);
  // A node without the label is a failure domain of its own.
  return it == node.labels.end() ? "node:" + node.name : it->second;
}

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : ", ") + s;
  return out.empty() ? "none" : out;
}

}  // namespace

PlacementResult Place(const std::vector<NodeInventory>& nodes,
                      const std::vector<PlacementRequest>& requests) {
  PlacementResult result;
  std::vector<NodeState> state;
  for (const NodeInventory& n : nodes) {
    state.push_back(NodeState{&n, n.vcpus * n.cpu_overcommit - n.vcpus_used,
                              static_cast<double>(n.memory) * n.memory_overcommit -
                                  static_cast<double>(n.memory_used)});
  }
  auto find_state = [&](const std::string& name) -> NodeState* {
    for (NodeState& s : state) {
      if (s.node->name == name) return &s;
    }
    return nullptr;
  };
  // group -> failure domain -> members placed there
  std::map<std::string, std::map<std::string, int>> spread;
  std::map<std::string, std::string> topology_of_group;
  std::map<std::string, int> group_size;
  for (const PlacementRequest& r : requests) {
    if (!r.group.empty()) {
      topology_of_group[r.group] = r.placement.topology_key;
      ++group_size[r.group];
    }
  }
  auto take = [&](NodeState& s, const PlacementRequest& r) {
    s.cpu_free -= r.vcpus;
    s.memory_free -= static_cast<double>(r.memory);
    result.node_of[r.vm] = s.node->name;
    if (!r.group.empty()) ++spread[r.group][DomainOf(*s.node, r.placement.topology_key)];
  };

  // Stability first: a VM stays where it runs if that node is still acceptable, and, for a
  // HARD group, no earlier member (by name) already holds its failure domain.
  std::vector<const PlacementRequest*> pending;
  for (const PlacementRequest& r : requests) {
    NodeState* s = r.current_node.empty() ? nullptr : find_state(r.current_node);
    if (s == nullptr) {
      pending.push_back(&r);
      continue;
    }
    std::string why;
    if (!s->node->schedulable) {
      why = "node " + s->node->name + " is draining or unreachable";
    } else if (!SelectorMatches(r.placement.node_selector, s->node->labels)) {
      why = "node " + s->node->name + " no longer matches the VM's nodeSelector";
    } else if (!r.group.empty() && r.placement.anti_affinity == AntiAffinity::kHard &&
               spread[r.group][DomainOf(*s->node, r.placement.topology_key)] > 0) {
      why = "HARD anti-affinity for group " + r.group + ": another member already runs on " +
            (r.placement.topology_key.empty() ? s->node->name : DomainOf(*s->node, r.placement.topology_key));
    }
    if (why.empty()) {
      take(*s, r);
    } else {
      result.moved[r.vm] = why;
      pending.push_back(&r);
    }
  }
  std::stable_sort(pending.begin(), pending.end(), [](const auto* a, const auto* b) {
    return std::tie(a->group, a->vm) < std::tie(b->group, b->vm);
  });

  std::set<std::string> failed_groups;
  std::set<std::string> warned_groups;
  for (const PlacementRequest* r : pending) {
    std::vector<NodeState*> fits;
    std::vector<std::string> matching;  // selector matches, capacity or not
    for (NodeState& s : state) {
      if (!s.node->schedulable || !SelectorMatches(r->placement.node_selector, s.node->labels)) {
        continue;
      }
      matching.push_back(s.node->name);
      if (s.cpu_free >= r->vcpus && s.memory_free >= static_cast<double>(r->memory)) {
        fits.push_back(&s);
      }
    }
    if (fits.empty()) {
      result.errors.push_back("no node has room for VM \"" + r->vm + "\" (" +
                              std::to_string(r->vcpus) + " vCPUs, " + FormatSize(r->memory) +
                              "); nodes matching its selector: " + Join(matching));
      continue;
    }
    const AntiAffinity anti = r->group.empty() ? AntiAffinity::kNone : r->placement.anti_affinity;
    if (anti != AntiAffinity::kNone) {
      const std::string& key = r->placement.topology_key;
      auto& counts = spread[r->group];
      auto count_of = [&](const NodeState* s) {
        auto it = counts.find(DomainOf(*s->node, key));
        return it == counts.end() ? 0 : it->second;
      };
      std::vector<NodeState*> empty_domains;
      for (NodeState* s : fits) {
        if (count_of(s) == 0) empty_domains.push_back(s);
      }
      if (anti == AntiAffinity::kHard) {
        if (empty_domains.empty()) {
          if (failed_groups.insert(r->group).second) {
            std::vector<std::string> fit_names;
            for (const NodeState* s : fits) fit_names.push_back(s->node->name);
            result.errors.push_back(
                "HARD anti-affinity for group " + r->group + ": " +
                std::to_string(group_size[r->group]) + " members need distinct " +
                (key.empty() ? std::string("nodes") : "values of node label \"" + key + "\"") +
                ", but only " + std::to_string(counts.size()) +
                " can take one; nodes that fit: " + Join(fit_names));
          }
          continue;
        }
        fits = empty_domains;
      } else {
        if (empty_domains.empty()) {
          // Spread as evenly as possible: the least loaded failure domain.
          const int least = count_of(*std::min_element(
              fits.begin(), fits.end(),
              [&](const NodeState* a, const NodeState* b) { return count_of(a) < count_of(b); }));
          std::erase_if(fits, [&](const NodeState* s) { return count_of(s) != least; });
          if (warned_groups.insert(r->group).second) {
            result.warnings.push_back(
                "SOFT anti-affinity for group " + r->group + ": " +
                std::to_string(group_size[r->group]) + " members but only " +
                std::to_string(counts.size()) + " distinct " + (key.empty() ? "node" : key) +
                (counts.size() == 1 ? "" : "s") + " with room; members share, spread evenly");
          }
        } else {
          fits = empty_domains;
        }
      }
    }
    // Among the acceptable nodes, the one with the most free memory, then the most free CPU,
    // then the name: spreads load and keeps the choice deterministic.
    NodeState* best = *std::min_element(fits.begin(), fits.end(), [](const NodeState* a, const NodeState* b) {
      return std::make_tuple(-a->memory_free, -a->cpu_free, a->node->name) <
             std::make_tuple(-b->memory_free, -b->cpu_free, b->node->name);
    });
    take(*best, *r);
  }
  return result;
}

}  // namespace gitvirt
