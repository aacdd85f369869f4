#pragma once
// Retention: which of a policy's snapshots or backups to delete. A pure decision over the
// catalog, so the executor can show it in a plan before deleting anything.

#include <chrono>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gitvirt/core/model.h"

namespace gitvirt {

// One snapshot or backup as the catalog knows it.
struct RetentionItem {
  std::string id;  // unique within the catalog
  std::string vm;
  std::string policy;  // the policy that made it; "" for hand-made ones
  std::chrono::sys_seconds created;
  bool is_protected = false;
  friend bool operator==(const RetentionItem&, const RetentionItem&) = default;
};

// The ids to delete under `retention` for the items made by `policy`, per VM:
//  - only items whose policy equals `policy` are considered; hand-made items (policy "") are
//    never selected, not even when `policy` is "";
//  - protected items are never selected and do not count toward `keep`;
//  - `keep`: all but the newest `keep` items go (newest by created, then by id);
//  - `maxAge`: items created before now - maxAge go, even if among the newest `keep`
//    ("keep at most N / drop older");
//  - neither given: nothing goes.
// The result is sorted by (vm, created, id); equal inputs give equal outputs.
std::vector<std::string> SelectForDeletion(std::span<const RetentionItem> items,
                                           std::string_view policy, const Retention& retention,
                                           std::chrono::sys_seconds now);

}  // namespace gitvirt
