#pragma once
// A stable 16-hex-digit fingerprint of bytes (64-bit FNV-1a), for change detection, generated
// names and plan staleness: small, stable across platforms and releases, and enough to notice a
// change. Not a cryptographic hash. Pure; thread-safe.

#include <string>
#include <string_view>

namespace gitvirt {

std::string Fingerprint(std::string_view bytes);

}  // namespace gitvirt
