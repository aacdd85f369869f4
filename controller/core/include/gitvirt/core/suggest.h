#pragma once
// "Did you mean" for names people type: a field in a manifest, a command or flag, a VM, a job.
// One rule everywhere, so a typo gets the same help whatever it names. Pure.

#include <string>
#include <string_view>
#include <vector>

#include "gitvirt/core/error.h"

namespace gitvirt {

// Edit distance, ignoring ASCII case: insertions, deletions, substitutions and swaps of two
// neighbouring letters each count one (optimal string alignment).
std::size_t EditDistance(std::string_view a, std::string_view b);

// The closest candidate within a typo's distance (a third of the word, at least one edit, at
// most three); empty if none is that close. For hints that must not mislead (manifest fields).
std::string ClosestMatch(std::string_view word, const std::vector<std::string_view>& candidates);

// The candidates `word` looks like a typo of, best first (at most three): within a typo's
// distance, or starting with `word`. For commands and flags, where a far guess would mislead.
std::vector<std::string> TypoMatches(std::string_view word, const std::vector<std::string>& candidates);

// The names to offer for `word`, best first: its TypoMatches, or else the one closest
// candidate. Empty only when there are no candidates. For names of things that exist.
std::vector<std::string> ClosestNames(std::string_view word, const std::vector<std::string>& candidates);

// ` (did you mean "a"?)`, ` (did you mean "a" or "b"?)`, or "" when `names` is empty.
std::string DidYouMean(const std::vector<std::string>& names);

// kNotFound: `VirtualMachine "nope-vm" not found (did you mean "web-01"?)`, the closest of the
// `existing` names offered; `where` narrows it (` on node hv1`, ` of VM web-01`). With no
// existing names: `... not found (there are none)`.
Error NotFoundError(std::string_view kind, std::string_view name, const std::vector<std::string>& existing,
                    std::string_view where = "");

}  // namespace gitvirt
