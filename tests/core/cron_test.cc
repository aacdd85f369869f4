#include "gitvirt/core/cron.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace gitvirt {
namespace {

using namespace std::chrono_literals;
namespace chr = std::chrono;
using chr::local_seconds;
using chr::seconds;
using chr::sys_days;
using chr::sys_seconds;

sys_seconds At(int y, unsigned mo, unsigned d, int h = 0, int mi = 0, int s = 0) {
  return sys_days{chr::year{y} / chr::month{mo} / chr::day{d}} + chr::hours{h} + chr::minutes{mi} +
         chr::seconds{s};
}

local_seconds LocalAt(int y, unsigned mo, unsigned d, int h = 0, int mi = 0, int s = 0) {
  return local_seconds{At(y, mo, d, h, mi, s).time_since_epoch()};
}

CronSchedule Parse(std::string_view text) {
  auto parsed = ParseCron(text);
  EXPECT_TRUE(parsed.has_value()) << text << ": " << parsed.error().message;
  return parsed.value_or(CronSchedule{});
}

std::string ParseError(std::string_view text) {
  auto parsed = ParseCron(text);
  EXPECT_FALSE(parsed.has_value()) << text;
  if (parsed) return "";
  EXPECT_EQ(parsed.error().code, ErrorCode::kInvalidArgument);
  return parsed.error().message;
}

template <std::size_t N>
std::vector<int> Bits(const std::bitset<N>& bits) {
  std::vector<int> out;
  for (std::size_t i = 0; i < N; ++i) {
    if (bits[i]) out.push_back(static_cast<int>(i));
  }
  return out;
}

std::vector<int> Range(int from, int to) {
  std::vector<int> out;
  for (int i = from; i <= to; ++i) out.push_back(i);
  return out;
}

// Yearly daylight saving time switching on the last Sunday of two months at a UTC time of day,
// like the EU (`dst_start` in March, `dst_end` in October) or, with the months swapped, the
// southern hemisphere.
class DstZone final : public TimeZone {
 public:
  DstZone(seconds standard, seconds daylight, unsigned start_month, seconds start_utc,
          unsigned end_month, seconds end_utc)
      : standard_(standard),
        daylight_(daylight),
        start_month_(start_month),
        start_utc_(start_utc),
        end_month_(end_month),
        end_utc_(end_utc) {}
  std::string_view Name() const override { return "Test/Dst"; }
  seconds OffsetAt(sys_seconds utc) const override {
    const chr::year y = chr::year_month_day{chr::floor<chr::days>(utc)}.year();
    const sys_seconds start = LastSunday(y, start_month_) + start_utc_;
    const sys_seconds end = LastSunday(y, end_month_) + end_utc_;
    const bool daylight = start < end ? (utc >= start && utc < end) : (utc >= start || utc < end);
    return daylight ? daylight_ : standard_;
  }

