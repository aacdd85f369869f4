#include "gitvirt/core/retention.h"

#include <algorithm>
#include <tuple>

namespace gitvirt {

std::vector<std::string> SelectForDeletion(std::span<const RetentionItem> items,
                                           std::string_view policy, const Retention& retention,
                                           std::chrono::sys_seconds now) {
  if (policy.empty()) return {};
  std::vector<const RetentionItem*> candidates;
  for (const RetentionItem& item : items) {
    if (item.policy == policy && !item.is_protected) candidates.push_back(&item);
  }
  const auto by_vm_then_age = [](const RetentionItem* a, const RetentionItem* b) {
    return std::tie(a->vm, a->created, a->id) < std::tie(b->vm, b->created, b->id);
  };
  std::sort(candidates.begin(), candidates.end(), by_vm_then_age);

  std::vector<std::string> doomed;
  for (auto group = candidates.begin(); group != candidates.end();) {
    const auto group_end = std::find_if(group, candidates.end(), [&](const RetentionItem* item) {
      return item->vm != (*group)->vm;
    });
    // Oldest first within the group, so the newest `keep` are the last ones.
    const auto count = static_cast<long long>(group_end - group);
    const long long excess =
        retention.keep ? std::max<long long>(0, count - std::max(0, *retention.keep)) : 0;
    for (auto it = group; it != group_end; ++it) {
      const bool beyond_keep = (it - group) < excess;
      const bool too_old = retention.max_age && (*it)->created < now - *retention.max_age;
      if (beyond_keep || too_old) doomed.push_back((*it)->id);
    }
    group = group_end;
  }
  return doomed;
}

}  // namespace gitvirt
