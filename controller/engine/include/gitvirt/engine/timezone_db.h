#pragma once
// IANA time zones from the system's tz database (/usr/share/zoneinfo), through Howard
// Hinnant's date library: the TimeZone the core's cron and snapshot naming take.

#include <memory>
#include <string_view>

#include "gitvirt/core/error.h"
#include "gitvirt/core/timezone.h"

namespace gitvirt {

// "UTC" (and "" and "Etc/UTC") give the UTC zone; anything else must be in the tz database
// ("Europe/Amsterdam"). kNotFound for an unknown name. The zone is immutable (thread-safe).
Result<std::unique_ptr<TimeZone>> LoadTimeZone(std::string_view iana_name);

}  // namespace gitvirt
