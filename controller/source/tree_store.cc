#include "tree_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "file_lock.h"

namespace gitvirt::source_internal {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kTempPrefix = ".tmp-";

std::string ErrnoText() {
  return std::strerror(errno);
}

// The entries of `dir`, without throwing (an unreadable directory has none).
std::vector<fs::directory_entry> ListDirectory(const fs::path& dir) {
  std::vector<fs::directory_entry> entries;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    entries.push_back(*it);
  }
  return entries;
}

}  // namespace

bool TreeStore::Touch(const std::string& tree_id) const {
  return ::utimensat(AT_FDCWD, PathOf(tree_id).c_str(), nullptr, 0) == 0;
}

Result<bool> TreeStore::Ensure(const std::string& tree_id, const Fill& fill) const {
  // Touch first: an export that exists and is touched is safe from a clean-up running in
  // another process, which only removes what it finds idle while holding the lock.
  if (Touch(tree_id)) return false;
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) return Fail(ErrorCode::kIo, "cannot create " + dir_.string() + ": " + ec.message());
  auto lock = FileLock::Acquire((dir_ / ".lock").string(), lock_wait_,
                                "snapshot directory " + dir_.string());
  if (!lock) return std::unexpected(lock.error());
  if (Touch(tree_id)) return false;  // another process exported it while we waited

  // Under the lock nobody else is writing, so every temporary directory is a leftover.
  for (const auto& entry : ListDirectory(dir_)) {
    if (entry.path().filename().string().starts_with(kTempPrefix)) fs::remove_all(entry.path(), ec);
  }
  const fs::path temp = dir_ / (std::string(kTempPrefix) + tree_id);
  if (::mkdir(temp.c_str(), 0755) != 0) {
    return Fail(ErrorCode::kIo, "cannot create " + temp.string() + ": " + ErrnoText());
  }
  if (auto filled = fill(temp); !filled) {
    fs::remove_all(temp, ec);
    return std::unexpected(filled.error());
  }
  const fs::path target = PathOf(tree_id);
  if (::rename(temp.c_str(), target.c_str()) != 0) {
    const std::string why = ErrnoText();
    fs::remove_all(temp, ec);
    return Fail(ErrorCode::kIo,
                "cannot rename " + temp.string() + " to " + target.string() + ": " + why);
  }
  RemoveIdle(tree_id);
  return true;
}

void TreeStore::RemoveIdle(const std::string& keep) const {
  const auto cutoff = fs::file_time_type::clock::now() - kMaxIdle;
  std::error_code ec;
  for (const auto& entry : ListDirectory(dir_)) {
    const std::string name = entry.path().filename().string();
    if (name == keep || name.starts_with(".") || !entry.is_directory(ec)) continue;
    const auto modified = fs::last_write_time(entry.path(), ec);
    if (!ec && modified < cutoff) fs::remove_all(entry.path(), ec);
  }
}

Result<void> WriteNewFile(const fs::path& path, const void* data, std::size_t size,
                          bool executable) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                        executable ? 0755 : 0644);
  if (fd < 0) return Fail(ErrorCode::kIo, "cannot create " + path.string() + ": " + ErrnoText());
  const char* bytes = static_cast<const char*>(data);
  std::size_t written = 0;
  while (written < size) {
    const ssize_t n = ::write(fd, bytes + written, size - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string why = ErrnoText();
      ::close(fd);
      return Fail(ErrorCode::kIo, "cannot write " + path.string() + ": " + why);
    }
    written += static_cast<std::size_t>(n);
  }
  // On disk before the directory is renamed into place: after a crash an export that exists
  // must be complete, not a set of empty files.
  if (::fdatasync(fd) != 0) {
    const std::string why = ErrnoText();
    ::close(fd);
    return Fail(ErrorCode::kIo, "cannot write " + path.string() + ": " + why);
  }
  if (::close(fd) != 0) {
    return Fail(ErrorCode::kIo, "cannot write " + path.string() + ": " + ErrnoText());
  }
  return {};
}

}  // namespace gitvirt::source_internal
