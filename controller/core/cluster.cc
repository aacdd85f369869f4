#include "gitvirt/core/cluster.h"

#include <algorithm>
#include <cstdio>

#include "gitvirt/core/net.h"
#include "gitvirt/core/templating.h"

namespace gitvirt {
namespace {

using StringVars = std::map<std::string, std::string, std::less<>>;
using IntVars = std::map<std::string, long long, std::less<>>;

std::string TwoDigits(int n) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%02d", n);
  return buf;
}

}  // namespace

Result<std::string> ClusterMemberName(const Cluster& cluster, const NodeGroup& group, int index) {
  const StringVars strings = {{"cluster", cluster.meta.name},
                              {"group", group.name},
                              {"role", group.role},
                              {"NN", TwoDigits(index + 1)}};
  return ExpandPattern(group.name_pattern, strings, IntVars{{"index", index}});
}

Result<std::vector<IpConfig>> ClusterMemberIpConfigs(const Cluster& cluster,
                                                     const NodeGroup& group, int index,
                                                     const std::string& member_name) {
  const StringVars strings = {{"cluster", cluster.meta.name},
                              {"group", group.name},
                              {"role", group.role},
                              {"name", member_name},
                              {"NN", TwoDigits(index + 1)}};
  std::vector<IpConfig> out;
  for (const std::string& pattern : group.ip_config_patterns) {
    auto text = ExpandPattern(pattern, strings, IntVars{{"index", index}});
    if (!text) return std::unexpected(text.error());
    auto config = ParseIpConfig(*text);
    if (!config) return std::unexpected(config.error().Wrap("\"" + *text + "\""));
    out.push_back(std::move(*config));
  }
  return out;
}

Result<std::vector<VirtualMachine>> ExpandCluster(const Cluster& cluster) {
  std::vector<VirtualMachine> members;
  int group_order = 0;
  for (const NodeGroup& group : cluster.spec.node_groups) {
    for (int index = 0; index < group.count; ++index) {
      auto name = ClusterMemberName(cluster, group, index);
      if (!name) return std::unexpected(name.error());

      VirtualMachine vm;
      vm.meta.name = *name;
      vm.meta.location = group.location;
      vm.meta.annotations = cluster.meta.annotations;
      vm.meta.labels = cluster.meta.labels;
      for (const auto& [k, v] : group.labels) vm.meta.labels[k] = v;
      vm.meta.labels[std::string(kLabelCluster)] = cluster.meta.name;
      vm.meta.labels[std::string(kLabelGroup)] = group.name;
      if (!group.role.empty()) vm.meta.labels[std::string(kLabelRole)] = group.role;
      vm.meta.tags = cluster.meta.tags;
      for (const std::string& tag : group.tags) {
        if (std::find(vm.meta.tags.begin(), vm.meta.tags.end(), tag) == vm.meta.tags.end()) {
          vm.meta.tags.push_back(tag);
        }
      }

      vm.spec = group.tmpl;
      vm.spec.placement = group.placement;
      if (!group.ip_config_patterns.empty()) {
        auto ips = ClusterMemberIpConfigs(cluster, group, index, *name);
        if (!ips) return std::unexpected(ips.error());
        if (!vm.spec.cloud_init) vm.spec.cloud_init = CloudInit{};
        vm.spec.cloud_init->ip_configs = std::move(*ips);
      }
      if (vm.spec.cloud_init) {
        CloudInit& ci = *vm.spec.cloud_init;
        if (ci.nameservers.empty()) ci.nameservers = cluster.spec.nameservers;
        if (ci.search_domains.empty()) ci.search_domains = cluster.spec.search_domains;
        if (ci.hostname.empty()) ci.hostname = *name;
      }
      vm.cluster = ClusterMembership{cluster.meta.name, group.name,       group.role,
                                     index,             group_order,      cluster.spec.rollback};
      members.push_back(std::move(vm));
    }
    ++group_order;
  }
  return members;
}

}  // namespace gitvirt
