// Issue 6 through the real `gitvirt` binary (GITVIRT_BINARY) on simulated nodes of different
// sizes (sim:FILE, libvirt's test driver with its state in files; capacity from gitvirt.yaml):
//
//   ExampleClusterOnUnequalNodes  the example 3 + 3 cluster: the control plane on three distinct
//                                 nodes (and zones), workers spread, addresses from the patterns,
//                                 `get clusters` shows 6/6 and a row per member with its
//                                 node and state; a second plan is empty.
//   HardFourthMemberFailsThePlan  a 4th HARD member: plan and apply exit 1 naming the group, the
//                                 count and the nodes that fit; nothing changes on any node.
//   SoftSpreadsSixWorkers         6 SOFT workers on 3 nodes: 2/2/2.
//   SmallNodeGetsNone             a node with too little memory gets none of them.
//   ScaleThreeFiveTwo             3 -> 5 -> 2 workers with --prune: names, placement stability,
//                                 IPs (from ipConfigPatterns) and the deleted members' volumes.
//   ScaleDownOnTheGroup...        4 -> 3 with `scaleDown: true` and no --prune.
//   FullRollbackOnFifthMember     GITVIRT_FAULTS=define:5 while creating 6 members with FULL:
//                                 no member, no member's volume left, job rolled back; a second
//                                 apply creates them all.
//   MigrationSimTest              simulated migration: a running VM (live), a stopped one
//                                 (offline), `describe vm` shows them, a FULL rollback of a job
//                                 that failed after the migration moves the VM back, and every
//                                 libvirt operation of a migration job failing in turn leaves
//                                 both nodes as they were; the process killed after each of
//                                 them in turn, the next apply recovers and converges.
// The nodes are observed with gitvirt's adapter (ConnectNode + Observe) through new
// connections, i.e. from the files the binary wrote.
#include <gtest/gtest.h>

#include <iostream>

#include <algorithm>
#include <csignal>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "crash_support.h"
#include "gitvirt/core/units.h"
#include "gitvirt/hypervisor/connect.h"
#include "temp_dir.h"

namespace gitvirt::crash {
namespace {

struct SimNode {
  std::string name;
  int vcpus;
  std::string memory;
  std::string zone;
};

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(manifests());
    fs::create_directories(work_.path() / "state");
  }

  fs::path manifests() const { return work_.path() / "manifests"; }
  std::string state_file() const { return (work_.path() / "state" / "gitvirt.db").string(); }

  void UseNodes(std::vector<SimNode> nodes) {
    nodes_ = std::move(nodes);
    std::ostringstream c;
    c << "apiVersion: gitvirt.dev/v1\nkind: ControllerConfig\nsource:\n  path: " << manifests().string()
      << "\nnodes:\n";
    for (const SimNode& n : nodes_) {
      c << "  - name: " << n.name << "\n    uri: sim:" << (work_.path() / "sim" / (n.name + ".xml")).string()
        << "\n    labels: {zone: " << n.zone << "}\n    capacity: {vcpus: " << n.vcpus << ", memory: " << n.memory
        << "}\n    overcommit: {cpu: 1.0, memory: 1.0}\n    pools:\n      - {name: default, path: /var/lib/gv/"
        << n.name << "}\n";
    }
    c << "apply: {rollback: FULL}\nstate: " << state_file() << "\n";
    WriteFile(work_.path() / "gitvirt.yaml", c.str());
  }

  Output Gv(std::vector<std::string> args, const std::vector<std::string>& env = {}) const {
    args.insert(args.begin(), {GITVIRT_BINARY, "--config", (work_.path() / "gitvirt.yaml").string()});
    return crash::Run(args, env);
  }

  std::vector<NodeConfig> NodeConfigs() const {
    std::vector<NodeConfig> out;
    for (const SimNode& n : nodes_) {
      NodeConfig c;
      c.name = n.name;
      c.uri = "sim:" + (work_.path() / "sim" / (n.name + ".xml")).string();
      c.capacity_vcpus = n.vcpus;
      c.capacity_memory = *ParseSize(n.memory);
      c.pools.push_back(PoolConfig{"default", "/var/lib/gv/" + n.name});
      out.push_back(std::move(c));
    }
    return out;
  }

