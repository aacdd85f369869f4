#include "gitvirt/core/retention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

namespace gitvirt {
namespace {

using namespace std::chrono_literals;
using std::chrono::sys_seconds;
using Ids = std::vector<std::string>;

const sys_seconds kNow = sys_seconds{} + std::chrono::days{20000};

sys_seconds DaysAgo(int days) {
  return kNow - std::chrono::days{days};
}

RetentionItem Item(std::string id, std::string vm, sys_seconds created,
                   std::string policy = "nightly", bool is_protected = false) {
  return {std::move(id), std::move(vm), std::move(policy), created, is_protected};
}

Retention Keep(int n) {
  return Retention{.keep = n};
}

TEST(RetentionTest, KeepsTheNewestPerVm) {
  const std::vector<RetentionItem> items = {
      Item("a1", "web", DaysAgo(3)), Item("a2", "web", DaysAgo(2)), Item("a3", "web", DaysAgo(1)),
      Item("b1", "db", DaysAgo(5)),  Item("b2", "db", DaysAgo(4)),
  };
  EXPECT_EQ(SelectForDeletion(items, "nightly", Keep(2), kNow), (Ids{"a1"}));
  EXPECT_EQ(SelectForDeletion(items, "nightly", Keep(1), kNow), (Ids{"b1", "a1", "a2"}));
  EXPECT_EQ(SelectForDeletion(items, "nightly", Keep(5), kNow), Ids{});
}

TEST(RetentionTest, TiesOnCreationTimeAreBrokenById) {
  const std::vector<RetentionItem> items = {Item("snap-b", "web", DaysAgo(1)),
                                            Item("snap-a", "web", DaysAgo(1)),
                                            Item("snap-c", "web", DaysAgo(1))};
  // The larger id counts as newer.
  EXPECT_EQ(SelectForDeletion(items, "nightly", Keep(1), kNow), (Ids{"snap-a", "snap-b"}));
}

TEST(RetentionTest, MaxAgeDeletesStrictlyOlderItems) {
  const std::vector<RetentionItem> items = {Item("old", "web", DaysAgo(8)),
                                            Item("edge", "web", DaysAgo(7)),
                                            Item("new", "web", DaysAgo(1))};
  EXPECT_EQ(SelectForDeletion(items, "nightly", Retention{.max_age = 7 * 24h}, kNow), (Ids{"old"}));
  EXPECT_EQ(SelectForDeletion(items, "nightly", Retention{.max_age = 7 * 24h - 1s}, kNow),
            (Ids{"old", "edge"}));
}

TEST(RetentionTest, MaxAgeAppliesEvenWithinKeep) {
  const std::vector<RetentionItem> items = {Item("old", "web", DaysAgo(40)),
                                            Item("older", "web", DaysAgo(50))};
  EXPECT_EQ(SelectForDeletion(items, "nightly", Retention{.keep = 7, .max_age = 30 * 24h}, kNow),
            (Ids{"older", "old"}));
}

TEST(RetentionTest, KeepAndMaxAgeCombine) {
  std::vector<RetentionItem> items;
  for (int day = 1; day <= 10; ++day) {
    items.push_back(Item("d" + std::to_string(10 - day), "web", DaysAgo(day)));
  }
  // keep 7 drops the 3 oldest (d0 d1 d2); maxAge 5d drops d0..d4.
  EXPECT_EQ(SelectForDeletion(items, "nightly", Retention{.keep = 7, .max_age = 5 * 24h}, kNow),
            (Ids{"d0", "d1", "d2", "d3", "d4"}));
  EXPECT_EQ(SelectForDeletion(items, "nightly", Retention{.keep = 3, .max_age = 8 * 24h}, kNow),
            (Ids{"d0", "d1", "d2", "d3", "d4", "d5", "d6"}));
}

TEST(RetentionTest, OnlyThisPolicysItemsAreConsidered) {
  const std::vector<RetentionItem> items = {
      Item("mine-1", "web", DaysAgo(3)),
      Item("mine-2", "web", DaysAgo(2)),
      Item("theirs", "web", DaysAgo(9), "weekly"),
      Item("manual", "web", DaysAgo(9), ""),
  };
  EXPECT_EQ(SelectForDeletion(items, "nightly", Retention{.keep = 1, .max_age = 24h}, kNow),
            (Ids{"mine-1", "mine-2"}));
}

TEST(RetentionTest, HandMadeItemsAreNeverSelected) {
  const std::vector<RetentionItem> items = {Item("manual-1", "web", DaysAgo(90), ""),
                                            Item("manual-2", "web", DaysAgo(80), "")};
  EXPECT_EQ(SelectForDeletion(items, "", Retention{.keep = 0, .max_age = 24h}, kNow), Ids{});
}

TEST(RetentionTest, ProtectedItemsAreKeptAndDoNotCountTowardKeep) {
  const std::vector<RetentionItem> items = {
      Item("p1", "web", DaysAgo(1), "nightly", true),
      Item("p2", "web", DaysAgo(2), "nightly", true),
      Item("n1", "web", DaysAgo(3)),
      Item("n2", "web", DaysAgo(4)),
      Item("p3", "web", DaysAgo(99), "nightly", true),
  };
  EXPECT_EQ(SelectForDeletion(items, "nightly", Keep(2), kNow), Ids{});
  EXPECT_EQ(SelectForDeletion(items, "nightly", Keep(1), kNow), (Ids{"n2"}));
  EXPECT_EQ(SelectForDeletion(items, "nightly", Retention{.max_age = 24h}, kNow),
            (Ids{"n2", "n1"}));
}

TEST(RetentionTest, NoRulesDeleteNothing) {
  const std::vector<RetentionItem> items = {Item("a", "web", DaysAgo(1000))};
  EXPECT_EQ(SelectForDeletion(items, "nightly", Retention{}, kNow), Ids{});
}

TEST(RetentionTest, KeepZeroDeletesEverythingOfThePolicy) {
  const std::vector<RetentionItem> items = {Item("a", "web", DaysAgo(1)),
                                            Item("b", "web", DaysAgo(2), "nightly", true)};
  EXPECT_EQ(SelectForDeletion(items, "nightly", Keep(0), kNow), (Ids{"a"}));
}

TEST(RetentionTest, ResultIsSortedByVmThenAgeWhateverTheInputOrder) {
  std::vector<RetentionItem> items = {
      Item("z-old", "app", DaysAgo(9)),    Item("a-new", "app", DaysAgo(8)),
      Item("m", "web", DaysAgo(20)),       Item("c", "db", DaysAgo(30)),
      Item("b", "db", DaysAgo(30)),        Item("keep-db", "db", DaysAgo(1)),
      Item("keep-app", "app", DaysAgo(1)), Item("keep-web", "web", DaysAgo(1)),
  };
  const Ids expected = {"z-old", "a-new", "b", "c", "m"};
  std::mt19937 rng(42);
  for (int round = 0; round < 20; ++round) {
    std::shuffle(items.begin(), items.end(), rng);
    EXPECT_EQ(SelectForDeletion(items, "nightly", Keep(1), kNow), expected);
  }
}

}  // namespace
}  // namespace gitvirt
