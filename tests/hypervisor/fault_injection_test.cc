// The fault-injection seam's GITVIRT_FAULTS syntax: "kind:N" fails the Nth call of that kind
// only, "kind:N+" the Nth and every later one. Builds without the seam never inject: skipped.

#include "fault_injection.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

namespace gitvirt {
namespace {

class FaultInjectionTest : public ::testing::Test {
 protected:
  void TearDown() override {
    ::unsetenv("GITVIRT_FAULTS");
    ResetFaultInjection();
  }
  // Which of `calls` define calls fail under `spec` ("x" failed, "." passed).
  static std::string Pattern(const char* spec, int calls) {
    ::setenv("GITVIRT_FAULTS", spec, 1);
    ResetFaultInjection();
    std::string out;
    for (int i = 0; i < calls; ++i) out += InjectedFault("define") ? 'x' : '.';
    return out;
  }
};

TEST_F(FaultInjectionTest, TheNthCallOfAKindFailsOnce) {
  if (Pattern("define:1", 1) != "x") GTEST_SKIP() << "built without GITVIRT_FAULT_INJECTION";
  EXPECT_EQ(Pattern("define:2", 5), ".x...");
  EXPECT_EQ(Pattern("start:1", 3), "...");  // another kind
}

TEST_F(FaultInjectionTest, APlusFailsTheNthCallAndEveryLaterOne) {
  if (Pattern("define:1", 1) != "x") GTEST_SKIP() << "built without GITVIRT_FAULT_INJECTION";
  EXPECT_EQ(Pattern("define:2+", 6), ".xxxxx");
  EXPECT_EQ(Pattern("define:1+,start:1", 3), "xxx");
  const auto fault = InjectedFault("define");
  ASSERT_TRUE(fault.has_value());
  EXPECT_NE(fault->message.find("define:4"), std::string::npos) << fault->message;
}

}  // namespace
}  // namespace gitvirt
