#include "gitvirt/core/fingerprint.h"

#include <cstdint>
#include <cstdio>

namespace gitvirt {

std::string Fingerprint(std::string_view bytes) {
  std::uint64_t h = 14695981039346656037ULL;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace gitvirt
