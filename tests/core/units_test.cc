// Sizes with units: exact arithmetic, whole bytes only, overflow refused.
#include "gitvirt/core/units.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>

namespace gitvirt {
namespace {

TEST(UnitsTest, FractionsAreExact) {
  EXPECT_EQ(ParseSize("1.5GiB").value(), 1610612736u);
  EXPECT_EQ(ParseSize("0.5KiB").value(), 512u);
  EXPECT_EQ(ParseSize(".25MiB").value(), 262144u);
  EXPECT_EQ(ParseSize("2.125KB").value(), 2125u);
  EXPECT_EQ(ParseSize("512MiB").value(), 536870912u);
}

TEST(UnitsTest, PartsOfABytePartAreRefused) {
  EXPECT_FALSE(ParseSize("0.3KiB"));           // 307.2 bytes
  EXPECT_FALSE(ParseSize("1.000000001GiB"));   // 1073741825.07 bytes
  EXPECT_FALSE(ParseSize("1.5B"));
}

TEST(UnitsTest, TooLargeIsRefusedNotWrapped) {
  EXPECT_TRUE(ParseSize("16383PiB"));
  EXPECT_FALSE(ParseSize("16384PiB"));                     // 2^64 bytes
  EXPECT_FALSE(ParseSize("16383.999999999PiB"));           // not whole, and close to the edge
  EXPECT_FALSE(ParseSize("18446744073709551616B"));        // 2^64
  EXPECT_EQ(ParseSize("18446744073709551615B").value(), 18446744073709551615u);
  EXPECT_FALSE(ParseSize("18446744073709551615.5KiB"));
}

TEST(UnitsTest, FractionsAgreeWithWideArithmetic) {
  // The reference: the same sum in 128 bits (a GCC extension, fine in a test's oracle).
  __extension__ typedef unsigned __int128 Wide;
  std::mt19937_64 random(7);
  const std::pair<const char*, std::uint64_t> units[] = {{"KiB", 1ULL << 10}, {"MiB", 1ULL << 20},
                                                         {"GiB", 1ULL << 30}, {"TiB", 1ULL << 40},
                                                         {"PiB", 1ULL << 50}, {"KB", 1000ULL},
                                                         {"GB", 1000000000ULL}, {"TB", 1000000000000ULL}};
  for (int n = 0; n < 20000; ++n) {
    const auto& [unit, factor] = units[random() % std::size(units)];
    const std::uint64_t whole = random() % 100000;
    const int digits = 1 + static_cast<int>(random() % 9);
    std::uint64_t scale = 1;
    for (int k = 0; k < digits; ++k) scale *= 10;
    const std::uint64_t frac = random() % scale;
    std::string frac_text = std::to_string(frac);
    frac_text.insert(0, static_cast<std::size_t>(digits) - frac_text.size(), '0');
    const std::string text = std::to_string(whole) + "." + frac_text + unit;
    const Wide product = static_cast<Wide>(frac) * factor;
    const Wide total = static_cast<Wide>(whole) * factor + product / scale;
    auto parsed = ParseSize(text);
    if (product % scale != 0 || total > std::numeric_limits<std::uint64_t>::max()) {
      EXPECT_FALSE(parsed) << text;
    } else {
      ASSERT_TRUE(parsed) << text << ": " << parsed.error().ToString();
      EXPECT_EQ(*parsed, static_cast<std::uint64_t>(total)) << text;
    }
  }
}

}  // namespace
}  // namespace gitvirt
