// Resource status from desired + observed + readiness reports (pure): a VM with a readiness block
// is Ready only when its report says so, and the address comes from the report when it has one.
#include "gitvirt/engine/status_builder.h"

#include <gtest/gtest.h>

namespace gitvirt {
namespace {

VirtualMachine Vm(const std::string& name, Readiness readiness) {
  VirtualMachine vm;
  vm.meta.name = name;
  vm.spec.node = "hv1";
  vm.spec.readiness = std::move(readiness);
  vm.spec.cloud_init = CloudInit{};
  vm.spec.cloud_init->ip_configs = {IpConfig{.v4 = IpMode::kStatic, .v4_address = "10.0.0.5/24"}};
  return vm;
}

ObservedState Running(const std::vector<std::string>& names) {
  ObservedState o;
  ObservedNode n;
  n.name = "hv1";
  n.reachable = true;
  for (const std::string& name : names) {
    ObservedVm vm;
    vm.name = name;
    vm.node = "hv1";
    vm.power = PowerState::kRunning;
    vm.owner = Ownership{};
    n.vms.push_back(vm);
  }
  o.nodes.push_back(n);
  return o;
}

const Condition& Ready(const ResourceStatus& s) {
  for (const Condition& c : s.conditions) {
    if (c.type == "Ready") return c;
  }
  static const Condition none;
  ADD_FAILURE() << "no Ready condition";
  return none;
}

class StatusReadinessTest : public ::testing::Test {
 protected:
  std::vector<ResourceStatus> Build(std::map<std::string, ReadinessReport> guests) {
    StatusInputs in;
    in.desired = &desired_;
    in.observed = &observed_;
    in.guests = std::move(guests);
    return BuildResourceStatuses(in);
  }
  DesiredState desired_;
  ObservedState observed_;
};

TEST_F(StatusReadinessTest, ReadyOnlyWhenTheReportSaysSo) {
  desired_.vms = {Vm("db-01", Readiness{.agent = true})};
  observed_ = Running({"db-01"});

  auto s = Build({});
  EXPECT_EQ(s[0].health, Health::kProgressing);
  EXPECT_FALSE(Ready(s[0]).status);
  EXPECT_EQ(Ready(s[0]).reason, "ReadinessUnknown");
  EXPECT_EQ(s[0].address, "10.0.0.5");
  EXPECT_EQ(s[0].address_source, "static");

  s = Build({{"db-01", ReadinessReport{.ready = false, .message = "the guest agent does not answer (x)"}}});
  EXPECT_EQ(s[0].health, Health::kProgressing);
  EXPECT_EQ(Ready(s[0]).reason, "ReadinessPending");
  EXPECT_EQ(Ready(s[0]).message, "the guest agent does not answer (x)");

  s = Build({{"db-01", ReadinessReport{.ready = true, .address = "10.0.0.77", .address_source = "agent",
                                       .message = "the guest agent answers and reports 10.0.0.77"}}});
  EXPECT_EQ(s[0].health, Health::kHealthy);
  EXPECT_TRUE(Ready(s[0]).status);
  EXPECT_EQ(Ready(s[0]).reason, "ReadinessPassed");
  EXPECT_EQ(s[0].address, "10.0.0.77");
  EXPECT_EQ(s[0].address_source, "agent");
}

TEST_F(StatusReadinessTest, UncheckableNodesAreReadyWithTheirReason) {
  desired_.vms = {Vm("db-01", Readiness{.tcp = 5432})};
  observed_ = Running({"db-01"});
  auto s = Build({{"db-01", ReadinessReport{.ready = true, .checked = false, .message = "cannot be checked"}}});
  EXPECT_EQ(s[0].health, Health::kHealthy);
  EXPECT_TRUE(Ready(s[0]).status);
  EXPECT_EQ(Ready(s[0]).reason, "ReadinessNotCheckable");
}

TEST_F(StatusReadinessTest, WithoutReadinessThePowerStateDecides) {
  desired_.vms = {Vm("web-01", Readiness{})};
  observed_ = Running({"web-01"});
  auto s = Build({});
  EXPECT_EQ(s[0].health, Health::kHealthy);
  EXPECT_EQ(Ready(s[0]).reason, "PowerStateMatches");
  // A stopped VM that should run is not Ready, whatever a report says.
  desired_.vms = {Vm("web-01", Readiness{.agent = true})};
  observed_.nodes[0].vms[0].power = PowerState::kStopped;
  s = Build({{"web-01", ReadinessReport{.ready = true}}});
  EXPECT_EQ(s[0].health, Health::kDegraded);
  EXPECT_EQ(Ready(s[0]).reason, "PowerStateDiffers");
}

TEST_F(StatusReadinessTest, ClusterMembersCountAsReadyOnlyWhenReady) {
  Cluster c;
  c.meta.name = "k8s";
  NodeGroup g;
  g.name = "cp";
  g.count = 2;
  c.spec.node_groups = {g};
  desired_.clusters = {c};
  for (const char* name : {"k8s-cp-01", "k8s-cp-02"}) {
    VirtualMachine vm = Vm(name, Readiness{.agent = true});
    vm.cluster = ClusterMembership{.cluster = "k8s", .group = "cp"};
    desired_.vms.push_back(vm);
  }
  observed_ = Running({"k8s-cp-01", "k8s-cp-02"});
  auto s = Build({{"k8s-cp-01", ReadinessReport{.ready = true}}, {"k8s-cp-02", ReadinessReport{.ready = false}}});
  const auto clusters = BuildClusterStatuses(desired_, s);
  ASSERT_EQ(clusters.size(), 1u);
  EXPECT_EQ(clusters[0].ready, 1);
  EXPECT_TRUE(clusters[0].groups[0].members[0].ready);
  EXPECT_FALSE(clusters[0].groups[0].members[1].ready);
}

}  // namespace
}  // namespace gitvirt
