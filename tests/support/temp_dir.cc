#include "temp_dir.h"

#include <stdlib.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace gitvirt::testing {

TempDir::TempDir(std::string_view prefix) {
  std::string pattern = "/tmp/";
  pattern.append(prefix);
  pattern.append("-XXXXXX");
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) {
    throw std::system_error(errno, std::generic_category(), "mkdtemp " + pattern);
  }
  path_ = buf.data();
}

TempDir::~TempDir() {
  Remove();
}

TempDir::TempDir(TempDir&& other) noexcept
    : path_(std::exchange(other.path_, {})), keep_(other.keep_) {}

TempDir& TempDir::operator=(TempDir&& other) noexcept {
  if (this != &other) {
    Remove();
    path_ = std::exchange(other.path_, {});
    keep_ = other.keep_;
  }
  return *this;
}

void TempDir::Remove() noexcept {
  if (path_.empty() || keep_) return;
  if (const char* keep = ::getenv("GITVIRT_KEEP_TEMP"); keep != nullptr && *keep) {
    std::fprintf(stderr, "TempDir: kept %s (GITVIRT_KEEP_TEMP)\n", path_.c_str());
    return;
  }
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
  if (ec) {
    std::fprintf(stderr, "TempDir: cannot remove %s: %s\n", path_.c_str(), ec.message().c_str());
  }
  path_.clear();
}

}  // namespace gitvirt::testing