  // Every node's domains, by name, through gitvirt's adapter.
  std::map<std::string, ObservedVm> Vms() const {
    std::map<std::string, ObservedVm> out;
    for (const NodeConfig& c : NodeConfigs()) {
      auto hv = ConnectNode(c, HypervisorOptions{});
      EXPECT_TRUE(hv) << hv.error().message;
      if (!hv) continue;
      auto node = (*hv)->Observe();
      EXPECT_TRUE(node) << node.error().message;
      if (!node) continue;
      for (const ObservedVm& vm : node->vms) {
        EXPECT_FALSE(out.contains(vm.name)) << vm.name << " is on two nodes";
        out[vm.name] = vm;
      }
    }
    return out;
  }

  std::map<std::string, std::string> NodeOf() const {
    std::map<std::string, std::string> out;
    for (const auto& [name, vm] : Vms()) out[name] = vm.node;
    return out;
  }

  static std::string Ip(const ObservedVm& vm) {
    if (!vm.last_applied || !vm.last_applied->cloud_init || vm.last_applied->cloud_init->ip_configs.empty()) return "";
    return vm.last_applied->cloud_init->ip_configs.front().ToString();
  }

  void CopyExample(const std::string& file) {
    std::string text = ReadFile(fs::path(GITVIRT_SOURCE_DIR) / "examples/manifests" / file);
    const std::string rel = "source: ../images/";
    if (auto at = text.find(rel); at != std::string::npos) {
      text.replace(at, rel.size(), "source: " + (fs::path(GITVIRT_SOURCE_DIR) / "examples/images").string() + "/");
    }
    WriteFile(manifests() / file, text);
  }

  // A one-group cluster of `count` workers (vcpus/memory each), SOFT by default.
  void WriteWorkers(int count, const std::string& memory, const std::string& anti = "SOFT", bool scale_down = false) {
    WriteFile(manifests() / "workers.yaml",
              "apiVersion: gitvirt.dev/v1\nkind: Cluster\nmetadata: {name: k8s}\nspec:\n  rollbackStrategy: FULL\n"
              "  nodeGroups:\n    - name: worker\n      count: " + std::to_string(count) +
                  "\n      scaleDown: " + (scale_down ? "true" : "false") +
                  "\n      placement: {antiAffinity: " + anti +
                  "}\n      ipConfigPatterns: [\"ip=10.0.100.{20+index}/24,gw=10.0.100.1\"]\n"
                  "      template:\n        vcpus: 2\n        memory: " + memory +
                  "\n        disks: [{name: root, size: 10GiB}]\n        networks: [{network: default}]\n"
                  "        cloudInit: {users: [{name: ops}]}\n");
  }

  static std::map<std::string, int> PerNode(const std::map<std::string, std::string>& node_of) {
    std::map<std::string, int> out;
    for (const auto& [vm, node] : node_of) ++out[node];
    return out;
  }

  gitvirt::testing::TempDir work_{"gv-cluster"};
  std::vector<SimNode> nodes_;
};

const std::vector<SimNode> kUnequal = {
    {"hv1", 8, "24GiB", "a"},
    {"hv2", 16, "48GiB", "b"},
    {"hv3", 32, "96GiB", "c"},
};

