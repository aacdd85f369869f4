#pragma once
// Cluster expansion: a Cluster's node groups become VirtualMachines with names from the group's
// pattern, labels naming cluster/group/role, and IP configurations from ipConfigPatterns.
// Pure; the loader validates the patterns first, so expansion of a loaded Cluster cannot fail.

#include <vector>

#include "gitvirt/core/error.h"
#include "gitvirt/core/model.h"

namespace gitvirt {

inline constexpr std::string_view kLabelCluster = "gitvirt.dev/cluster";
inline constexpr std::string_view kLabelGroup = "gitvirt.dev/group";
inline constexpr std::string_view kLabelRole = "gitvirt.dev/role";

// The member name for `index` (0-based) of `group` in `cluster`.
Result<std::string> ClusterMemberName(const Cluster& cluster, const NodeGroup& group, int index);

// The IP configuration of member `index` from the group's patterns, one per NIC.
Result<std::vector<IpConfig>> ClusterMemberIpConfigs(const Cluster& cluster,
                                                     const NodeGroup& group, int index,
                                                     const std::string& member_name);

// All members of all groups, in group order then index order.
Result<std::vector<VirtualMachine>> ExpandCluster(const Cluster& cluster);

}  // namespace gitvirt
