#include "libgit2.h"

#include <mutex>

#include "gitvirt/source/redact_url.h"

namespace gitvirt::source_internal {

void EnsureLibgit2() {
  static std::once_flag once;
  std::call_once(once, [] {
    git_libgit2_init();
    git_libgit2_opts(GIT_OPT_SET_USER_AGENT, "gitvirt");
  });
}

std::string LastGitMessage() {
  const git_error* error = git_error_last();
  if (error == nullptr || error->message == nullptr) return "unknown error";
  std::string message = error->message;
  while (!message.empty() && (message.back() == '\n' || message.back() == '.')) message.pop_back();
  return message;
}

Error GitFailure(int code, std::string_view what, bool over_network) {
  const git_error* last = git_error_last();
  const int klass = last != nullptr ? last->klass : GIT_ERROR_NONE;
  ErrorCode error_code = ErrorCode::kInternal;
  if (code == GIT_EAUTH || code == GIT_ECERTIFICATE) {
    error_code = ErrorCode::kFailedPrecondition;
  } else if (code == GIT_ENOTFOUND) {
    error_code = ErrorCode::kNotFound;
  } else if (code == GIT_ELOCKED) {
    error_code = ErrorCode::kUnavailable;
  } else {
    switch (klass) {
      case GIT_ERROR_NET:
      case GIT_ERROR_SSL:
      case GIT_ERROR_SSH:
      case GIT_ERROR_HTTP:
        error_code = ErrorCode::kUnavailable;
        break;
      case GIT_ERROR_OS:
        error_code = over_network ? ErrorCode::kUnavailable : ErrorCode::kIo;
        break;
      case GIT_ERROR_REPOSITORY:
        error_code = ErrorCode::kNotFound;
        break;
      default:
        break;
    }
  }
  std::string message = RedactUrl(std::string(what) + ": " + LastGitMessage());
  return Error{error_code, std::move(message), {}};
}

std::string OidHex(const git_oid& oid) {
  char hex[GIT_OID_HEXSZ + 1] = {};
  git_oid_tostr(hex, sizeof hex, &oid);
  return hex;
}

}  // namespace gitvirt::source_internal
