#include "body_files.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>

namespace gitvirt::api_files {
namespace {

// A sealed memfd with the bytes of `body`; -1 on any failure.
int MakeSealedFile(const std::string& body) {
  const int fd = ::memfd_create("gitvirt-response", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return -1;
  std::size_t written = 0;
  while (written < body.size()) {
    const ssize_t n = ::write(fd, body.data() + written, body.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      return -1;
    }
    written += static_cast<std::size_t>(n);
  }
  // Sealed: no one can change what a session is in the middle of sending.
  if (::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

BodyFile::~BodyFile() {
  ::close(fd_);
}

std::shared_ptr<const BodyFile> BodyFiles::Get(const std::shared_ptr<const std::string>& body) {
  if (!body || body->size() < min_size_) return nullptr;
  std::lock_guard lock(mutex_);
  ++clock_;
  const auto it = entries_.find(body.get());
  if (it != entries_.end()) {
    if (it->second.body.lock() == body) {
      it->second.last_use = clock_;
      return it->second.file;
    }
    entries_.erase(it);  // a newer body at the address of a freed one
  }
  const int fd = MakeSealedFile(*body);
  if (fd < 0) return nullptr;
  auto file = std::make_shared<const BodyFile>(fd, body->size());
  if (entries_.size() >= capacity_) EvictOne();
  entries_[body.get()] = Entry{body, file, clock_};
  return file;
}

void BodyFiles::EvictOne() {
  auto victim = entries_.end();
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->second.body.expired()) {
      victim = it;
      break;
    }
    if (victim == entries_.end() || it->second.last_use < victim->second.last_use) victim = it;
  }
  if (victim != entries_.end()) entries_.erase(victim);
}

}  // namespace gitvirt::api_files
