// Golden plan tests: each directory under tests/golden/ is a scenario (manifests + what the nodes
// run) and the exact plan text the planner must produce for it. See tests/golden/README.md for
// the fixture format; `GITVIRT_UPDATE_GOLDEN=1` rewrites the expected.plan files.
//
// The fixture reader turns YAML into the core's values: the desired state through the real
// manifest loader, the configuration through the real config loader, and the observed state
// through a small reader here whose VM specs are again written in the manifest language.

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <expected>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "gitvirt/core/json.h"
#include "gitvirt/core/plan_text.h"
#include "gitvirt/core/planner.h"
#include "gitvirt/core/storage.h"
#include "gitvirt/manifest/config_loader.h"
#include "gitvirt/manifest/loader.h"

namespace gitvirt {
namespace {

namespace fs = std::filesystem;

const fs::path kGoldenDir = GITVIRT_GOLDEN_DIR;

// ---- files ----------------------------------------------------------------------------------

std::string ReadText(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void WriteText(const fs::path& file, const std::string& text) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out << text;
}

std::vector<std::string> NonEmptyLines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

bool UpdateMode() {
  const char* v = std::getenv("GITVIRT_UPDATE_GOLDEN");
  return v != nullptr && *v != '\0' && std::string_view(v) != "0";
}

// ---- fixture reading --------------------------------------------------------------------------
//
// A fixture mistake is reported as one message naming the file and the place in it. The reader
// throws FixtureError internally (yaml-cpp throws too) and LoadCase turns both into a value.

struct FixtureError {
  std::string message;
};

[[noreturn]] void Bad(const std::string& message) {
  throw FixtureError{message};
}

void CheckKeys(const YAML::Node& map, const std::set<std::string>& allowed,
               const std::string& where) {
  if (!map.IsMap()) Bad(where + ": expected a mapping");
  for (const auto& kv : map) {
    const std::string key = kv.first.as<std::string>();
    if (!allowed.contains(key)) {
      std::string keys;
      for (const std::string& k : allowed) keys += (keys.empty() ? "" : ", ") + k;
      Bad(where + ": unknown key \"" + key + "\" (known: " + keys + ")");
    }
  }
}

std::uint64_t SizeOf(const YAML::Node& node, const std::string& where) {
  auto size = ParseSize(node.as<std::string>());
  if (!size) Bad(where + ": " + size.error().message);
  return *size;
}

template <typename E>
E EnumOf(const YAML::Node& node, const std::string& where) {
  const std::string text = node.as<std::string>();
  auto value = ParseEnum<E>(text);
  if (!value) Bad(where + ": \"" + text + "\" is not one of " + EnumChoices<E>());
  return *value;
}

std::vector<std::string> Strings(const YAML::Node& node) {
  std::vector<std::string> out;
  for (const YAML::Node& item : node) out.push_back(item.as<std::string>());
  return out;
}

Labels StringMap(const YAML::Node& node) {
  Labels out;
  for (const auto& kv : node) out[kv.first.as<std::string>()] = kv.second.as<std::string>();
  return out;
}

// Maps merge key by key; anything else (lists included) is replaced by the override.
YAML::Node Merge(const YAML::Node& base, const YAML::Node& over) {
  if (!base.IsMap() || !over.IsMap()) return YAML::Clone(over);
  YAML::Node out = YAML::Clone(base);
  for (const auto& kv : over) {
    const std::string key = kv.first.as<std::string>();
    out[key] = out[key] ? Merge(out[key], kv.second) : YAML::Clone(kv.second);
  }
  return out;
}

YAML::Node Document(std::string_view kind, const std::string& name, const YAML::Node& spec) {
  YAML::Node doc;
  doc["apiVersion"] = "gitvirt.dev/v1";
  doc["kind"] = std::string(kind);
  doc["metadata"]["name"] = name;
  doc["spec"] = spec;
  return doc;
}

// The Images and VMs an observed spec refers to must exist for the loader to accept it; the
// observation does not care what they contain, so stand-ins do.
void CollectReferences(const YAML::Node& spec, std::set<std::string>& disk_images,
                       std::set<std::string>& iso_images, std::set<std::string>& vms) {
  if (!spec.IsMap()) return;
  if (const YAML::Node disks = spec["disks"]; disks && disks.IsSequence()) {
    for (const YAML::Node& d : disks) {
      if (d.IsMap() && d["source"] && d["source"]["image"]) {
        disk_images.insert(d["source"]["image"].as<std::string>());
      }
    }
  }
  if (const YAML::Node cdroms = spec["cdroms"]; cdroms && cdroms.IsSequence()) {
    for (const YAML::Node& c : cdroms) {
      if (c.IsMap() && c["image"]) iso_images.insert(c["image"].as<std::string>());
    }
  }
  if (const YAML::Node deps = spec["dependsOn"]; deps && deps.IsSequence()) {
    for (const YAML::Node& d : deps) {
      auto ref = ResourceRef::Parse(d.as<std::string>());
      if (ref && ref->kind == Kind::kVirtualMachine) vms.insert(ref->name);
    }
  }
}

// A VM spec written in the manifest language, read by the real loader.
VmSpec ParseSpec(const std::string& vm_name, const YAML::Node& spec, const DesiredState& desired,
                 const std::string& where) {
  std::set<std::string> disk_images, iso_images, vms;
  CollectReferences(spec, disk_images, iso_images, vms);
  std::string text = YAML::Dump(Document("VirtualMachine", vm_name, spec)) + "\n";
  auto add_image = [&](const std::string& name, std::string_view format) {
    YAML::Node s;
    s["source"] = "https://images.invalid/" + name;
    s["sha256"] = std::string(64, 'a');
    s["format"] = std::string(format);
    if (const Image* image = desired.FindImage(name)) {
      s["format"] = std::string(EnumName(image->spec.format));
      s["pool"] = image->spec.pool;
    }
    text += "---\n" + YAML::Dump(Document("Image", name, s)) + "\n";
  };
  for (const std::string& name : disk_images) add_image(name, "qcow2");
  for (const std::string& name : iso_images) {
    if (!disk_images.contains(name)) add_image(name, "iso");
  }
  for (const std::string& name : vms) {
    if (name == vm_name) continue;
    YAML::Node s;
    s["vcpus"] = 1;
    s["memory"] = "512MiB";
    text += "---\n" + YAML::Dump(Document("VirtualMachine", name, s)) + "\n";
  }
  const std::vector<ManifestFile> files = {{where, text}};
  LoadResult loaded = LoadManifests(files);
  if (!loaded.ok()) {
    std::string message = where + ": the spec is not a valid VirtualMachine spec:";
    for (const Diagnostic& d : loaded.diagnostics) message += "\n  " + d.ToString();
    Bad(message);
  }
  return loaded.desired.FindVm(vm_name)->spec;
}

// Volumes gitvirt would have created for these disks: new disks and clones.
std::vector<std::string> CreatedVolumes(const std::string& vm, const VmSpec& spec) {
  std::vector<std::string> out;
  for (const Disk& d : spec.disks) {
    if (d.source.type != DiskSourceType::kNew && d.source.clone == CloneMode::kNone) continue;
    out.push_back(d.pool + "/" + DiskVolumeName(vm, d));
  }
  return out;
}

NodeCapabilities Capabilities(const std::string& driver, const std::string& where) {
  NodeCapabilities caps;
  if (driver == "QEMU") {
    caps.driver = "QEMU";
    caps.live_device_changes = caps.block_resize = caps.volume_resize = true;
    caps.backup = caps.migration = caps.volume_upload = true;
  } else if (driver == "TEST") {
    caps.driver = "TEST";
  } else if (driver == "SIM") {
    caps.driver = "TEST";
    caps.persistent_simulation = caps.volume_resize = true;
  } else {
    Bad(where + ": driver \"" + driver + "\" is not one of QEMU | TEST | SIM");
  }
  return caps;
}

// "2026-12-07T21:00:00Z"
TimePoint ParseTime(const std::string& text, const std::string& where) {
  int y = 0, h = 0, mi = 0, s = 0;
  unsigned mo = 0, d = 0;
  char z = 0;
  if (std::sscanf(text.c_str(), "%d-%u-%uT%d:%d:%d%c", &y, &mo, &d, &h, &mi, &s, &z) != 7 || z != 'Z') {
    Bad(where + ": expected a UTC time such as 2026-12-07T21:00:00Z, got " + text);
  }
  const std::chrono::year_month_day day{std::chrono::year{y}, std::chrono::month{mo}, std::chrono::day{d}};
  return TimePoint{std::chrono::sys_days{day}} + std::chrono::hours{h} + std::chrono::minutes{mi} +
         std::chrono::seconds{s};
}

ObservedVm ReadVm(const YAML::Node& node, const std::string& node_name, const DesiredState& desired,
                  const std::string& node_where) {
  if (!node["name"]) Bad(node_where + ": a vm without a name");
  ObservedVm vm;
  vm.name = node["name"].as<std::string>();
  vm.node = node_name;
  const std::string where = node_where + " vm " + vm.name;
  CheckKeys(node, {"name", "power", "owned", "spec", "actual", "owner", "snapshots", "unexpressed"}, where);
  const VirtualMachine* wanted = desired.FindVm(vm.name);

  // `spec: desired` is the desired spec as it is: a VM that is in sync.
  const YAML::Node spec_node = node["spec"];
  VmSpec spec;
  if (spec_node && spec_node.IsScalar() && spec_node.as<std::string>() == "desired") {
    if (wanted == nullptr) Bad(where + ": spec: desired, but the manifests have no such VM");
    if (node["actual"]) Bad(where + ": actual: needs a spec written out, not spec: desired");
    spec = wanted->spec;
  } else {
    YAML::Node written = spec_node ? spec_node : YAML::Load("{vcpus: 1, memory: 1GiB}");
    spec = ParseSpec(vm.name, written, desired, where + " spec");
    if (!spec.node.empty() && spec.node != node_name) {
      Bad(where + ": spec.node is " + spec.node + ", but the VM is listed under " + node_name);
    }
    if (const YAML::Node over = node["actual"]) {
      vm.actual = ParseSpec(vm.name, Merge(written, over), desired, where + " actual");
    }
  }
  spec.node = node_name;
  if (!node["actual"]) vm.actual = spec;
  vm.actual.node = node_name;

  vm.power = node["power"] ? EnumOf<PowerState>(node["power"], where + " power") : spec.power_state;
  vm.state_detail = vm.power == PowerState::kRunning  ? "running"
                    : vm.power == PowerState::kPaused ? "paused"
                                                      : "shut off";
  vm.actual.power_state = vm.power;
  vm.autostart = vm.actual.autostart;
  vm.uuid = Fingerprint(node_name + "/" + vm.name);
  vm.definition_fingerprint = JsonFingerprint(ToJson(vm.actual));
  if (node["unexpressed"]) vm.unexpressed = Strings(node["unexpressed"]);

  const bool owned = node["owned"] ? node["owned"].as<bool>() : true;
  if (!owned) {
    if (node["owner"]) Bad(where + ": owned: false with an owner block");
    return vm;
  }
  Ownership o;
  o.name = vm.name;
  if (wanted != nullptr) {
    o.labels = wanted->meta.labels;
    o.tags = wanted->meta.tags;
    if (wanted->cluster) {
      o.cluster = wanted->cluster->cluster;
      o.group = wanted->cluster->group;
    }
  }
  o.created_volumes = CreatedVolumes(vm.name, spec);
  o.applied_spec = ToJson(spec).dump();
  o.spec_hash = SpecHash(spec);
  if (const YAML::Node owner = node["owner"]) {
    const std::string ow = where + " owner";
    CheckKeys(owner,
              {"specHash", "revision", "job", "cluster", "group", "createdVolumes", "labels",
               "tags", "cloudInitHash"},
              ow);
    if (owner["specHash"]) o.spec_hash = owner["specHash"].as<std::string>();
    if (owner["revision"]) o.revision = owner["revision"].as<std::string>();
    if (owner["job"]) o.job = owner["job"].as<std::string>();
    if (owner["cluster"]) o.cluster = owner["cluster"].as<std::string>();
    if (owner["group"]) o.group = owner["group"].as<std::string>();
    if (owner["createdVolumes"]) o.created_volumes = Strings(owner["createdVolumes"]);
    if (owner["labels"]) o.labels = StringMap(owner["labels"]);
    if (owner["tags"]) o.tags = Strings(owner["tags"]);
    if (owner["cloudInitHash"]) o.cloud_init_hash = owner["cloudInitHash"].as<std::string>();
  }
  vm.owner = std::move(o);
  vm.last_applied = spec;
  // snapshots: [{name, created: RFC 3339, policy}]
  for (const YAML::Node& s : node["snapshots"]) {
    CheckKeys(s, {"name", "created", "policy"}, where + " snapshot");
    ObservedSnapshot snap;
    snap.name = s["name"].as<std::string>();
    if (s["created"]) snap.created = ParseTime(s["created"].as<std::string>(), where + " snapshot created");
    if (s["policy"]) snap.policy = s["policy"].as<std::string>();
    vm.snapshots.push_back(std::move(snap));
  }
  return vm;
}

ObservedNode ReadNode(const std::string& name, const YAML::Node& node,
                      const DesiredState& desired) {
  const std::string where = "observed.yaml: node " + name;
  ObservedNode out;
  out.name = name;
  out.reachable = true;
  out.cpus = 16;
  out.memory = 64 * kGiB;
  out.networks = {"default"};
  out.pools = {
      ObservedPool{.name = "default", .path = "/var/lib/gitvirt/images/default", .active = true}};
  std::string driver = "QEMU";
  if (node && !node.IsNull()) {
    CheckKeys(node, {"driver", "reachable", "error", "cpus", "memory", "networks", "interfaces", "pools", "vms"},
              where);
    if (node["driver"]) driver = node["driver"].as<std::string>();
    if (node["reachable"]) out.reachable = node["reachable"].as<bool>();
    if (node["error"]) out.error = node["error"].as<std::string>();
    if (node["cpus"]) out.cpus = node["cpus"].as<int>();
    if (node["memory"]) out.memory = SizeOf(node["memory"], where + " memory");
    if (node["networks"]) out.networks = Strings(node["networks"]);
    if (node["interfaces"]) {
      out.interfaces = Strings(node["interfaces"]);
      std::ranges::sort(*out.interfaces);
    }
    if (node["pools"]) {
      out.pools.clear();
      for (const auto& kv : node["pools"]) {
        ObservedPool pool;
        pool.name = kv.first.as<std::string>();
        pool.path = "/var/lib/gitvirt/images/" + pool.name;
        pool.active = true;
        for (const YAML::Node& v : kv.second) {
          ObservedVolume volume;
          volume.pool = pool.name;
          if (v.IsMap()) {
            CheckKeys(v, {"name", "capacity"}, where + " pool " + pool.name);
            volume.name = v["name"].as<std::string>();
            if (v["capacity"]) volume.capacity = SizeOf(v["capacity"], where + " volume capacity");
          } else {
            volume.name = v.as<std::string>();
          }
          volume.path = pool.path + "/" + volume.name;
          pool.volumes.push_back(std::move(volume));
        }
        std::ranges::sort(pool.volumes, {}, &ObservedVolume::name);
        out.pools.push_back(std::move(pool));
      }
      std::ranges::sort(out.pools, {}, &ObservedPool::name);
    }
    if (node["vms"]) {
      if (!out.reachable) Bad(where + ": an unreachable node reports no vms");
      for (const YAML::Node& v : node["vms"]) out.vms.push_back(ReadVm(v, name, desired, where));
      std::ranges::sort(out.vms, {}, &ObservedVm::name);
    }
  }
  std::ranges::sort(out.networks);
  out.capabilities = Capabilities(driver, where);
  if (!out.reachable) {
    out.cpus = 0;
    out.memory = 0;
    out.pools.clear();
    out.networks.clear();
  }
  return out;
}

ObservedState ReadObserved(const fs::path& file, const ControllerConfig& config,
                           const DesiredState& desired) {
  YAML::Node root = fs::exists(file) ? YAML::LoadFile(file.string()) : YAML::Node();
  if (root && !root.IsNull()) {
    if (!root.IsMap()) Bad("observed.yaml: expected a mapping of node name to node");
    for (const auto& kv : root) {
      const std::string name = kv.first.as<std::string>();
      if (config.FindNode(name) == nullptr) {
        Bad("observed.yaml: node \"" + name + "\" is not in the configuration");
      }
    }
  }
  ObservedState observed;
  observed.observed_at = TimePoint{std::chrono::seconds{1'700'000'000}};
  for (const NodeConfig& nc : config.nodes) {
    const YAML::Node node = root && root.IsMap() ? root[nc.name] : YAML::Node();
    observed.nodes.push_back(ReadNode(nc.name, node, desired));
  }
  return observed;
}

ControllerConfig ReadConfig(const fs::path& file) {
  YAML::Node root = fs::exists(file) ? YAML::LoadFile(file.string())
                                     : YAML::Load("nodes: [{name: hv1}, {name: hv2}, {name: hv3}]");
  root["apiVersion"] = "gitvirt.dev/v1";
  root["kind"] = "ControllerConfig";
  for (YAML::Node node : root["nodes"]) {
    if (!node["uri"]) node["uri"] = "qemu:///system";
  }
  ConfigLoadResult loaded = ParseControllerConfig(YAML::Dump(root), file);
  if (!loaded.ok()) {
    std::string message = "config.yaml is not a valid configuration:";
    for (const Diagnostic& d : loaded.diagnostics) message += "\n  " + d.ToString();
    Bad(message);
  }
  return loaded.config;
}

PlanOptions ReadOptions(const fs::path& file) {
  PlanOptions options;
  if (!fs::exists(file)) return options;
  const YAML::Node root = YAML::LoadFile(file.string());
  if (!root || root.IsNull()) return options;
  CheckKeys(root, {"prune", "adopt", "target", "revision", "source", "now", "overrideWindows"}, "options.yaml");
  // The plan's time (sync windows, pre-change snapshots); UTC is the only zone known here.
  if (root["now"]) options.now = ParseTime(root["now"].as<std::string>(), "options.yaml now");
  if (root["overrideWindows"]) options.override_windows = root["overrideWindows"].as<bool>();
  if (root["prune"]) options.prune = root["prune"].as<bool>();
  if (root["adopt"]) options.adopt = root["adopt"].as<bool>();
  if (root["target"]) {
    options.target = ResourceRef::Parse(root["target"].as<std::string>());
    if (!options.target) Bad("options.yaml: target is Kind/name or a VM name");
  }
  if (root["revision"]) options.revision = root["revision"].as<std::string>();
  if (root["source"]) {
    auto source = SourceRef::Parse(root["source"].as<std::string>());
    if (!source) Bad("options.yaml: source is dir:PATH, git:URL@REF[:PATH], cli:TEXT or policy:Kind/name");
    options.source = *source;
  }
  return options;
}

DesiredState ReadDesired(const fs::path& dir, bool reverse_files) {
  auto files = ReadManifestDirectory(dir);
  if (!files) Bad("manifests: " + files.error().ToString());
  // The loader must not care in which order it is handed the files.
  if (reverse_files) std::ranges::reverse(*files);
  LoadResult loaded = LoadManifests(*files, LoadOptions{dir.string()});
  if (!loaded.ok()) {
    std::string message = "manifests are not valid:";
    for (const Diagnostic& d : loaded.diagnostics) message += "\n  " + d.ToString();
    Bad(message);
  }
  return std::move(loaded.desired);
}

struct GoldenCase {
  ControllerConfig config;
  DesiredState desired;
  ObservedState observed;
  PlanOptions options;
};

std::expected<GoldenCase, std::string> LoadCase(const fs::path& dir, bool reverse_files = false) {
  try {
    GoldenCase c;
    c.config = ReadConfig(dir / "config.yaml");
    c.desired = ReadDesired(dir / "manifests", reverse_files);
    c.observed = ReadObserved(dir / "observed.yaml", c.config, c.desired);
    c.options = ReadOptions(dir / "options.yaml");
    return c;
  } catch (const FixtureError& e) {
    return std::unexpected(e.message);
  } catch (const YAML::Exception& e) {
    return std::unexpected(std::string("yaml: ") + e.what());
  }
}

Result<Plan> MakePlan(const GoldenCase& c) {
  return Planner(c.config).MakePlan(c.desired, c.observed, c.options);
}

// ---- differences ------------------------------------------------------------------------------

// Which parts of two plans differ, for a failure message that says more than gtest's bytes.
class PlanDiffer {
 public:
  std::string Run(const Plan& a, const Plan& b) {
    Check(a.revision == b.revision, "revision");
    Check(a.source == b.source, "source");
    Check(a.prune == b.prune, "prune");
    Check(a.adopt == b.adopt, "adopt");
    Check(a.fingerprints == b.fingerprints, "fingerprints");
    Check(a.unmanaged == b.unmanaged, "unmanaged");
    Check(a.pending == b.pending, "pending");
    Check(a.ignored == b.ignored, "ignored");
    Compare("actions", a.actions, b.actions,
            [&](const std::string& at, const Action& x, const Action& y) {
              Check(x.id == y.id && x.type == y.type && x.node == y.node &&
                        x.source_node == y.source_node && x.target == y.target &&
                        x.reason == y.reason && x.unit == y.unit,
                    at + " (id, type, node, target, reason or unit)");
              Check(x.changes == y.changes, at + ".changes");
              Check(x.depends_on == y.depends_on, at + ".depends_on");
              Check(x.stage == y.stage, at + ".stage");
              Check(x.volumes == y.volumes && x.snapshot == y.snapshot && x.policy == y.policy,
                    at + " (volumes, snapshot or policy)");
              Check(x.power_before == y.power_before, at + ".power_before");
              Check(x.vm.has_value() == y.vm.has_value(), at + ".vm (present in one only)");
              if (x.vm && y.vm) {
                Meta(at + ".vm.meta", x.vm->meta, y.vm->meta);
                Check(x.vm->spec == y.vm->spec, at + ".vm.spec");
                Check(x.vm->cluster == y.vm->cluster, at + ".vm.cluster");
              }
              Check(x.image.has_value() == y.image.has_value(),
                    at + ".image (present in one only)");
              if (x.image && y.image) {
                Meta(at + ".image.meta", x.image->meta, y.image->meta);
                Check(x.image->spec == y.image->spec, at + ".image.spec");
              }
            });
    Compare("warnings", a.warnings, b.warnings,
            [&](const std::string& at, const Diagnostic& x, const Diagnostic& y) {
              Check(x.severity == y.severity, at + ".severity");
              Check(x.location == y.location, at + ".location");
              Check(x.path == y.path && x.message == y.message, at + " (path or message)");
            });
    Compare("images", a.images, b.images,
            [&](const std::string& at, const Image& x, const Image& y) {
              Meta(at + ".meta", x.meta, y.meta);
              Check(x.spec == y.spec, at + ".spec");
            });
    std::string out;
    for (const std::string& d : differences_) out += (out.empty() ? "" : "; ") + d;
    return out.empty() ? "no difference found" : out;
  }

 private:
  void Check(bool same, const std::string& what) {
    if (!same) differences_.push_back(what);
  }
  void Meta(const std::string& at, const ObjectMeta& x, const ObjectMeta& y) {
    Check(x.name == y.name && x.labels == y.labels && x.annotations == y.annotations &&
              x.tags == y.tags,
          at + " (name, labels, annotations or tags)");
    Check(x.location == y.location,
          at + ".location (" + x.location.ToString() + " vs \"" + y.location.ToString() + "\")");
  }
  template <typename T, typename F>
  void Compare(const std::string& what, const std::vector<T>& a, const std::vector<T>& b, F each) {
    if (a.size() != b.size()) {
      Check(false,
            what + " (" + std::to_string(a.size()) + " vs " + std::to_string(b.size()) + ")");
      return;
    }
    for (std::size_t i = 0; i < a.size(); ++i)
      each(what + "[" + std::to_string(i) + "]", a[i], b[i]);
  }
  std::vector<std::string> differences_;
};

std::string WhereTheyDiffer(const Plan& a, const Plan& b) {
  return PlanDiffer().Run(a, b);
}

// ---- the cases --------------------------------------------------------------------------------

std::vector<std::string> CaseNames() {
  std::vector<std::string> names;
  for (const fs::directory_entry& e : fs::directory_iterator(kGoldenDir)) {
    if (e.is_directory() && fs::is_directory(e.path() / "manifests")) {
      names.push_back(e.path().filename().string());
    }
  }
  std::ranges::sort(names);
  return names;
}

std::string TestName(const testing::TestParamInfo<std::string>& info) {
  std::string name = info.param;
  std::ranges::replace_if(
      name, [](char c) { return !std::isalnum(static_cast<unsigned char>(c)); }, '_');
  return name;
}

class GoldenPlanTest : public testing::TestWithParam<std::string> {
 protected:
  fs::path Dir() const { return kGoldenDir / GetParam(); }
  bool ExpectsError() const { return fs::exists(Dir() / "expected.error"); }
};

TEST_P(GoldenPlanTest, MatchesExpected) {
  auto c = LoadCase(Dir());
  ASSERT_TRUE(c) << c.error();
  const Result<Plan> plan = MakePlan(*c);

  if (ExpectsError()) {
    ASSERT_FALSE(plan) << "MakePlan was expected to fail but planned:\n" << RenderPlan(*plan);
    for (const std::string& want : NonEmptyLines(ReadText(Dir() / "expected.error"))) {
      EXPECT_NE(plan.error().message.find(want), std::string::npos)
          << "the error does not contain: " << want << "\nerror:\n"
          << plan.error().message;
    }
    return;
  }
  ASSERT_TRUE(plan) << plan.error().ToString();
  const std::string text = RenderPlan(*plan);
  const fs::path expected_file = Dir() / "expected.plan";

  if (UpdateMode()) {
    // A case with a bug.md expects what the planner should do, not what it does: keep it.
    if (fs::exists(Dir() / "bug.md")) {
      GTEST_SKIP() << "not rewriting " << expected_file << ": the case documents a bug (bug.md)";
    }
    if (!fs::exists(expected_file) || ReadText(expected_file) != text) {
      WriteText(expected_file, text);
      std::cout << "updated " << expected_file.string() << "\n";
    }
    return;
  }
  ASSERT_TRUE(fs::exists(expected_file))
      << expected_file << " is missing; run the test with GITVIRT_UPDATE_GOLDEN=1 to write it. "
      << "The plan is:\n"
      << text;
  EXPECT_EQ(ReadText(expected_file), text) << "(GITVIRT_UPDATE_GOLDEN=1 rewrites expected.plan)";

  if (fs::exists(Dir() / "expected.unmanaged")) {
    EXPECT_EQ(NonEmptyLines(ReadText(Dir() / "expected.unmanaged")), plan->unmanaged);
  }
}

// The same inputs give the same plan, byte for byte, however often and in whatever order the
// manifest files are read.
TEST_P(GoldenPlanTest, IsDeterministic) {
  auto c = LoadCase(Dir());
  ASSERT_TRUE(c) << c.error();
  auto reversed = LoadCase(Dir(), /*reverse_files=*/true);
  ASSERT_TRUE(reversed) << reversed.error();
  const Result<Plan> first = MakePlan(*c);
  const Result<Plan> second = MakePlan(*c);
  const Result<Plan> third = MakePlan(*reversed);
  ASSERT_EQ(first.has_value(), second.has_value());
  ASSERT_EQ(first.has_value(), third.has_value());
  if (!first) {
    EXPECT_EQ(first.error(), second.error());
    EXPECT_EQ(first.error(), third.error());
    return;
  }
  EXPECT_TRUE(*first == *second) << WhereTheyDiffer(*first, *second);
  EXPECT_TRUE(*first == *third) << "with the manifest files read in reverse order: "
                                << WhereTheyDiffer(*first, *third);
  const std::string text = RenderPlan(*first);
  EXPECT_EQ(text, RenderPlan(*second));
  EXPECT_EQ(text, RenderPlan(*third));
  EXPECT_EQ(PlanToJson(*first).dump(), PlanToJson(*second).dump());
}

// A saved plan is the plan: PlanFromJson(PlanToJson(p)) == p.
TEST_P(GoldenPlanTest, RoundTripsThroughJson) {
  auto c = LoadCase(Dir());
  ASSERT_TRUE(c) << c.error();
  const Result<Plan> plan = MakePlan(*c);
  if (!plan) {
    if (ExpectsError()) GTEST_SKIP() << "the case expects MakePlan to fail";
    FAIL() << plan.error().ToString();
  }
  const nlohmann::json saved = PlanToJson(*plan);
  // Through text, as `plan -o plan.json` and `apply plan.json` do.
  const Result<Plan> loaded = PlanFromJson(nlohmann::json::parse(saved.dump()));
  ASSERT_TRUE(loaded) << loaded.error().ToString();
  EXPECT_TRUE(*loaded == *plan) << "PlanFromJson(PlanToJson(plan)) != plan; differs in: "
                                << WhereTheyDiffer(*plan, *loaded);
  EXPECT_EQ(PlanToJson(*loaded).dump(), saved.dump());
  EXPECT_EQ(RenderPlan(*loaded), RenderPlan(*plan));
}

INSTANTIATE_TEST_SUITE_P(Cases, GoldenPlanTest, testing::ValuesIn(CaseNames()), TestName);

// A directory that is not a case by mistake (no manifests/) or a case without any expectation
// would be silently skipped; refuse both.
TEST(GoldenPlanLayoutTest, EveryDirectoryIsACaseWithAnExpectation) {
  for (const fs::directory_entry& e : fs::directory_iterator(kGoldenDir)) {
    if (!e.is_directory()) continue;
    const fs::path dir = e.path();
    EXPECT_TRUE(fs::is_directory(dir / "manifests")) << dir << " has no manifests/";
    const bool plan = fs::exists(dir / "expected.plan");
    const bool error = fs::exists(dir / "expected.error");
    EXPECT_FALSE(plan && error) << dir << " has both expected.plan and expected.error";
    if (!UpdateMode()) {
      EXPECT_TRUE(plan || error) << dir << " has neither expected.plan nor expected.error";
    }
  }
}

}  // namespace
}  // namespace gitvirt
