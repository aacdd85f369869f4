// IANA zones from the system tz database, as the policies' timeZone uses them.
#include "gitvirt/engine/timezone_db.h"

#include <gtest/gtest.h>

#include "gitvirt/core/cron.h"

namespace gitvirt {
namespace {

using std::chrono::hours;
using std::chrono::seconds;

TEST(LoadTimeZone, UtcAndAliases) {
  for (const char* name : {"", "UTC", "Etc/UTC"}) {
    auto tz = LoadTimeZone(name);
    ASSERT_TRUE(tz) << name;
    EXPECT_EQ((*tz)->OffsetAt(std::chrono::sys_seconds{seconds{1772323200}}), seconds{0});
  }
}

TEST(LoadTimeZone, AmsterdamFollowsDaylightSavingTime) {
  auto tz = LoadTimeZone("Europe/Amsterdam");
  ASSERT_TRUE(tz) << tz.error().ToString();
  EXPECT_EQ((*tz)->Name(), "Europe/Amsterdam");
  // 2026-03-29T00:59:59Z is CET (+1), 01:00:00Z is CEST (+2); back on 2026-10-25T01:00Z.
  const std::chrono::sys_seconds change{seconds{1774746000}};
  EXPECT_EQ((*tz)->OffsetAt(change - seconds(1)), hours(1));
  EXPECT_EQ((*tz)->OffsetAt(change), hours(2));
  EXPECT_EQ((*tz)->OffsetAt(std::chrono::sys_seconds{seconds{1792890000}}), hours(1));
  // Cron evaluated in the zone: 02:00 local on 2026-03-30 is 00:00Z.
  auto cron = ParseCron("0 2 * * *");
  ASSERT_TRUE(cron);
  auto next = NextFire(*cron, change, **tz);
  ASSERT_TRUE(next);
  EXPECT_EQ(*next, std::chrono::sys_seconds{seconds{1774828800}});
}

TEST(LoadTimeZone, UnknownZoneIsNotFound) {
  auto tz = LoadTimeZone("Mars/Olympus_Mons");
  ASSERT_FALSE(tz);
  EXPECT_EQ(tz.error().code, ErrorCode::kNotFound);
  EXPECT_NE(tz.error().message.find("Mars/Olympus_Mons"), std::string::npos);
}

}  // namespace
}  // namespace gitvirt
