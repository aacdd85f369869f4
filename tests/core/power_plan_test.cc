// `gitvirt power reboot --max-unavailable N --wait-ready`: the plan by command, pure.
#include <gtest/gtest.h>

#include <algorithm>

#include "gitvirt/core/manual_plans.h"

namespace gitvirt {
namespace {

ObservedState ThreeWebVms() {
  ObservedState observed;
  ObservedNode node;
  node.name = "hv1";
  node.reachable = true;
  for (const char* name : {"web-03", "web-01", "web-02"}) {
    ObservedVm vm;
    vm.name = name;
    vm.node = "hv1";
    vm.power = PowerState::kRunning;
    vm.owner = Ownership{};
    vm.owner->name = name;
    vm.owner->labels = {{"tier", "web"}};
    node.vms.push_back(vm);
  }
  observed.nodes.push_back(node);
  return observed;
}

PowerRequest Reboot(std::string max_unavailable, bool wait_ready) {
  PowerRequest r;
  r.operation = "reboot";
  r.selector_text = "tier=web";
  r.selector = *ParseLabelSelector("tier=web");
  r.max_unavailable = std::move(max_unavailable);
  r.wait_ready = wait_ready;
  return r;
}

std::vector<std::string> DependsOn(const Plan& plan, const std::string& id) {
  const Action* a = plan.FindAction(id);
  EXPECT_NE(a, nullptr) << id;
  return a == nullptr ? std::vector<std::string>{} : a->depends_on;
}

TEST(PowerPlan, RollingRebootWaitsForTheVmMaxUnavailableBefore) {
  auto planned = PlanPower(ThreeWebVms(), Reboot("2", true));
  ASSERT_TRUE(planned) << planned.error().ToString();
  // --wait-ready: shutdown then start (the start waits for readiness).
  EXPECT_EQ(planned->plan.actions.size(), 6u);
  EXPECT_EQ(DependsOn(planned->plan, "start/web-01"), std::vector<std::string>{"shutdown/web-01"});
  EXPECT_TRUE(DependsOn(planned->plan, "shutdown/web-01").empty());
  EXPECT_TRUE(DependsOn(planned->plan, "shutdown/web-02").empty());
  // The third goes down once the first is back.
  EXPECT_EQ(DependsOn(planned->plan, "shutdown/web-03"), std::vector<std::string>{"start/web-01"});
}

TEST(PowerPlan, PercentageOfTheVmsChosen) {
  // 34% of 3 rounds down to 1: one at a time.
  auto planned = PlanPower(ThreeWebVms(), Reboot("34%", false));
  ASSERT_TRUE(planned);
  EXPECT_EQ(planned->plan.actions.size(), 3u);  // a guest reboot each
  EXPECT_EQ(DependsOn(planned->plan, "reboot/web-02"), std::vector<std::string>{"reboot/web-01"});
  EXPECT_EQ(DependsOn(planned->plan, "reboot/web-03"), std::vector<std::string>{"reboot/web-02"});
}

TEST(PowerPlan, RollingFlagsAreForRebootOnly) {
  PowerRequest stop = Reboot("1", false);
  stop.operation = "stop";
  auto planned = PlanPower(ThreeWebVms(), stop);
  ASSERT_FALSE(planned);
  EXPECT_EQ(planned.error().message, "--wait-ready and --max-unavailable are for `power reboot`");
  auto zero = PlanPower(ThreeWebVms(), Reboot("0", false));
  ASSERT_FALSE(zero);
  EXPECT_NE(zero.error().message.find("--max-unavailable"), std::string::npos);
}

}  // namespace
}  // namespace gitvirt
