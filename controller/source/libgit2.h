#pragma once
// libgit2 for the source folder: owned handles, one-time initialisation and turning libgit2's
// thread-local "last error" into an Error. Internal to controller/source, the only place that
// includes git2.h.

#include <git2.h>

#include <memory>
#include <string>
#include <string_view>

#include "gitvirt/core/error.h"

namespace gitvirt::source_internal {

// Calls git_libgit2_init once per process (thread-safe); libgit2 stays initialised until exit.
void EnsureLibgit2();

template <auto Free>
struct GitDeleter {
  template <typename T>
  void operator()(T* handle) const noexcept {
    Free(handle);
  }
};

using RepositoryPtr = std::unique_ptr<git_repository, GitDeleter<git_repository_free>>;
using RemotePtr = std::unique_ptr<git_remote, GitDeleter<git_remote_free>>;
using ReferencePtr = std::unique_ptr<git_reference, GitDeleter<git_reference_free>>;
using ReferenceIteratorPtr =
    std::unique_ptr<git_reference_iterator, GitDeleter<git_reference_iterator_free>>;
using ObjectPtr = std::unique_ptr<git_object, GitDeleter<git_object_free>>;
using CommitPtr = std::unique_ptr<git_commit, GitDeleter<git_commit_free>>;
using TreePtr = std::unique_ptr<git_tree, GitDeleter<git_tree_free>>;
using TreeEntryPtr = std::unique_ptr<git_tree_entry, GitDeleter<git_tree_entry_free>>;
using BlobPtr = std::unique_ptr<git_blob, GitDeleter<git_blob_free>>;
using ConfigPtr = std::unique_ptr<git_config, GitDeleter<git_config_free>>;
using OdbPtr = std::unique_ptr<git_odb, GitDeleter<git_odb_free>>;
using RevwalkPtr = std::unique_ptr<git_revwalk, GitDeleter<git_revwalk_free>>;
using PackBuilderPtr = std::unique_ptr<git_packbuilder, GitDeleter<git_packbuilder_free>>;

// Owns the bytes of a git_buf.
class GitBuf {
 public:
  GitBuf() = default;
  ~GitBuf() { git_buf_dispose(&buf_); }
  GitBuf(const GitBuf&) = delete;
  GitBuf& operator=(const GitBuf&) = delete;
  git_buf* get() { return &buf_; }
  std::string str() const { return buf_.ptr ? std::string(buf_.ptr, buf_.size) : std::string(); }

 private:
  git_buf buf_ = GIT_BUF_INIT;
};

// libgit2's message for the last failure on this thread ("unknown error" if none).
std::string LastGitMessage();

// An Error for a failed libgit2 call returning `code`: "<what>: <libgit2's message>", with an
// ErrorCode chosen from the code and error class (network trouble is kUnavailable).
// Passwords in URLs in libgit2's message are replaced by "***". With `over_network`, an
// operating-system error (a refused connection) is kUnavailable too.
Error GitFailure(int code, std::string_view what, bool over_network = false);

std::string OidHex(const git_oid& oid);

}  // namespace gitvirt::source_internal