TEST_F(ClusterTest, ExampleClusterOnUnequalNodes) {
  UseNodes(kUnequal);
  CopyExample("k8s-cluster.yaml");
  CopyExample("image-demo-base.yaml");
  Output plan = Gv({"plan"});
  ASSERT_EQ(plan.rc, 0) << plan.text;
  Output apply = Gv({"apply", "--auto-approve"});
  ASSERT_EQ(apply.rc, 0) << apply.text;

  const auto vms = Vms();
  ASSERT_EQ(vms.size(), 6u) << apply.text;
  std::set<std::string> cp_nodes;
  std::map<std::string, std::string> zone_of = {{"hv1", "a"}, {"hv2", "b"}, {"hv3", "c"}};
  std::set<std::string> cp_zones;
  for (const char* name : {"k8s-cp-01", "k8s-cp-02", "k8s-cp-03"}) {
    ASSERT_TRUE(vms.contains(name)) << name;
    cp_nodes.insert(vms.at(name).node);
    cp_zones.insert(zone_of[vms.at(name).node]);
    EXPECT_EQ(vms.at(name).power, PowerState::kRunning);
  }
  EXPECT_EQ(cp_nodes.size(), 3u) << "the control plane shares a node";
  EXPECT_EQ(cp_zones.size(), 3u);
  std::set<std::string> worker_nodes;
  for (const char* name : {"k8s-worker-01", "k8s-worker-02", "k8s-worker-03"}) {
    ASSERT_TRUE(vms.contains(name)) << name;
    worker_nodes.insert(vms.at(name).node);
  }
  EXPECT_EQ(worker_nodes.size(), 3u) << "SOFT workers not spread while every node has room";
  EXPECT_EQ(Ip(vms.at("k8s-cp-01")), "ip=192.168.122.10/24,gw=192.168.122.1");
  EXPECT_EQ(Ip(vms.at("k8s-cp-03")), "ip=192.168.122.12/24,gw=192.168.122.1");
  EXPECT_EQ(Ip(vms.at("k8s-worker-02")), "ip=192.168.122.21/24,gw=192.168.122.1");
  EXPECT_EQ(vms.at("k8s-cp-02").owner->cluster, "k8s");
  EXPECT_EQ(vms.at("k8s-cp-02").owner->group, "cp");

  // Group order: every worker's create waited for the control plane's starts.
  auto jobs = ReadJobs(state_file());
  ASSERT_EQ(jobs.size(), 1u);
  for (const Action& a : jobs.back().plan.actions) {
    if (a.type != ActionType::kCreate || !a.target.name.starts_with("k8s-worker")) continue;
    for (const char* cp : {"start/k8s-cp-01", "start/k8s-cp-02", "start/k8s-cp-03"}) {
      EXPECT_TRUE(std::find(a.depends_on.begin(), a.depends_on.end(), cp) != a.depends_on.end())
          << a.id << " does not wait for " << cp;
    }
  }

  Output clusters = Gv({"get", "clusters"});
  ASSERT_EQ(clusters.rc, 0) << clusters.text;
  EXPECT_NE(clusters.text.find("6/6"), std::string::npos) << clusters.text;
  // A row per member with its node and state.
  for (const auto& [name, vm] : vms) {
    if (!name.starts_with("k8s-")) continue;
    const auto row = clusters.text.find(name + " ");
    ASSERT_NE(row, std::string::npos) << name << " has no row:\n" << clusters.text;
    const std::string line = clusters.text.substr(row, clusters.text.find('\n', row) - row);
    EXPECT_NE(line.find(" " + vm.node + " "), std::string::npos) << line;
    EXPECT_NE(line.find("Running"), std::string::npos) << line;
  }
  Output again = Gv({"plan", "--detailed-exitcode"});
  EXPECT_EQ(again.rc, 0) << again.text;
}

TEST_F(ClusterTest, HardFourthMemberFailsThePlan) {
  UseNodes(kUnequal);
  CopyExample("k8s-cluster.yaml");
  CopyExample("image-demo-base.yaml");
  std::string text = ReadFile(manifests() / "k8s-cluster.yaml");
  const auto at = text.find("count: 3");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 8, "count: 4");
  WriteFile(manifests() / "k8s-cluster.yaml", text);
  const Inventory before = TakeInventory(NodeConfigs());
  for (const std::vector<std::string>& args : {std::vector<std::string>{"plan"}, {"apply", "--auto-approve"}}) {
    Output out = Gv(args);
    EXPECT_EQ(out.rc, 1) << out.text;
    EXPECT_NE(out.text.find("HARD anti-affinity for group k8s/cp: 4 members need distinct values of node label "
                            "\"zone\", but only 3 can take one; nodes that fit: hv1, hv2, hv3"),
              std::string::npos)
        << out.text;
  }
  const Inventory after = TakeInventory(NodeConfigs());
  EXPECT_TRUE(after.domains.empty()) << DiffInventories(before, after);
  EXPECT_TRUE(before == after) << DiffInventories(before, after);
}

TEST_F(ClusterTest, SoftSpreadsSixWorkers) {
  UseNodes(kUnequal);
  WriteWorkers(6, "4GiB");
  Output apply = Gv({"apply", "--auto-approve"});
  ASSERT_EQ(apply.rc, 0) << apply.text;
  EXPECT_NE(apply.text.find("SOFT anti-affinity for group k8s/worker: 6 members but only 3 distinct nodes"),
            std::string::npos)
      << apply.text;
  const auto per_node = PerNode(NodeOf());
  EXPECT_EQ(per_node, (std::map<std::string, int>{{"hv1", 2}, {"hv2", 2}, {"hv3", 2}}));
}

