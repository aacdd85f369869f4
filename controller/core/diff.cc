#include "gitvirt/core/diff.h"

#include <algorithm>
#include <set>

#include "gitvirt/core/json.h"
#include "gitvirt/core/storage.h"

namespace gitvirt {
namespace {

using nlohmann::json;

// Lists whose items have a name: compared item by item under "list[name]".
constexpr std::string_view kNamedLists[] = {"disks", "cdroms"};
// Lists compared item by item under "list[index]".
constexpr std::string_view kIndexedLists[] = {"networks"};

bool IsSizePath(std::string_view leaf) {
  return leaf == "memory" || leaf == "maxMemory" || leaf == "size" || leaf == "bandwidth";
}
bool IsDurationPath(std::string_view leaf) {
  return leaf == "shutdownTimeout" || leaf == "timeout" || leaf == "maxAge";
}

std::string Leaf(const std::string& path) {
  const auto dot = path.rfind('.');
  return dot == std::string::npos ? path : path.substr(dot + 1);
}

// "ip=10.0.0.5/24,gw=10.0.0.1" from an IpConfig's JSON form.
std::string IpConfigText(const json& j) {
  IpConfig ip;
  ip.v4 = ParseEnum<IpMode>(j.value("v4", std::string("none"))).value_or(IpMode::kNone);
  ip.v4_address = j.value("v4Address", std::string());
  ip.v4_gateway = j.value("v4Gateway", std::string());
  ip.v6 = ParseEnum<IpMode>(j.value("v6", std::string("none"))).value_or(IpMode::kNone);
  ip.v6_address = j.value("v6Address", std::string());
  ip.v6_gateway = j.value("v6Gateway", std::string());
  return ip.ToString();
}

std::string Display(const std::string& path, const json& value) {
  if (value.is_null()) return "";
  const std::string leaf = Leaf(path);
  if (leaf == "ipConfigs" && value.is_array()) {
    std::string out;
    for (const json& ip : value) out += (out.empty() ? "" : ", ") + IpConfigText(ip);
    return "[" + out + "]";
  }
  if (value.is_number_unsigned() || value.is_number_integer()) {
    if (IsSizePath(leaf)) return FormatSize(value.get<std::uint64_t>());
    if (IsDurationPath(leaf)) return FormatDuration(Seconds(value.get<std::int64_t>()));
    return value.dump();
  }
  if (value.is_string()) return value.get<std::string>();
  if (value.is_array() && path.ends_with("users")) {
    std::string names;
    for (const json& u : value) names += (names.empty() ? "" : ", ") + u.value("name", std::string("?"));
    return "[" + names + "]";
  }
  if (value.is_array() && std::all_of(value.begin(), value.end(), [](const json& v) { return v.is_string(); })) {
    std::string out;
    for (const json& v : value) out += (out.empty() ? "" : ", ") + v.get<std::string>();
    return "[" + out + "]";
  }
  return value.dump();
}

json KeyByName(const json& list) {
  json out = json::object();
  if (!list.is_array()) return out;
  for (const json& item : list) out[item.value("name", std::string("?"))] = item;
  return out;
}

json Normalise(json spec) {
  spec.erase("node");
  spec.erase("powerState");
  // Which drift to ignore is the planner's business, never a change to the VM.
  spec.erase("ignoreDifferences");
  for (std::string_view key : kNamedLists) {
    const std::string k(key);
    if (spec.contains(k)) spec[k] = KeyByName(spec[k]);
  }
  return spec;
}

class Differ {
 public:
  Differ(const VmSpec& desired, const VmSpec& observed, const DiffContext& ctx)
      : desired_(desired), observed_(observed), ctx_(ctx) {}

