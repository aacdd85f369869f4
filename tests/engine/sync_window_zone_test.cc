// Sync windows in a real time zone (the tz database), across daylight-saving changes: a window
// that spans midnight and the night the clocks go back, and one whose opening time does not
// exist on the night they go forward.
#include <gtest/gtest.h>

#include "gitvirt/core/sync_window.h"
#include "gitvirt/engine/timezone_db.h"

namespace gitvirt {
namespace {

using std::chrono::hours;
using std::chrono::minutes;

TimePoint At(int y, unsigned mo, unsigned d, int h, int mi = 0) {
  return TimePoint{std::chrono::sys_days{std::chrono::year{y} / std::chrono::month{mo} / std::chrono::day{d}}} +
         hours(h) + minutes(mi);
}

class SyncWindowZone : public ::testing::Test {
 protected:
  void SetUp() override {
    auto tz = LoadTimeZone("Europe/Berlin");
    ASSERT_TRUE(tz) << tz.error().ToString();
    berlin_ = std::move(*tz);
  }
  WindowState Evaluate(const char* schedule, Seconds duration, TimePoint now) {
    auto cron = ParseCron(schedule);
    EXPECT_TRUE(cron);
    return EvaluateWindow(*cron, duration, now, *berlin_);
  }
  std::unique_ptr<TimeZone> berlin_;
};

// 2026-10-25: 03:00 CEST becomes 02:00 CET at 01:00 UTC. A 4h window opened at 23:00 CEST
// (21:00 UTC) lasts four real hours, across midnight and the change: until 01:00 UTC.
TEST_F(SyncWindowZone, SpansMidnightAndTheNightClocksGoBack) {
  WindowState s = Evaluate("0 23 * * *", hours(4), At(2026, 10, 25, 0, 30));
  EXPECT_TRUE(s.active);
  EXPECT_EQ(s.since, At(2026, 10, 24, 21));
  EXPECT_EQ(s.until, At(2026, 10, 25, 1));
  s = Evaluate("0 23 * * *", hours(4), At(2026, 10, 25, 1));
  EXPECT_FALSE(s.active);
  // The next opening is 23:00 CET, an hour later in UTC than the day before.
  EXPECT_EQ(s.until, At(2026, 10, 25, 22));
}

// 2026-03-29: 02:00 CET becomes 03:00 CEST at 01:00 UTC. A window opened at 23:00 CET the
// evening before (22:00 UTC) for 4h closes at 02:00 UTC, 04:00 local summer time.
TEST_F(SyncWindowZone, SpansMidnightAndTheNightClocksGoForward) {
  WindowState s = Evaluate("0 23 * * *", hours(4), At(2026, 3, 29, 1, 30));
  EXPECT_TRUE(s.active);
  EXPECT_EQ(s.since, At(2026, 3, 28, 22));
  EXPECT_EQ(s.until, At(2026, 3, 29, 2));
}

// 02:30 local does not exist on 2026-03-29: the window does not open that night (as the cron
// schedules of policies); the next opening is 02:30 CEST the day after.
TEST_F(SyncWindowZone, AnOpeningTheClocksSkipDoesNotHappen) {
  WindowState s = Evaluate("30 2 * * *", hours(1), At(2026, 3, 29, 1, 0));
  EXPECT_FALSE(s.active);
  EXPECT_EQ(s.until, At(2026, 3, 30, 0, 30));
}

// The zone lookup the session gives the planner: a window in Europe/Berlin blocks until the
// UTC instant its local opening falls on.
TEST_F(SyncWindowZone, WindowsResolveTheirZones) {
  SyncWindow w;
  w.meta.name = "office-hours";
  w.spec.type = SyncWindowType::kAllow;
  w.spec.schedule = "0 9 * * 1-5";
  w.spec.duration = hours(8);
  w.spec.time_zone = "Europe/Berlin";
  w.spec.selector.all = true;
  const TimeZone* berlin = berlin_.get();
  auto windows = SyncWindows::Evaluate({w}, At(2026, 12, 5, 12),  // a Saturday
                                       [&](std::string_view name) { return name == "Europe/Berlin" ? berlin : nullptr; });
  VirtualMachine vm;
  vm.meta.name = "x";
  auto block = windows.Blocks(vm);
  ASSERT_TRUE(block);
  EXPECT_EQ(block->Reason(), "blocked by window office-hours until 2026-12-07T08:00:00Z");
}

}  // namespace
}  // namespace gitvirt