TEST_F(ClusterTest, SmallNodeGetsNone) {
  UseNodes({{"hv1", 16, "48GiB", "a"}, {"hv2", 16, "32GiB", "b"}, {"hv3", 64, "4GiB", "c"}});
  WriteWorkers(6, "6GiB");
  Output apply = Gv({"apply", "--auto-approve"});
  ASSERT_EQ(apply.rc, 0) << apply.text;
  const auto per_node = PerNode(NodeOf());
  EXPECT_EQ(per_node, (std::map<std::string, int>{{"hv1", 3}, {"hv2", 3}})) << apply.text;
}

TEST_F(ClusterTest, ScaleThreeFiveTwo) {
  UseNodes(kUnequal);
  WriteWorkers(3, "4GiB");
  Output three = Gv({"apply", "--auto-approve"});
  ASSERT_EQ(three.rc, 0) << three.text;
  const auto at_three = NodeOf();
  ASSERT_EQ(at_three.size(), 3u);

  WriteWorkers(5, "4GiB");
  Output five = Gv({"apply", "--auto-approve"});
  ASSERT_EQ(five.rc, 0) << five.text;
  const auto vms5 = Vms();
  ASSERT_EQ(vms5.size(), 5u);
  for (int i = 1; i <= 5; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "k8s-worker-%02d", i);
    ASSERT_TRUE(vms5.contains(name)) << name;
    EXPECT_EQ(Ip(vms5.at(name)), "ip=10.0.100." + std::to_string(19 + i) + "/24,gw=10.0.100.1") << name;
    if (i <= 3) {
      EXPECT_EQ(vms5.at(name).node, at_three.at(name)) << name << " moved while scaling up";
    }
  }
  EXPECT_EQ(PerNode(NodeOf()).size(), 3u);

  // Down to 2: without --prune (and without scaleDown) nothing is deleted, only reported.
  WriteWorkers(2, "4GiB");
  Output held = Gv({"plan"});
  ASSERT_EQ(held.rc, 0) << held.text;
  EXPECT_NE(held.text.find("k8s-worker-05"), std::string::npos) << held.text;
  EXPECT_NE(held.text.find("--prune"), std::string::npos) << held.text;
  // The three kept VMs still differ from the manifests: apply exits 2, as terraform would
  // (docs/cli.md, exit codes), and says so.
  Output kept = Gv({"apply", "--auto-approve"});
  ASSERT_EQ(kept.rc, 2) << kept.text;
  EXPECT_NE(kept.text.find("still differ from the manifests: 3 change(s) pending"), std::string::npos) << kept.text;
  EXPECT_EQ(Vms().size(), 5u);

  const Inventory before_prune = TakeInventory(NodeConfigs());
  Output two = Gv({"apply", "--auto-approve", "--prune"});
  ASSERT_EQ(two.rc, 0) << two.text;
  const auto vms2 = Vms();
  EXPECT_EQ(vms2.size(), 2u);
  for (const char* name : {"k8s-worker-01", "k8s-worker-02"}) {
    ASSERT_TRUE(vms2.contains(name)) << name;
    EXPECT_EQ(vms2.at(name).node, at_three.at(name)) << name << " moved while scaling down";
    EXPECT_EQ(Ip(vms2.at(name)), Ip(vms5.at(name)));
  }
  // The removed members' volumes went with them; the others' stayed.
  const Inventory after = TakeInventory(NodeConfigs());
  for (const auto& [key, line] : before_prune.volumes) {
    const bool removed = key.find("k8s-worker-03") != std::string::npos ||
                         key.find("k8s-worker-04") != std::string::npos ||
                         key.find("k8s-worker-05") != std::string::npos;
    EXPECT_EQ(after.volumes.contains(key), !removed) << key;
  }
  Output settled = Gv({"plan", "--detailed-exitcode", "--prune"});
  EXPECT_EQ(settled.rc, 0) << settled.text;
}

