#include "gitvirt/store/state_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <utility>

namespace gitvirt {
namespace {

std::string ErrnoText(int error) {
  return std::strerror(error);
}

// The pid the holder wrote, or "" while it has not yet written it (it locks, then writes).
std::string ReadHolder(int fd) {
  char buf[32] = {};
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return {};
  std::string text(buf, static_cast<std::size_t>(n));
  text.erase(std::find_if(text.begin(), text.end(), [](char c) { return c < '0' || c > '9'; }),
             text.end());
  return text;
}

// Replaces the file's content with our pid. Best effort: the lock is what matters; the pid only
// makes the refusal message of another process more helpful.
void WriteHolder(int fd) {
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0) return;
  (void)!::pwrite(fd, pid.data(), pid.size(), 0);
}

// Closes a descriptor that is not (yet) a held lock.
struct OpenFile {
  int fd;
  ~OpenFile() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

Result<StateLock> StateLock::Acquire(const std::string& state_file,
                                     std::chrono::milliseconds wait) {
  std::string lock_path = state_file + ".lock";
  // The state's directory is gitvirt's to make, as terraform makes .terraform/.
  if (const auto dir = std::filesystem::path(state_file).parent_path(); !dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return Fail(ErrorCode::kIo, "cannot create the state directory " + dir.string() + ": " + ec.message());
  }
  OpenFile file{::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644)};
  const int fd = file.fd;
  if (fd < 0) {
    return Fail(ErrorCode::kIo, "cannot open lock file " + lock_path + ": " + ErrnoText(errno));
  }

  const auto deadline = std::chrono::steady_clock::now() + wait;
  // Short first retries catch a holder that is just exiting; then back off to spare the CPU.
  std::chrono::milliseconds pause{5};
  while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    if (errno != EWOULDBLOCK) {
      return Fail(ErrorCode::kIo, "cannot lock " + lock_path + ": " + ErrnoText(errno));
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      const std::string holder = ReadHolder(fd);
      return Fail(ErrorCode::kFailedPrecondition,
                  "state file " + state_file + " is locked by " +
                      (holder.empty() ? std::string("another process") : "process " + holder) +
                      " (another gitvirt serve or apply)");
    }
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(pause, deadline - now));
    pause = std::min(pause * 2, std::chrono::milliseconds{100});
  }
  WriteHolder(fd);
  return StateLock(std::exchange(file.fd, -1), std::move(lock_path));
}

StateLock::StateLock(StateLock&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), lock_path_(std::move(other.lock_path_)) {}

StateLock& StateLock::operator=(StateLock&& other) noexcept {
  if (this != &other) {
    Release();
    fd_ = std::exchange(other.fd_, -1);
    lock_path_ = std::move(other.lock_path_);
  }
  return *this;
}

StateLock::~StateLock() {
  Release();
}

void StateLock::Release() noexcept {
  if (fd_ < 0) return;
  // Emptied while still held, so that a refused process never names a holder that is gone
  // (only a holder that crashed leaves its pid, until the next holder overwrites it).
  (void)!::ftruncate(fd_, 0);
  // Closing drops the flock.
  ::close(std::exchange(fd_, -1));
}

}  // namespace gitvirt
