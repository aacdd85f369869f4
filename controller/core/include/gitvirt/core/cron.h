#pragma once
// Cron schedules for snapshot and backup policies, and the scheduler's pure decision "is a run
// due now, for which slot, and when is the next one". Values and pure functions; safe to share
// between threads.
//
// Accepted syntax (docs/manifests.md):
//   5 fields   minute hour day-of-month month day-of-week              "0 2 * * *"
//   6 fields   second + the five above (Quartz style)                   "0 0 2 * * ?"
//   7 fields   the six above + year 1970-2099                           "0 0 0 1 1 ? 2099"
//   macros     @yearly @annually @monthly @weekly @daily @midnight @hourly (any case)
// Each field is a comma-separated list of `*`, `N`, `N-M`, each optionally with `/STEP`
// (`*/15`, `1-30/5`, and Quartz `0/15` meaning "from 0 to the maximum in steps of 15").
// Months and weekdays also take names JAN-DEC and SUN-SAT, in any case. `?` means "any" and is
// only allowed in the day fields.
//
// Day-of-week numbers are Unix-style in EVERY form, also in 6- and 7-field schedules: 0 and 7
// are Sunday, 1 is Monday ... 6 is Saturday. (Quartz numbers 1 = Sunday; gitvirt does not.)
// A range ending in SUN, such as FRI-SUN, ends on 7, i.e. includes Sunday.
//
// Days follow Vixie cron: when both day fields are restricted (neither starts with `*` or is
// `?`), a day matches if EITHER matches ("0 0 1 * MON": the 1st and every Monday); otherwise
// both must match ("0 0 */2 * MON": Mondays with an odd day of month).
//
// Quartz's L, W and # and the @reboot macro are rejected with a message saying so.

#include <bitset>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "gitvirt/core/error.h"
#include "gitvirt/core/timezone.h"

namespace gitvirt {

inline constexpr int kCronMinYear = 1970;
inline constexpr int kCronMaxYear = 2099;

// A parsed schedule: for each field, the set of values that match.
struct CronSchedule {
  std::string text;  // as written, for messages and round trips
  std::bitset<60> seconds;
  std::bitset<60> minutes;
  std::bitset<24> hours;
  std::bitset<32> days_of_month;  // bits 1..31
  std::bitset<13> months;         // bits 1..12
  std::bitset<7> days_of_week;    // bit 0 = Sunday
  bool dom_star = true;           // day-of-month field starts with `*` or is `?`
  bool dow_star = true;           // day-of-week field likewise
  bool year_restricted = false;   // a 7th field was given; then only `years` match
  std::bitset<kCronMaxYear - kCronMinYear + 1> years;  // bit 0 = kCronMinYear

  // Whether the wall-clock time matches every field.
  bool Matches(std::chrono::local_seconds local) const;

  friend bool operator==(const CronSchedule&, const CronSchedule&) = default;
};

// Errors name the field: "minute field: 61 is out of range 0-59".
Result<CronSchedule> ParseCron(std::string_view text);

// The first fire time strictly after `after`, with the fields evaluated in `tz`'s wall-clock
// time. A wall-clock time skipped by a DST change does not fire; one that happens twice fires at
// its first occurrence only. nullopt when there is none: the year field is exhausted, or nothing
// matches within 10 years of the first year the schedule allows (e.g. "0 0 30 2 *").
std::optional<std::chrono::sys_seconds> NextFire(const CronSchedule& schedule,
                                                 std::chrono::sys_seconds after,
                                                 const TimeZone& tz);

// The latest fire time at or before `at_or_before`, with the same rules as NextFire (searching
// back at most 10 years from the last year the schedule allows).
std::optional<std::chrono::sys_seconds> PreviousFire(const CronSchedule& schedule,
                                                     std::chrono::sys_seconds at_or_before,
                                                     const TimeZone& tz);

// What the scheduler should do for one policy at `now`.
struct ScheduleDecision {
  bool due = false;
  // When due: the latest fire time <= now. Runs are keyed by slot: the scheduler stores it as
  // the policy's last slot, so a controller that was down across many slots runs once, and a
  // slot never runs twice.
  std::optional<std::chrono::sys_seconds> slot;
  // When the policy will next be due (nullopt: never).
  std::optional<std::chrono::sys_seconds> next;
  friend bool operator==(const ScheduleDecision&, const ScheduleDecision&) = default;
};

// Due when the first fire time after `last_slot` (or after `first_seen`, when the policy never
// ran) is <= now. `next` is the first fire strictly after now when due; when not due, it is the
// first fire after last_slot/first_seen, which is also after now unless the clock went back.
// Constant work in the length of any downtime.
ScheduleDecision DecideSchedule(const CronSchedule& schedule, const TimeZone& tz,
                                std::optional<std::chrono::sys_seconds> last_slot,
                                std::chrono::sys_seconds first_seen, std::chrono::sys_seconds now);

}  // namespace gitvirt
