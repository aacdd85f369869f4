#pragma once
// Placement: choose a node for every VM that does not name one. Pure and deterministic.
//
// Capacity is our own accounting (libvirt does not enforce it): a node offers its vCPUs and
// memory times its overcommit ratios, minus what its domains already hold. A VM that already
// runs on an acceptable node stays there, so re-planning never moves it. Anti-affinity spreads
// the members of one group over nodes (or over values of a node label, the topology key):
// HARD fails when impossible, SOFT falls back with a warning.

#include <map>
#include <string>
#include <vector>

#include "gitvirt/core/diagnostic.h"
#include "gitvirt/core/model.h"

namespace gitvirt {

struct NodeInventory {
  std::string name;
  Labels labels;
  bool schedulable = true;  // reachable and not draining
  int vcpus = 0;
  std::uint64_t memory = 0;
  double cpu_overcommit = 4.0;
  double memory_overcommit = 1.0;
  int vcpus_used = 0;  // by domains that are not part of this placement
  std::uint64_t memory_used = 0;
};

struct PlacementRequest {
  std::string vm;
  int vcpus = 1;
  std::uint64_t memory = 0;
  Placement placement;
  std::string group;         // anti-affinity group ("cluster/group"); empty = none
  std::string current_node;  // where it runs now, if anywhere
};

struct PlacementResult {
  std::map<std::string, std::string> node_of;  // vm -> node
  std::map<std::string, std::string> moved;    // vm -> why it leaves the node it runs on
  std::vector<std::string> errors;             // the plan fails on any
  std::vector<std::string> warnings;
  bool ok() const { return errors.empty(); }
};

PlacementResult Place(const std::vector<NodeInventory>& nodes,
                      const std::vector<PlacementRequest>& requests);

}  // namespace gitvirt
