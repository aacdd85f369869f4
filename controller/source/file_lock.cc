#include "file_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>
#include <utility>

namespace gitvirt::source_internal {

Result<FileLock> FileLock::Acquire(const std::string& path, std::chrono::milliseconds wait,
                                   const std::string& what) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return Fail(ErrorCode::kIo, "cannot open lock file " + path + ": " + std::strerror(errno));
  }
  FileLock lock(fd);  // closes the descriptor on every early return
  const auto deadline = std::chrono::steady_clock::now() + wait;
  std::chrono::milliseconds pause{2};
  while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    if (errno != EWOULDBLOCK) {
      return Fail(ErrorCode::kIo, "cannot lock " + path + ": " + std::strerror(errno));
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      return Fail(
          ErrorCode::kUnavailable,
          what + " is still locked by another process after " +
              std::to_string(std::chrono::duration_cast<std::chrono::seconds>(wait).count()) +
              "s (lock file " + path + ")");
    }
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(pause, deadline - now));
    pause = std::min(pause * 2, std::chrono::milliseconds{100});
  }
  return lock;
}

FileLock::FileLock(FileLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

FileLock& FileLock::operator=(FileLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the flock
}

}  // namespace gitvirt::source_internal
