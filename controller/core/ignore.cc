#include "gitvirt/core/ignore.h"

#include <algorithm>

#include "gitvirt/core/json.h"
#include "gitvirt/core/selector.h"

namespace gitvirt {
namespace {

// "disks[*].size" -> {"disks", "[*]", "size"}; nullopt when a bracket is unbalanced or a
// segment empty.
std::optional<std::vector<std::string>> Tokens(std::string_view path) {
  std::vector<std::string> tokens;
  std::size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '[') {
      const std::size_t close = path.find(']', i);
      if (close == std::string_view::npos || close == i + 1) return std::nullopt;
      const std::string_view inside = path.substr(i + 1, close - i - 1);
      if (inside.find_first_of("[.") != std::string_view::npos) return std::nullopt;
      tokens.emplace_back(path.substr(i, close - i + 1));
      i = close + 1;
      if (i < path.size() && path[i] != '.' && path[i] != '[') return std::nullopt;
    } else {
      if (path[i] == '.') {
        if (tokens.empty()) return std::nullopt;
        ++i;
      }
      const std::size_t end = path.find_first_of(".[", i);
      const std::string_view name = path.substr(i, end == std::string_view::npos ? path.size() - i : end - i);
      if (name.empty() || name.find(']') != std::string_view::npos) return std::nullopt;
      tokens.emplace_back(name);
      i += name.size();
    }
  }
  if (tokens.empty() || tokens.front().front() == '[') return std::nullopt;
  return tokens;
}

}  // namespace

std::optional<std::string> CheckIgnorePath(std::string_view path) {
  auto tokens = Tokens(path);
  if (!tokens) {
    return "\"" + std::string(path) +
           "\" is not a field path (fields joined by '.', list items as [name], [index] or [*]: "
           "memory, disks[*].size, networks[0].mac)";
  }
  // The first field must be one of a VM's (the names of spec, as the manifest writes them).
  const auto& fields = VmSpecFieldNames();
  const std::string& first = tokens->front();
  if (std::find(fields.begin(), fields.end(), first) == fields.end() || first == "node" ||
      first == "ignoreDifferences") {
    return "unknown field \"" + first + "\" (a VM's spec fields: memory, vcpus, disks, networks, ...)";
  }
  return std::nullopt;
}

bool IgnorePathMatches(std::string_view rule, std::string_view path) {
  auto r = Tokens(rule);
  auto p = Tokens(path);
  if (!r || !p || r->size() > p->size()) return false;
  for (std::size_t i = 0; i < r->size(); ++i) {
    const std::string& want = (*r)[i];
    const std::string& have = (*p)[i];
    if (want == have) continue;
    if (want == "[*]" && have.front() == '[') continue;
    return false;
  }
  return true;
}

std::vector<std::string> IgnoreRulesFor(const VirtualMachine& vm, const ControllerConfig& config) {
  std::vector<std::string> rules = vm.spec.ignore_differences;
  for (const IgnoreDifferencesRule& rule : config.ignore_differences) {
    auto selector = CompiledSelector::Compile(rule.selector);
    if (!selector || !selector->Matches(vm)) continue;
    rules.insert(rules.end(), rule.paths.begin(), rule.paths.end());
  }
  return rules;
}

IgnoreSplit SplitIgnored(const std::vector<FieldChange>& changes, const std::vector<std::string>& rules) {
  IgnoreSplit split;
  for (const FieldChange& c : changes) {
    const bool ignored = std::any_of(rules.begin(), rules.end(),
                                     [&](const std::string& rule) { return IgnorePathMatches(rule, c.path); });
    (ignored ? split.ignored : split.kept).push_back(c);
  }
  return split;
}

}  // namespace gitvirt
