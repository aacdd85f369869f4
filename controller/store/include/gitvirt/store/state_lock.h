#pragma once
// The one-writer-per-state-file lock: `serve` and `apply` hold it for as long as they may run
// jobs, so that two controllers never execute plans against the same journal. Readers
// (`gitvirt get`, `jobs`) do not take it.
//
// It is an exclusive flock(2) on "<state_file>.lock" (created if missing, never deleted: deleting
// a lock file lets two processes lock two different files). The holder writes its pid into the
// file so that a refused process can say who holds it. The kernel drops the lock when the holder
// exits or is killed, so a crash never leaves a stale lock. The descriptor is close-on-exec: a
// child process started with exec does not keep the lock alive.
//
// Thread-safety: a StateLock is a value owned by one thread at a time; Acquire may be called from
// any thread. Lifetime: the lock is held from a successful Acquire until the StateLock (or the
// one it was moved into) is destroyed. Moving leaves the source empty (holding nothing).

#include <chrono>
#include <string>

#include "gitvirt/core/error.h"

namespace gitvirt {

class StateLock {
 public:
  // Takes the lock, retrying until `wait` has passed (zero: try once). Fails with
  // kFailedPrecondition naming the holder's pid when another process keeps it, or kIo when the
  // lock file cannot be opened (a missing directory, no permission).
  static Result<StateLock> Acquire(const std::string& state_file, std::chrono::milliseconds wait);

  StateLock(StateLock&& other) noexcept;
  StateLock& operator=(StateLock&& other) noexcept;
  StateLock(const StateLock&) = delete;
  StateLock& operator=(const StateLock&) = delete;
  ~StateLock();

  bool held() const { return fd_ >= 0; }
  // "<state_file>.lock"
  const std::string& lock_path() const { return lock_path_; }

 private:
  StateLock(int fd, std::string lock_path) : fd_(fd), lock_path_(std::move(lock_path)) {}
  void Release() noexcept;

  int fd_ = -1;  // the locked descriptor; this class is its RAII owner
  std::string lock_path_;
};

}  // namespace gitvirt
