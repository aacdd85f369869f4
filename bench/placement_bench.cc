// Placement and planning at scale (issue 6): 10,000 VMs over 100 nodes must plan in under 1 s.
//
//   cmake --build build --target placement_bench && build/bench/placement_bench
//
// The fleet: 100 nodes of mixed sizes (32-128 vCPUs, 192-512 GiB, overcommit 4.0/1.0) in 5 zones;
// 10,000 VMs: 100 clusters of 3 control-plane members (HARD anti-affinity by zone) and 77 workers
// (SOFT), 2,000 standalone VMs (half of them with a nodeSelector). Four cases:
//   Place/fresh          Place() alone, nothing runs yet
//   Place/half_running   Place() with every other VM already running somewhere (stability path)
//   MakePlan/fresh       the whole planner (placement, 10,000 creates + starts, ordering)
//   MakePlan/all_running the whole planner when everything runs as declared (10,000 diffs, no
//                        actions): what every `serve` interval costs
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "gitvirt/core/config.h"
#include "gitvirt/core/json.h"
#include "gitvirt/core/placement.h"
#include "gitvirt/core/planner.h"
#include "gitvirt/core/units.h"

namespace gitvirt {
namespace {

constexpr int kNodes = 100;
constexpr int kClusters = 100;
constexpr int kControlPlane = 3;
constexpr int kWorkers = 77;
constexpr int kStandalone = 2000;
constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;

std::string NodeName(int i) {
  char b[16];
  std::snprintf(b, sizeof b, "hv%03d", i);
  return b;
}

struct Fleet {
  ControllerConfig config;
  DesiredState desired;
  std::vector<NodeInventory> inventory;
  std::vector<PlacementRequest> requests;
};

Fleet MakeFleet() {
  Fleet f;
  for (int i = 0; i < kNodes; ++i) {
    NodeConfig n;
    n.name = NodeName(i);
    n.uri = "qemu+ssh://" + n.name + "/system";
    n.labels = {{"zone", std::string(1, static_cast<char>('a' + i % 5))}, {"tier", i % 4 == 0 ? "ssd" : "hdd"}};
    n.capacity_vcpus = 32 + 32 * (i % 4);
    n.capacity_memory = (192 + 64 * (i % 6)) * kGiB;
    f.config.nodes.push_back(n);
    NodeInventory inv;
    inv.name = n.name;
    inv.labels = n.labels;
    inv.vcpus = *n.capacity_vcpus;
    inv.memory = *n.capacity_memory;
    f.inventory.push_back(inv);
  }
  auto vm = [&](const std::string& name, int vcpus, std::uint64_t memory) {
    VirtualMachine v;
    v.meta.name = name;
    v.spec.vcpus = vcpus;
    v.spec.memory = memory;
    Disk root;
    root.name = "root";
    root.size = 20 * kGiB;
    v.spec.disks.push_back(root);
    Nic nic;
    nic.network = "default";
    v.spec.networks.push_back(nic);
    return v;
  };
  for (int c = 0; c < kClusters; ++c) {
    char cluster[16];
    std::snprintf(cluster, sizeof cluster, "k%03d", c);
    for (int g = 0; g < 2; ++g) {
      const int count = g == 0 ? kControlPlane : kWorkers;
      for (int i = 1; i <= count; ++i) {
        char name[48];
        std::snprintf(name, sizeof name, "%s-%s-%02d", cluster, g == 0 ? "cp" : "worker", i);
        VirtualMachine v = vm(name, 2, (g == 0 ? 2 : 1) * kGiB);
        v.spec.placement.anti_affinity = g == 0 ? AntiAffinity::kHard : AntiAffinity::kSoft;
        if (g == 0) v.spec.placement.topology_key = "zone";
        ClusterMembership m;
        m.cluster = cluster;
        m.group = g == 0 ? "cp" : "worker";
        m.index = i - 1;
        m.group_order = g;
        v.cluster = m;
        f.desired.vms.push_back(std::move(v));
      }
    }
  }
  for (int i = 0; i < kStandalone; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "vm-%05d", i);
    VirtualMachine v = vm(name, 1 + i % 4, (1 + i % 4) * kGiB);
    if (i % 2 == 0) v.spec.placement.node_selector = {{"tier", i % 4 == 0 ? "ssd" : "hdd"}};
    f.desired.vms.push_back(std::move(v));
  }
  std::sort(f.desired.vms.begin(), f.desired.vms.end(),
            [](const auto& a, const auto& b) { return a.meta.name < b.meta.name; });
  for (const VirtualMachine& v : f.desired.vms) {
    PlacementRequest r;
    r.vm = v.meta.name;
    r.vcpus = v.spec.vcpus;
    r.memory = v.spec.memory;
    r.placement = v.spec.placement;
    if (v.cluster) r.group = v.cluster->cluster + "/" + v.cluster->group;
    f.requests.push_back(std::move(r));
  }
  return f;
}

const Fleet& TheFleet() {
  static const Fleet fleet = MakeFleet();
  return fleet;
}

// Where a fresh placement puts everything, as the nodes would then report it.
ObservedState Running(const Fleet& f) {
  const PlacementResult placed = Place(f.inventory, f.requests);
  ObservedState observed;
  for (const NodeConfig& n : f.config.nodes) {
    ObservedNode node;
    node.name = n.name;
    node.reachable = true;
    node.cpus = *n.capacity_vcpus;
    node.memory = *n.capacity_memory;
    node.networks = {"default"};
    node.capabilities.driver = "QEMU";
    node.pools = {ObservedPool{.name = "default", .path = "/var/lib/gitvirt/images", .active = true}};
    observed.nodes.push_back(std::move(node));
  }
  for (const VirtualMachine& v : f.desired.vms) {
    const std::string& where = placed.node_of.at(v.meta.name);
    ObservedNode& node = *std::find_if(observed.nodes.begin(), observed.nodes.end(),
                                       [&](const ObservedNode& n) { return n.name == where; });
    ObservedVm o;
    o.name = v.meta.name;
    o.node = where;
    o.power = PowerState::kRunning;
    o.actual = v.spec;
    o.actual.node = where;
    Ownership owner;
    owner.name = v.meta.name;
    if (v.cluster) {
      owner.cluster = v.cluster->cluster;
      owner.group = v.cluster->group;
    }
    owner.spec_hash = SpecHash(v.spec);
    owner.created_volumes = {"default/" + v.meta.name + "-root.qcow2"};
    o.owner = owner;
    o.last_applied = v.spec;
    node.vms.push_back(std::move(o));
  }
  for (ObservedNode& n : observed.nodes) {
    std::sort(n.vms.begin(), n.vms.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  }
  return observed;
}

void BM_PlaceFresh(benchmark::State& state) {
  const Fleet& f = TheFleet();
  for (auto _ : state) {
    PlacementResult r = Place(f.inventory, f.requests);
    if (!r.ok()) state.SkipWithError(r.errors.front().c_str());
    benchmark::DoNotOptimize(r);
  }
  state.counters["vms"] = static_cast<double>(f.requests.size());
  state.counters["nodes"] = kNodes;
}

void BM_PlaceHalfRunning(benchmark::State& state) {
  const Fleet& f = TheFleet();
  const PlacementResult first = Place(f.inventory, f.requests);
  std::vector<PlacementRequest> requests = f.requests;
  for (std::size_t i = 0; i < requests.size(); i += 2) requests[i].current_node = first.node_of.at(requests[i].vm);
  for (auto _ : state) {
    PlacementResult r = Place(f.inventory, requests);
    if (!r.ok()) state.SkipWithError(r.errors.front().c_str());
    benchmark::DoNotOptimize(r);
  }
  state.counters["vms"] = static_cast<double>(requests.size());
}

void BM_MakePlan(benchmark::State& state, bool running) {
  const Fleet& f = TheFleet();
  const ObservedState observed = Running(f);
  ObservedState empty = observed;
  for (ObservedNode& n : empty.nodes) n.vms.clear();
  const ObservedState& use = running ? observed : empty;
  const Planner planner(f.config);
  std::size_t actions = 0;
  for (auto _ : state) {
    auto plan = planner.MakePlan(f.desired, use, PlanOptions{});
    if (!plan) {
      state.SkipWithError(plan.error().message.c_str());
      break;
    }
    actions = plan->actions.size();
    benchmark::DoNotOptimize(plan);
  }
  state.counters["vms"] = static_cast<double>(f.desired.vms.size());
  state.counters["actions"] = static_cast<double>(actions);
}

BENCHMARK(BM_PlaceFresh)->Name("Place/fresh")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PlaceHalfRunning)->Name("Place/half_running")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_MakePlan, fresh, false)->Name("MakePlan/fresh")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_MakePlan, all_running, true)->Name("MakePlan/all_running")->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace gitvirt

BENCHMARK_MAIN();
