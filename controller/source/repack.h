#pragma once
// Keeping a mirror compact. libgit2 never repacks, and every fetch that brings something new
// adds a pack file: a controller fetching every 30 s would collect thousands, each one more
// file to search and to keep open. Once there are more than `max_packs`, everything reachable
// from the mirror's references is written into one new pack and the old packs are deleted
// (objects no reference reaches any more go with them, as with `git gc`).
//
// Call only with the mirror's flock held. Readers need no lock: a process that has an old
// pack open keeps reading it (the file lives on until closed), and one that has not yet
// opened it finds the object missing, rescans the pack directory and finds the new pack.

#include <git2.h>

#include <filesystem>

#include "gitvirt/core/error.h"

namespace gitvirt::source_internal {

// Returns whether it repacked.
Result<bool> RepackIfNeeded(git_repository* repo, const std::filesystem::path& mirror,
                            int max_packs);

}  // namespace gitvirt::source_internal
