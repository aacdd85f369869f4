#pragma once
// Keeping passwords written into repository URLs out of plans, logs, the journal and the API.
// Pure; thread-safe.

#include <string>
#include <string_view>

namespace gitvirt {

// The URL with the password of its user-info replaced by "***"
// ("https://bot:s3cret@host/r.git" -> "https://bot:***@host/r.git"); anything else unchanged.
// Use it wherever a configured URL is shown, logged or stored.
std::string RedactUrl(std::string_view url);

}  // namespace gitvirt