  VmDiff Run() {
    // Equal but for what the comparison below ignores (the node, the power state, MACs
    // libvirt generated): no change. The common case, checked without the JSON forms.
    if (desired_ == observed_ || desired_ == Comparable(observed_)) return {};
    const json d = Normalise(ToJson(desired_));
    const json o = Normalise(ToJson(observed_));
    Compare("", d, o, /*list=*/"");
    std::sort(diff_.changes.begin(), diff_.changes.end(),
              [](const FieldChange& a, const FieldChange& b) { return a.path < b.path; });
    return std::move(diff_);
  }

 private:
  VmSpec Comparable(VmSpec observed) const {
    observed.node = desired_.node;
    observed.power_state = desired_.power_state;
    if (observed.networks.size() == desired_.networks.size()) {
      for (std::size_t i = 0; i < observed.networks.size(); ++i) {
        if (desired_.networks[i].mac.empty()) observed.networks[i].mac.clear();
      }
    }
    return observed;
  }

  void Compare(const std::string& path, const json& d, const json& o, std::string_view list) {
    if (d == o) return;
    if (d.is_object() && o.is_object()) {
      std::set<std::string> keys;
      for (auto it = d.begin(); it != d.end(); ++it) keys.insert(it.key());
      for (auto it = o.begin(); it != o.end(); ++it) keys.insert(it.key());
      for (const std::string& key : keys) {
        const json& dv = d.contains(key) ? d[key] : kNull;
        const json& ov = o.contains(key) ? o[key] : kNull;
        if (!list.empty()) {
          // An item of a named list: added or removed as a whole, else field by field.
          const std::string item = std::string(list) + "[" + key + "]";
          if (dv.is_null() || ov.is_null()) {
            AddWhole(item, std::string(list), key, dv, ov);
          } else {
            Compare(item, dv, ov, "");
          }
          continue;
        }
        const std::string child = path.empty() ? key : path + "." + key;
        const bool named = std::find(std::begin(kNamedLists), std::end(kNamedLists), key) !=
                           std::end(kNamedLists);
        const bool indexed = std::find(std::begin(kIndexedLists), std::end(kIndexedLists), key) !=
                             std::end(kIndexedLists);
        if (path.empty() && named) {
          Compare(child, dv.is_null() ? json::object() : dv, ov.is_null() ? json::object() : ov, key);
        } else if (path.empty() && indexed) {
          CompareIndexed(key, dv.is_null() ? json::array() : dv, ov.is_null() ? json::array() : ov);
        } else {
          Compare(child, dv, ov, "");
        }
      }
      return;
    }
    Add(path, d, o);
  }

  void CompareIndexed(const std::string& list, const json& d, const json& o) {
    const std::size_t n = std::max(d.size(), o.size());
    for (std::size_t i = 0; i < n; ++i) {
      const std::string item = list + "[" + std::to_string(i) + "]";
      const json& dv = i < d.size() ? d[i] : kNull;
      const json& ov = i < o.size() ? o[i] : kNull;
      if (dv.is_null() || ov.is_null()) {
        AddWhole(item, list, std::to_string(i), dv, ov);
      } else if (dv != ov) {
        // A generated MAC is not a difference: the manifest did not ask for one.
        json dn = dv, on = ov;
        if (dn.value("mac", std::string()).empty()) {
          dn.erase("mac");
          on.erase("mac");
        }
        Compare(item, dn, on, "");
      }
    }
  }

  void AddWhole(const std::string& path, const std::string& list, const std::string& key,
                const json& d, const json& o) {
    auto describe = [&](const VmSpec& spec, const json& value) -> std::string {
      if (value.is_null()) return "";
      if (list == "disks") {
        for (const Disk& disk : spec.disks) {
          if (disk.name == key) return DescribeDisk(disk);
        }
      }
      if (list == "networks") {
        const std::size_t i = std::stoul(key);
        if (i < spec.networks.size()) return DescribeNic(spec.networks[i]);
      }
      if (list == "cdroms") {
        for (const Cdrom& c : spec.cdroms) {
          if (c.name == key) return c.image.empty() ? c.path : "image " + c.image;
        }
      }
      return value.dump();
    };
    FieldChange change{path, describe(observed_, o), describe(desired_, d), ChangeClass::kLive};
    change.change_class = DeviceClass();
    diff_.changes.push_back(std::move(change));
  }

