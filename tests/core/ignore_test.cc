// Ignore-difference rules: which paths are rules, what they cover, and how changes split.
#include "gitvirt/core/ignore.h"

#include <gtest/gtest.h>

namespace gitvirt {
namespace {

TEST(IgnorePath, ValidPaths) {
  for (const char* path : {"memory", "vcpus", "disks[*].size", "disks[data].size", "networks[0].mac", "networks[*]",
                           "cloudInit", "cloudInit.users", "disks"}) {
    EXPECT_EQ(CheckIgnorePath(path), std::nullopt) << path;
  }
}

TEST(IgnorePath, InvalidPathsSayWhy) {
  EXPECT_EQ(CheckIgnorePath("memroy"), "unknown field \"memroy\" (a VM's spec fields: memory, vcpus, disks, networks, ...)");
  EXPECT_NE(CheckIgnorePath("node"), std::nullopt);  // where a VM runs is not drift
  for (const char* path : {"", "disks[", "disks[]", "disks[*", ".memory", "memory.", "disks]x", "[0]", "disks[a.b]",
                           "disks[*]x"}) {
    EXPECT_NE(CheckIgnorePath(path), std::nullopt) << path;
  }
}

TEST(IgnorePath, Matching) {
  EXPECT_TRUE(IgnorePathMatches("memory", "memory"));
  EXPECT_FALSE(IgnorePathMatches("memory", "maxMemory"));
  EXPECT_TRUE(IgnorePathMatches("disks[*].size", "disks[data].size"));
  EXPECT_FALSE(IgnorePathMatches("disks[*].size", "disks[data].bus"));
  EXPECT_FALSE(IgnorePathMatches("disks[*].size", "disks[data]"));  // a whole disk added or removed
  EXPECT_TRUE(IgnorePathMatches("disks[*]", "disks[data]"));
  EXPECT_TRUE(IgnorePathMatches("disks", "disks[data].size"));       // a path covers what is below it
  EXPECT_TRUE(IgnorePathMatches("networks[0].mac", "networks[0].mac"));
  EXPECT_FALSE(IgnorePathMatches("networks[0].mac", "networks[1].mac"));
  EXPECT_FALSE(IgnorePathMatches("disks[root].size", "disks[data].size"));
}

TEST(IgnoreRules, OwnThenTheConfigurationsSelected) {
  VirtualMachine vm;
  vm.meta.name = "router-01";
  vm.meta.labels = {{"team", "net"}};
  vm.spec.ignore_differences = {"memory"};
  ControllerConfig config;
  IgnoreDifferencesRule net;
  net.selector.match_labels = {{"team", "net"}};
  net.paths = {"networks[0].mac"};
  IgnoreDifferencesRule other;
  other.selector.names = {"db-*"};
  other.paths = {"vcpus"};
  config.ignore_differences = {net, other};
  EXPECT_EQ(IgnoreRulesFor(vm, config), (std::vector<std::string>{"memory", "networks[0].mac"}));

  const IgnoreSplit split = SplitIgnored({FieldChange{"memory", "4GiB", "8GiB", ChangeClass::kLive},
                                          FieldChange{"vcpus", "2", "4", ChangeClass::kLive}},
                                         IgnoreRulesFor(vm, config));
  ASSERT_EQ(split.ignored.size(), 1u);
  EXPECT_EQ(split.ignored[0].path, "memory");
  ASSERT_EQ(split.kept.size(), 1u);
  EXPECT_EQ(split.kept[0].path, "vcpus");
}

}  // namespace
}  // namespace gitvirt
