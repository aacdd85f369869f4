#pragma once
// Hot response bodies as sealed in-memory files, so that a session can hand them to the kernel
// with sendfile(2), the way nginx serves a static file: the socket then references the file's
// pages instead of copying every byte out of our heap on every request. That copy is what
// dominates serving a 300 KB resource list (see bench/api_bench.sh). Private to controller/api.
//
// Only bodies that will be sent again (HttpResponse::reusable: cached per snapshot) are worth a
// file. A BodyFile is immutable (memfd sealed against writes) and owned by shared_ptr: a
// session keeps it until its sendfile is over, even if the cache has moved on.
// Thread-safe.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace gitvirt::api_files {

class BodyFile {
 public:
  BodyFile(int fd, std::size_t size) : fd_(fd), size_(size) {}
  ~BodyFile();
  BodyFile(const BodyFile&) = delete;
  BodyFile& operator=(const BodyFile&) = delete;
  int fd() const { return fd_; }
  std::size_t size() const { return size_; }

 private:
  int fd_;
  std::size_t size_;
};

class BodyFiles {
 public:
  explicit BodyFiles(std::size_t capacity = 16, std::size_t min_size = 32 * 1024)
      : capacity_(capacity), min_size_(min_size) {}

  // The file holding exactly *body; null when the body is too small to gain from it or a file
  // cannot be made (no memfd): the caller then writes the body from memory.
  std::shared_ptr<const BodyFile> Get(const std::shared_ptr<const std::string>& body);

 private:
  struct Entry {
    std::weak_ptr<const std::string> body;  // expired: the address may be reused
    std::shared_ptr<const BodyFile> file;
    std::uint64_t last_use = 0;
  };
  void EvictOne();

  std::mutex mutex_;
  std::size_t capacity_;
  std::size_t min_size_;
  std::uint64_t clock_ = 0;
  std::unordered_map<const std::string*, Entry> entries_;
};

}  // namespace gitvirt::api_files