  ChangeClass DeviceClass() const {
    if (!ctx_.running) return ChangeClass::kLive;
    return ctx_.capabilities.live_device_changes ? ChangeClass::kLive : ChangeClass::kRestart;
  }
  ChangeClass RestartClass() const {
    return ctx_.running ? ChangeClass::kRestart : ChangeClass::kLive;
  }

  ChangeClass Classify(const std::string& path, const json& d, const json& o) {
    const std::string top = path.substr(0, path.find_first_of(".["));
    if (top == "vcpus") {
      const int max_d = desired_.max_vcpus.value_or(desired_.vcpus);
      const int max_o = observed_.max_vcpus.value_or(observed_.vcpus);
      return max_d == max_o ? ChangeClass::kLive : RestartClass();
    }
    if (top == "memory") {
      const auto max_d = desired_.max_memory.value_or(desired_.memory);
      const auto max_o = observed_.max_memory.value_or(observed_.memory);
      return max_d == max_o ? ChangeClass::kLive : RestartClass();
    }
    if (top == "description" || top == "autostart") return ChangeClass::kLive;
    if (top == "placement" || top == "updatePolicy" || top == "deletionPolicy" ||
        top == "dependsOn" || top == "readiness" || top == "migration" || top == "os") {
      return ChangeClass::kMetadata;
    }
    if (top == "disks") {
      const std::string leaf = Leaf(path);
      if (leaf == "size") {
        if (d.is_number() && o.is_number() && d.get<std::uint64_t>() < o.get<std::uint64_t>()) {
          diff_.errors.push_back(path + ": a disk cannot shrink (" + Display(path, o) + " -> " +
                                 Display(path, d) + "); grow it, or replace the disk under a "
                                 "new name");
        }
        return ChangeClass::kGrow;
      }
      if (leaf == "backup") return ChangeClass::kMetadata;
      if (path.find(".source") != std::string::npos || leaf == "pool" || leaf == "format") {
        return ChangeClass::kReplace;
      }
    }
    return RestartClass();
  }

  void Add(const std::string& path, const json& d, const json& o) {
    FieldChange change{path, Display(path, o), Display(path, d), ChangeClass::kLive};
    change.change_class = Classify(path, d, o);
    diff_.changes.push_back(std::move(change));
  }

