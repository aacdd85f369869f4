#include "gitvirt/core/templating.h"

#include <gtest/gtest.h>

#include <limits>

namespace gitvirt {
namespace {

using namespace std::chrono_literals;
namespace chr = std::chrono;

std::string EvalError(std::string_view expr, const IntVariables& vars = {}) {
  auto result = EvalIntExpression(expr, vars);
  EXPECT_FALSE(result.has_value()) << expr << " = " << result.value_or(0);
  if (result) return "";
  EXPECT_EQ(result.error().code, ErrorCode::kInvalidArgument);
  return result.error().message;
}

std::string ExpandError(std::string_view pattern, const StringVariables& strings,
                        const IntVariables& ints) {
  auto result = ExpandPattern(pattern, strings, ints);
  EXPECT_FALSE(result.has_value()) << pattern << " -> " << result.value_or("");
  return result ? "" : result.error().message;
}

// ---------------------------------------------------------------------------------------------
// EvalIntExpression

TEST(IntExpressionTest, IntegersAndPrecedence) {
  EXPECT_EQ(EvalIntExpression("42", {}), 42);
  EXPECT_EQ(EvalIntExpression("1 + 2 * 3", {}), 7);
  EXPECT_EQ(EvalIntExpression("(1 + 2) * 3", {}), 9);
  EXPECT_EQ(EvalIntExpression("10 - 4 - 3", {}), 3);  // left-associative
  EXPECT_EQ(EvalIntExpression("100 / 10 / 5", {}), 2);
  EXPECT_EQ(EvalIntExpression("17 % 5 + 1", {}), 3);
  EXPECT_EQ(EvalIntExpression("2*3%4", {}), 2);
}

TEST(IntExpressionTest, UnaryMinus) {
  EXPECT_EQ(EvalIntExpression("-5", {}), -5);
  EXPECT_EQ(EvalIntExpression("--5", {}), 5);
  EXPECT_EQ(EvalIntExpression("3 - -2", {}), 5);
  EXPECT_EQ(EvalIntExpression("-(2 + 3) * 2", {}), -10);
}

TEST(IntExpressionTest, DivisionTruncatesTowardZero) {
  EXPECT_EQ(EvalIntExpression("-7 / 2", {}), -3);
  EXPECT_EQ(EvalIntExpression("-7 % 2", {}), -1);
}

TEST(IntExpressionTest, IdentifiersComeFromTheVariables) {
  const IntVariables vars = {{"index", 4}, {"base_ip", 10}};
  EXPECT_EQ(EvalIntExpression("10+index", vars), 14);
  EXPECT_EQ(EvalIntExpression("base_ip + index * 2", vars), 18);
  EXPECT_EQ(EvalIntExpression("  index  ", vars), 4);
}

TEST(IntExpressionTest, UnknownIdentifierListsTheAllowedNames) {
  EXPECT_EQ(EvalError("idx + 1", {{"index", 0}, {"count", 3}}),
            "at column 1: unknown name 'idx' (allowed: count, index)");
  EXPECT_EQ(EvalError("x"), "at column 1: unknown name 'x' (no names are defined here)");
}

TEST(IntExpressionTest, DivisionByZeroIsAnError) {
  EXPECT_EQ(EvalError("5 / 0"), "at column 3: division by zero");
  EXPECT_EQ(EvalError("5 % (index - 1)", {{"index", 1}}), "at column 3: division by zero");
}

TEST(IntExpressionTest, OverflowIsAnErrorNotWrapAround) {
  EXPECT_EQ(EvalError("9223372036854775807 + 1"), "at column 21: integer overflow");
  EXPECT_EQ(EvalError("99999999999999999999"), "at column 1: number too large");
  EXPECT_EQ(EvalError("3037000500 * 3037000500"), "at column 12: integer overflow");
  EXPECT_EQ(EvalError("m / -1", {{"m", std::numeric_limits<long long>::min()}}),
            "at column 3: integer overflow");
  EXPECT_EQ(EvalError("-m", {{"m", std::numeric_limits<long long>::min()}}),
            "at column 1: integer overflow");
  EXPECT_EQ(EvalIntExpression("9223372036854775807", {}), std::numeric_limits<long long>::max());
}

TEST(IntExpressionTest, SyntaxErrorsGiveTheColumn) {
  EXPECT_EQ(EvalError(""), "at column 1: expected a number, a name or '(' at the end");
  EXPECT_EQ(EvalError("1 +"), "at column 4: expected a number, a name or '(' at the end");
  EXPECT_EQ(EvalError("(1 + 2"), "at column 7: expected ')' to close the '(' at column 1");
  EXPECT_EQ(EvalError("1 2"), "at column 3: unexpected '2'");
  EXPECT_EQ(EvalError("1 + )"), "at column 5: expected a number, a name or '(', found ')'");
  EXPECT_EQ(EvalError("+1"), "at column 1: expected a number, a name or '(', found '+'");
  EXPECT_EQ(EvalError("2 ^ 3"), "at column 3: unexpected '^'");
}

TEST(IntExpressionTest, DeepNestingIsAnErrorNotACrash) {
  // Built with append, not operator+: GCC 12 at -O2 misreads `std::string(n, c) + "1"` as an
  // out-of-bounds memcpy (-Warray-bounds, GCC bug 105329).
  std::string deep(10000, '(');
  deep.append("1").append(10000, ')');
  EXPECT_NE(EvalError(deep).find("nested too deeply"), std::string::npos);
  std::string minuses(10000, '-');
  minuses.append("1");
  EXPECT_NE(EvalError(minuses).find("nested too deeply"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// ExpandPattern

const StringVariables kMember = {
    {"cluster", "k8s"}, {"group", "worker"}, {"role", "node"}, {"NN", "03"}};
const IntVariables kIndex = {{"index", 2}};

TEST(ExpandPatternTest, ClusterNamePattern) {
  EXPECT_EQ(ExpandPattern("{cluster}-{group}-{NN}", kMember, kIndex), "k8s-worker-03");
  EXPECT_EQ(ExpandPattern("{role}{index}", kMember, kIndex), "node2");
}

TEST(ExpandPatternTest, IpPatternWithArithmetic) {
  EXPECT_EQ(ExpandPattern("ip=10.0.100.{10+index}/24,gw=10.0.100.1", {}, kIndex),
            "ip=10.0.100.12/24,gw=10.0.100.1");
  EXPECT_EQ(ExpandPattern("{ (index + 1) * 100 }", {}, kIndex), "300");
  EXPECT_EQ(ExpandPattern("{0 - index}", {}, kIndex), "-2");
}

TEST(ExpandPatternTest, StringKeysMayHaveSpacesAround) {
  EXPECT_EQ(ExpandPattern("{ cluster }", kMember, kIndex), "k8s");
}

TEST(ExpandPatternTest, StringValuesAreNotReexpanded) {
  EXPECT_EQ(ExpandPattern("{name}", {{"name", "{index}"}}, kIndex), "{index}");
}

TEST(ExpandPatternTest, DoubledBracesAreLiteral) {
  EXPECT_EQ(ExpandPattern("{{cluster}}", kMember, kIndex), "{cluster}");
  EXPECT_EQ(ExpandPattern("{{{index}}}", kMember, kIndex), "{2}");
  EXPECT_EQ(ExpandPattern("no placeholders", {}, {}), "no placeholders");
  EXPECT_EQ(ExpandPattern("", {}, {}), "");
}

TEST(ExpandPatternTest, UnknownNameListsEveryAllowedName) {
  EXPECT_EQ(ExpandError("{cluster}-{grp}", kMember, kIndex),
            "at column 12: unknown name 'grp' (allowed: NN, cluster, group, index, role)");
}

TEST(ExpandPatternTest, TextVariableInArithmeticIsExplained) {
  EXPECT_EQ(ExpandError("{NN+1}", kMember, kIndex),
            "at column 2: 'NN' is text and cannot be used in arithmetic");
}

TEST(ExpandPatternTest, ExpressionErrorsPointIntoThePattern) {
  EXPECT_EQ(ExpandError("ip=10.0.0.{index/0}", {}, kIndex), "at column 17: division by zero");
}

TEST(ExpandPatternTest, UnbalancedBracesGiveTheColumn) {
  EXPECT_EQ(ExpandError("web-{index", {}, kIndex),
            "at column 5: '{' is not closed (write '{{' for a literal brace)");
  EXPECT_EQ(ExpandError("web}-1", {}, kIndex),
            "at column 4: '}' without a matching '{' (write '}}' for a literal brace)");
  EXPECT_EQ(ExpandError("{index}}", {}, kIndex),
            "at column 8: '}' without a matching '{' (write '}}' for a literal brace)");
  EXPECT_EQ(ExpandError("{a{b}}", {}, kIndex), "at column 3: '{' inside a placeholder");
  EXPECT_EQ(ExpandError("x-{ }", {}, kIndex), "at column 3: empty placeholder");
}

// ---------------------------------------------------------------------------------------------
// RenderSnapshotName

const chr::sys_seconds kWhen = chr::sys_days{chr::year{2024} / 3 / 9} + 7h + 5min + 3s;

TEST(SnapshotNameTest, DefaultPatternInUtc) {
  EXPECT_EQ(RenderSnapshotName("{policy}-{vm}-{datetime}", "web-01", "hourly", kWhen, UtcZone()),
            "hourly-web-01-20240309T070503");
}

TEST(SnapshotNameTest, DateAndTimeSeparately) {
  EXPECT_EQ(RenderSnapshotName("auto-{vm}-{date}-{time}", "db", "p", kWhen, UtcZone()),
            "auto-db-20240309-070503");
}

TEST(SnapshotNameTest, TimesAreInThePolicyZone) {
  const auto tokyo = FixedOffsetZone("JST", 9h);
  const auto hawaii = FixedOffsetZone("HST", -10h);
  EXPECT_EQ(RenderSnapshotName("{datetime}", "v", "p", kWhen, *tokyo), "20240309T160503");
  EXPECT_EQ(RenderSnapshotName("{date}", "v", "p", kWhen, *hawaii), "20240308");
}

TEST(SnapshotNameTest, UnknownPlaceholderIsAnError) {
  auto result = RenderSnapshotName("{vm}-{node}", "v", "p", kWhen, UtcZone());
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().message,
            "at column 6: unknown placeholder '{node}' (allowed: {date} {datetime} {policy} "
            "{time} {vm})");
}

TEST(SnapshotNameTest, ArithmeticIsNotAllowed) {
  auto result = RenderSnapshotName("{1+1}", "v", "p", kWhen, UtcZone());
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().message,
            "at column 1: unknown placeholder '{1+1}' (allowed: {date} {datetime} {policy} "
            "{time} {vm})");
}

TEST(SnapshotNameTest, BracesAreCheckedAsInOtherPatterns) {
  EXPECT_FALSE(RenderSnapshotName("{vm", "v", "p", kWhen, UtcZone()).has_value());
  EXPECT_EQ(RenderSnapshotName("{{{vm}}}", "v", "p", kWhen, UtcZone()), "{v}");
}

}  // namespace
}  // namespace gitvirt
