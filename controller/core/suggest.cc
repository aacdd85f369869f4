#include "gitvirt/core/suggest.h"

#include <algorithm>
#include <cctype>

namespace gitvirt {
namespace {

// Close enough to be a typo: a third of the word, at least one edit, at most three.
std::size_t TypoLimit(std::string_view word) { return std::clamp<std::size_t>(word.size() / 3, 1, 3); }

}  // namespace

std::size_t EditDistance(std::string_view a, std::string_view b) {
  // Optimal string alignment: insertions, deletions, substitutions and a swap of two neighbours
  // ("plna" for "plan") each count one edit, as in cobra's and git's suggestions.
  const auto same = [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
  };
  std::vector<std::size_t> before(b.size() + 1), prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (same(a[i - 1], b[j - 1]) ? 0 : 1)});
      if (i > 1 && j > 1 && same(a[i - 1], b[j - 2]) && same(a[i - 2], b[j - 1])) {
        cur[j] = std::min(cur[j], before[j - 2] + 1);
      }
    }
    std::swap(before, prev);
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string ClosestMatch(std::string_view word, const std::vector<std::string_view>& candidates) {
  std::string_view best;
  std::size_t best_distance = std::string_view::npos;
  for (std::string_view c : candidates) {
    const std::size_t d = EditDistance(word, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  if (best_distance <= TypoLimit(word)) return std::string(best);
  return {};
}

namespace {

// Every candidate with its distance from `word` (a name starting with `word` counts as one
// edit: "web" for "web-01"), nearest first, without repeats.
std::vector<std::pair<std::size_t, std::string>> Ranked(std::string_view word, const std::vector<std::string>& candidates) {
  std::vector<std::pair<std::size_t, std::string>> ranked;
  for (const std::string& c : candidates) {
    const bool prefix = !word.empty() && c.size() > word.size() && c.compare(0, word.size(), word) == 0;
    ranked.emplace_back(prefix ? 1 : EditDistance(word, c), c);
  }
  std::sort(ranked.begin(), ranked.end());
  ranked.erase(std::unique(ranked.begin(), ranked.end()), ranked.end());
  return ranked;
}

}  // namespace

std::vector<std::string> TypoMatches(std::string_view word, const std::vector<std::string>& candidates) {
  std::vector<std::string> out;
  for (const auto& [distance, name] : Ranked(word, candidates)) {
    if (distance > TypoLimit(word) || out.size() == 3) break;
    out.push_back(name);
  }
  return out;
}

std::vector<std::string> ClosestNames(std::string_view word, const std::vector<std::string>& candidates) {
  std::vector<std::string> out = TypoMatches(word, candidates);
  if (out.empty() && !candidates.empty()) out.push_back(Ranked(word, candidates).front().second);
  return out;
}

std::string DidYouMean(const std::vector<std::string>& names) {
  if (names.empty()) return "";
  std::string out = " (did you mean ";
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += i + 1 == names.size() ? " or " : ", ";
    out += "\"" + names[i] + "\"";
  }
  return out + "?)";
}

Error NotFoundError(std::string_view kind, std::string_view name, const std::vector<std::string>& existing,
                    std::string_view where) {
  std::string message = std::string(kind) + " \"" + std::string(name) + "\"" + std::string(where) + " not found";
  message += existing.empty() ? std::string(" (there are none)") : DidYouMean(ClosestNames(name, existing));
  return Error{ErrorCode::kNotFound, std::move(message), ""};
}

}  // namespace gitvirt
