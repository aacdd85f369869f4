#include "gitvirt/core/units.h"

#include <array>
#include <charconv>
#include <cmath>
#include <limits>
#include <numeric>

namespace gitvirt {
namespace {

struct Unit {
  std::string_view name;
  std::uint64_t factor;
};

constexpr std::array<Unit, 10> kSizeUnits = {{
    {"B", 1},
    {"KiB", kKiB},
    {"MiB", kMiB},
    {"GiB", kGiB},
    {"TiB", kTiB},
    {"PiB", kTiB * 1024},
    {"KB", 1000ULL},
    {"MB", 1000ULL * 1000},
    {"GB", 1000ULL * 1000 * 1000},
    {"TB", 1000ULL * 1000 * 1000 * 1000},
}};

std::unexpected<Error> SizeError(std::string_view text, std::string_view why) {
  return Fail(ErrorCode::kInvalidArgument,
              "expected a size with a unit such as 2GiB or 512MiB (" + std::string(why) +
                  "), got \"" + std::string(text) + "\"");
}

}  // namespace

Result<std::uint64_t> ParseSize(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) {
    ++i;
  }
  const std::string_view number = text.substr(0, i);
  const std::string_view unit = text.substr(i);
  if (number.empty()) return SizeError(text, "no number");
  if (unit.empty()) return SizeError(text, "no unit");
  const Unit* found = nullptr;
  for (const Unit& u : kSizeUnits) {
    if (u.name == unit) found = &u;
  }
  if (found == nullptr) return SizeError(text, "unknown unit \"" + std::string(unit) + "\"");

  const std::size_t dot = number.find('.');
  std::uint64_t whole = 0;
  if (dot == std::string_view::npos) {
    auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), whole);
    if (ec != std::errc() || ptr != number.data() + number.size()) {
      return SizeError(text, "bad number");
    }
    if (whole > std::numeric_limits<std::uint64_t>::max() / found->factor) {
      return SizeError(text, "too large");
    }
    return whole * found->factor;
  }
  // A fraction: exact arithmetic on the digits so "1.5GiB" is exactly 1610612736 bytes.
  const std::string_view int_part = number.substr(0, dot);
  const std::string_view frac_part = number.substr(dot + 1);
  if (frac_part.empty() || frac_part.find('.') != std::string_view::npos || frac_part.size() > 9) {
    return SizeError(text, "bad number");
  }
  if (!int_part.empty()) {
    auto [ptr, ec] = std::from_chars(int_part.data(), int_part.data() + int_part.size(), whole);
    if (ec != std::errc() || ptr != int_part.data() + int_part.size()) {
      return SizeError(text, "bad number");
    }
  }
  std::uint64_t frac = 0;
  auto [frac_end, frac_ec] = std::from_chars(frac_part.data(), frac_part.data() + frac_part.size(), frac);
  if (frac_ec != std::errc() || frac_end != frac_part.data() + frac_part.size()) return SizeError(text, "bad number");
  std::uint64_t scale = 1;  // 10^digits, at most 10^9
  for (std::size_t k = 0; k < frac_part.size(); ++k) scale *= 10;
  // frac/scale of the unit must be whole bytes. With g = gcd(factor, scale), frac * factor is a
  // multiple of scale exactly when frac is a multiple of scale/g (factor/g and scale/g share no
  // factor), and the bytes are then (frac / (scale/g)) * (factor/g), at most factor: no
  // intermediate product can overflow.
  const std::uint64_t g = std::gcd(found->factor, scale);
  if (frac % (scale / g) != 0) return SizeError(text, "not a whole number of bytes");
  const std::uint64_t frac_bytes = (frac / (scale / g)) * (found->factor / g);
  if (whole > (std::numeric_limits<std::uint64_t>::max() - frac_bytes) / found->factor) {
    return SizeError(text, "too large");
  }
  return whole * found->factor + frac_bytes;
}

std::string FormatSize(std::uint64_t bytes) {
  static constexpr std::array<Unit, 6> kIec = {{{"PiB", kTiB * 1024},
                                                {"TiB", kTiB},
                                                {"GiB", kGiB},
                                                {"MiB", kMiB},
                                                {"KiB", kKiB},
                                                {"B", 1}}};
  if (bytes == 0) return "0B";
  for (const Unit& u : kIec) {
    if (bytes % u.factor == 0) return std::to_string(bytes / u.factor) + std::string(u.name);
  }
  return std::to_string(bytes) + "B";
}

Result<Seconds> ParseDuration(std::string_view text) {
  if (text.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "expected a duration such as 30s, 5m or 7d, got \"\"");
  }
  std::int64_t total = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t start = i;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
    std::int64_t value = 0;
    auto [ptr, ec] = std::from_chars(text.data() + start, text.data() + i, value);
    if (start == i || ec != std::errc() || i == text.size()) {
      return Fail(ErrorCode::kInvalidArgument,
                  "expected a duration such as 30s, 5m, 1h30m or 7d, got \"" + std::string(text) +
                      "\"");
    }
    std::int64_t factor = 0;
    switch (text[i]) {
      case 's': factor = 1; break;
      case 'm': factor = 60; break;
      case 'h': factor = 3600; break;
      case 'd': factor = 86400; break;
      case 'w': factor = 7 * 86400; break;
      default:
        return Fail(ErrorCode::kInvalidArgument,
                    "unknown duration unit '" + std::string(1, text[i]) +
                        "' (use s, m, h, d or w), got \"" + std::string(text) + "\"");
    }
    ++i;
    if (value > std::numeric_limits<std::int64_t>::max() / factor / 2) {
      return Fail(ErrorCode::kInvalidArgument, "duration too large: \"" + std::string(text) + "\"");
    }
    total += value * factor;
  }
  return Seconds(total);
}

std::string FormatDuration(Seconds d) {
  std::int64_t s = d.count();
  if (s == 0) return "0s";
  std::string out;
  if (s < 0) {
    out = "-";
    s = -s;
  }
  static constexpr std::array<std::pair<std::int64_t, char>, 4> kParts = {
      {{86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}}};
  for (auto [factor, unit] : kParts) {
    if (s >= factor) {
      out += std::to_string(s / factor);
      out += unit;
      s %= factor;
    }
  }
  return out;
}

}  // namespace gitvirt