// `scaleDown: true` on the group removes the highest-numbered members without --prune.
TEST_F(ClusterTest, ScaleDownOnTheGroupNeedsNoPrune) {
  UseNodes(kUnequal);
  WriteWorkers(4, "4GiB", "SOFT", true);
  Output four = Gv({"apply", "--auto-approve"});
  ASSERT_EQ(four.rc, 0) << four.text;
  const auto vms4 = Vms();
  ASSERT_EQ(vms4.size(), 4u);
  WriteWorkers(3, "4GiB", "SOFT", true);
  Output three = Gv({"apply", "--auto-approve"});
  ASSERT_EQ(three.rc, 0) << three.text;
  EXPECT_NE(three.text.find("k8s-worker-04"), std::string::npos) << three.text;
  const auto vms3 = Vms();
  EXPECT_EQ(vms3.size(), 3u);
  EXPECT_FALSE(vms3.contains("k8s-worker-04"));
  for (const char* name : {"k8s-worker-01", "k8s-worker-02", "k8s-worker-03"}) {
    ASSERT_TRUE(vms3.contains(name)) << name;
    EXPECT_EQ(vms3.at(name).node, vms4.at(name).node) << name << " moved while scaling down";
  }
  Output settled = Gv({"plan", "--detailed-exitcode"});
  EXPECT_EQ(settled.rc, 0) << settled.text;
}

TEST_F(ClusterTest, FullRollbackOnFifthMember) {
  UseNodes(kUnequal);
  CopyExample("k8s-cluster.yaml");
  CopyExample("image-demo-base.yaml");
  Output apply = Gv({"apply", "--auto-approve"}, {"GITVIRT_FAULTS=define:5"});
  EXPECT_EQ(apply.rc, 1) << apply.text;
  auto jobs = ReadJobs(state_file());
  ASSERT_EQ(jobs.size(), 1u);
  const JobView& job = jobs.back();
  EXPECT_EQ(job.job.status, JobStatus::kRolledBack) << job.Describe();
  int failed = 0, undone = 0;
  for (const StepRecord& s : job.steps) {
    if (s.status == StepStatus::kFailed) {
      ++failed;
      EXPECT_EQ(s.type, "create") << job.Describe();
      EXPECT_NE(s.error.find("injected fault: define"), std::string::npos) << s.error;
    }
    if (s.status == StepStatus::kUndone) ++undone;
    // The cluster is one unit: none of its steps stays done. The image imports are not the
    // cluster's (they serve any VM) and stay.
    if (s.target.starts_with("VirtualMachine/")) {
      EXPECT_NE(s.status, StepStatus::kSucceeded) << s.id << " left succeeded\n" << job.Describe();
    }
  }
  EXPECT_EQ(failed, 1) << job.Describe();
  EXPECT_GE(undone, 4 + 3) << job.Describe();  // the other 4 creates (at least), the 3 cp starts
  // No member, and none of their volumes or seeds, is left.
  const Inventory after = TakeInventory(NodeConfigs());
  for (const auto& [key, line] : after.domains) ADD_FAILURE() << "left behind: " << key;
  for (const auto& [key, line] : after.volumes) {
    EXPECT_EQ(key.find("k8s-"), std::string::npos) << "left behind: " << key;
  }
  EXPECT_TRUE(after.owned_volumes.empty());
  // A second apply without the fault creates the whole cluster.
  Output again = Gv({"apply", "--auto-approve"});
  ASSERT_EQ(again.rc, 0) << again.text;
  EXPECT_EQ(Vms().size(), 6u);
}

// ---- migration between simulated nodes -----------------------------------------------------

std::string MigrantYaml(const std::string& node, const std::string& power, const std::string& extra = "") {
  return "apiVersion: gitvirt.dev/v1\nkind: VirtualMachine\nmetadata: {name: app-01}\nspec:\n  node: " + node +
         "\n  vcpus: 2\n  memory: 2GiB\n  powerState: " + power +
         "\n  disks: [{name: root, size: 10GiB}, {name: data, size: 5GiB}]\n"
         "  networks: [{network: default}]\n  cloudInit: {users: [{name: ops}]}\n"
         "  migration: {copyStorage: true}\n" + extra;
}

class MigrationSimTest : public ClusterTest {
 protected:
  void SetUp() override {
    ClusterTest::SetUp();
    UseNodes({{"hv1", 16, "32GiB", "a"}, {"hv2", 16, "32GiB", "b"}});
  }

