#include "gitvirt/core/templating.h"

#include <cctype>
#include <cstdio>
#include <limits>
#include <set>

namespace gitvirt {
namespace {

namespace chr = std::chrono;

std::unexpected<Error> ErrorAt(std::size_t column, std::string message) {
  return Fail(ErrorCode::kInvalidArgument,
              "at column " + std::to_string(column) + ": " + std::move(message));
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// "a, b, c" from the keys of both maps, in sorted order.
std::string AllowedNames(const IntVariables& ints, const StringVariables* strings) {
  std::set<std::string_view> names;
  for (const auto& [name, value] : ints) names.insert(name);
  if (strings != nullptr) {
    for (const auto& [name, value] : *strings) names.insert(name);
  }
  if (names.empty()) return "no names are defined here";
  std::string out = "allowed: ";
  bool first = true;
  for (const std::string_view name : names) {
    out += (first ? "" : ", ") + std::string(name);
    first = false;
  }
  return out;
}

// Recursive descent over the expression text. `column_base` is the column of expr[0] in what
// the user wrote, so errors inside a pattern point into the pattern. `strings` only sharpens
// the message when a text variable is used in arithmetic.
class IntParser {
 public:
  IntParser(std::string_view expr, std::size_t column_base, const IntVariables& ints,
            const StringVariables* strings)
      : expr_(expr), column_base_(column_base), ints_(ints), strings_(strings) {}

  Result<long long> Parse() {
    auto value = ParseSum(0);
    if (!value) return value;
    SkipSpaces();
    if (pos_ < expr_.size()) {
      return ErrorAt(Column(), "unexpected '" + std::string(1, expr_[pos_]) + "'");
    }
    return value;
  }

 private:
  static constexpr int kMaxDepth = 100;

  std::size_t Column() const { return column_base_ + pos_; }
  void SkipSpaces() {
    while (pos_ < expr_.size() && std::isspace(static_cast<unsigned char>(expr_[pos_]))) ++pos_;
  }
  // The next non-space character, or '\0' at the end.
  char Peek() {
    SkipSpaces();
    return pos_ < expr_.size() ? expr_[pos_] : '\0';
  }

  Result<long long> Overflow(std::size_t column) { return ErrorAt(column, "integer overflow"); }

  Result<long long> ParseSum(int depth) {
    auto left = ParseProduct(depth);
    if (!left) return left;
    while (Peek() == '+' || Peek() == '-') {
      const char op = expr_[pos_];
      const std::size_t column = Column();
      ++pos_;
      auto right = ParseProduct(depth);
      if (!right) return right;
      long long result = 0;
      const bool overflow = op == '+' ? __builtin_add_overflow(*left, *right, &result)
                                      : __builtin_sub_overflow(*left, *right, &result);
      if (overflow) return Overflow(column);
      left = result;
    }
    return left;
  }

  Result<long long> ParseProduct(int depth) {
    auto left = ParseUnary(depth);
    if (!left) return left;
    while (Peek() == '*' || Peek() == '/' || Peek() == '%') {
      const char op = expr_[pos_];
      const std::size_t column = Column();
      ++pos_;
      auto right = ParseUnary(depth);
      if (!right) return right;
      long long result = 0;
      if (op == '*') {
        if (__builtin_mul_overflow(*left, *right, &result)) return Overflow(column);
      } else {
        if (*right == 0) return ErrorAt(column, "division by zero");
        if (*right == -1 && *left == std::numeric_limits<long long>::min()) {
          return Overflow(column);
        }
        result = op == '/' ? *left / *right : *left % *right;
      }
      left = result;
    }
    return left;
  }

  Result<long long> ParseUnary(int depth) {
    if (depth > kMaxDepth) return ErrorAt(Column(), "expression nested too deeply");
    if (Peek() != '-') return ParsePrimary(depth);
    const std::size_t column = Column();
    ++pos_;
    auto operand = ParseUnary(depth + 1);
    if (!operand) return operand;
    if (*operand == std::numeric_limits<long long>::min()) return Overflow(column);
    return -*operand;
  }

  Result<long long> ParsePrimary(int depth) {
    const char c = Peek();
    const std::size_t column = Column();
    if (c == '(') {
      ++pos_;
      auto inner = ParseSum(depth + 1);
      if (!inner) return inner;
      if (Peek() != ')') {
        return ErrorAt(Column(),
                       "expected ')' to close the '(' at column " + std::to_string(column));
      }
      ++pos_;
      return inner;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) {
      long long value = 0;
      while (pos_ < expr_.size() && std::isdigit(static_cast<unsigned char>(expr_[pos_]))) {
        if (__builtin_mul_overflow(value, 10, &value) ||
            __builtin_add_overflow(value, expr_[pos_] - '0', &value)) {
          return ErrorAt(column, "number too large");
        }
        ++pos_;
      }
      return value;
    }
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      const std::size_t start = pos_;
      while (pos_ < expr_.size() &&
             (std::isalnum(static_cast<unsigned char>(expr_[pos_])) || expr_[pos_] == '_')) {
        ++pos_;
      }
      const std::string_view name = expr_.substr(start, pos_ - start);
      if (const auto it = ints_.find(name); it != ints_.end()) return it->second;
      if (strings_ != nullptr && strings_->contains(name)) {
        return ErrorAt(column,
                       "'" + std::string(name) + "' is text and cannot be used in arithmetic");
      }
      return ErrorAt(column, "unknown name '" + std::string(name) + "' (" +
                                 AllowedNames(ints_, strings_) + ")");
    }
    if (c == '\0') return ErrorAt(column, "expected a number, a name or '(' at the end");
    return ErrorAt(column, "expected a number, a name or '(', found '" + std::string(1, c) + "'");
  }

  std::string_view expr_;
  std::size_t pos_ = 0;
  std::size_t column_base_;
  const IntVariables& ints_;
  const StringVariables* strings_;
};

// The brace scanner shared by every pattern kind. `resolve(inner, column)` turns a
// placeholder's text (column = where that text starts) into its replacement.
template <typename Resolve>
Result<std::string> Expand(std::string_view pattern, Resolve resolve) {
  std::string out;
  std::size_t i = 0;
  while (i < pattern.size()) {
    const char c = pattern[i];
    const bool doubled = i + 1 < pattern.size() && pattern[i + 1] == c;
    if (c == '}') {
      if (!doubled) {
        return ErrorAt(i + 1, "'}' without a matching '{' (write '}}' for a literal brace)");
      }
      out += '}';
      i += 2;
    } else if (c == '{' && doubled) {
      out += '{';
      i += 2;
    } else if (c == '{') {
      const std::size_t close = pattern.find_first_of("{}", i + 1);
      if (close == std::string_view::npos) {
        return ErrorAt(i + 1, "'{' is not closed (write '{{' for a literal brace)");
      }
      if (pattern[close] == '{') return ErrorAt(close + 1, "'{' inside a placeholder");
      const std::string_view inner = pattern.substr(i + 1, close - i - 1);
      if (Trim(inner).empty()) return ErrorAt(i + 1, "empty placeholder");
      auto replacement = resolve(inner, i + 2);
      if (!replacement) return std::unexpected(replacement.error());
      out += *replacement;
      i = close + 1;
    } else {
      out += c;
      ++i;
    }
  }
  return out;
}

}  // namespace

Result<long long> EvalIntExpression(std::string_view expr, const IntVariables& vars) {
  return IntParser(expr, 1, vars, nullptr).Parse();
}

Result<std::string> ExpandPattern(std::string_view pattern, const StringVariables& strings,
                                  const IntVariables& ints) {
  return Expand(pattern, [&](std::string_view inner, std::size_t column) -> Result<std::string> {
    if (const auto it = strings.find(Trim(inner)); it != strings.end()) return it->second;
    auto value = IntParser(inner, column, ints, &strings).Parse();
    if (!value) return std::unexpected(value.error());
    return std::to_string(*value);
  });
}

Result<std::string> RenderSnapshotName(std::string_view pattern, std::string_view vm,
                                       std::string_view policy, chr::sys_seconds when,
                                       const TimeZone& tz) {
  const chr::local_seconds local = ToLocal(tz, when);
  const auto day = chr::floor<chr::days>(local);
  const chr::year_month_day ymd{day};
  const chr::hh_mm_ss<chr::seconds> tod{local - day};
  char date[16];
  char time[16];
  std::snprintf(date, sizeof date, "%04d%02u%02u", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
  std::snprintf(time, sizeof time, "%02d%02d%02d", static_cast<int>(tod.hours().count()),
                static_cast<int>(tod.minutes().count()), static_cast<int>(tod.seconds().count()));
  const StringVariables names = {
      {"vm", std::string(vm)},
      {"policy", std::string(policy)},
      {"date", date},
      {"time", time},
      {"datetime", std::string(date) + "T" + time},
  };
  return Expand(pattern, [&](std::string_view inner, std::size_t column) -> Result<std::string> {
    if (const auto it = names.find(Trim(inner)); it != names.end()) return it->second;
    return ErrorAt(column - 1, "unknown placeholder '{" + std::string(inner) +
                                   "}' (allowed: {date} {datetime} {policy} {time} {vm})");
  });
}

}  // namespace gitvirt
