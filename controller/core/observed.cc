#include "gitvirt/core/observed.h"

#include <algorithm>

namespace gitvirt {
namespace {
template <typename T, typename Key>
const T* FindSorted(const std::vector<T>& items, std::string_view name, Key key) {
  auto it = std::lower_bound(items.begin(), items.end(), name,
                             [&](const T& item, std::string_view n) { return key(item) < n; });
  if (it == items.end() || key(*it) != name) return nullptr;
  return &*it;
}
}  // namespace

const ObservedVolume* ObservedPool::FindVolume(std::string_view name) const {
  return FindSorted(volumes, name, [](const ObservedVolume& v) -> const std::string& { return v.name; });
}

const ObservedVm* ObservedNode::FindVm(std::string_view name) const {
  return FindSorted(vms, name, [](const ObservedVm& v) -> const std::string& { return v.name; });
}

const ObservedPool* ObservedNode::FindPool(std::string_view name) const {
  return FindSorted(pools, name, [](const ObservedPool& p) -> const std::string& { return p.name; });
}

const ObservedNode* ObservedState::FindNode(std::string_view name) const {
  for (const ObservedNode& node : nodes) {
    if (node.name == name) return &node;
  }
  return nullptr;
}

std::vector<const ObservedVm*> ObservedState::FindVms(std::string_view name) const {
  std::vector<const ObservedVm*> out;
  for (const ObservedNode& node : nodes) {
    if (const ObservedVm* vm = node.FindVm(name)) out.push_back(vm);
  }
  return out;
}

}  // namespace gitvirt
