#include "gitvirt/core/model.h"

#include <algorithm>

namespace gitvirt {

std::string SourceLocation::ToString() const {
  if (line == 0) return file;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

std::string ResourceRef::ToString() const {
  return std::string(EnumName(kind)) + "/" + name;
}

std::optional<ResourceRef> ResourceRef::Parse(std::string_view text) {
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) {
    if (text.empty()) return std::nullopt;
    return ResourceRef{Kind::kVirtualMachine, std::string(text)};
  }
  auto kind = ParseEnum<Kind>(text.substr(0, slash));
  if (!kind || slash + 1 >= text.size()) return std::nullopt;
  return ResourceRef{*kind, std::string(text.substr(slash + 1))};
}

std::string SecretRef::ToString() const {
  return file.empty() ? "env:" + env : "file:" + file;
}

std::string Image::VolumeName() const {
  return meta.name + "." + std::string(EnumName(spec.format));
}

std::optional<int> ResolveMaxUnavailable(std::string_view text, int total) {
  const bool percent = text.ends_with('%');
  if (percent) text.remove_suffix(1);
  if (text.empty() || text.size() > 6) return std::nullopt;
  int value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  if (!percent) return value < 1 ? std::nullopt : std::optional<int>(value);
  if (value < 1 || value > 100) return std::nullopt;
  return std::max(1, total * value / 100);
}

namespace {
template <typename T>
const T* FindByName(const std::vector<T>& items, std::string_view name) {
  auto it = std::lower_bound(items.begin(), items.end(), name,
                             [](const T& item, std::string_view n) { return item.meta.name < n; });
  if (it == items.end() || it->meta.name != name) return nullptr;
  return &*it;
}
}  // namespace

const VirtualMachine* DesiredState::FindVm(std::string_view name) const {
  return FindByName(vms, name);
}
const Image* DesiredState::FindImage(std::string_view name) const {
  return FindByName(images, name);
}
const Cluster* DesiredState::FindCluster(std::string_view name) const {
  return FindByName(clusters, name);
}

}  // namespace gitvirt
