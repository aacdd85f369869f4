#include "gitvirt/manifest/emitter.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <regex>
#include <sstream>

#include "yaml_reader.h"

namespace gitvirt {
namespace {

using manifest_internal::ReadsAsString;

constexpr std::string_view kApiVersion = "gitvirt.dev/v1";

// One document. Each Put* writes a key and its value; the callers leave out what equals the
// loader's default, so what is written is what the value sets.
class Writer {
 public:
  explicit Writer(std::string_view kind) {
    out_ << YAML::BeginMap;
    Put("apiVersion", std::string(kApiVersion));
    Put("kind", std::string(kind));
  }

  YAML::Emitter& out() { return out_; }

  void Key(std::string_view key) { out_ << YAML::Key << std::string(key) << YAML::Value; }
  void BeginMap(std::string_view key) {
    Key(key);
    out_ << YAML::BeginMap;
  }
  void EndMap() { out_ << YAML::EndMap; }
  void BeginSeq(std::string_view key) {
    Key(key);
    out_ << YAML::BeginSeq;
  }
  void EndSeq() { out_ << YAML::EndSeq; }

  // A string as the loader reads it back: quoted where plain would read as something else
  // (null, a boolean, a number), a literal block for text of several lines when that reads back
  // exactly, else double-quoted with escapes.
  void Value(const std::string& text) {
    if (text.find('\n') != std::string::npos) {
      if (LiteralReadsBack(text)) {
        out_ << YAML::Literal << text;
      } else {
        out_ << YAML::DoubleQuoted << text;
      }
    } else if (!ReadsAsString(text) || ReadsAsNumberInYaml11(text)) {
      out_ << YAML::DoubleQuoted << text;
    } else {
      out_ << text;
    }
  }
  void Value(std::int64_t number) { out_ << number; }
  void Value(bool flag) { out_ << (flag ? "true" : "false"); }

  void Put(std::string_view key, const std::string& text) {
    Key(key);
    Value(text);
  }
  void Put(std::string_view key, const char* text) { Put(key, std::string(text)); }
  void Put(std::string_view key, bool flag) {
    Key(key);
    Value(flag);
  }
  void Put(std::string_view key, int number) {
    Key(key);
    Value(static_cast<std::int64_t>(number));
  }
  void PutSize(std::string_view key, std::uint64_t bytes) { Put(key, FormatSize(bytes)); }
  void PutDuration(std::string_view key, Seconds seconds) { Put(key, FormatDuration(seconds)); }
  template <typename E>
  void PutEnum(std::string_view key, E value) {
    Put(key, std::string(EnumName(value)));
  }
  // Only when it differs from `fallback`, the loader's default.
  void PutIf(std::string_view key, const std::string& text, const std::string& fallback = "") {
    if (text != fallback) Put(key, text);
  }
  void PutIf(std::string_view key, bool flag, bool fallback = false) {
    if (flag != fallback) Put(key, flag);
  }
  template <typename E>
    requires std::is_enum_v<E>
  void PutEnumIf(std::string_view key, E value, E fallback) {
    if (value != fallback) PutEnum(key, value);
  }
  void PutIf(std::string_view key, const std::optional<int>& number) {
    if (number) Put(key, *number);
  }
  void PutStrings(std::string_view key, const std::vector<std::string>& items) {
    if (items.empty()) return;
    BeginSeq(key);
    for (const std::string& item : items) Value(item);
    EndSeq();
  }
  void PutMap(std::string_view key, const Labels& map) {
    if (map.empty()) return;
    BeginMap(key);
    for (const auto& [k, v] : map) Put(k, v);
    EndMap();
  }

  std::string Finish(const EmitOptions& options) {
    out_ << YAML::EndMap;
    std::string text;
    for (const std::string& line : options.comment) text += line.empty() ? "#\n" : "# " + line + "\n";
    text += out_.c_str();
    text += "\n";
    return text;
  }

 private:
  // YAML 1.1 readers (PyYAML, the JSON Schema checks of editors) read an all-digit MAC such as
  // 52:54:00:15:01:01 as a base-60 integer; gitvirt's loader does not, but the file must mean
  // the same to both.
  // What other YAML readers take for a number though gitvirt's loader reads a string: YAML 1.1's
  // base 60 (1:30) and the hexadecimal, octal and binary forms of 1.1 and 1.2 (0x1f, 0o17, 017,
  // 0b101). Quoted, so PyYAML and schema tools read the same name gitvirt does.
  static bool ReadsAsNumberInYaml11(const std::string& text) {
    static const std::regex kSexagesimal(R"([-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?)");
    static const std::regex kBased(R"([-+]?(0x[0-9a-fA-F_]+|0o[0-7_]+|0[0-7_]+|0b[01_]+))");
    return std::regex_match(text, kSexagesimal) || std::regex_match(text, kBased);
  }

