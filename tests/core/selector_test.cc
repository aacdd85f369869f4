#include "gitvirt/core/selector.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace gitvirt {
namespace {

using Tags = std::vector<std::string>;

// ---------------------------------------------------------------------------------------------
// GlobMatch

TEST(GlobTest, LiteralPatternMatchesOnlyItself) {
  EXPECT_TRUE(GlobMatch("web-01", "web-01"));
  EXPECT_FALSE(GlobMatch("web-01", "web-011"));
  EXPECT_FALSE(GlobMatch("web-01", "web-0"));
  EXPECT_FALSE(GlobMatch("Web-01", "web-01"));
  EXPECT_TRUE(GlobMatch("", ""));
  EXPECT_FALSE(GlobMatch("", "a"));
}

TEST(GlobTest, StarMatchesAnyRunIncludingEmpty) {
  EXPECT_TRUE(GlobMatch("web-*", "web-"));
  EXPECT_TRUE(GlobMatch("web-*", "web-01"));
  EXPECT_FALSE(GlobMatch("web-*", "db-01"));
  EXPECT_TRUE(GlobMatch("*", ""));
  EXPECT_TRUE(GlobMatch("*-01", "app-server-01"));
  EXPECT_TRUE(GlobMatch("a*b*c", "a-x-b-y-b-c"));
  EXPECT_FALSE(GlobMatch("a*b*c", "a-x-b-y-b-d"));
  EXPECT_TRUE(GlobMatch("**x", "abcx"));
}

TEST(GlobTest, StarBacktracksWithoutBlowingUp) {
  const std::string text(200, 'a');
  EXPECT_FALSE(GlobMatch("*a*a*a*a*a*a*a*a*a*b", text));
  EXPECT_TRUE(GlobMatch("*a*a*a*a*a*a*a*a*a*a", text));
}

TEST(GlobTest, QuestionMarkMatchesExactlyOneCharacter) {
  EXPECT_TRUE(GlobMatch("app-?-server", "app-1-server"));
  EXPECT_FALSE(GlobMatch("app-?-server", "app-12-server"));
  EXPECT_FALSE(GlobMatch("app-?-server", "app--server"));
}

TEST(GlobTest, BracketSetsRangesAndNegation) {
  EXPECT_TRUE(GlobMatch("web-[abc]", "web-b"));
  EXPECT_FALSE(GlobMatch("web-[abc]", "web-d"));
  EXPECT_TRUE(GlobMatch("web-[0-9][0-9]", "web-42"));
  EXPECT_FALSE(GlobMatch("web-[0-9][0-9]", "web-4x"));
  EXPECT_TRUE(GlobMatch("web-[!a]", "web-b"));
  EXPECT_FALSE(GlobMatch("web-[!a]", "web-a"));
  EXPECT_FALSE(GlobMatch("web-[^a-c]", "web-b"));
  EXPECT_TRUE(GlobMatch("web-[a-c-]", "web--"));
  EXPECT_TRUE(GlobMatch("x[]]", "x]"));
  EXPECT_FALSE(GlobMatch("web-[ab]", "web-"));
}

TEST(GlobTest, UnclosedBracketIsLiteral) {
  EXPECT_TRUE(GlobMatch("web-[1", "web-[1"));
  EXPECT_FALSE(GlobMatch("web-[1", "web-1"));
}

// ---------------------------------------------------------------------------------------------
// Tag expressions

TagExpression Tag(std::string_view text) {
  auto parsed = ParseTagExpression(text);
  EXPECT_TRUE(parsed.has_value()) << text << ": " << parsed.error().message;
  return parsed.value_or(*ParseTagExpression("unparsable"));
}

std::string TagError(std::string_view text) {
  auto parsed = ParseTagExpression(text);
  EXPECT_FALSE(parsed.has_value()) << text;
  return parsed ? std::string() : parsed.error().message;
}

TEST(TagExpressionTest, BareTagMatchesWhenPresent) {
  const TagExpression e = Tag("env-prod");
  EXPECT_TRUE(e.Matches({}, {"client-acme", "env-prod"}));
  EXPECT_FALSE(e.Matches({}, {"env-production"}));
  EXPECT_FALSE(e.Matches({{"env-prod", "x"}}, {}));
}

TEST(TagExpressionTest, TagsMayUseColonsSlashesDotsAndUnderscores) {
  EXPECT_TRUE(Tag("team:db/v1.2_x").Matches({}, {"team:db/v1.2_x"}));
}

TEST(TagExpressionTest, NotBindsTighterThanAndTighterThanOr) {
  EXPECT_EQ(Tag("a OR b AND NOT c").ToString(), "(a OR (b AND (NOT c)))");
  EXPECT_EQ(Tag("NOT a AND b").ToString(), "((NOT a) AND b)");
  EXPECT_EQ(Tag("a AND b OR c AND d").ToString(), "((a AND b) OR (c AND d))");
  EXPECT_EQ(Tag("NOT NOT a").ToString(), "(NOT (NOT a))");
  // Behaviour, not just shape: "a OR b AND NOT c" with only a true is true.
  EXPECT_TRUE(Tag("a OR b AND NOT c").Matches({}, {"a", "c"}));
  EXPECT_FALSE(Tag("a OR b AND NOT c").Matches({}, {"b", "c"}));
}

TEST(TagExpressionTest, ParenthesesOverridePrecedence) {
  EXPECT_EQ(Tag("(a OR b) AND c").ToString(), "((a OR b) AND c)");
  EXPECT_FALSE(Tag("(a OR b) AND c").Matches({}, {"a"}));
  EXPECT_TRUE(Tag("a OR b AND c").Matches({}, {"a"}));
  EXPECT_EQ(Tag("NOT (a AND b)").ToString(), "(NOT (a AND b))");
}

TEST(TagExpressionTest, OperatorsAreLeftAssociative) {
  EXPECT_EQ(Tag("a AND b AND c").ToString(), "((a AND b) AND c)");
  EXPECT_EQ(Tag("a OR b OR c").ToString(), "((a OR b) OR c)");
}

TEST(TagExpressionTest, KeywordsInAnyCase) {
  EXPECT_EQ(Tag("a and b Or not c").ToString(), "((a AND b) OR (NOT c))");
}

TEST(TagExpressionTest, TheDocumentedExample) {
  const TagExpression e = Tag("env-prod AND (client-acme OR client-nixz) AND NOT always-on");
  EXPECT_TRUE(e.Matches({}, {"env-prod", "client-nixz"}));
  EXPECT_FALSE(e.Matches({}, {"env-prod", "client-nixz", "always-on"}));
  EXPECT_FALSE(e.Matches({}, {"env-prod"}));
  EXPECT_FALSE(e.Matches({}, {"client-acme"}));
}

TEST(TagExpressionTest, LabelEqualityTests) {
  const TagExpression e = Tag("env=prod");
  EXPECT_TRUE(e.Matches({{"env", "prod"}}, {}));
  EXPECT_FALSE(e.Matches({{"env", "dev"}}, {}));
  EXPECT_FALSE(e.Matches({}, {"env=prod"}));
  EXPECT_EQ(e.ToString(), "env=prod");
  EXPECT_TRUE(
      Tag("gitvirt.dev/role = control-plane").Matches({{"gitvirt.dev/role", "control-plane"}}, {}));
}

TEST(TagExpressionTest, LabelInequalityMatchesAbsentOrDifferent) {
  const TagExpression e = Tag("env!=prod");
  EXPECT_TRUE(e.Matches({}, {}));
  EXPECT_TRUE(e.Matches({{"env", "dev"}}, {}));
  EXPECT_FALSE(e.Matches({{"env", "prod"}}, {}));
}

TEST(TagExpressionTest, LabelValueMaySpellAKeyword) {
  EXPECT_TRUE(Tag("mode=not AND x").Matches({{"mode", "not"}}, {"x"}));
}

TEST(TagExpressionTest, MixesTagsAndLabels) {
  const TagExpression e = Tag("tier=web AND NOT legacy OR env!=prod");
  EXPECT_TRUE(e.Matches({{"tier", "web"}, {"env", "prod"}}, {}));
  EXPECT_FALSE(e.Matches({{"tier", "web"}, {"env", "prod"}}, {"legacy"}));
  EXPECT_TRUE(e.Matches({{"tier", "db"}}, {}));
}

TEST(TagExpressionTest, ErrorsSayWhereAndWhat) {
  EXPECT_EQ(TagError("a AND OR b"), "at column 7: expected a tag or '(' after AND");
  EXPECT_EQ(TagError("a AND "), "at column 7: expected a tag or '(' after AND");
  EXPECT_EQ(TagError(""), "at column 1: expected a tag or '('");
  EXPECT_EQ(TagError("OR a"), "at column 1: expected a tag or '('");
  EXPECT_EQ(TagError("NOT"), "at column 4: expected a tag or '(' after NOT");
  EXPECT_EQ(TagError("a b"), "at column 3: expected AND or OR before 'b'");
  EXPECT_EQ(TagError("(a OR b"),
            "at column 8: expected ')' to close the '(' at column 1, found the end");
  EXPECT_EQ(TagError("a)"), "at column 2: unmatched ')'");
  EXPECT_EQ(TagError("()"), "at column 2: expected a tag or '(' after '('");
  EXPECT_EQ(TagError("env="), "at column 5: expected a value after '='");
  EXPECT_EQ(TagError("env!= )"), "at column 7: expected a value after '!='");
  EXPECT_EQ(TagError("a AND #b"), "at column 7: unexpected character '#'");
  EXPECT_EQ(TagError("!a"), "at column 1: '!' must be followed by '=' (write NOT to negate)");
}

TEST(TagExpressionTest, DeepNestingIsAnErrorNotACrash) {
  std::string deep(5000, '(');  // append, not operator+: see templating_test.cc (GCC 12 bug 105329)
  deep.append("a").append(5000, ')');
  EXPECT_NE(TagError(deep).find("nested too deeply"), std::string::npos);
  std::string many_nots;
  for (int i = 0; i < 5000; ++i) many_nots += "NOT ";
  EXPECT_NE(TagError(many_nots + "a").find("nested too deeply"), std::string::npos);
  EXPECT_TRUE(Tag("((((a))))").Matches({}, {"a"}));
}

TEST(TagExpressionTest, EqualTextsGiveEqualValues) {
  EXPECT_EQ(Tag("a AND b"), Tag("a   and   b"));
  EXPECT_NE(Tag("a AND b"), Tag("a OR b"));
}

// ---------------------------------------------------------------------------------------------
// CompiledSelector

CompiledSelector Compile(const Selector& selector) {
  auto compiled = CompiledSelector::Compile(selector);
  EXPECT_TRUE(compiled.has_value()) << compiled.error().message;
  return compiled.value_or(*CompiledSelector::Compile(Selector{.all = true}));
}

TEST(CompiledSelectorTest, EmptySelectorIsAnError) {
  auto compiled = CompiledSelector::Compile(Selector{});
  ASSERT_FALSE(compiled.has_value());
  EXPECT_EQ(compiled.error().message,
            "selector: give at least one of all, matchLabels, names, tags, clusters");
  EXPECT_EQ(compiled.error().code, ErrorCode::kInvalidArgument);
}

TEST(CompiledSelectorTest, AllMatchesEveryVm) {
  const CompiledSelector s = Compile(Selector{.all = true});
  EXPECT_TRUE(s.Matches("anything", {}, {}));
  EXPECT_TRUE(s.Matches("db-01", {{"tier", "db"}}, {"x"}));
}

TEST(CompiledSelectorTest, MatchLabelsNeedsEveryLabel) {
  const CompiledSelector s = Compile(Selector{.match_labels = {{"tier", "web"}, {"env", "prod"}}});
  EXPECT_TRUE(s.Matches("a", {{"tier", "web"}, {"env", "prod"}, {"extra", "1"}}, {}));
  EXPECT_FALSE(s.Matches("a", {{"tier", "web"}}, {}));
  EXPECT_FALSE(s.Matches("a", {{"tier", "web"}, {"env", "dev"}}, {}));
}

TEST(CompiledSelectorTest, NamesMatchAnyGlob) {
  const CompiledSelector s = Compile(Selector{.names = {"web-*", "app-?-server"}});
  EXPECT_TRUE(s.Matches("web-01", {}, {}));
  EXPECT_TRUE(s.Matches("app-1-server", {}, {}));
  EXPECT_FALSE(s.Matches("db-01", {}, {}));
}

TEST(CompiledSelectorTest, EveryGivenCriterionMustHold) {
  const CompiledSelector s = Compile(Selector{.all = true,
                                              .match_labels = {{"tier", "web"}},
                                              .names = {"web-*"},
                                              .tags = "env-prod AND NOT always-on"});
  EXPECT_TRUE(s.Matches("web-01", {{"tier", "web"}}, {"env-prod"}));
  EXPECT_FALSE(s.Matches("web-01", {{"tier", "db"}}, {"env-prod"}));
  EXPECT_FALSE(s.Matches("api-01", {{"tier", "web"}}, {"env-prod"}));
  EXPECT_FALSE(s.Matches("web-01", {{"tier", "web"}}, {"env-prod", "always-on"}));
}

TEST(CompiledSelectorTest, BadTagExpressionIsReportedWithItsField) {
  auto compiled = CompiledSelector::Compile(Selector{.tags = "a AND"});
  ASSERT_FALSE(compiled.has_value());
  EXPECT_EQ(compiled.error().message,
            "selector.tags: at column 6: expected a tag or '(' after AND");
}

TEST(CompiledSelectorTest, EmptyNamePatternIsAnError) {
  auto compiled = CompiledSelector::Compile(Selector{.names = {"web-*", ""}});
  ASSERT_FALSE(compiled.has_value());
  EXPECT_EQ(compiled.error().message, "selector.names[1]: empty pattern");
}

// ---------------------------------------------------------------------------------------------
// Kubernetes label selectors

LabelSelector Labelsel(std::string_view text) {
  auto parsed = ParseLabelSelector(text);
  EXPECT_TRUE(parsed.has_value()) << text << ": " << parsed.error().message;
  return parsed.value_or(LabelSelector{});
}

std::string LabelselError(std::string_view text) {
  auto parsed = ParseLabelSelector(text);
  EXPECT_FALSE(parsed.has_value()) << text;
  return parsed ? std::string() : parsed.error().message;
}

using Op = LabelRequirement::Op;

TEST(LabelSelectorTest, EmptyStringMatchesEverything) {
  EXPECT_EQ(Labelsel(""), LabelSelector{});
  EXPECT_EQ(Labelsel("   "), LabelSelector{});
  EXPECT_TRUE(Labelsel("").Matches({}));
}

TEST(LabelSelectorTest, ParsesEveryRequirementForm) {
  const LabelSelector s =
      Labelsel("a=1, b==2,c!=3, d in (x, y),e notin(z), f, !g, gitvirt.dev/role=cp");
  const std::vector<LabelRequirement> expected = {
      {"a", Op::kEquals, {"1"}},    {"b", Op::kEquals, {"2"}},
      {"c", Op::kNotEquals, {"3"}}, {"d", Op::kIn, {"x", "y"}},
      {"e", Op::kNotIn, {"z"}},     {"f", Op::kExists, {}},
      {"g", Op::kDoesNotExist, {}}, {"gitvirt.dev/role", Op::kEquals, {"cp"}},
  };
  EXPECT_EQ(s.requirements, expected);
}

TEST(LabelSelectorTest, EqualityAndInequality) {
  EXPECT_TRUE(Labelsel("tier=web").Matches({{"tier", "web"}}));
  EXPECT_FALSE(Labelsel("tier=web").Matches({{"tier", "db"}}));
  EXPECT_FALSE(Labelsel("tier=web").Matches({}));
  EXPECT_TRUE(Labelsel("tier!=web").Matches({}));
  EXPECT_TRUE(Labelsel("tier!=web").Matches({{"tier", "db"}}));
  EXPECT_FALSE(Labelsel("tier!=web").Matches({{"tier", "web"}}));
}

TEST(LabelSelectorTest, EmptyValueMatchesAnEmptyLabel) {
  EXPECT_TRUE(Labelsel("note=").Matches({{"note", ""}}));
  EXPECT_FALSE(Labelsel("note=").Matches({}));
}

TEST(LabelSelectorTest, SetMembership) {
  const LabelSelector in = Labelsel("zone in (a,b)");
  EXPECT_TRUE(in.Matches({{"zone", "b"}}));
  EXPECT_FALSE(in.Matches({{"zone", "c"}}));
  EXPECT_FALSE(in.Matches({}));
  const LabelSelector notin = Labelsel("zone notin (a,b)");
  EXPECT_FALSE(notin.Matches({{"zone", "a"}}));
  EXPECT_TRUE(notin.Matches({{"zone", "c"}}));
  EXPECT_TRUE(notin.Matches({}));
}

TEST(LabelSelectorTest, ExistenceTests) {
  EXPECT_TRUE(Labelsel("gpu").Matches({{"gpu", ""}}));
  EXPECT_FALSE(Labelsel("gpu").Matches({}));
  EXPECT_TRUE(Labelsel("!gpu").Matches({{"cpu", "x"}}));
  EXPECT_FALSE(Labelsel("! gpu").Matches({{"gpu", "nvidia"}}));
}

TEST(LabelSelectorTest, AllRequirementsMustHold) {
  const LabelSelector s = Labelsel("tier=web,env in (prod,staging),!legacy");
  EXPECT_TRUE(s.Matches({{"tier", "web"}, {"env", "prod"}}));
  EXPECT_FALSE(s.Matches({{"tier", "web"}, {"env", "prod"}, {"legacy", "yes"}}));
  EXPECT_FALSE(s.Matches({{"tier", "web"}, {"env", "dev"}}));
}

TEST(LabelSelectorTest, KeyNamedInIsStillAKey) {
  EXPECT_TRUE(Labelsel("in in (in)").Matches({{"in", "in"}}));
}

TEST(LabelSelectorTest, ErrorsGiveTheColumn) {
  EXPECT_EQ(LabelselError("a=1,"), "at column 5: expected a label key");
  EXPECT_EQ(LabelselError(",a"), "at column 1: expected a label key");
  EXPECT_EQ(LabelselError("a=1 b=2"), "at column 5: expected ',' between requirements");
  EXPECT_EQ(LabelselError("zone within (a)"),
            "at column 6: expected =, ==, !=, in or notin after 'zone'");
  EXPECT_EQ(LabelselError("zone in a,b"), "at column 9: expected '(' after in");
  EXPECT_EQ(LabelselError("zone in ()"), "at column 10: expected a value");
  EXPECT_EQ(LabelselError("zone in (a b)"), "at column 12: expected ',' or ')' in the value list");
  EXPECT_EQ(LabelselError("zone in (a"), "at column 11: expected ',' or ')' in the value list");
  EXPECT_EQ(LabelselError("!a=b"), "at column 3: expected ',' between requirements");
}

}  // namespace
}  // namespace gitvirt
