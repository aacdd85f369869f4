#pragma once
// An exclusive flock(2) on a lock file, for the processes sharing a cache directory. The lock
// file is created if missing and never deleted (deleting it would let two processes lock two
// different files). The kernel drops the lock when the holder exits, so a crash leaves nothing
// stale. The descriptor is close-on-exec.
//
// Thread-safety: a FileLock is owned by one thread. Two FileLocks on the same file exclude
// each other even within one process (each has its own open file description).
// Lifetime: held from a successful Acquire until destroyed.

#include <chrono>
#include <string>

#include "gitvirt/core/error.h"

namespace gitvirt::source_internal {

class FileLock {
 public:
  // Waits up to `wait` for the lock; `what` names what is locked in the error
  // ("git mirror /var/cache/gitvirt/git/m-1a2b"). kUnavailable when the wait runs out (worth a
  // retry), kIo when the lock file cannot be opened.
  static Result<FileLock> Acquire(const std::string& path, std::chrono::milliseconds wait,
                                  const std::string& what);

  FileLock(FileLock&& other) noexcept;
  FileLock& operator=(FileLock&& other) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  ~FileLock();

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace gitvirt::source_internal
