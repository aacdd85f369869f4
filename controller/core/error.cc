#include "gitvirt/core/error.h"

namespace gitvirt {

const char* ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "invalid-argument";
    case ErrorCode::kNotFound: return "not-found";
    case ErrorCode::kAlreadyExists: return "already-exists";
    case ErrorCode::kFailedPrecondition: return "failed-precondition";
    case ErrorCode::kUnsupported: return "unsupported";
    case ErrorCode::kUnavailable: return "unavailable";
    case ErrorCode::kTimeout: return "timeout";
    case ErrorCode::kCancelled: return "cancelled";
    case ErrorCode::kInternal: return "internal";
    case ErrorCode::kIo: return "io";
  }
  return "unknown";
}

std::string Error::ToString() const {
  if (context.empty()) return message;
  return context + ": " + message;
}

Error Error::Wrap(std::string_view outer) const {
  Error wrapped = *this;
  if (wrapped.context.empty()) {
    wrapped.context = std::string(outer);
  } else {
    wrapped.context = std::string(outer) + ": " + wrapped.context;
  }
  return wrapped;
}

}  // namespace gitvirt
