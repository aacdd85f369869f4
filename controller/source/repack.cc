#include "repack.h"

#include <string>
#include <vector>

#include "libgit2.h"

namespace gitvirt::source_internal {
namespace fs = std::filesystem;

namespace {

// "pack-<hex>" of every pack in the directory.
std::vector<std::string> PackNames(const fs::path& pack_dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(pack_dir, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& path = it->path();
    if (path.extension() == ".pack" && path.stem().string().starts_with("pack-")) {
      names.push_back(path.stem().string());
    }
  }
  return names;
}

Result<void> InsertReachable(git_packbuilder* builder, git_repository* repo) {
  git_revwalk* raw_walk = nullptr;
  if (int rc = git_revwalk_new(&raw_walk, repo); rc != 0) {
    return std::unexpected(GitFailure(rc, "repacking the mirror"));
  }
  RevwalkPtr walk(raw_walk);
  // Every commit of every reference (references to non-commits are skipped here)...
  if (int rc = git_revwalk_push_glob(walk.get(), "refs/*"); rc != 0) {
    return std::unexpected(GitFailure(rc, "repacking the mirror"));
  }
  if (int rc = git_packbuilder_insert_walk(builder, walk.get()); rc != 0) {
    return std::unexpected(GitFailure(rc, "repacking the mirror"));
  }
  // ...and what the tags point at: annotated tag objects, tagged trees and blobs.
  git_reference_iterator* raw_iterator = nullptr;
  if (int rc = git_reference_iterator_glob_new(&raw_iterator, repo, "refs/tags/*"); rc != 0) {
    return std::unexpected(GitFailure(rc, "repacking the mirror"));
  }
  ReferenceIteratorPtr iterator(raw_iterator);
  git_reference* raw_ref = nullptr;
  while (git_reference_next(&raw_ref, iterator.get()) == 0) {
    ReferencePtr ref(raw_ref);
    const git_oid* target = git_reference_target(ref.get());
    if (target == nullptr) continue;  // symbolic
    if (int rc = git_packbuilder_insert_recur(builder, target, nullptr); rc != 0) {
      return std::unexpected(GitFailure(rc, "repacking the mirror"));
    }
  }
  return {};
}

}  // namespace

Result<bool> RepackIfNeeded(git_repository* repo, const fs::path& mirror, int max_packs) {
  const fs::path pack_dir = mirror / "objects" / "pack";
  const std::vector<std::string> before = PackNames(pack_dir);
  if (static_cast<int>(before.size()) <= max_packs) return false;

  git_packbuilder* raw = nullptr;
  if (int rc = git_packbuilder_new(&raw, repo); rc != 0) {
    return std::unexpected(GitFailure(rc, "repacking the mirror"));
  }
  PackBuilderPtr builder(raw);
  git_packbuilder_set_threads(builder.get(), 1);
  if (auto inserted = InsertReachable(builder.get(), repo); !inserted) {
    return std::unexpected(inserted.error());
  }
  if (int rc = git_packbuilder_write(builder.get(), pack_dir.c_str(), 0, nullptr, nullptr);
      rc != 0) {
    return std::unexpected(GitFailure(rc, "repacking the mirror"));
  }
  const std::string kept = std::string("pack-") + git_packbuilder_name(builder.get());
  std::error_code ec;
  for (const std::string& name : before) {
    if (name == kept) continue;
    // The index first: a pack without its index is invisible, an index without its pack is an
    // error for readers.
    for (const char* extension : {".idx", ".rev", ".pack"}) {
      fs::remove(pack_dir / (name + extension), ec);
    }
  }
  git_odb* raw_odb = nullptr;
  if (git_repository_odb(&raw_odb, repo) == 0) {
    OdbPtr odb(raw_odb);
    git_odb_refresh(odb.get());
  }
  return true;
}

}  // namespace gitvirt::source_internal
