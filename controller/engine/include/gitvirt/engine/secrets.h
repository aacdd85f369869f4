#pragma once
// Secrets: read where they are used, from files outside the repository or the environment, and
// never stored, logged, journaled or served. Only SecretRefs travel through plans.

#include <string>

#include "gitvirt/core/error.h"
#include "gitvirt/core/model.h"

namespace gitvirt {

class SecretResolver {
 public:
  // Relative secret files are resolved against `secrets_dir`.
  explicit SecretResolver(std::string secrets_dir) : secrets_dir_(std::move(secrets_dir)) {}

  // The secret's value, without a trailing newline. The error names the reference, never a value.
  Result<std::string> Resolve(const SecretRef& ref) const;

 private:
  std::string secrets_dir_;
};

// SHA-512 crypt(3) ("$6$...") of `password`, with a salt derived from `salt_input` (the VM and
// user name): the same password gives the same hash, so the seed does not change on every
// apply, while equal passwords of different users hash differently.
Result<std::string> HashPassword(const std::string& password, const std::string& salt_input);

}  // namespace gitvirt