  // "node/pool/volume" keys of the volumes whose name starts with the VM's.
  static std::set<std::string> VolumesOf(const Inventory& inv, const std::string& vm) {
    std::set<std::string> out;
    for (const auto& [key, line] : inv.volumes) {
      if (key.find("/" + vm + "-") != std::string::npos) out.insert(key);
    }
    return out;
  }

  static std::set<std::string> OnNode(const std::set<std::string>& keys, const std::string& node) {
    std::set<std::string> out;
    for (const std::string& k : keys) {
      if (k.starts_with(node + "/")) out.insert(k.substr(node.size() + 1));
    }
    return out;
  }

  void Migrates(const std::string& power, const std::string& mode) {
    WriteFile(manifests() / "app.yaml", MigrantYaml("hv1", power));
    Output first = Gv({"apply", "--auto-approve"});
    ASSERT_EQ(first.rc, 0) << first.text;
    const Inventory before = TakeInventory(NodeConfigs());
    const std::set<std::string> on_hv1 = OnNode(VolumesOf(before, "app-01"), "hv1");
    ASSERT_EQ(on_hv1.size(), 3u) << "root, data and the seed";

    WriteFile(manifests() / "app.yaml", MigrantYaml("hv2", power));
    Output plan = Gv({"plan"});
    ASSERT_EQ(plan.rc, 0) << plan.text;
    EXPECT_NE(plan.text.find("migrate VirtualMachine/app-01 from hv1 to hv2"), std::string::npos) << plan.text;
    EXPECT_NE(plan.text.find("mode: " + mode), std::string::npos) << plan.text;
    EXPECT_NE(plan.text.find("volume-delete VirtualMachine/app-01 on hv1"), std::string::npos) << plan.text;
    Output apply = Gv({"apply", "--auto-approve"});
    ASSERT_EQ(apply.rc, 0) << apply.text;

    const auto vms = Vms();
    ASSERT_TRUE(vms.contains("app-01"));
    EXPECT_EQ(vms.at("app-01").node, "hv2");
    EXPECT_EQ(std::string(EnumName(vms.at("app-01").power)), power);
    EXPECT_TRUE(vms.at("app-01").Owned());
    const Inventory after = TakeInventory(NodeConfigs());
    EXPECT_EQ(OnNode(VolumesOf(after, "app-01"), "hv2"), on_hv1) << DiffInventories(before, after);
    EXPECT_TRUE(OnNode(VolumesOf(after, "app-01"), "hv1").empty()) << DiffInventories(before, after);
    // Same disks, sizes and formats on the target.
    for (const std::string& v : on_hv1) {
      std::string was = before.volumes.at("hv1/" + v), now = after.volumes.at("hv2/" + v);
      EXPECT_EQ(was.substr(was.find(" capacity=")), now.substr(now.find(" capacity="))) << v;
    }
    Output again = Gv({"plan", "--detailed-exitcode"});
    EXPECT_EQ(again.rc, 0) << again.text;
    Output describe = Gv({"describe", "vm", "app-01"});
    ASSERT_EQ(describe.rc, 0) << describe.text;
    EXPECT_NE(describe.text.find("Migrations:"), std::string::npos) << describe.text;
    EXPECT_NE(describe.text.find("hv1 -> hv2  " + mode + " (simulated)"), std::string::npos) << describe.text;
    EXPECT_NE(describe.text.find("succeeded"), std::string::npos) << describe.text;
  }
};

TEST_F(MigrationSimTest, RunningVmMovesLive) { Migrates("Running", "live"); }

TEST_F(MigrationSimTest, StoppedVmMovesOffline) { Migrates("Stopped", "offline"); }

