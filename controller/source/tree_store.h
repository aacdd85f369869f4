#pragma once
// The exported snapshot trees: "<cache_dir>/trees/<tree id>/", one directory per distinct
// sub_path tree, written once (into a temporary directory renamed into place, so a directory
// that exists is complete) and shared by every commit, source and process with that tree.
//
// An export in use is "touched" (its mtime refreshed) by every GitSource::Fetch/Snapshot that
// returns it; exports nobody touched for `kMaxIdle` are removed when a new one is written.
// Exporting, and that clean-up, happen under an flock on "trees/.lock".
//
// Thread-safety: a TreeStore is a small value; any number of them (threads, processes) may
// work on the same directory. No git here: the caller fills the directory.

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>

#include "gitvirt/core/error.h"

namespace gitvirt::source_internal {

class TreeStore {
 public:
  static constexpr std::chrono::hours kMaxIdle{24};

  // `dir` is "<cache_dir>/trees", absolute.
  TreeStore(std::filesystem::path dir, std::chrono::milliseconds lock_wait)
      : dir_(std::move(dir)), lock_wait_(lock_wait) {}

  std::filesystem::path PathOf(const std::string& tree_id) const { return dir_ / tree_id; }

  // Refreshes the export's mtime. False when it does not exist (any more).
  bool Touch(const std::string& tree_id) const;

  // Makes sure the export of `tree_id` exists. If it does not, calls `fill` with an empty
  // temporary directory to write the tree into, renames it into place and removes idle
  // exports. Returns whether this call wrote it.
  using Fill = std::function<Result<void>(const std::filesystem::path& temp_dir)>;
  Result<bool> Ensure(const std::string& tree_id, const Fill& fill) const;

 private:
  void RemoveIdle(const std::string& keep) const;

  std::filesystem::path dir_;
  std::chrono::milliseconds lock_wait_;
};

// Writes `size` bytes to a new file at `path` (which must not exist), mode 0755 if
// `executable`, else 0644 (less the umask).
Result<void> WriteNewFile(const std::filesystem::path& path, const void* data, std::size_t size,
                          bool executable);

}  // namespace gitvirt::source_internal