  static inline const json kNull = nullptr;
  const VmSpec& desired_;
  const VmSpec& observed_;
  const DiffContext& ctx_;
  VmDiff diff_;
};

// Splits "disks[data].size" into {"disks", "[data]", "size"}.
std::vector<std::string> PathTokens(const std::string& path) {
  std::vector<std::string> tokens;
  std::string current;
  for (char c : path) {
    if (c == '.' || c == '[') {
      if (!current.empty()) tokens.push_back(current);
      current = c == '[' ? "[" : "";
    } else if (c == ']') {
      tokens.push_back(current + "]");
      current.clear();
    } else {
      current += c;
    }
  }
  if (!current.empty()) tokens.push_back(current);
  return tokens;
}

// The node of `root` the tokens lead to, or null.
json* Walk(json& root, const std::vector<std::string>& tokens, std::size_t count, bool create) {
  json* node = &root;
  for (std::size_t i = 0; i < count; ++i) {
    const std::string& t = tokens[i];
    std::string key = t.front() == '[' ? t.substr(1, t.size() - 2) : t;
    if (node->is_array()) {
      const std::size_t index = std::stoul(key);
      if (index >= node->size()) {
        if (!create) return nullptr;
        while (node->size() <= index) node->push_back(nullptr);
      }
      node = &(*node)[index];
    } else {
      if (!node->is_object()) {
        if (!create) return nullptr;
        *node = json::object();
      }
      if (!node->contains(key) && !create) return nullptr;
      node = &(*node)[key];
    }
  }
  return node;
}

json Denormalise(json spec, const json& order_from) {
  for (std::string_view key : kNamedLists) {
    const std::string k(key);
    if (!spec.contains(k) || !spec[k].is_object()) continue;
    json list = json::array();
    json remaining = spec[k];
    if (order_from.contains(k)) {
      for (auto it = order_from[k].begin(); it != order_from[k].end(); ++it) {
        if (remaining.contains(it.key())) {
          list.push_back(remaining[it.key()]);
          remaining.erase(it.key());
        }
      }
    }
    for (auto it = remaining.begin(); it != remaining.end(); ++it) list.push_back(it.value());
    spec[k] = list;
  }
  // Indexed lists may have gained nulls where an item was removed.
  for (std::string_view key : kIndexedLists) {
    const std::string k(key);
    if (!spec.contains(k) || !spec[k].is_array()) continue;
    json list = json::array();
    for (const json& item : spec[k]) {
      if (!item.is_null()) list.push_back(item);
    }
    spec[k] = list;
  }
  return spec;
}

}  // namespace

VmSpec ApplyChanges(const VmSpec& base, const VmSpec& desired, const std::vector<FieldChange>& changes) {
  json b = Normalise(ToJson(base));
  const json d = Normalise(ToJson(desired));
  for (const FieldChange& c : changes) {
    const std::vector<std::string> tokens = PathTokens(c.path);
    if (tokens.empty()) continue;
    json source = d;
    const json* from = Walk(source, tokens, tokens.size(), false);
    if (from == nullptr || from->is_null()) {
      // Removed in the desired spec: remove it here too.
      json* parent = Walk(b, tokens, tokens.size() - 1, false);
      if (parent == nullptr) continue;
      const std::string& last = tokens.back();
      const std::string key = last.front() == '[' ? last.substr(1, last.size() - 2) : last;
      if (parent->is_object()) {
        parent->erase(key);
      } else if (parent->is_array() && std::stoul(key) < parent->size()) {
        (*parent)[std::stoul(key)] = nullptr;
      }
      continue;
    }
    *Walk(b, tokens, tokens.size(), true) = *from;
  }
  auto spec = VmSpecFromJson(Denormalise(b, d));
  VmSpec out = spec ? *spec : base;
  out.node = desired.node;
  out.power_state = desired.power_state;
  return out;
}

bool VmDiff::Has(ChangeClass c) const {
  return std::any_of(changes.begin(), changes.end(),
                     [c](const FieldChange& f) { return f.change_class == c; });
}

VmDiff DiffVm(const VmSpec& desired, const VmSpec& observed, const DiffContext& context) {
  VmSpec d = desired, o = observed;
  d.node.clear();
  o.node.clear();
  d.power_state = o.power_state = PowerState::kRunning;
  d.adopt = o.adopt = false;
  return Differ(d, o, context).Run();
}

VmSpec FillFromApplied(VmSpec spec, const VmSpec& applied, const std::string& vm_name) {
  spec.placement = applied.placement;
  spec.update_policy = applied.update_policy;
  spec.deletion_policy = applied.deletion_policy;
  spec.depends_on = applied.depends_on;
  spec.readiness = applied.readiness;
  spec.migration = applied.migration;
  spec.os = applied.os;
  spec.ignore_differences = applied.ignore_differences;
  spec.adopt = applied.adopt;
  spec.graphics.password_from = applied.graphics.password_from;

  // libvirt expands machine aliases: q35 -> pc-q35-7.2, pc -> pc-i440fx-7.2.
  if ((applied.machine == "q35" && spec.machine.starts_with("pc-q35-")) ||
      (applied.machine == "pc" && spec.machine.starts_with("pc-i440fx-"))) {
    spec.machine = applied.machine;
  }
  // Given no <cpu> model, libvirt 9.0's QEMU driver writes the machine type's default in:
  // <cpu mode='custom' match='exact' check='none'><model fallback='forbid'>qemu64</model>.
  if (applied.cpu.mode == CpuMode::kDefault && spec.cpu.mode == CpuMode::kCustom && spec.cpu.model == "qemu64") {
    spec.cpu.mode = CpuMode::kDefault;
    spec.cpu.model.clear();
  }
  // Graphics video is only rendered with graphics; keep the applied choice when there is none.
  if (spec.graphics.type == GraphicsType::kNone && applied.graphics.type == GraphicsType::kNone) {
    spec.graphics = applied.graphics;
  }
  VirtualMachine probe;
  probe.meta.name = vm_name;
  for (Disk& disk : spec.disks) {
    auto it = std::find_if(applied.disks.begin(), applied.disks.end(),
                           [&](const Disk& d) { return d.name == disk.name; });
    if (it == applied.disks.end()) continue;
    // The storage is where the applied spec put it: the source is the applied one.
    const StorageRef storage = disk.source.type == DiskSourceType::kVolume ? StorageRef{disk.pool, disk.source.ref, ""}
                                                                          : StorageRef{"", "", disk.source.ref};
    if (DiskStorage(probe, *it) == storage) {
      disk.source = it->source;
      disk.pool = it->pool;
      if (!it->size) disk.size.reset();  // a clone at the image's size, a volume used as it is
    }
    disk.backup = it->backup;
    if (disk.bus == DiskBus::kVirtio) disk.ssd = it->ssd;  // virtio has no rotation rate
  }
  for (Cdrom& c : spec.cdroms) {
    auto it = std::find_if(applied.cdroms.begin(), applied.cdroms.end(),
                           [&](const Cdrom& a) { return a.name == c.name; });
    if (it == applied.cdroms.end()) continue;
    // A cdrom without a path is on a pool volume: an Image's, when the applied spec says so.
    if ((!it->image.empty() && c.path.empty()) || (!it->path.empty() && c.path == it->path)) {
      c.image = it->image;
      c.path = it->path;
    }
  }
  for (std::size_t i = 0; i < spec.gpus.size() && i < applied.gpus.size(); ++i) {
    if (!spec.gpus[i].mdev_uuid.empty() && spec.gpus[i].mdev_uuid == applied.gpus[i].mdev_uuid) {
      spec.gpus[i].mdev_type = applied.gpus[i].mdev_type;
    }
  }
  return spec;
}

std::string DescribeDisk(const Disk& disk) {
  std::string out = disk.size ? FormatSize(*disk.size) : std::string("image size");
  out += " " + std::string(EnumName(disk.bus)) + " " + std::string(EnumName(disk.format));
  switch (disk.source.type) {
    case DiskSourceType::kNew: break;
    case DiskSourceType::kImage:
      out += disk.source.clone == CloneMode::kFull ? ", full copy of " : ", linked clone of ";
      out += "image " + disk.source.ref;
      break;
    case DiskSourceType::kVolume:
    case DiskSourceType::kPath:
      if (disk.source.clone == CloneMode::kNone) {
        out += ", uses " + disk.source.ref;
      } else {
        out += std::string(disk.source.clone == CloneMode::kFull ? ", full copy of " : ", linked clone of ") +
               disk.source.ref;
      }
      break;
  }
  return out;
}

std::string DescribeNic(const Nic& nic) {
  std::string out = nic.user ? "user-mode" : nic.network.empty() ? "bridge " + nic.bridge : "network " + nic.network;
  out += " " + std::string(EnumName(nic.model));
  if (nic.vlan) out += " vlan " + std::to_string(*nic.vlan);
  if (!nic.mac.empty()) out += " " + nic.mac;
  return out;
}

}  // namespace gitvirt
