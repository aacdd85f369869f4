#include "gitvirt/engine/secrets.h"

#include <crypt.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace gitvirt {

Result<std::string> SecretResolver::Resolve(const SecretRef& ref) const {
  std::string value;
  if (!ref.env.empty()) {
    const char* v = std::getenv(ref.env.c_str());
    if (v == nullptr) {
      return Fail(ErrorCode::kNotFound, "environment variable " + ref.env + " is not set", "secret " + ref.ToString());
    }
    value = v;
  } else {
    std::filesystem::path path(ref.file);
    if (path.is_relative() && !secrets_dir_.empty()) path = std::filesystem::path(secrets_dir_) / path;
    std::ifstream in(path, std::ios::binary);
    if (!in) return Fail(ErrorCode::kNotFound, "cannot read " + path.string(), "secret " + ref.ToString());
    std::ostringstream s;
    s << in.rdbuf();
    value = s.str();
  }
  while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) value.pop_back();
  if (value.empty()) return Fail(ErrorCode::kInvalidArgument, "the secret is empty", "secret " + ref.ToString());
  return value;
}

Result<std::string> HashPassword(const std::string& password, const std::string& salt_input) {
  static constexpr char kAlphabet[] = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(salt_input.data()), salt_input.size(), digest);
  std::string salt = "$6$rounds=5000$";
  for (int i = 0; i < 16; ++i) salt += kAlphabet[digest[i] % 64];
  salt += '$';
  crypt_data data{};
  const char* hash = crypt_r(password.c_str(), salt.c_str(), &data);
  if (hash == nullptr || hash[0] == '*') {
    return Fail(ErrorCode::kInternal, "crypt(3) refused to hash the password");
  }
  return std::string(hash);
}

}  // namespace gitvirt
