// "Did you mean": the distance that decides what a typo is, and which names are offered.
#include "gitvirt/core/suggest.h"

#include <gtest/gtest.h>

namespace gitvirt {
namespace {

TEST(EditDistance, CountsEachEditOnceIgnoringCase) {
  EXPECT_EQ(EditDistance("plan", "plan"), 0u);
  EXPECT_EQ(EditDistance("PLAN", "plan"), 0u);
  EXPECT_EQ(EditDistance("pln", "plan"), 1u);     // a letter left out
  EXPECT_EQ(EditDistance("aplly", "apply"), 1u);  // one too many
  EXPECT_EQ(EditDistance("plen", "plan"), 1u);    // one wrong
  EXPECT_EQ(EditDistance("", "get"), 3u);
}

TEST(EditDistance, ASwapOfNeighboursIsOneEdit) {
  EXPECT_EQ(EditDistance("plna", "plan"), 1u);
  EXPECT_EQ(EditDistance("jbos", "jobs"), 1u);
  EXPECT_EQ(EditDistance("strat", "start"), 1u);
  EXPECT_EQ(EditDistance("ab", "ba"), 1u);
  EXPECT_EQ(EditDistance("abc", "ca"), 3u);  // optimal string alignment: no edit twice
}

TEST(TypoMatches, OffersSwappedCommands) {
  const std::vector<std::string> commands = {"plan", "apply", "jobs", "get", "power"};
  EXPECT_EQ(TypoMatches("plna", commands), std::vector<std::string>{"plan"});
  EXPECT_EQ(TypoMatches("jbos", commands), std::vector<std::string>{"jobs"});
  EXPECT_TRUE(TypoMatches("zzzzzz", commands).empty());
}

}  // namespace
}  // namespace gitvirt
