#pragma once
// The small pattern language of manifests: `{...}` placeholders in Cluster member names
// ("{cluster}-{group}-{NN}"), IP patterns ("ip=10.0.100.{10+index}/24") and snapshot names
// ("{policy}-{vm}-{datetime}"). Pure functions.
//
// In a pattern, `{{` and `}}` are literal braces; anything else between `{` and `}` is a
// placeholder. Errors give 1-based columns within the pattern (or expression).

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "gitvirt/core/error.h"
#include "gitvirt/core/timezone.h"

namespace gitvirt {

using IntVariables = std::map<std::string, long long, std::less<>>;
using StringVariables = std::map<std::string, std::string, std::less<>>;

// Integer arithmetic: decimal integers, identifiers from `vars`, binary + - * / % with the usual
// precedence, unary minus and parentheses. `/` and `%` truncate toward zero, as in C++.
// Division by zero, overflow and unknown identifiers are errors; an unknown identifier's error
// lists the allowed names.
Result<long long> EvalIntExpression(std::string_view expr, const IntVariables& vars);

// Expands every placeholder: one that is exactly a key of `strings` (spaces around it ignored)
// becomes its value; anything else is evaluated as an integer expression over `ints` and
// printed in decimal. Unknown names, unbalanced braces and empty placeholders are errors.
Result<std::string> ExpandPattern(std::string_view pattern, const StringVariables& strings,
                                  const IntVariables& ints);

// A snapshot's name from its policy's namePattern: {vm}, {policy}, {date} = YYYYMMDD,
// {time} = HHMMSS, {datetime} = YYYYMMDDTHHMMSS, the times in `tz`'s wall-clock time at `when`.
// Any other placeholder, arithmetic included, is an error.
Result<std::string> RenderSnapshotName(std::string_view pattern, std::string_view vm,
                                       std::string_view policy, std::chrono::sys_seconds when,
                                       const TimeZone& tz);

}  // namespace gitvirt
