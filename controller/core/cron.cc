#include "gitvirt/core/cron.h"

#include <algorithm>
#include <cctype>
#include <utility>
#include <vector>

namespace gitvirt {
namespace {

namespace chr = std::chrono;
using chr::local_seconds;
using chr::sys_seconds;

// How far NextFire/PreviousFire look past the first allowed year before giving up on a
// schedule that can never fire ("0 0 30 2 *"). Ten years covers February 29 across a century.
constexpr int kSearchYears = 10;
// Bounds the hops over DST gaps and folds; real zones need two a year.
constexpr int kMaxDstHops = 1000;

// ---------------------------------------------------------------------------------------------
// Parsing

struct FieldSpec {
  std::string_view name;  // for messages: "minute field: ..."
  int min;
  int max;       // largest value that may be written (7 for day-of-week)
  int star_max;  // largest value `*` and `N/STEP` reach (6 for day-of-week)
  const std::string_view* names = nullptr;  // names[i] spells value names_base + i
  int names_count = 0;
  int names_base = 0;
  bool allows_question = false;
  bool seven_is_sunday = false;  // day-of-week: 7 and a range ending in SUN mean Sunday
};

constexpr std::string_view kMonthNames[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                            "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr std::string_view kDayNames[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

constexpr FieldSpec kSecond{"second", 0, 59, 59};
constexpr FieldSpec kMinute{"minute", 0, 59, 59};
constexpr FieldSpec kHour{"hour", 0, 23, 23};
constexpr FieldSpec kDayOfMonth{"day-of-month", 1, 31, 31, nullptr, 0, 0, true};
constexpr FieldSpec kMonth{"month", 1, 12, 12, kMonthNames, 12, 1, false};
constexpr FieldSpec kDayOfWeek{"day-of-week", 0, 7, 6, kDayNames, 7, 0, true, true};
constexpr FieldSpec kYear{"year", kCronMinYear, kCronMaxYear, kCronMaxYear};

struct Macro {
  std::string_view name;
  std::string_view expansion;
};
constexpr Macro kMacros[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

std::unexpected<Error> FieldError(const FieldSpec& spec, std::string message) {
  return Fail(ErrorCode::kInvalidArgument,
              std::string(spec.name) + " field: " + std::move(message));
}

std::string Quote(std::string_view s) {
  return "'" + std::string(s) + "'";
}

std::string Upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::vector<std::string_view> Split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t end = text.find(separator, start);
    parts.push_back(text.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

std::vector<std::string_view> SplitWhitespace(std::string_view text) {
  std::vector<std::string_view> words;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    const std::size_t start = i;
    while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i > start) words.push_back(text.substr(start, i - start));
  }
  return words;
}

// Digits only; nullopt for anything else. Values too long to matter become INT_MAX-ish so
// the range check reports them.
std::optional<int> ParseDigits(std::string_view s) {
  if (s.empty()) return std::nullopt;
  long long value = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    value = std::min<long long>(value * 10 + (c - '0'), 1'000'000'000);
  }
  return static_cast<int>(value);
}

// Explains why a token that is neither a number nor a name was rejected, recognising the Quartz
// extensions people paste from Java schedulers.
std::unexpected<Error> BadValue(const FieldSpec& spec, std::string_view token) {
  const std::string upper = Upper(token);
  const bool quartz_shape = !upper.empty() && std::all_of(upper.begin(), upper.end(), [](char c) {
    return (c >= '0' && c <= '9') || c == 'L' || c == 'W';
  });
  if (quartz_shape && upper.find('L') != std::string::npos) {
    return FieldError(spec,
                      Quote(token) + " uses Quartz 'L' (last), which gitvirt does not support");
  }
  if (quartz_shape && upper.find('W') != std::string::npos) {
    return FieldError(
        spec, Quote(token) + " uses Quartz 'W' (nearest weekday), which gitvirt does not support");
  }
  std::string message = Quote(token) + " is not a number";
  if (spec.names != nullptr) {
    message += " or a name (" + std::string(spec.names[0]) + "-" +
               std::string(spec.names[spec.names_count - 1]) + ")";
  }
  return FieldError(spec, message);
}

// One value of a field: a number in range or a name.
Result<int> ParseValue(const FieldSpec& spec, std::string_view token) {
  if (auto number = ParseDigits(token)) {
    if (*number < spec.min || *number > spec.max) {
      return FieldError(spec, std::to_string(*number) + " is out of range " +
                                  std::to_string(spec.min) + "-" + std::to_string(spec.max));
    }
    return *number;
  }
  const std::string upper = Upper(token);
  for (int i = 0; i < spec.names_count; ++i) {
    if (spec.names[i] == upper) return spec.names_base + i;
  }
  return BadValue(spec, token);
}

// Parses one field into the set of matching values (index = value).
Result<std::vector<bool>> ParseField(const FieldSpec& spec, std::string_view text) {
  std::vector<bool> set(static_cast<std::size_t>(spec.max) + 1, false);
  const std::vector<std::string_view> items = Split(text, ',');
  for (std::string_view item : items) {
    if (item.empty()) return FieldError(spec, "empty entry in the list " + Quote(text));
    if (item.find('#') != std::string_view::npos) {
      return FieldError(spec, Quote(item) +
                                  " uses Quartz '#' (nth weekday of the month), which gitvirt "
                                  "does not support");
    }
    const std::size_t slash = item.find('/');
    const std::string_view base = item.substr(0, slash);
    int step = 1;
    if (slash != std::string_view::npos) {
      const std::string_view step_text = item.substr(slash + 1);
      const auto parsed = ParseDigits(step_text);
      if (!parsed) return FieldError(spec, "step " + Quote(step_text) + " is not a number");
      if (*parsed < 1) return FieldError(spec, "step must be at least 1, got " + Quote(step_text));
      step = *parsed;
    }

    if (base == "?") {
      if (!spec.allows_question) {
        return FieldError(spec, "'?' is only allowed in the day-of-month and day-of-week fields");
      }
      if (items.size() != 1 || slash != std::string_view::npos) {
        return FieldError(spec, "'?' must be the whole field");
      }
      for (int v = spec.min; v <= spec.star_max; ++v) set[v] = true;
      continue;
    }

    int lo = 0;
    int hi = 0;
    if (base == "*") {
      lo = spec.min;
      hi = spec.star_max;
    } else if (const std::size_t dash = base.find('-'); dash != std::string_view::npos) {
      const std::string_view first = base.substr(0, dash);
      const std::string_view last = base.substr(dash + 1);
      if (first.empty()) return FieldError(spec, "range " + Quote(base) + " has no start");
      if (last.empty()) return FieldError(spec, "range " + Quote(base) + " has no end");
      auto lo_value = ParseValue(spec, first);
      if (!lo_value) return std::unexpected(lo_value.error());
      auto hi_value = ParseValue(spec, last);
      if (!hi_value) return std::unexpected(hi_value.error());
      lo = *lo_value;
      hi = *hi_value;
      if (spec.seven_is_sunday && hi == 0 && lo > 0 && !ParseDigits(last)) hi = 7;  // FRI-SUN
      if (lo > hi) return FieldError(spec, "range " + Quote(base) + " is reversed");
    } else {
      auto value = ParseValue(spec, base);
      if (!value) return std::unexpected(value.error());
      lo = *value;
      // Quartz "N/STEP": from N to the end of the field.
      hi = slash == std::string_view::npos ? lo : std::max(lo, spec.star_max);
    }
    for (int v = lo; v <= hi; v += step) set[v] = true;
  }
  if (spec.seven_is_sunday && set[7]) set[0] = true;
  return set;
}

template <std::size_t N>
void CopyInto(const std::vector<bool>& values, int offset, std::bitset<N>& bits) {
  for (std::size_t i = 0; i < N; ++i) {
    const std::size_t index = i + static_cast<std::size_t>(offset);
    bits[i] = index < values.size() && values[index];
  }
}

bool IsStar(std::string_view field) {
  return field == "?" || field.starts_with('*');
}

Result<CronSchedule> ParseFields(std::string_view original, std::string_view fields_text) {
  const std::vector<std::string_view> fields = SplitWhitespace(fields_text);
  if (fields.size() < 5 || fields.size() > 7) {
    return Fail(ErrorCode::kInvalidArgument,
                "expected 5, 6 or 7 fields, got " + std::to_string(fields.size()));
  }
  // The five classic fields are the last five of the first six; the year, if any, is 7th.
  const std::size_t base = fields.size() == 5 ? 0 : 1;
  CronSchedule schedule;
  schedule.text = std::string(original);

  if (base == 0) {
    schedule.seconds.set(0);
  } else {
    auto seconds = ParseField(kSecond, fields[0]);
    if (!seconds) return std::unexpected(seconds.error());
    CopyInto(*seconds, 0, schedule.seconds);
  }
  auto minutes = ParseField(kMinute, fields[base]);
  if (!minutes) return std::unexpected(minutes.error());
  auto hours = ParseField(kHour, fields[base + 1]);
  if (!hours) return std::unexpected(hours.error());
  auto dom = ParseField(kDayOfMonth, fields[base + 2]);
  if (!dom) return std::unexpected(dom.error());
  auto months = ParseField(kMonth, fields[base + 3]);
  if (!months) return std::unexpected(months.error());
  auto dow = ParseField(kDayOfWeek, fields[base + 4]);
  if (!dow) return std::unexpected(dow.error());
  CopyInto(*minutes, 0, schedule.minutes);
  CopyInto(*hours, 0, schedule.hours);
  CopyInto(*dom, 0, schedule.days_of_month);
  CopyInto(*months, 0, schedule.months);
  CopyInto(*dow, 0, schedule.days_of_week);
  schedule.dom_star = IsStar(fields[base + 2]);
  schedule.dow_star = IsStar(fields[base + 4]);

  if (fields.size() == 7) {
    auto years = ParseField(kYear, fields[6]);
    if (!years) return std::unexpected(years.error());
    schedule.year_restricted = true;
    CopyInto(*years, kCronMinYear, schedule.years);
  }
  return schedule;
}

// ---------------------------------------------------------------------------------------------
// Calendar arithmetic on wall-clock times

struct Civil {
  int year;
  unsigned month, day, hour, minute, second;
};

Civil ToCivil(local_seconds t) {
  const auto day = chr::floor<chr::days>(t);
  const chr::year_month_day ymd{day};
  const auto tod = static_cast<unsigned>((t - day).count());
  return {static_cast<int>(ymd.year()),
          static_cast<unsigned>(ymd.month()),
          static_cast<unsigned>(ymd.day()),
          tod / 3600,
          tod / 60 % 60,
          tod % 60};
}

local_seconds FromCivil(const Civil& c) {
  const chr::local_days day{chr::year{c.year} / chr::month{c.month} / chr::day{c.day}};
  return day + chr::hours{c.hour} + chr::minutes{c.minute} + chr::seconds{c.second};
}

unsigned DaysInMonth(int year, unsigned month) {
  return static_cast<unsigned>((chr::year{year} / chr::month{month} / chr::last).day());
}

bool YearAllowed(const CronSchedule& s, int year) {
  if (!s.year_restricted) return true;
  return year >= kCronMinYear && year <= kCronMaxYear && s.years[year - kCronMinYear];
}

std::optional<int> NextAllowedYear(const CronSchedule& s, int year) {
  if (!s.year_restricted) return year;
  for (int y = std::max(year, kCronMinYear); y <= kCronMaxYear; ++y) {
    if (s.years[y - kCronMinYear]) return y;
  }
  return std::nullopt;
}

std::optional<int> PreviousAllowedYear(const CronSchedule& s, int year) {
  if (!s.year_restricted) return year;
  for (int y = std::min(year, kCronMaxYear); y >= kCronMinYear; --y) {
    if (s.years[y - kCronMinYear]) return y;
  }
  return std::nullopt;
}

bool DayMatches(const CronSchedule& s, int year, unsigned month, unsigned day) {
  const chr::weekday weekday{chr::local_days{chr::year{year} / chr::month{month} / chr::day{day}}};
  const bool dom = s.days_of_month[day];
  const bool dow = s.days_of_week[weekday.c_encoding()];
  if (s.dom_star || s.dow_star) return dom && dow;
  return dom || dow;
}

// Smallest set index >= from, or -1.
template <std::size_t N>
int NextSet(const std::bitset<N>& bits, unsigned from) {
  for (std::size_t i = from; i < N; ++i) {
    if (bits[i]) return static_cast<int>(i);
  }
  return -1;
}

// Largest set index <= from, or -1.
template <std::size_t N>
int PreviousSet(const std::bitset<N>& bits, unsigned from) {
  for (int i = static_cast<int>(std::min<std::size_t>(from, N - 1)); i >= 0; --i) {
    if (bits[i]) return i;
  }
  return -1;
}

// The first matching wall-clock time strictly after `after`. Each field either matches or
// jumps to the start of the next candidate of the field above, so the work is proportional to
// the number of fields and days visited, not to seconds.
std::optional<local_seconds> NextLocalMatch(const CronSchedule& s, local_seconds after) {
  Civil c = ToCivil(after + chr::seconds{1});
  const std::optional<int> first_year = NextAllowedYear(s, c.year);
  if (!first_year) return std::nullopt;
  const int last_year = *first_year + kSearchYears;
  while (true) {
    if (!YearAllowed(s, c.year)) {
      const std::optional<int> year = NextAllowedYear(s, c.year);
      if (!year) return std::nullopt;
      c = {*year, 1, 1, 0, 0, 0};
    }
    if (c.year > last_year) return std::nullopt;

    const int month = NextSet(s.months, c.month);
    if (month < 0) {
      c = {c.year + 1, 1, 1, 0, 0, 0};
      continue;
    }
    if (static_cast<unsigned>(month) != c.month)
      c = {c.year, static_cast<unsigned>(month), 1, 0, 0, 0};

    const unsigned days = DaysInMonth(c.year, c.month);
    unsigned day = c.day;
    while (day <= days && !DayMatches(s, c.year, c.month, day)) ++day;
    if (day > days) {
      c = c.month == 12 ? Civil{c.year + 1, 1, 1, 0, 0, 0} : Civil{c.year, c.month + 1, 1, 0, 0, 0};
      continue;
    }
    if (day != c.day) c = {c.year, c.month, day, 0, 0, 0};

    const int hour = NextSet(s.hours, c.hour);
    if (hour < 0) {
      c = ToCivil(FromCivil({c.year, c.month, c.day, 0, 0, 0}) + chr::days{1});
      continue;
    }
    if (static_cast<unsigned>(hour) != c.hour) {
      c.hour = static_cast<unsigned>(hour);
      c.minute = c.second = 0;
    }

    const int minute = NextSet(s.minutes, c.minute);
    if (minute < 0) {
      c = ToCivil(FromCivil({c.year, c.month, c.day, c.hour, 0, 0}) + chr::hours{1});
      continue;
    }
    if (static_cast<unsigned>(minute) != c.minute) {
      c.minute = static_cast<unsigned>(minute);
      c.second = 0;
    }

    const int second = NextSet(s.seconds, c.second);
    if (second < 0) {
      c = ToCivil(FromCivil({c.year, c.month, c.day, c.hour, c.minute, 0}) + chr::minutes{1});
      continue;
    }
    c.second = static_cast<unsigned>(second);
    return FromCivil(c);
  }
}

// The last matching wall-clock time at or before `at`: NextLocalMatch run backwards.
std::optional<local_seconds> PreviousLocalMatch(const CronSchedule& s, local_seconds at) {
  Civil c = ToCivil(at);
  const std::optional<int> first_year = PreviousAllowedYear(s, c.year);
  if (!first_year) return std::nullopt;
  const int last_year = *first_year - kSearchYears;
  const auto just_before = [](const Civil& start) {
    return ToCivil(FromCivil(start) - chr::seconds{1});
  };
  while (true) {
    if (!YearAllowed(s, c.year)) {
      const std::optional<int> year = PreviousAllowedYear(s, c.year);
      if (!year) return std::nullopt;
      c = {*year, 12, 31, 23, 59, 59};
    }
    if (c.year < last_year) return std::nullopt;

    const int month = PreviousSet(s.months, c.month);
    if (month < 0) {
      c = {c.year - 1, 12, 31, 23, 59, 59};
      continue;
    }
    if (static_cast<unsigned>(month) != c.month) {
      const auto m = static_cast<unsigned>(month);
      c = {c.year, m, DaysInMonth(c.year, m), 23, 59, 59};
    }

    unsigned day = c.day;
    while (day >= 1 && !DayMatches(s, c.year, c.month, day)) --day;
    if (day == 0) {
      c = just_before({c.year, c.month, 1, 0, 0, 0});
      continue;
    }
    if (day != c.day) c = {c.year, c.month, day, 23, 59, 59};

    const int hour = PreviousSet(s.hours, c.hour);
    if (hour < 0) {
      c = just_before({c.year, c.month, c.day, 0, 0, 0});
      continue;
    }
    if (static_cast<unsigned>(hour) != c.hour) {
      c.hour = static_cast<unsigned>(hour);
      c.minute = c.second = 59;
    }

    const int minute = PreviousSet(s.minutes, c.minute);
    if (minute < 0) {
      c = just_before({c.year, c.month, c.day, c.hour, 0, 0});
      continue;
    }
    if (static_cast<unsigned>(minute) != c.minute) {
      c.minute = static_cast<unsigned>(minute);
      c.second = 59;
    }

    const int second = PreviousSet(s.seconds, c.second);
    if (second < 0) {
      c = just_before({c.year, c.month, c.day, c.hour, c.minute, 0});
      continue;
    }
    c.second = static_cast<unsigned>(second);
    return FromCivil(c);
  }
}

local_seconds AsLocal(sys_seconds instant_plus_offset) {
  return local_seconds{instant_plus_offset.time_since_epoch()};
}

}  // namespace

bool CronSchedule::Matches(local_seconds local) const {
  const Civil c = ToCivil(local);
  return YearAllowed(*this, c.year) && months[c.month] &&
         DayMatches(*this, c.year, c.month, c.day) && hours[c.hour] && minutes[c.minute] &&
         seconds[c.second];
}

Result<CronSchedule> ParseCron(std::string_view text) {
  const std::vector<std::string_view> words = SplitWhitespace(text);
  if (!words.empty() && words[0].starts_with('@')) {
    std::string name(words[0]);
    for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (name == "@reboot") {
      return Fail(ErrorCode::kInvalidArgument,
                  "@reboot is not supported: a schedule must name times");
    }
    if (words.size() != 1) {
      return Fail(ErrorCode::kInvalidArgument, name + " takes no fields after it");
    }
    std::string known;
    for (const Macro& macro : kMacros) {
      if (macro.name == name) return ParseFields(text, macro.expansion);
      known += (known.empty() ? "" : " ") + std::string(macro.name);
    }
    return Fail(ErrorCode::kInvalidArgument,
                "unknown macro " + Quote(words[0]) + " (expected one of " + known + ")");
  }
  return ParseFields(text, text);
}

std::optional<sys_seconds> NextFire(const CronSchedule& schedule, sys_seconds after,
                                    const TimeZone& tz) {
  local_seconds cursor = ToLocal(tz, after);
  for (int hop = 0; hop < kMaxDstHops; ++hop) {
    const std::optional<local_seconds> local = NextLocalMatch(schedule, cursor);
    if (!local) return std::nullopt;
    const LocalTimeInfo info = ResolveLocal(tz, *local);
    if (info.kind == LocalTimeInfo::Kind::kGap) {
      cursor = AsLocal(info.transition + info.offset_after) - chr::seconds{1};  // gap's end - 1s
      continue;
    }
    if (info.earliest > after) return info.earliest;
    // A folded time whose first occurrence is already past (we are in the repeat): it does not
    // fire again, and neither does anything else in the fold.
    cursor = std::max(*local, AsLocal(info.transition + info.offset_before) - chr::seconds{1});
  }
  return std::nullopt;
}

std::optional<sys_seconds> PreviousFire(const CronSchedule& schedule, sys_seconds at_or_before,
                                        const TimeZone& tz) {
  local_seconds cursor = ToLocal(tz, at_or_before);
  // During the repeat of a fold, the wall clock has already shown later times (the end of the
  // first pass); their first occurrences are in the past and count.
  if (const LocalTimeInfo now = ResolveLocal(tz, cursor);
      now.kind == LocalTimeInfo::Kind::kFold && at_or_before >= now.transition) {
    cursor = std::max(cursor, AsLocal(now.transition + now.offset_before) - chr::seconds{1});
  }
  for (int hop = 0; hop < kMaxDstHops; ++hop) {
    const std::optional<local_seconds> local = PreviousLocalMatch(schedule, cursor);
    if (!local) return std::nullopt;
    const LocalTimeInfo info = ResolveLocal(tz, *local);
    if (info.kind == LocalTimeInfo::Kind::kGap) {
      cursor = AsLocal(info.transition + info.offset_before) - chr::seconds{1};  // before the gap
      continue;
    }
    if (info.earliest <= at_or_before) return info.earliest;
    cursor = *local - chr::seconds{1};
  }
  return std::nullopt;
}

ScheduleDecision DecideSchedule(const CronSchedule& schedule, const TimeZone& tz,
                                std::optional<sys_seconds> last_slot, sys_seconds first_seen,
                                sys_seconds now) {
  ScheduleDecision decision;
  const std::optional<sys_seconds> first = NextFire(schedule, last_slot.value_or(first_seen), tz);
  if (first && *first <= now) {
    decision.due = true;
    decision.slot = PreviousFire(schedule, now, tz);
    decision.next = NextFire(schedule, now, tz);
  } else {
    decision.next = first;
  }
  return decision;
}

}  // namespace gitvirt