  static bool LiteralReadsBack(const std::string& text) {
    YAML::Emitter probe;
    probe << YAML::BeginMap << YAML::Key << "k" << YAML::Value << YAML::Literal << text << YAML::Key << "next"
          << YAML::Value << "x" << YAML::EndMap;
    try {
      const YAML::Node node = YAML::Load(probe.c_str());
      return node["k"].Scalar() == text;
    } catch (const YAML::Exception&) {
      return false;
    }
  }

  YAML::Emitter out_;
};

void PutMetadata(Writer& w, const ObjectMeta& meta) {
  w.BeginMap("metadata");
  w.Put("name", meta.name);
  w.PutMap("labels", meta.labels);
  w.PutMap("annotations", meta.annotations);
  w.PutStrings("tags", meta.tags);
  w.EndMap();
}

void PutSecret(Writer& w, std::string_view key, const std::optional<SecretRef>& secret) {
  if (!secret) return;
  w.BeginMap(key);
  if (!secret->file.empty()) {
    w.Put("file", secret->file);
  } else {
    w.Put("env", secret->env);
  }
  w.EndMap();
}

void PutDisk(Writer& w, const Disk& d) {
  const Disk defaults;
  w.out() << YAML::BeginMap;
  w.Put("name", d.name);
  if (d.size) w.PutSize("size", *d.size);
  w.PutIf("pool", d.pool, defaults.pool);
  w.PutEnumIf("bus", d.bus, defaults.bus);
  w.PutEnumIf("format", d.format, defaults.format);
  if (d.source.type != DiskSourceType::kNew) {
    w.BeginMap("source");
    w.Put(EnumName(d.source.type), d.source.ref);
    // The loader's clone default: linked for an image, none for a volume or a path.
    const CloneMode fallback = d.source.type == DiskSourceType::kImage ? CloneMode::kLinked : CloneMode::kNone;
    w.PutEnumIf("clone", d.source.clone, fallback);
    w.EndMap();
  }
  w.PutEnumIf("cache", d.cache, defaults.cache);
  w.PutIf("discard", d.discard);
  w.PutIf("ssd", d.ssd);
  w.PutIf("iothread", d.iothread);
  w.PutIf("readonly", d.readonly);
  w.PutIf("bootOrder", d.boot_order);
  w.PutIf("backup", d.backup, defaults.backup);
  w.out() << YAML::EndMap;
}

void PutCdrom(Writer& w, const Cdrom& c) {
  w.out() << YAML::BeginMap;
  w.Put("name", c.name);
  if (!c.image.empty()) {
    w.Put("image", c.image);
  } else {
    w.Put("path", c.path);
  }
  w.PutEnumIf("bus", c.bus, Cdrom{}.bus);
  w.PutIf("bootOrder", c.boot_order);
  w.out() << YAML::EndMap;
}

void PutNic(Writer& w, const Nic& n) {
  w.out() << YAML::BeginMap;
  if (n.user) {
    w.Put("user", true);
  } else if (!n.network.empty()) {
    w.Put("network", n.network);
  } else {
    w.Put("bridge", n.bridge);
  }
  w.PutEnumIf("model", n.model, Nic{}.model);
  w.PutIf("vlan", n.vlan);
  w.PutIf("mac", n.mac);
  w.PutIf("filter", n.filter);
  w.PutIf("bootOrder", n.boot_order);
  w.out() << YAML::EndMap;
}

void PutCloudInit(Writer& w, const CloudInit& ci, const std::string& vm_name) {
  const CloudInit defaults;
  w.BeginMap("cloudInit");
  // The loader names the host after the VM (or, in a template, after each member) when the
  // manifest does not.
  w.PutIf("hostname", ci.hostname, vm_name);
  if (!ci.users.empty()) {
    w.BeginSeq("users");
    for (const CloudInitUser& u : ci.users) {
      w.out() << YAML::BeginMap;
      w.Put("name", u.name);
      w.PutStrings("sshAuthorizedKeys", u.ssh_authorized_keys);
      w.PutIf("passwordHash", u.password_hash);
      PutSecret(w, "passwordFrom", u.password_from);
      w.PutIf("sudo", u.sudo);
      w.PutStrings("groups", u.groups);
      w.PutIf("shell", u.shell);
      w.out() << YAML::EndMap;
    }
    w.EndSeq();
  }
  if (!ci.ip_configs.empty()) {
    std::vector<std::string> ips;
    for (const IpConfig& ip : ci.ip_configs) ips.push_back(ip.ToString());
    w.PutStrings("ipConfigs", ips);
  }
  w.PutStrings("nameservers", ci.nameservers);
  w.PutStrings("searchDomains", ci.search_domains);
  w.PutIf("userData", ci.user_data);
  w.PutEnumIf("userDataMode", ci.user_data_mode, defaults.user_data_mode);
  w.EndMap();
}

// The fields of a VM spec that a VirtualMachine document and a Cluster template share, in the
// order docs/manifests.md lists them. `name` is the VM's (or "" in a template).
void PutVmSpecBody(Writer& w, const VmSpec& spec, const std::string& name) {
  const VmSpec defaults;
  w.PutIf("description", spec.description);
  w.Put("vcpus", spec.vcpus);
  if (spec.max_vcpus) w.Put("maxVcpus", *spec.max_vcpus);
  w.PutSize("memory", spec.memory);
  if (spec.max_memory) w.PutSize("maxMemory", *spec.max_memory);
  if (spec.cpu != defaults.cpu) {
    w.BeginMap("cpu");
    w.PutEnumIf("mode", spec.cpu.mode, defaults.cpu.mode);
    w.PutIf("model", spec.cpu.model);
    if (spec.cpu.topology) {
      w.BeginMap("topology");
      w.Put("sockets", spec.cpu.topology->sockets);
      w.Put("cores", spec.cpu.topology->cores);
      w.Put("threads", spec.cpu.topology->threads);
      w.EndMap();
    }
    w.EndMap();
  }
  w.PutIf("machine", spec.machine, defaults.machine);
  if (spec.firmware != defaults.firmware) {
    w.BeginMap("firmware");
    w.PutEnumIf("type", spec.firmware.type, defaults.firmware.type);
    w.PutIf("secureBoot", spec.firmware.secure_boot);
    w.PutIf("tpm", spec.firmware.tpm);
    w.EndMap();
  }
  if (spec.os != defaults.os) {
    w.BeginMap("os");
    w.PutIf("type", spec.os.type);
    w.PutIf("variant", spec.os.variant);
    w.EndMap();
  }
  if (spec.boot) {
    w.BeginMap("boot");
    w.Put("kernel", spec.boot->kernel);
    w.PutIf("initrd", spec.boot->initrd);
    w.PutIf("cmdline", spec.boot->cmdline);
    w.EndMap();
  }
  w.PutIf("guestAgent", spec.guest_agent);
  if (!spec.disks.empty()) {
    w.BeginSeq("disks");
    for (const Disk& d : spec.disks) PutDisk(w, d);
    w.EndSeq();
  }
  if (!spec.cdroms.empty()) {
    w.BeginSeq("cdroms");
    for (const Cdrom& c : spec.cdroms) PutCdrom(w, c);
    w.EndSeq();
  }
  if (!spec.networks.empty()) {
    w.BeginSeq("networks");
    for (const Nic& n : spec.networks) PutNic(w, n);
    w.EndSeq();
  }
  if (spec.cloud_init) PutCloudInit(w, *spec.cloud_init, name);
  if (spec.graphics != defaults.graphics) {
    const Graphics& g = spec.graphics;
    w.BeginMap("graphics");
    w.PutEnumIf("type", g.type, defaults.graphics.type);
    w.PutIf("listen", g.listen, defaults.graphics.listen);
    w.PutIf("port", g.port);
    PutSecret(w, "passwordFrom", g.password_from);
    w.PutEnumIf("video", g.video, defaults.graphics.video);
    w.EndMap();
  }
  if (!spec.gpus.empty()) {
    w.BeginSeq("gpus");
    for (const Gpu& gpu : spec.gpus) {
      w.out() << YAML::BeginMap;
      if (!gpu.pci_address.empty()) {
        w.Put("pci", gpu.pci_address);
      } else {
        w.BeginMap("mdev");
        w.Put("type", gpu.mdev_type);
        w.PutIf("uuid", gpu.mdev_uuid);
        w.EndMap();
      }
      w.out() << YAML::EndMap;
    }
    w.EndSeq();
  }
  w.PutIf("autostart", spec.autostart);
  w.PutEnumIf("powerState", spec.power_state, defaults.power_state);
  if (spec.update_policy != defaults.update_policy) {
    const UpdatePolicy& u = spec.update_policy;
    w.BeginMap("updatePolicy");
    w.PutEnumIf("restart", u.restart, defaults.update_policy.restart);
    if (u.shutdown_timeout != defaults.update_policy.shutdown_timeout) w.PutDuration("shutdownTimeout", u.shutdown_timeout);
    w.PutIf("forceOff", u.force_off);
    if (u.snapshot) {
      // `snapshot: true` is {keep: 24h}: the short form for the default.
      if (*u.snapshot == PreChangeSnapshot{}) {
        w.Put("snapshot", true);
      } else {
        w.BeginMap("snapshot");
        w.PutDuration("keep", u.snapshot->keep);
        w.EndMap();
      }
    }
    w.EndMap();
  }
  w.PutStrings("ignoreDifferences", spec.ignore_differences);
  w.PutEnumIf("deletionPolicy", spec.deletion_policy, defaults.deletion_policy);
  if (!spec.depends_on.empty()) {
    std::vector<std::string> refs;
    for (const ResourceRef& r : spec.depends_on) refs.push_back(r.ToString());
    w.PutStrings("dependsOn", refs);
  }
  if (spec.readiness != defaults.readiness) {
    const Readiness& r = spec.readiness;
    w.BeginMap("readiness");
    w.PutIf("agent", r.agent);
    w.PutIf("tcp", r.tcp);
    w.PutIf("consoleMarker", r.console_marker);
    if (r.timeout != defaults.readiness.timeout) w.PutDuration("timeout", r.timeout);
    w.EndMap();
  }
  if (spec.migration != defaults.migration) {
    const MigrationPolicy& m = spec.migration;
    w.BeginMap("migration");
    w.PutIf("live", m.live, defaults.migration.live);
    w.PutIf("allowOffline", m.allow_offline);
    w.PutIf("copyStorage", m.copy_storage);
    if (m.bandwidth) w.PutSize("bandwidth", *m.bandwidth);
    w.EndMap();
  }
}

void PutSelector(Writer& w, const Selector& s) {
  w.BeginMap("selector");
  w.PutIf("all", s.all);
  w.PutMap("matchLabels", s.match_labels);
  w.PutStrings("names", s.names);
  w.PutIf("tags", s.tags);
  w.EndMap();
}

void PutRetention(Writer& w, const Retention& r) {
  if (!r.keep && !r.max_age) return;
  w.BeginMap("retention");
  w.PutIf("keep", r.keep);
  if (r.max_age) w.PutDuration("maxAge", *r.max_age);
  w.EndMap();
}

// Schedule, time zone and suspension, which both policy kinds have.
template <typename Spec>
void PutSchedule(Writer& w, const Spec& spec, const Spec& defaults) {
  w.PutIf("schedule", spec.schedule);
  w.PutIf("timeZone", spec.time_zone, defaults.time_zone);
  w.PutIf("suspend", spec.suspend);
}

}  // namespace

std::string EmitVirtualMachine(const VirtualMachine& vm, const EmitOptions& options) {
  Writer w("VirtualMachine");
  PutMetadata(w, vm.meta);
  const VmSpec& spec = vm.spec;
  w.BeginMap("spec");
  w.PutIf("node", spec.node);
  if (!spec.placement.node_selector.empty()) {
    w.BeginMap("placement");
    w.PutMap("nodeSelector", spec.placement.node_selector);
    w.EndMap();
  }
  PutVmSpecBody(w, spec, vm.meta.name);
  w.PutIf("adopt", spec.adopt);
  w.EndMap();
  return w.Finish(options);
}

std::string EmitImage(const Image& image, const EmitOptions& options) {
  const ImageSpec defaults;
  Writer w("Image");
  PutMetadata(w, image.meta);
  const ImageSpec& spec = image.spec;
  w.BeginMap("spec");
  w.Put("source", spec.source);
  w.Put("sha256", spec.sha256);
  w.PutEnumIf("format", spec.format, defaults.format);
  w.PutIf("pool", spec.pool, defaults.pool);
  if (spec.os != defaults.os || spec.arch != defaults.arch || spec.firmware != defaults.firmware) {
    w.BeginMap("os");
    w.PutIf("type", spec.os.type);
    w.PutIf("variant", spec.os.variant);
    w.PutIf("arch", spec.arch, defaults.arch);
    w.PutIf("firmware", spec.firmware);
    w.EndMap();
  }
  w.PutIf("description", spec.description);
  w.EndMap();
  return w.Finish(options);
}

std::string EmitCluster(const Cluster& cluster, const EmitOptions& options) {
  const ClusterSpec defaults;
  const NodeGroup group_defaults;
  Writer w("Cluster");
  PutMetadata(w, cluster.meta);
  const ClusterSpec& spec = cluster.spec;
  w.BeginMap("spec");
  w.PutEnumIf("rollbackStrategy", spec.rollback, defaults.rollback);
  w.PutIf("maxParallel", spec.max_parallel);
  if (!spec.nameservers.empty() || !spec.search_domains.empty()) {
    w.BeginMap("cloudInit");
    w.PutStrings("nameservers", spec.nameservers);
    w.PutStrings("searchDomains", spec.search_domains);
    w.EndMap();
  }
  w.BeginSeq("nodeGroups");
  for (const NodeGroup& g : spec.node_groups) {
    w.out() << YAML::BeginMap;
    w.Put("name", g.name);
    w.PutIf("role", g.role);
    w.Put("count", g.count);
    w.PutIf("namePattern", g.name_pattern, group_defaults.name_pattern);
    w.PutIf("scaleDown", g.scale_down);
    w.PutMap("labels", g.labels);
    w.PutStrings("tags", g.tags);
    if (g.placement != group_defaults.placement) {
      w.BeginMap("placement");
      w.PutEnumIf("antiAffinity", g.placement.anti_affinity, group_defaults.placement.anti_affinity);
      w.PutIf("topologyKey", g.placement.topology_key);
      w.PutMap("nodeSelector", g.placement.node_selector);
      w.EndMap();
    }
    w.PutStrings("ipConfigPatterns", g.ip_config_patterns);
    if (g.max_unavailable != group_defaults.max_unavailable) {
      // A whole number as a number (2), a percentage as a string ("25%").
      const bool whole = !g.max_unavailable.empty() &&
                         std::all_of(g.max_unavailable.begin(), g.max_unavailable.end(),
                                     [](unsigned char c) { return std::isdigit(c) != 0; });
      if (whole && g.max_unavailable.size() < 10) {
        w.Put("maxUnavailable", std::stoi(g.max_unavailable));
      } else {
        w.Put("maxUnavailable", g.max_unavailable);
      }
    }
    w.BeginMap("template");
    PutVmSpecBody(w, g.tmpl, "");
    w.EndMap();
    w.out() << YAML::EndMap;
  }
  w.EndSeq();
  w.EndMap();
  return w.Finish(options);
}

std::string EmitSnapshotPolicy(const SnapshotPolicy& policy, const EmitOptions& options) {
  const SnapshotPolicySpec defaults;
  Writer w("SnapshotPolicy");
  PutMetadata(w, policy.meta);
  const SnapshotPolicySpec& spec = policy.spec;
  w.BeginMap("spec");
  PutSelector(w, spec.selector);
  PutSchedule(w, spec, defaults);
  w.PutIf("namePattern", spec.name_pattern, defaults.name_pattern);
  w.PutIf("description", spec.description);
  w.PutIf("memory", spec.memory);
  w.PutIf("quiesce", spec.quiesce);
  if (spec.max_parallel != defaults.max_parallel) w.Put("maxParallel", spec.max_parallel);
  PutRetention(w, spec.retention);
  w.EndMap();
  return w.Finish(options);
}

std::string EmitBackupPolicy(const BackupPolicy& policy, const EmitOptions& options) {
  const BackupPolicySpec defaults;
  Writer w("BackupPolicy");
  PutMetadata(w, policy.meta);
  const BackupPolicySpec& spec = policy.spec;
  w.BeginMap("spec");
  PutSelector(w, spec.selector);
  PutSchedule(w, spec, defaults);
  w.BeginMap("target");
  w.Put("directory", spec.target.directory);
  w.EndMap();
  w.PutEnumIf("mode", spec.mode, defaults.mode);
  w.PutEnumIf("compression", spec.compression, defaults.compression);
  w.PutIf("compressionLevel", spec.compression_level);
  PutRetention(w, spec.retention);
  w.PutIf("protect", spec.protect);
  if (spec.max_parallel != defaults.max_parallel) w.Put("maxParallel", spec.max_parallel);
  w.PutIf("verify", spec.verify);
  w.PutIf("description", spec.description);
  w.EndMap();
  return w.Finish(options);
}

std::string JoinDocuments(const std::vector<std::string>& documents) {
  std::string out;
  for (std::size_t i = 0; i < documents.size(); ++i) {
    if (i > 0) out += "---\n";
    out += documents[i];
  }
  return out;
}

}  // namespace gitvirt
