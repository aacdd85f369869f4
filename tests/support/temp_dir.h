// A uniquely named directory under /tmp that is removed, with everything in it, when the
// object goes away (unless GITVIRT_KEEP_TEMP is set, for post-mortems). Tests use it for scratch
// files, fake repositories and daemon state.
#pragma once

#include <filesystem>
#include <string_view>

namespace gitvirt::testing {

class TempDir {
 public:
  // Creates /tmp/<prefix>-XXXXXX (mode 0700). Throws std::system_error on failure.
  // Keep the prefix short when the directory will hold unix sockets (108-byte limit).
  explicit TempDir(std::string_view prefix = "gitvirt-test");
  ~TempDir();

  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  TempDir(TempDir&& other) noexcept;
  TempDir& operator=(TempDir&& other) noexcept;

  const std::filesystem::path& path() const { return path_; }

  // Keeps the directory on disk when this object is destroyed (for post-mortems).
  void Keep() { keep_ = true; }

 private:
  void Remove() noexcept;

  std::filesystem::path path_;
  bool keep_ = false;
};

}  // namespace gitvirt::testing
