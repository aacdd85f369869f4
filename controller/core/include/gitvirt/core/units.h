#pragma once
// Sizes ("512MiB", "20GiB", "100GB") and durations ("30s", "1h30m", "7d") as people write them
// in manifests, and back. Pure functions.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "gitvirt/core/error.h"

namespace gitvirt {

using Seconds = std::chrono::seconds;

// Parses "<number><unit>" with IEC units (KiB..PiB), SI units (KB..TB) or B. The number may have
// a fraction ("1.5GiB") when the result is a whole number of bytes. No unit is an error: "2048"
// is ambiguous between MiB and bytes in the seeds, so we make people say which.
Result<std::uint64_t> ParseSize(std::string_view text);

// Shortest exact IEC form: 2147483648 -> "2GiB", 1536MiB -> "1536MiB", 1000 -> "1000B".
std::string FormatSize(std::uint64_t bytes);

// Parses one or more "<integer><unit>" groups, units s m h d w ("1h30m", "7d").
Result<Seconds> ParseDuration(std::string_view text);

// "1h30m", "7d", "0s".
std::string FormatDuration(Seconds d);

inline constexpr std::uint64_t kKiB = 1024;
inline constexpr std::uint64_t kMiB = 1024 * kKiB;
inline constexpr std::uint64_t kGiB = 1024 * kMiB;
inline constexpr std::uint64_t kTiB = 1024 * kGiB;

}  // namespace gitvirt