TEST_F(MigrationSimTest, FullRollbackMovesItBack) {
  WriteFile(manifests() / "app.yaml", MigrantYaml("hv1", "Running"));
  Output first = Gv({"apply", "--auto-approve"});
  ASSERT_EQ(first.rc, 0) << first.text;
  // A snapshot travels with the VM and back.
  Output snap = Gv({"snapshot", "create", "app-01", "before-move"});
  ASSERT_EQ(snap.rc, 0) << snap.text;
  const Inventory before = TakeInventory(NodeConfigs());

  WriteFile(manifests() / "app.yaml", MigrantYaml("hv2", "Running"));
  // The migration succeeds; deleting the source's copies (the job's last step) fails: FULL undoes
  // the job, which moves the VM back onto the volumes it left on hv1.
  Output apply = Gv({"apply", "--auto-approve"}, {"GITVIRT_FAULTS=delete-volume:1"});
  EXPECT_EQ(apply.rc, 1) << apply.text;
  auto jobs = ReadJobs(state_file());
  const JobView& job = jobs.back();
  EXPECT_EQ(job.job.status, JobStatus::kRolledBack) << job.Describe();
  const StepRecord* migrate = job.Step("migrate/app-01");
  ASSERT_NE(migrate, nullptr) << job.Describe();
  EXPECT_EQ(migrate->status, StepStatus::kUndone) << job.Describe();
  const Inventory after = TakeInventory(NodeConfigs());
  EXPECT_TRUE(before == after) << DiffInventories(before, after);
  const auto vms = Vms();
  ASSERT_TRUE(vms.contains("app-01"));
  EXPECT_EQ(vms.at("app-01").node, "hv1");
  EXPECT_EQ(vms.at("app-01").power, PowerState::kRunning);
  ASSERT_EQ(vms.at("app-01").snapshots.size(), 1u);
  EXPECT_EQ(vms.at("app-01").snapshots.front().name, "before-move");

  Output describe = Gv({"describe", "vm", "app-01"});
  EXPECT_NE(describe.text.find("hv1 -> hv2  live (simulated)"), std::string::npos) << describe.text;
  EXPECT_NE(describe.text.find("undone"), std::string::npos) << describe.text;

  // Without the fault it goes through, snapshot included.
  Output retry = Gv({"apply", "--auto-approve"});
  ASSERT_EQ(retry.rc, 0) << retry.text;
  const auto moved = Vms();
  EXPECT_EQ(moved.at("app-01").node, "hv2");
  ASSERT_EQ(moved.at("app-01").snapshots.size(), 1u);
  EXPECT_EQ(moved.at("app-01").snapshots.front().name, "before-move");
}

TEST_F(MigrationSimTest, FailedMigrationLeavesTheSource) {
  WriteFile(manifests() / "app.yaml", MigrantYaml("hv1", "Stopped"));
  Output first = Gv({"apply", "--auto-approve"});
  ASSERT_EQ(first.rc, 0) << first.text;
  const Inventory before = TakeInventory(NodeConfigs());
  WriteFile(manifests() / "app.yaml", MigrantYaml("hv2", "Stopped"));
  // Defining on the target fails after the volumes were copied: the copies go, the source stays.
  Output apply = Gv({"apply", "--auto-approve"}, {"GITVIRT_FAULTS=define:1"});
  EXPECT_EQ(apply.rc, 1) << apply.text;
  const Inventory after = TakeInventory(NodeConfigs());
  EXPECT_TRUE(before == after) << DiffInventories(before, after);
}

// Every mutating libvirt operation of a migration job fails in turn (GITVIRT_FAULTS=any:k, from
// the same starting state): FULL must leave both nodes exactly as they were, and the next
// fault-free apply must then move the VM.
class MigrationFaultSweep : public MigrationSimTest, public ::testing::WithParamInterface<std::string> {
 protected:
  // app-01 (in the power state of the parameter) applied on hv1 with a snapshot, its manifest
  // then moved to hv2, and both nodes saved to start(): the state every run begins from.
  void PrepareMigration(const std::string& power) {
    WriteFile(manifests() / "app.yaml", MigrantYaml("hv1", power));
    Output first = Gv({"apply", "--auto-approve"});
    ASSERT_EQ(first.rc, 0) << first.text;
    Output snap = Gv({"snapshot", "create", "app-01", "kept"});
    ASSERT_EQ(snap.rc, 0) << snap.text;
    WriteFile(manifests() / "app.yaml", MigrantYaml("hv2", power));
    CopyTree(work_.path() / "sim", start());
  }
  fs::path start() const { return work_.path() / "start"; }
};

