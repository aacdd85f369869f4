#pragma once
// Ignore-difference rules: field paths of a VM whose drift the plan shows as "ignored" and never
// acts on (Argo CD's ignoreDifferences, for VMs). A VM's own rules come from its manifest
// (spec.ignoreDifferences), the fleet's from the configuration (ignoreDifferences, each with a
// selector). Pure.
//
// A path names fields as DiffVm's changes do: `memory`, `disks[data].size`, `networks[0].mac`.
// `[*]` stands for any item of a list, and a path covers everything below it: `disks[*]`
// matches `disks[data].size` and a whole disk added or removed.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gitvirt/core/config.h"
#include "gitvirt/core/model.h"
#include "gitvirt/core/plan.h"

namespace gitvirt {

// Why `path` is not a rule ("unknown field \"memroy\"", "unbalanced '['"), or nullopt.
std::optional<std::string> CheckIgnorePath(std::string_view path);

// Whether the rule `rule` covers the change at `path`.
bool IgnorePathMatches(std::string_view rule, std::string_view path);

// Every rule that applies to `vm`: its own, then the configuration's whose selector selects it.
std::vector<std::string> IgnoreRulesFor(const VirtualMachine& vm, const ControllerConfig& config);

// Splits `changes` into what the plan acts on and what the rules ignore.
struct IgnoreSplit {
  std::vector<FieldChange> kept;
  std::vector<FieldChange> ignored;
};
IgnoreSplit SplitIgnored(const std::vector<FieldChange>& changes, const std::vector<std::string>& rules);

}  // namespace gitvirt
