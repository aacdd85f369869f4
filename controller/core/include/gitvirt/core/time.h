#pragma once
// Wall-clock time as gitvirt records and shows it: whole seconds, UTC. Pure; thread-safe.

#include <chrono>
#include <string>

namespace gitvirt {

using TimePoint = std::chrono::sys_seconds;

// A UTC time broken into its calendar fields.
struct CivilTime {
  int year = 1970;
  unsigned month = 1, day = 1;
  long hour = 0, minute = 0, second = 0;
};
CivilTime ToCivil(TimePoint t);

// RFC 3339 UTC: "2026-11-23T16:30:00Z".
std::string FormatTime(TimePoint t);

}  // namespace gitvirt
