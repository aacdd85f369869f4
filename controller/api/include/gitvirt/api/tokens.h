#pragma once
// Bearer tokens for the status API. The tokens file holds one token per line; blank lines and
// lines starting with `#` are skipped, surrounding spaces trimmed. Only SHA-256 digests of the
// tokens are kept, and a presented token is compared with every one of them in constant time
// (CRYPTO_memcmp over digests of equal length), so neither the content nor the length of a
// configured token leaks through timing.
//
// Immutable after construction; Accepts() may be called from any thread.

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "gitvirt/core/error.h"

namespace gitvirt {

class BearerTokens {
 public:
  // No tokens: authentication disabled.
  BearerTokens() = default;

  // Fails when the file cannot be read or holds no token (an empty tokens file would otherwise
  // silently leave the API open, or locked forever).
  static Result<BearerTokens> Load(const std::string& path);
  static BearerTokens FromList(const std::vector<std::string>& tokens);

  bool enabled() const { return !digests_.empty(); }
  std::size_t size() const { return digests_.size(); }

  // Whether `token` is one of the configured tokens. Always false when disabled.
  bool Accepts(std::string_view token) const;

 private:
  using Digest = std::array<unsigned char, 32>;
  static Digest Hash(std::string_view text);
  std::vector<Digest> digests_;
};

}  // namespace gitvirt
