#pragma once
// Errors are values. Every fallible function in gitvirt returns Result<T>; exceptions from
// libraries are caught at the adapter edge and turned into an Error there.

#include <expected>
#include <string>
#include <utility>

namespace gitvirt {

enum class ErrorCode {
  kInvalidArgument,   // bad input: manifest, config, flag
  kNotFound,          // a domain, volume, job... that does not exist
  kAlreadyExists,
  kFailedPrecondition,  // e.g. a stale plan, a shrink, a protected resource
  kUnsupported,       // the node's driver cannot do this (test driver: no backups)
  kUnavailable,       // connection lost, daemon down: worth a retry
  kTimeout,
  kCancelled,
  kInternal,
  kIo,
};

const char* ErrorCodeName(ErrorCode code);

// An error with the context it happened in ("defining vm web-01 on hv2").
struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
  std::string context;

  // "context: message", or just the message without context.
  std::string ToString() const;
  // Returns a copy with `outer` prepended to the context ("outer: inner").
  Error Wrap(std::string_view outer) const;
  bool Retryable() const { return code == ErrorCode::kUnavailable || code == ErrorCode::kTimeout; }

  friend bool operator==(const Error&, const Error&) = default;
};

template <typename T>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> Fail(ErrorCode code, std::string message, std::string context = {}) {
  return std::unexpected(Error{code, std::move(message), std::move(context)});
}

}  // namespace gitvirt