TEST_P(MigrationFaultSweep, EveryFaultRollsBackToTheStart) {
  const std::string power = GetParam();
  ASSERT_NO_FATAL_FAILURE(PrepareMigration(power));
  const Inventory before = TakeInventory(NodeConfigs());

  const fs::path report = work_.path() / "faults-report";
  Output counted = Gv({"apply", "--auto-approve"}, {"GITVIRT_FAULTS=any:1000000", "GITVIRT_FAULTS_REPORT=" + report.string()});
  ASSERT_EQ(counted.rc, 0) << counted.text;
  const int operations = static_cast<int>(ReadFaultsReport(report)["any"]);
  ASSERT_GE(operations, 5) << ReadFile(report);
  std::cout << "[sweep] " << power << ": " << operations << " mutating libvirt operations, each made to fail\n";
  for (int k = 1; k <= operations; ++k) {
    SCOPED_TRACE("GITVIRT_FAULTS=any:" + std::to_string(k));
    CopyTree(start(), work_.path() / "sim");
    Output failed = Gv({"apply", "--auto-approve"}, {"GITVIRT_FAULTS=any:" + std::to_string(k)});
    EXPECT_EQ(failed.rc, 1) << failed.text;
    const JobView job = ReadJobs(state_file()).back();
    EXPECT_EQ(job.job.status, JobStatus::kRolledBack) << job.Describe();
    const Inventory after = TakeInventory(NodeConfigs());
    EXPECT_TRUE(before == after) << DiffInventories(before, after) << job.Describe();
  }
  CopyTree(start(), work_.path() / "sim");
  Output clean = Gv({"apply", "--auto-approve"});
  ASSERT_EQ(clean.rc, 0) << clean.text;
  EXPECT_EQ(Vms().at("app-01").node, "hv2");
}

INSTANTIATE_TEST_SUITE_P(Power, MigrationFaultSweep, ::testing::Values("Running", "Stopped"));

// The process running a migration job is killed (SIGKILL) right after each of its mutating
// libvirt operations in turn (GITVIRT_FAULTS=kill:k) — e.g. with the VM defined on the target
// and still defined on the source, or its volumes half deleted — and the next `gitvirt apply`
// must recover the job (FULL: roll it back), migrate again and end exactly where a migration
// that was never interrupted ends: the VM once, on hv2, with its snapshot; no volume left on hv1.
class MigrationKillSweep : public MigrationFaultSweep {};

TEST_P(MigrationKillSweep, EveryKillRecoversAndConverges) {
  const std::string power = GetParam();
  ASSERT_NO_FATAL_FAILURE(PrepareMigration(power));

  // The run that is never interrupted: how many operations it makes, and where it ends.
  const fs::path report = work_.path() / "faults-report";
  Output clean = Gv({"apply", "--auto-approve"}, {"GITVIRT_FAULTS_REPORT=" + report.string()});
  ASSERT_EQ(clean.rc, 0) << clean.text;
  const Inventory expected = TakeInventory(NodeConfigs());
  const int operations = static_cast<int>(ReadFaultsReport(report)["any"]);
  ASSERT_GE(operations, 3) << ReadFile(report);
  std::cout << "[kill sweep] " << power << ": killed after each of " << operations << " operations\n";

  for (int k = 1; k <= operations; ++k) {
    SCOPED_TRACE("GITVIRT_FAULTS=kill:" + std::to_string(k));
    CopyTree(start(), work_.path() / "sim");
    Output killed = Gv({"apply", "--auto-approve"}, {"GITVIRT_FAULTS=kill:" + std::to_string(k)});
    EXPECT_EQ(killed.rc, 128 + SIGKILL) << killed.text;
    Output recovered = Gv({"apply", "--auto-approve"});
    EXPECT_EQ(recovered.rc, 0) << recovered.text;
    const Inventory after = TakeInventory(NodeConfigs());
    EXPECT_TRUE(expected == after) << DiffInventories(expected, after) << recovered.text;
    const auto vms = Vms();
    ASSERT_TRUE(vms.contains("app-01"));
    EXPECT_EQ(vms.at("app-01").node, "hv2");
    EXPECT_EQ(vms.at("app-01").snapshots.size(), 1u);
    Output plan = Gv({"plan", "--detailed-exitcode"});
    EXPECT_EQ(plan.rc, 0) << plan.text;
    const JobView job = ReadJobs(state_file()).back();
    EXPECT_EQ(job.job.status, JobStatus::kSucceeded) << job.Describe();
  }
}

INSTANTIATE_TEST_SUITE_P(Power, MigrationKillSweep, ::testing::Values("Running", "Stopped"));

}  // namespace
}  // namespace gitvirt::crash
