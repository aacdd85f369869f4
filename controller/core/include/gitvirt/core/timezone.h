#pragma once
// Time zones as the core sees them: a rule giving the UTC offset at any instant. Cron schedules,
// snapshot names and retention are evaluated in a policy's zone, but the core cannot read the
// tz database (that is I/O), so the shell hands it a TimeZone; the tzdb-backed implementation
// lives outside core. UTC and fixed offsets are here because they need no data.
//
// A TimeZone must be immutable after construction, so one instance may be shared between
// threads. The functions below assume what every real zone satisfies: offsets within +-24h and
// at most one offset change in any 48-hour window.

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

namespace gitvirt {

class TimeZone {
 public:
  virtual ~TimeZone() = default;
  // The IANA name ("Europe/Amsterdam") or whatever the zone was created with.
  virtual std::string_view Name() const = 0;
  // Local wall-clock time = utc + OffsetAt(utc).
  virtual std::chrono::seconds OffsetAt(std::chrono::sys_seconds utc) const = 0;
};

// The UTC zone, named "UTC". A process-wide singleton.
const TimeZone& UtcZone();

// A zone whose offset never changes.
std::unique_ptr<TimeZone> FixedOffsetZone(std::string name, std::chrono::seconds offset);

// The wall-clock time in `tz` at the instant `utc`.
std::chrono::local_seconds ToLocal(const TimeZone& tz, std::chrono::sys_seconds utc);

// What a wall-clock time means in a zone. Around an offset change at `transition` (the first
// instant with the new offset), a forward change leaves a gap of local times that never happen
// and a backward change a fold of local times that happen twice.
struct LocalTimeInfo {
  enum class Kind { kUnique, kGap, kFold };
  Kind kind = Kind::kUnique;
  std::chrono::sys_seconds earliest;  // kUnique, kFold: the first instant showing the time
  std::chrono::sys_seconds latest;    // kUnique: == earliest; kFold: the second instant
  // Set whenever an offset change lies within a day of `local` (always for kGap and kFold):
  // the change and the offsets around it.
  std::chrono::sys_seconds transition;
  std::chrono::seconds offset_before{0};
  std::chrono::seconds offset_after{0};
  friend bool operator==(const LocalTimeInfo&, const LocalTimeInfo&) = default;
};

LocalTimeInfo ResolveLocal(const TimeZone& tz, std::chrono::local_seconds local);

}  // namespace gitvirt
