#include "gitvirt/api/tokens.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <fstream>

namespace gitvirt {
namespace {

std::string_view Trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t\r\n");
  return text.substr(first, last - first + 1);
}

}  // namespace

BearerTokens::Digest BearerTokens::Hash(std::string_view text) {
  Digest digest{};
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest.data());
  return digest;
}

Result<BearerTokens> BearerTokens::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Fail(ErrorCode::kInvalidArgument, "cannot read the tokens file", path);
  }
  std::vector<std::string> tokens;
  std::string line;
  while (std::getline(in, line)) {
    const std::string_view token = Trim(line);
    if (token.empty() || token.front() == '#') continue;
    tokens.emplace_back(token);
  }
  if (in.bad()) return Fail(ErrorCode::kIo, "error reading the tokens file", path);
  if (tokens.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "the tokens file holds no token", path);
  }
  return FromList(tokens);
}

BearerTokens BearerTokens::FromList(const std::vector<std::string>& tokens) {
  BearerTokens result;
  for (const std::string& token : tokens) {
    if (!token.empty()) result.digests_.push_back(Hash(token));
  }
  return result;
}

bool BearerTokens::Accepts(std::string_view token) const {
  if (digests_.empty() || token.empty()) return false;
  const Digest presented = Hash(token);
  // Every configured token is compared, so the time does not tell which one matched.
  int matches = 0;
  for (const Digest& digest : digests_) {
    matches |= CRYPTO_memcmp(digest.data(), presented.data(), digest.size()) == 0 ? 1 : 0;
  }
  return matches != 0;
}

}  // namespace gitvirt
