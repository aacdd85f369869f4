#include "gitvirt/core/timezone.h"

#include <gtest/gtest.h>

namespace gitvirt {
namespace {

using namespace std::chrono_literals;
using std::chrono::local_days;
using std::chrono::local_seconds;
using std::chrono::seconds;
using std::chrono::sys_days;
using std::chrono::sys_seconds;

constexpr sys_seconds kChange = sys_days{std::chrono::year{2024} / 3 / 31} + 1h;

// A zone with exactly one offset change, at kChange: the smallest thing that has a gap or a fold.
class OneChangeZone final : public TimeZone {
 public:
  OneChangeZone(seconds before, seconds after) : before_(before), after_(after) {}
  std::string_view Name() const override { return "Test/OneChange"; }
  seconds OffsetAt(sys_seconds utc) const override { return utc < kChange ? before_ : after_; }

 private:
  seconds before_;
  seconds after_;
};

local_seconds Local(sys_seconds utc_shaped) {
  return local_seconds{utc_shaped.time_since_epoch()};
}

TEST(TimeZoneTest, UtcZoneIsNamedUtcWithZeroOffset) {
  EXPECT_EQ(UtcZone().Name(), "UTC");
  EXPECT_EQ(UtcZone().OffsetAt(kChange), 0s);
  EXPECT_EQ(&UtcZone(), &UtcZone());
}

TEST(TimeZoneTest, FixedOffsetZoneKeepsItsNameAndOffset) {
  const auto zone = FixedOffsetZone("Asia/Kolkata-ish", 5h + 30min);
  EXPECT_EQ(zone->Name(), "Asia/Kolkata-ish");
  EXPECT_EQ(zone->OffsetAt(kChange), 5h + 30min);
  EXPECT_EQ(zone->OffsetAt(sys_seconds{}), 5h + 30min);
}

TEST(TimeZoneTest, ToLocalAddsTheOffsetAtThatInstant) {
  const OneChangeZone zone(1h, 2h);
  EXPECT_EQ(ToLocal(zone, kChange - 1s), Local(kChange + 1h - 1s));
  EXPECT_EQ(ToLocal(zone, kChange), Local(kChange + 2h));
  const auto minus_five = FixedOffsetZone("m5", -5h);
  EXPECT_EQ(ToLocal(*minus_five, kChange), Local(kChange - 5h));
}

TEST(TimeZoneTest, ResolveLocalInFixedZoneIsUnique) {
  const auto zone = FixedOffsetZone("p3", 3h);
  const LocalTimeInfo info = ResolveLocal(*zone, Local(kChange));
  EXPECT_EQ(info.kind, LocalTimeInfo::Kind::kUnique);
  EXPECT_EQ(info.earliest, kChange - 3h);
  EXPECT_EQ(info.latest, kChange - 3h);
}

TEST(TimeZoneTest, ForwardChangeLeavesAGapOfLocalTimes) {
  const OneChangeZone zone(1h, 2h);  // at 01:00 UTC local jumps from 02:00 to 03:00
  for (const seconds into_gap : {seconds{0}, seconds{1}, seconds{30min}, seconds{1h - 1s}}) {
    const LocalTimeInfo info = ResolveLocal(zone, Local(kChange + 1h + into_gap));
    EXPECT_EQ(info.kind, LocalTimeInfo::Kind::kGap) << into_gap.count();
    EXPECT_EQ(info.transition, kChange);
    EXPECT_EQ(info.offset_before, 1h);
    EXPECT_EQ(info.offset_after, 2h);
  }
  const LocalTimeInfo before = ResolveLocal(zone, Local(kChange + 1h - 1s));
  EXPECT_EQ(before.kind, LocalTimeInfo::Kind::kUnique);
  EXPECT_EQ(before.earliest, kChange - 1s);
  const LocalTimeInfo after = ResolveLocal(zone, Local(kChange + 2h));
  EXPECT_EQ(after.kind, LocalTimeInfo::Kind::kUnique);
  EXPECT_EQ(after.earliest, kChange);
}

TEST(TimeZoneTest, BackwardChangeMakesAFoldWithBothInstants) {
  const OneChangeZone zone(2h, 1h);  // at 01:00 UTC local falls back from 03:00 to 02:00
  for (const seconds into_fold : {seconds{0}, seconds{1}, seconds{30min}, seconds{1h - 1s}}) {
    const local_seconds local = Local(kChange + 1h + into_fold);
    const LocalTimeInfo info = ResolveLocal(zone, local);
    EXPECT_EQ(info.kind, LocalTimeInfo::Kind::kFold) << into_fold.count();
    EXPECT_EQ(info.earliest, kChange - 1h + into_fold);
    EXPECT_EQ(info.latest, kChange + into_fold);
    EXPECT_EQ(ToLocal(zone, info.earliest), local);
    EXPECT_EQ(ToLocal(zone, info.latest), local);
    EXPECT_EQ(info.transition, kChange);
  }
  EXPECT_EQ(ResolveLocal(zone, Local(kChange + 1h - 1s)).kind, LocalTimeInfo::Kind::kUnique);
  const LocalTimeInfo after = ResolveLocal(zone, Local(kChange + 2h));
  EXPECT_EQ(after.kind, LocalTimeInfo::Kind::kUnique);
  EXPECT_EQ(after.earliest, kChange + 1h);
}

TEST(TimeZoneTest, NegativeOffsetsResolveLikePositiveOnes) {
  const OneChangeZone zone(-4h, -3h);  // local 21:00 -> 22:00 the day before
  const LocalTimeInfo gap = ResolveLocal(zone, Local(kChange - 4h + 10min));
  EXPECT_EQ(gap.kind, LocalTimeInfo::Kind::kGap);
  EXPECT_EQ(gap.transition, kChange);
  const LocalTimeInfo unique = ResolveLocal(zone, Local(kChange - 2h));
  EXPECT_EQ(unique.kind, LocalTimeInfo::Kind::kUnique);
  EXPECT_EQ(unique.earliest, kChange + 1h);
}

TEST(TimeZoneTest, EveryInstantRoundTripsThroughResolveLocal) {
  for (const auto& [before, after] : {std::pair{1h, 2h}, std::pair{2h, 1h}, std::pair{-8h, -7h},
                                      std::pair{-7h, -8h}, std::pair{10h, -14h}}) {
    const OneChangeZone zone(before, after);
    for (sys_seconds t = kChange - 30h; t < kChange + 30h; t += 7min + 3s) {
      const LocalTimeInfo info = ResolveLocal(zone, ToLocal(zone, t));
      ASSERT_NE(info.kind, LocalTimeInfo::Kind::kGap);
      EXPECT_TRUE(info.earliest == t || info.latest == t)
          << before.count() << "->" << after.count() << " at " << (t - kChange).count();
    }
  }
}

}  // namespace
}  // namespace gitvirt