 private:
  static sys_days LastSunday(chr::year y, unsigned month) {
    return sys_days{y / chr::month{month} / chr::Sunday[chr::last]};
  }
  seconds standard_, daylight_;
  unsigned start_month_;
  seconds start_utc_;
  unsigned end_month_;
  seconds end_utc_;
};

// Central Europe: CET +1, CEST +2 from the last Sunday of March to the last Sunday of October,
// switching at 01:00 UTC. In 2024 the gap is 2024-03-31 02:00-03:00 local and the fold
// 2024-10-27 02:00-03:00 local.
const DstZone& CentralEurope() {
  static const DstZone zone(1h, 2h, 3, 1h, 10, 1h);
  return zone;
}

// A southern zone at -4/-3 switching at local midnight (04:00 UTC), so midnight itself is
// skipped in spring (last Sunday of September) and repeated in autumn (last Sunday of March).
const DstZone& SouthernMidnight() {
  static const DstZone zone(-4h, -3h, 9, 4h, 3, 3h);
  return zone;
}

// ---------------------------------------------------------------------------------------------
// Parsing

TEST(CronTest, FiveFieldsAreMinuteHourDayMonthWeekday) {
  const CronSchedule s = Parse("5 2 10 6 *");
  EXPECT_EQ(Bits(s.seconds), std::vector<int>{0});
  EXPECT_EQ(Bits(s.minutes), std::vector<int>{5});
  EXPECT_EQ(Bits(s.hours), std::vector<int>{2});
  EXPECT_EQ(Bits(s.days_of_month), std::vector<int>{10});
  EXPECT_EQ(Bits(s.months), std::vector<int>{6});
  EXPECT_EQ(Bits(s.days_of_week), Range(0, 6));
  EXPECT_FALSE(s.dom_star);
  EXPECT_TRUE(s.dow_star);
  EXPECT_FALSE(s.year_restricted);
  EXPECT_EQ(s.text, "5 2 10 6 *");
}

TEST(CronTest, SixFieldQuartzFormWithQuestionMark) {
  const CronSchedule s = Parse("0 0 2 * * ?");
  EXPECT_EQ(Bits(s.seconds), std::vector<int>{0});
  EXPECT_EQ(Bits(s.minutes), std::vector<int>{0});
  EXPECT_EQ(Bits(s.hours), std::vector<int>{2});
  EXPECT_EQ(Bits(s.days_of_month), Range(1, 31));
  EXPECT_EQ(Bits(s.days_of_week), Range(0, 6));
  EXPECT_TRUE(s.dom_star);
  EXPECT_TRUE(s.dow_star);
}

TEST(CronTest, SixFieldSecondsFieldIsParsed) {
  EXPECT_EQ(Bits(Parse("*/20 * * * * *").seconds), (std::vector<int>{0, 20, 40}));
}

TEST(CronTest, SevenFieldsAddAYear) {
  const CronSchedule s = Parse("0 0 0 1 1 ? 2099");
  EXPECT_TRUE(s.year_restricted);
  EXPECT_EQ(Bits(s.years), std::vector<int>{2099 - kCronMinYear});
  EXPECT_EQ(Bits(Parse("0 0 0 1 1 ? 2030-2034/2").years),
            (std::vector<int>{2030 - kCronMinYear, 2032 - kCronMinYear, 2034 - kCronMinYear}));
}

TEST(CronTest, MacrosExpandToTheirFiveFieldForms) {
  const std::pair<std::string_view, std::string_view> cases[] = {
      {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
      {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
      {"@hourly", "0 * * * *"},
  };
  for (const auto& [macro, expansion] : cases) {
    CronSchedule from_macro = Parse(macro);
    EXPECT_EQ(from_macro.text, macro);
    from_macro.text = std::string(expansion);
    EXPECT_EQ(from_macro, Parse(expansion)) << macro;
  }
}

TEST(CronTest, MacrosAreCaseInsensitiveAndTrimmed) {
  CronSchedule s = Parse("  @Daily ");
  s.text = "0 0 * * *";
  EXPECT_EQ(s, Parse("0 0 * * *"));
}

TEST(CronTest, RebootIsRejectedWithAReason) {
  EXPECT_EQ(ParseError("@reboot"), "@reboot is not supported: a schedule must name times");
}

TEST(CronTest, UnknownMacroListsTheKnownOnes) {
  const std::string message = ParseError("@fortnightly");
  EXPECT_NE(message.find("unknown macro '@fortnightly'"), std::string::npos) << message;
  EXPECT_NE(message.find("@hourly"), std::string::npos) << message;
}

TEST(CronTest, MacroWithExtraFieldsIsRejected) {
  EXPECT_EQ(ParseError("@daily 5"), "@daily takes no fields after it");
}

TEST(CronTest, WrongFieldCountSaysHowManyWereGiven) {
  EXPECT_EQ(ParseError("* * * *"), "expected 5, 6 or 7 fields, got 4");
  EXPECT_EQ(ParseError("0 0 0 1 1 ? 2099 5"), "expected 5, 6 or 7 fields, got 8");
  EXPECT_EQ(ParseError(""), "expected 5, 6 or 7 fields, got 0");
}

TEST(CronTest, OutOfRangeErrorsNameTheField) {
  EXPECT_EQ(ParseError("61 * * * *"), "minute field: 61 is out of range 0-59");
  EXPECT_EQ(ParseError("0 24 * * *"), "hour field: 24 is out of range 0-23");
  EXPECT_EQ(ParseError("0 0 0 * *"), "day-of-month field: 0 is out of range 1-31");
  EXPECT_EQ(ParseError("0 0 32 * *"), "day-of-month field: 32 is out of range 1-31");
  EXPECT_EQ(ParseError("0 0 * 13 *"), "month field: 13 is out of range 1-12");
  EXPECT_EQ(ParseError("0 0 * * 8"), "day-of-week field: 8 is out of range 0-7");
  EXPECT_EQ(ParseError("60 0 0 * * ?"), "second field: 60 is out of range 0-59");
  EXPECT_EQ(ParseError("0 0 0 1 1 ? 2100"), "year field: 2100 is out of range 1970-2099");
  EXPECT_EQ(ParseError("0 0-99 * * *"), "hour field: 99 is out of range 0-23");
  EXPECT_EQ(ParseError("99999999999 * * * *"), "minute field: 1000000000 is out of range 0-59");
}

TEST(CronTest, StarStepsCoverTheWholeRange) {
  EXPECT_EQ(Bits(Parse("*/15 * * * *").minutes), (std::vector<int>{0, 15, 30, 45}));
  EXPECT_EQ(Bits(Parse("0 */6 * * *").hours), (std::vector<int>{0, 6, 12, 18}));
  EXPECT_EQ(Bits(Parse("0 0 */10 * *").days_of_month), (std::vector<int>{1, 11, 21, 31}));
}

TEST(CronTest, QuartzStartSlashStepRunsToTheEnd) {
  EXPECT_EQ(Bits(Parse("0/15 * * * *").minutes), (std::vector<int>{0, 15, 30, 45}));
  EXPECT_EQ(Bits(Parse("5/20 * * * *").minutes), (std::vector<int>{5, 25, 45}));
}

TEST(CronTest, RangesWithStepsAndLists) {
  EXPECT_EQ(Bits(Parse("1-30/5 * * * *").minutes), (std::vector<int>{1, 6, 11, 16, 21, 26}));
  EXPECT_EQ(Bits(Parse("1,2,5-7,59 * * * *").minutes), (std::vector<int>{1, 2, 5, 6, 7, 59}));
  EXPECT_EQ(Bits(Parse("0 9-17 * * *").hours), Range(9, 17));
  EXPECT_EQ(Bits(Parse("*/70 * * * *").minutes), std::vector<int>{0});
}

TEST(CronTest, MonthAndDayNamesInAnyCase) {
  const CronSchedule s = Parse("0 0 * jan-Mar,DEC mon,WED,fri");
  EXPECT_EQ(Bits(s.months), (std::vector<int>{1, 2, 3, 12}));
  EXPECT_EQ(Bits(s.days_of_week), (std::vector<int>{1, 3, 5}));
  EXPECT_EQ(Bits(Parse("0 0 * * MON-FRI").days_of_week), Range(1, 5));
}

TEST(CronTest, DayOfWeekZeroAndSevenAreSunday) {
  EXPECT_EQ(Bits(Parse("0 0 * * 7").days_of_week), std::vector<int>{0});
  EXPECT_EQ(Bits(Parse("0 0 * * 0").days_of_week), std::vector<int>{0});
  EXPECT_EQ(Bits(Parse("0 0 * * 5-7").days_of_week), (std::vector<int>{0, 5, 6}));
  EXPECT_EQ(Bits(Parse("0 0 * * 0-7").days_of_week), Range(0, 6));
}

TEST(CronTest, DayOfWeekIsUnixNumberedAlsoInQuartzForms) {
  // Quartz would read 1 as Sunday; gitvirt reads it as Monday in every form.
  EXPECT_EQ(Bits(Parse("0 0 0 ? * 1").days_of_week), std::vector<int>{1});
  EXPECT_EQ(Bits(Parse("0 0 0 ? * 1 2030").days_of_week), std::vector<int>{1});
}

TEST(CronTest, RangeEndingInSundayNameWrapsToSeven) {
  EXPECT_EQ(Bits(Parse("0 0 * * FRI-SUN").days_of_week), (std::vector<int>{0, 5, 6}));
  EXPECT_EQ(Bits(Parse("0 0 * * SUN-SUN").days_of_week), std::vector<int>{0});
  EXPECT_EQ(Bits(Parse("0 0 * * SUN-TUE").days_of_week), (std::vector<int>{0, 1, 2}));
}

TEST(CronTest, DayOfWeekStarStepCountsSundayOnce) {
  EXPECT_EQ(Bits(Parse("0 0 * * */2").days_of_week), (std::vector<int>{0, 2, 4, 6}));
}

TEST(CronTest, StarDetectionFollowsVixie) {
  EXPECT_TRUE(Parse("0 0 */2 * MON").dom_star);
  EXPECT_FALSE(Parse("0 0 1-31 * MON").dom_star);
  EXPECT_TRUE(Parse("0 0 0 ? * MON").dom_star);
  EXPECT_FALSE(Parse("0 0 0 ? * MON").dow_star);
}

TEST(CronTest, QuestionMarkOnlyInDayFields) {
  EXPECT_EQ(ParseError("? * * * *"),
            "minute field: '?' is only allowed in the day-of-month and day-of-week fields");
  EXPECT_EQ(ParseError("0 0 ?,1 * *"), "day-of-month field: '?' must be the whole field");
  EXPECT_EQ(ParseError("0 0 * * ?/2"), "day-of-week field: '?' must be the whole field");
}

TEST(CronTest, QuartzLastWeekdayAndNthAreUnsupported) {
  EXPECT_EQ(ParseError("0 0 0 L * ?"),
            "day-of-month field: 'L' uses Quartz 'L' (last), which gitvirt does not support");
  EXPECT_EQ(ParseError("0 0 0 ? * 5L"),
            "day-of-week field: '5L' uses Quartz 'L' (last), which gitvirt does not support");
  EXPECT_EQ(ParseError("0 0 0 15W * ?"),
            "day-of-month field: '15W' uses Quartz 'W' (nearest weekday), which gitvirt does not "
            "support");
  EXPECT_EQ(ParseError("0 0 0 LW * ?"),
            "day-of-month field: 'LW' uses Quartz 'L' (last), which gitvirt does not support");
  EXPECT_EQ(ParseError("0 0 0 ? * 5#3"),
            "day-of-week field: '5#3' uses Quartz '#' (nth weekday of the month), which gitvirt "
            "does not support");
}

TEST(CronTest, MalformedFieldsAreExplained) {
  EXPECT_EQ(ParseError("0 5-2 * * *"), "hour field: range '5-2' is reversed");
  EXPECT_EQ(ParseError("*/0 * * * *"), "minute field: step must be at least 1, got '0'");
  EXPECT_EQ(ParseError("*/x * * * *"), "minute field: step 'x' is not a number");
  EXPECT_EQ(ParseError("1,,2 * * * *"), "minute field: empty entry in the list '1,,2'");
  EXPECT_EQ(ParseError("5- * * * *"), "minute field: range '5-' has no end");
  EXPECT_EQ(ParseError("-5 * * * *"), "minute field: range '-5' has no start");
  EXPECT_EQ(ParseError("JAN * * * *"), "minute field: 'JAN' is not a number");
  EXPECT_EQ(ParseError("0 0 * FOO *"), "month field: 'FOO' is not a number or a name (JAN-DEC)");
  EXPECT_EQ(ParseError("0 0 * * MONDAY"),
            "day-of-week field: 'MONDAY' is not a number or a name (SUN-SAT)");
  EXPECT_EQ(ParseError("0 0 * MON *"), "month field: 'MON' is not a number or a name (JAN-DEC)");
}

TEST(CronTest, FieldsMaySeparateWithAnyWhitespace) {
  CronSchedule s = Parse("\t0  2 *\t* *  ");
  s.text = "0 2 * * *";
  EXPECT_EQ(s, Parse("0 2 * * *"));
}

TEST(CronTest, MatchesChecksEveryField) {
  const CronSchedule s = Parse("30 2 * 6 MON");
  EXPECT_TRUE(s.Matches(LocalAt(2024, 6, 3, 2, 30)));      // a Monday in June
  EXPECT_FALSE(s.Matches(LocalAt(2024, 6, 4, 2, 30)));     // Tuesday
  EXPECT_FALSE(s.Matches(LocalAt(2024, 7, 1, 2, 30)));     // July
  EXPECT_FALSE(s.Matches(LocalAt(2024, 6, 3, 2, 30, 1)));  // second 1
  EXPECT_FALSE(s.Matches(LocalAt(2024, 6, 3, 3, 30)));
}

// ---------------------------------------------------------------------------------------------
// NextFire / PreviousFire in UTC and fixed zones

TEST(CronTest, NextFireIsStrictlyAfter) {
  const CronSchedule s = Parse("* * * * *");
  EXPECT_EQ(NextFire(s, At(2024, 5, 1, 10, 0, 30), UtcZone()), At(2024, 5, 1, 10, 1));
  EXPECT_EQ(NextFire(s, At(2024, 5, 1, 10, 1), UtcZone()), At(2024, 5, 1, 10, 2));
}

TEST(CronTest, NextFireDailyRollsOverMonthAndYear) {
  const CronSchedule s = Parse("0 2 * * *");
  EXPECT_EQ(NextFire(s, At(2024, 5, 1, 1, 59, 59), UtcZone()), At(2024, 5, 1, 2));
  EXPECT_EQ(NextFire(s, At(2024, 5, 1, 2), UtcZone()), At(2024, 5, 2, 2));
  EXPECT_EQ(NextFire(s, At(2024, 12, 31, 3), UtcZone()), At(2025, 1, 1, 2));
}

TEST(CronTest, NextFireHonoursSeconds) {
  const CronSchedule s = Parse("*/10 * * * * ?");
  EXPECT_EQ(NextFire(s, At(2024, 5, 1, 10, 0, 5), UtcZone()), At(2024, 5, 1, 10, 0, 10));
  EXPECT_EQ(NextFire(s, At(2024, 5, 1, 10, 59, 50), UtcZone()), At(2024, 5, 1, 11, 0, 0));
}

TEST(CronTest, NextFireSkipsMonthsWithoutTheDay) {
  const CronSchedule s = Parse("0 0 31 * *");
  EXPECT_EQ(NextFire(s, At(2024, 1, 31), UtcZone()), At(2024, 3, 31));
  EXPECT_EQ(NextFire(s, At(2024, 3, 31), UtcZone()), At(2024, 5, 31));
}

TEST(CronTest, NextFireFindsLeapDaysAcrossACentury) {
  const CronSchedule s = Parse("0 0 29 2 *");
  EXPECT_EQ(NextFire(s, At(2025, 3, 1), UtcZone()), At(2028, 2, 29));
  EXPECT_EQ(NextFire(s, At(2096, 3, 1), UtcZone()), At(2104, 2, 29));  // 2100 is not a leap year
}

TEST(CronTest, NextFireOfAnImpossibleDateIsNone) {
  EXPECT_EQ(NextFire(Parse("0 0 30 2 *"), At(2024, 1, 1), UtcZone()), std::nullopt);
  EXPECT_EQ(PreviousFire(Parse("0 0 31 4 *"), At(2024, 1, 1), UtcZone()), std::nullopt);
}

TEST(CronTest, NextFireStopsWhenTheYearsRunOut) {
  EXPECT_EQ(NextFire(Parse("0 0 0 1 1 ? 2024"), At(2024, 1, 1), UtcZone()), std::nullopt);
  EXPECT_EQ(NextFire(Parse("0 0 0 1 1 ? 2024"), At(2023, 6, 1), UtcZone()), At(2024, 1, 1));
}

TEST(CronTest, NextFireJumpsToADistantAllowedYear) {
  EXPECT_EQ(NextFire(Parse("0 0 0 1 1 ? 2099"), At(2025, 6, 1), UtcZone()), At(2099, 1, 1));
  EXPECT_EQ(PreviousFire(Parse("0 0 0 1 1 ? 1980"), At(2025, 6, 1), UtcZone()), At(1980, 1, 1));
}

TEST(CronTest, BothDayFieldsRestrictedMatchEither) {
  const CronSchedule s = Parse("0 0 13 * FRI");  // every 13th and every Friday
  // 2024-09-06 is a Friday, 2024-09-13 a Friday the 13th, 2024-10-13 a Sunday.
  EXPECT_EQ(NextFire(s, At(2024, 9, 1), UtcZone()), At(2024, 9, 6));
  EXPECT_EQ(NextFire(s, At(2024, 10, 11), UtcZone()), At(2024, 10, 13));
  EXPECT_EQ(NextFire(s, At(2024, 10, 13), UtcZone()), At(2024, 10, 18));
}

TEST(CronTest, StarStepDayOfMonthCombinesWithWeekdayByAnd) {
  const CronSchedule s = Parse("0 0 */2 * MON");  // Mondays on odd days
  // Mondays in 2024-09: 2, 9, 16, 23, 30 -> odd: 9, 23.
  EXPECT_EQ(NextFire(s, At(2024, 9, 1), UtcZone()), At(2024, 9, 9));
  EXPECT_EQ(NextFire(s, At(2024, 9, 9), UtcZone()), At(2024, 9, 23));
}

TEST(CronTest, QuestionMarkLeavesTheOtherDayFieldInCharge) {
  EXPECT_EQ(NextFire(Parse("0 0 0 13 * ?"), At(2024, 9, 1), UtcZone()), At(2024, 9, 13));
  EXPECT_EQ(NextFire(Parse("0 0 0 ? * FRI"), At(2024, 9, 1), UtcZone()), At(2024, 9, 6));
}

TEST(CronTest, FieldsAreEvaluatedInTheZonesLocalTime) {
  const auto india = FixedOffsetZone("IST", 5h + 30min);
  // 02:00 IST is 20:30 UTC the day before.
  EXPECT_EQ(NextFire(Parse("0 2 * * *"), At(2024, 5, 1, 12), *india), At(2024, 5, 1, 20, 30));
  const auto new_york = FixedOffsetZone("EST", -5h);
  // Monday 00:00 EST is Monday 05:00 UTC.
  EXPECT_EQ(NextFire(Parse("0 0 * * MON"), At(2024, 9, 1), *new_york), At(2024, 9, 2, 5));
}

TEST(CronTest, PreviousFireIncludesTheInstantItself) {
  const CronSchedule s = Parse("0 2 * * *");
  EXPECT_EQ(PreviousFire(s, At(2024, 5, 10, 12), UtcZone()), At(2024, 5, 10, 2));
  EXPECT_EQ(PreviousFire(s, At(2024, 5, 10, 2), UtcZone()), At(2024, 5, 10, 2));
  EXPECT_EQ(PreviousFire(s, At(2024, 5, 10, 1, 59, 59), UtcZone()), At(2024, 5, 9, 2));
  EXPECT_EQ(PreviousFire(s, At(2024, 1, 1, 1), UtcZone()), At(2023, 12, 31, 2));
}

TEST(CronTest, PreviousFireHandlesShortMonthsAndSeconds) {
  EXPECT_EQ(PreviousFire(Parse("0 0 31 * *"), At(2024, 5, 30), UtcZone()), At(2024, 3, 31));
  EXPECT_EQ(PreviousFire(Parse("15,45 * * * * *"), At(2024, 5, 1, 10, 0, 10), UtcZone()),
            At(2024, 5, 1, 9, 59, 45));
}

// Reference semantics by brute force over whole minutes: a minute fires when the schedule
// matches its wall-clock time and no earlier instant (offsets here differ by at most an hour)
// showed the same wall-clock time.
bool FiresAt(const CronSchedule& s, const TimeZone& tz, sys_seconds u) {
  const local_seconds local = ToLocal(tz, u);
  if (!s.Matches(local)) return false;
  for (sys_seconds earlier = u - 2h; earlier < u; earlier += 1min) {
    if (ToLocal(tz, earlier) == local) return false;
  }
  return true;
}

std::optional<sys_seconds> ScanNext(const CronSchedule& s, const TimeZone& tz, sys_seconds after) {
  for (sys_seconds u = chr::floor<chr::minutes>(after) + 1min; u < after + chr::days{9};
       u += 1min) {
    if (FiresAt(s, tz, u)) return u;
  }
  return std::nullopt;
}

std::optional<sys_seconds> ScanPrevious(const CronSchedule& s, const TimeZone& tz, sys_seconds at) {
  for (sys_seconds u = chr::floor<chr::minutes>(at); u > at - chr::days{9}; u -= 1min) {
    if (FiresAt(s, tz, u)) return u;
  }
  return std::nullopt;
}

TEST(CronTest, AgreesWithBruteForceAcrossDaylightSavingChanges) {
  const char* const schedules[] = {"* * * * *",       "*/7 * * * *", "30 2 * * *",  "0 * * * *",
                                   "15,45 1-3 * * *", "0 0 * * *",   "0 2 * * SUN", "59 23 * * *",
                                   "0,30 0 * * *",    "45 2 * * *"};
  struct Window {
    const TimeZone* zone;
    sys_seconds from;
  };
  const Window windows[] = {
      {&CentralEurope(), At(2024, 3, 30, 20)},    {&CentralEurope(), At(2024, 10, 26, 20)},
      {&SouthernMidnight(), At(2024, 9, 28, 20)}, {&SouthernMidnight(), At(2024, 3, 30, 20)},
      {&UtcZone(), At(2024, 2, 28, 20)},
  };
  int checked = 0;
  for (const char* text : schedules) {
    const CronSchedule s = Parse(text);
    for (const Window& window : windows) {
      for (sys_seconds t = window.from; t < window.from + 12h; t += 37min + 17s) {
        ASSERT_EQ(NextFire(s, t, *window.zone), ScanNext(s, *window.zone, t))
            << text << " after " << (t - window.from).count();
        ASSERT_EQ(PreviousFire(s, t, *window.zone), ScanPrevious(s, *window.zone, t))
            << text << " at " << (t - window.from).count();
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 900);
}

// ---------------------------------------------------------------------------------------------
// Daylight saving time, spelled out

TEST(CronTest, LocalTimeInTheSpringGapIsSkipped) {
  const CronSchedule s = Parse("30 2 * * *");
  // 2024-03-30 02:30 CET = 01:30 UTC; 2024-03-31 02:30 does not exist;
  // 2024-04-01 02:30 CEST = 00:30 UTC.
  EXPECT_EQ(NextFire(s, At(2024, 3, 29, 12), CentralEurope()), At(2024, 3, 30, 1, 30));
  EXPECT_EQ(NextFire(s, At(2024, 3, 30, 1, 30), CentralEurope()), At(2024, 4, 1, 0, 30));
  EXPECT_EQ(PreviousFire(s, At(2024, 3, 31, 23), CentralEurope()), At(2024, 3, 30, 1, 30));
}

TEST(CronTest, EveryMinuteRunsStraightThroughTheSpringGap) {
  const CronSchedule s = Parse("* * * * *");
  // 01:59 CET (00:59 UTC) is followed by 03:00 CEST (01:00 UTC).
  EXPECT_EQ(NextFire(s, At(2024, 3, 31, 0, 59), CentralEurope()), At(2024, 3, 31, 1, 0));
}

TEST(CronTest, LocalTimeInTheAutumnFoldFiresOnlyAtItsFirstOccurrence) {
  const CronSchedule s = Parse("30 2 * * *");
  // 2024-10-27 02:30 happens at 00:30 UTC (CEST) and again at 01:30 UTC (CET).
  EXPECT_EQ(NextFire(s, At(2024, 10, 27, 0), CentralEurope()), At(2024, 10, 27, 0, 30));
  EXPECT_EQ(NextFire(s, At(2024, 10, 27, 0, 30), CentralEurope()), At(2024, 10, 28, 1, 30));
  // Asked during the repeat itself, the fold is over for this schedule.
  EXPECT_EQ(NextFire(s, At(2024, 10, 27, 1, 10), CentralEurope()), At(2024, 10, 28, 1, 30));
}

TEST(CronTest, HourlyDoesNotRepeatTheFoldedHour) {
  const CronSchedule s = Parse("*/15 * * * *");
  // After 02:45 CEST (00:45 UTC) come the repeated 02:00-02:59 (CET), which do not fire; the
  // next run is 03:00 CET = 02:00 UTC.
  EXPECT_EQ(NextFire(s, At(2024, 10, 27, 0, 45), CentralEurope()), At(2024, 10, 27, 2, 0));
  EXPECT_EQ(NextFire(s, At(2024, 10, 27, 1, 20), CentralEurope()), At(2024, 10, 27, 2, 0));
}

TEST(CronTest, PreviousFireDuringTheRepeatSeesTheFirstPass) {
  // At 02:10 CET (repeat, 01:10 UTC) the wall clock already showed 02:45 CEST at 00:45 UTC.
  EXPECT_EQ(PreviousFire(Parse("45 2 * * *"), At(2024, 10, 27, 1, 10), CentralEurope()),
            At(2024, 10, 27, 0, 45));
}

TEST(CronTest, MidnightSkippedBySpringChangeDoesNotRun) {
  const CronSchedule s = Parse("0 0 * * *");
  // In SouthernMidnight, 2024-09-29 00:00 local (-4) jumps to 01:00 (-3): no midnight that day.
  EXPECT_EQ(NextFire(s, At(2024, 9, 28, 5), SouthernMidnight()), At(2024, 9, 30, 3));
}

// ---------------------------------------------------------------------------------------------
// DecideSchedule

TEST(CronTest, NeverRunPolicyWaitsForTheFirstFireAfterItWasSeen) {
  const CronSchedule s = Parse("0 * * * *");
  const ScheduleDecision d =
      DecideSchedule(s, UtcZone(), std::nullopt, At(2024, 5, 1, 10, 30), At(2024, 5, 1, 10, 45));
  EXPECT_EQ(d, (ScheduleDecision{false, std::nullopt, At(2024, 5, 1, 11)}));
}

TEST(CronTest, NeverRunPolicyIsDueOnceAFireHasPassed) {
  const CronSchedule s = Parse("0 * * * *");
  const ScheduleDecision d =
      DecideSchedule(s, UtcZone(), std::nullopt, At(2024, 5, 1, 10, 30), At(2024, 5, 1, 11, 5));
  EXPECT_EQ(d, (ScheduleDecision{true, At(2024, 5, 1, 11), At(2024, 5, 1, 12)}));
}

TEST(CronTest, DueExactlyAtTheFireTime) {
  const CronSchedule s = Parse("0 2 * * *");
  const ScheduleDecision d =
      DecideSchedule(s, UtcZone(), At(2024, 5, 1, 2), At(2024, 1, 1), At(2024, 5, 2, 2));
  EXPECT_EQ(d, (ScheduleDecision{true, At(2024, 5, 2, 2), At(2024, 5, 3, 2)}));
}

TEST(CronTest, ControllerDownForAYearRunsOnceForTheLatestSlot) {
  const CronSchedule s = Parse("* * * * *");
  const sys_seconds now = At(2025, 1, 1, 12, 34, 56);
  const ScheduleDecision d = DecideSchedule(s, UtcZone(), At(2024, 1, 1), At(2023, 1, 1), now);
  EXPECT_EQ(d, (ScheduleDecision{true, At(2025, 1, 1, 12, 34), At(2025, 1, 1, 12, 35)}));
  // Recording the slot means the same instant is not due again.
  const ScheduleDecision again = DecideSchedule(s, UtcZone(), d.slot, At(2023, 1, 1), now);
  EXPECT_EQ(again, (ScheduleDecision{false, std::nullopt, At(2025, 1, 1, 12, 35)}));
}

TEST(CronTest, SlotIsTheLatestFireNotTheFirstMissedOne) {
  const CronSchedule s = Parse("0 */6 * * *");
  const ScheduleDecision d =
      DecideSchedule(s, UtcZone(), At(2024, 5, 1, 0), At(2024, 1, 1), At(2024, 5, 3, 13));
  EXPECT_TRUE(d.due);
  EXPECT_EQ(d.slot, At(2024, 5, 3, 12));
  EXPECT_EQ(d.next, At(2024, 5, 3, 18));
}

TEST(CronTest, ScheduleWithNoMoreFiresIsNeverDue) {
  const CronSchedule s = Parse("0 0 0 1 1 ? 2024");
  const ScheduleDecision d =
      DecideSchedule(s, UtcZone(), At(2024, 1, 1), At(2023, 1, 1), At(2024, 6, 1));
  EXPECT_EQ(d, ScheduleDecision{});
}

TEST(CronTest, ClockGoingBackDoesNotRepeatASlot) {
  const CronSchedule s = Parse("0 * * * *");
  // The last slot is ahead of now: nothing is due until the fire after that slot.
  const ScheduleDecision d =
      DecideSchedule(s, UtcZone(), At(2024, 5, 1, 12), At(2024, 1, 1), At(2024, 5, 1, 10, 30));
  EXPECT_EQ(d, (ScheduleDecision{false, std::nullopt, At(2024, 5, 1, 13)}));
}

TEST(CronTest, DecisionUsesThePolicyZone) {
  const CronSchedule s = Parse("0 2 * * *");
  // 02:00 CEST on 2024-05-02 is 00:00 UTC.
  const ScheduleDecision d =
      DecideSchedule(s, CentralEurope(), At(2024, 5, 1, 0), At(2024, 1, 1), At(2024, 5, 2, 0, 10));
  EXPECT_EQ(d, (ScheduleDecision{true, At(2024, 5, 2, 0), At(2024, 5, 3, 0)}));
}

}  // namespace
}  // namespace gitvirt
