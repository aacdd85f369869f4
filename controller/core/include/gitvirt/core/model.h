#pragma once
// The desired model: what the manifests say, after defaults are applied and Clusters are
// expanded. Plain values with defaulted ==, so tests compare whole structs and the planner
// compares desired against observed field by field. Nothing here does I/O.
//
// Field names follow the YAML (docs/manifests.md); sizes are bytes, durations seconds.

#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "gitvirt/core/enums.h"
#include "gitvirt/core/units.h"

namespace gitvirt {

using Labels = std::map<std::string, std::string>;

// Where a document (or a field) came from: the file is relative to the manifest root.
struct SourceLocation {
  std::string file;
  int line = 0;    // 1-based; 0 = unknown
  int column = 0;  // 1-based
  std::string ToString() const;  // "file:line:column"
  friend bool operator==(const SourceLocation&, const SourceLocation&) = default;
};

// "VirtualMachine/web-01": how resources refer to each other and how the plan names targets.
struct ResourceRef {
  Kind kind = Kind::kVirtualMachine;
  std::string name;
  std::string ToString() const;
  static std::optional<ResourceRef> Parse(std::string_view text);  // "Kind/name" or bare VM name
  friend auto operator<=>(const ResourceRef&, const ResourceRef&) = default;
};

struct ObjectMeta {
  std::string name;
  Labels labels;
  Labels annotations;
  std::vector<std::string> tags;
  SourceLocation location;  // the document's `kind:` line
  friend bool operator==(const ObjectMeta&, const ObjectMeta&) = default;
};

// A secret is read where it is used (at apply) and never stored: only this reference travels
// through plans, journals and the API.
struct SecretRef {
  std::string file;  // absolute, or relative to the config's secretsDir
  std::string env;
  std::string ToString() const;  // "file:/path" or "env:NAME"
  friend bool operator==(const SecretRef&, const SecretRef&) = default;
};

struct DiskSource {
  DiskSourceType type = DiskSourceType::kNew;
  std::string ref;                    // image name, volume name or path
  CloneMode clone = CloneMode::kNone;  // normalised: image -> linked unless said otherwise
  friend bool operator==(const DiskSource&, const DiskSource&) = default;
};

struct Disk {
  std::string name;
  std::optional<std::uint64_t> size;  // bytes; required for new disks
  std::string pool = "default";
  DiskBus bus = DiskBus::kVirtio;
  DiskFormat format = DiskFormat::kQcow2;
  DiskSource source;
  DiskCache cache = DiskCache::kDefault;
  bool discard = false;
  bool ssd = false;
  bool iothread = false;
  bool readonly = false;
  std::optional<int> boot_order;
  bool backup = true;
  friend bool operator==(const Disk&, const Disk&) = default;
};

struct Cdrom {
  std::string name;
  std::string image;  // an Image of format iso, or
  std::string path;   // a file on the node
  DiskBus bus = DiskBus::kSata;
  std::optional<int> boot_order;
  friend bool operator==(const Cdrom&, const Cdrom&) = default;
};

struct Nic {
  std::string network;  // exactly one of network / bridge / user
  std::string bridge;
  NicModel model = NicModel::kVirtio;
  std::optional<int> vlan;
  std::string mac;  // empty: libvirt generates one and the planner ignores it
  std::string filter;
  std::optional<int> boot_order;
  bool user = false;  // or QEMU's user-mode networking (SLIRP): no host network (last: aggregate order)
  friend bool operator==(const Nic&, const Nic&) = default;
};

struct CpuTopology {
  int sockets = 1;
  int cores = 1;
  int threads = 1;
  friend bool operator==(const CpuTopology&, const CpuTopology&) = default;
};

struct CpuSpec {
  CpuMode mode = CpuMode::kDefault;
  std::string model;
  std::optional<CpuTopology> topology;
  friend bool operator==(const CpuSpec&, const CpuSpec&) = default;
};

struct Firmware {
  FirmwareType type = FirmwareType::kBios;
  bool secure_boot = false;
  bool tpm = false;
  friend bool operator==(const Firmware&, const Firmware&) = default;
};

// Direct kernel boot: the node starts this kernel (and initrd) instead of a bootloader on a
// disk. Paths are on the node.
struct DirectBoot {
  std::string kernel;
  std::string initrd;
  std::string cmdline;
  friend bool operator==(const DirectBoot&, const DirectBoot&) = default;
};

struct OsInfo {
  std::string type;
  std::string variant;
  friend bool operator==(const OsInfo&, const OsInfo&) = default;
};

// One NIC's addressing, from "ip=10.0.0.5/24,gw=10.0.0.1" or "ip=dhcp,ip6=auto".
struct IpConfig {
  IpMode v4 = IpMode::kNone;
  std::string v4_address;  // CIDR when static
  std::string v4_gateway;
  IpMode v6 = IpMode::kNone;
  std::string v6_address;
  std::string v6_gateway;
  std::string ToString() const;  // back to the Proxmox-style form
  friend bool operator==(const IpConfig&, const IpConfig&) = default;
};

struct CloudInitUser {
  std::string name;
  std::vector<std::string> ssh_authorized_keys;
  std::string password_hash;
  std::optional<SecretRef> password_from;
  std::string sudo;
  std::vector<std::string> groups;
  std::string shell;
  friend bool operator==(const CloudInitUser&, const CloudInitUser&) = default;
};

struct CloudInit {
  std::string hostname;  // defaulted to the VM name by the loader
  std::vector<CloudInitUser> users;
  std::vector<IpConfig> ip_configs;  // one per NIC, in NIC order
  std::vector<std::string> nameservers;
  std::vector<std::string> search_domains;
  std::string user_data;
  UserDataMode user_data_mode = UserDataMode::kMerge;
  friend bool operator==(const CloudInit&, const CloudInit&) = default;
};

struct Graphics {
  GraphicsType type = GraphicsType::kNone;
  std::string listen = "127.0.0.1";
  std::optional<int> port;  // nullopt = auto
  std::optional<SecretRef> password_from;
  VideoModel video = VideoModel::kVirtio;
  friend bool operator==(const Graphics&, const Graphics&) = default;
};

struct Gpu {
  std::string pci_address;  // "0000:65:00.0" for passthrough, or
  std::string mdev_type;    // a mediated device type and its uuid
  std::string mdev_uuid;
  friend bool operator==(const Gpu&, const Gpu&) = default;
};

// A snapshot taken before a change that restarts or replaces the VM or changes its disks: when
// the VM is not Ready again within its readiness timeout, a FULL rollback reverts it to the
// snapshot; when it is, the snapshot is deleted `keep` after the change.
struct PreChangeSnapshot {
  Seconds keep{24 * 3600};
  friend bool operator==(const PreChangeSnapshot&, const PreChangeSnapshot&) = default;
};

struct UpdatePolicy {
  RestartPolicy restart = RestartPolicy::kNever;
  Seconds shutdown_timeout{120};
  bool force_off = false;
  std::optional<PreChangeSnapshot> snapshot;  // unset: no snapshot before a change
  friend bool operator==(const UpdatePolicy&, const UpdatePolicy&) = default;
};

struct Readiness {
  bool agent = false;
  std::optional<int> tcp;
  std::string console_marker;
  Seconds timeout{300};
  bool Enabled() const { return agent || tcp.has_value() || !console_marker.empty(); }
  friend bool operator==(const Readiness&, const Readiness&) = default;
};

struct MigrationPolicy {
  bool live = true;
  bool allow_offline = false;
  bool copy_storage = false;
  std::optional<std::uint64_t> bandwidth;  // bytes per second
  friend bool operator==(const MigrationPolicy&, const MigrationPolicy&) = default;
};

struct Placement {
  Labels node_selector;
  AntiAffinity anti_affinity = AntiAffinity::kNone;
  std::string topology_key;  // spread over this node label; empty = node names
  friend bool operator==(const Placement&, const Placement&) = default;
};

struct VmSpec {
  std::string node;  // empty: placement chooses
  Placement placement;
  std::string description;
  int vcpus = 1;
  std::optional<int> max_vcpus;
  std::uint64_t memory = 0;
  std::optional<std::uint64_t> max_memory;
  CpuSpec cpu;
  std::string machine = "q35";
  Firmware firmware;
  OsInfo os;
  std::optional<DirectBoot> boot;
  bool guest_agent = false;
  std::vector<Disk> disks;
  std::vector<Cdrom> cdroms;
  std::vector<Nic> networks;
  std::optional<CloudInit> cloud_init;
  Graphics graphics;
  std::vector<Gpu> gpus;
  bool autostart = false;
  PowerState power_state = PowerState::kRunning;
  UpdatePolicy update_policy;
  DeletionPolicy deletion_policy = DeletionPolicy::kDelete;
  std::vector<ResourceRef> depends_on;
  Readiness readiness;
  MigrationPolicy migration;
  // Field paths whose drift is shown as ignored and never acted on ("memory", "disks[*].size",
  // "networks[0].mac"): ignore.h. Not part of the VM itself (SpecHash leaves it out).
  std::vector<std::string> ignore_differences;
  // A domain of this name that gitvirt does not own may be taken over (an `adopt` action: the
  // owner mark only, no redefinition, no restart). Not part of the domain's shape: the diff and
  // the spec hash leave it out.
  bool adopt = false;
  friend bool operator==(const VmSpec&, const VmSpec&) = default;
};

// Set on VirtualMachines that a Cluster expanded into.
struct ClusterMembership {
  std::string cluster;
  std::string group;
  std::string role;
  int index = 0;
  int group_order = 0;  // position of the group in the Cluster
  RollbackStrategy rollback = RollbackStrategy::kFull;
  friend bool operator==(const ClusterMembership&, const ClusterMembership&) = default;
};

struct VirtualMachine {
  ObjectMeta meta;
  VmSpec spec;
  std::optional<ClusterMembership> cluster;
  friend bool operator==(const VirtualMachine&, const VirtualMachine&) = default;
};

struct NodeGroup {
  std::string name;
  std::string role;
  int count = 0;
  std::string name_pattern = "{cluster}-{group}-{NN}";
  bool scale_down = false;
  Labels labels;
  std::vector<std::string> tags;
  Placement placement;
  std::vector<std::string> ip_config_patterns;
  // How many members a change that restarts or replaces them takes down at once: a number, or a
  // percentage of the group ("25%", rounded down, at least 1). Each waits for the ones before it
  // to be Ready again.
  std::string max_unavailable = "1";
  VmSpec tmpl;
  SourceLocation location;
  friend bool operator==(const NodeGroup&, const NodeGroup&) = default;
};

struct ClusterSpec {
  RollbackStrategy rollback = RollbackStrategy::kFull;
  std::optional<int> max_parallel;
  std::vector<std::string> nameservers;     // cloudInit defaults for every member
  std::vector<std::string> search_domains;
  std::vector<NodeGroup> node_groups;
  friend bool operator==(const ClusterSpec&, const ClusterSpec&) = default;
};

struct Cluster {
  ObjectMeta meta;
  ClusterSpec spec;
  friend bool operator==(const Cluster&, const Cluster&) = default;
};

// Which VMs a policy applies to. Every criterion given must hold.
struct Selector {
  bool all = false;
  Labels match_labels;
  std::vector<std::string> names;  // globs
  std::string tags;                // tag expression text, parsed by ParseTagExpression
  std::vector<std::string> clusters;  // members of these Clusters
  friend bool operator==(const Selector&, const Selector&) = default;
};

struct Retention {
  std::optional<int> keep;
  std::optional<Seconds> max_age;
  friend bool operator==(const Retention&, const Retention&) = default;
};

struct SnapshotPolicySpec {
  Selector selector;
  std::string schedule;  // cron; empty = manual only
  std::string time_zone = "UTC";
  bool suspend = false;
  std::string name_pattern = "{policy}-{vm}-{datetime}";
  std::string description;
  bool memory = false;
  bool quiesce = false;
  int max_parallel = 3;
  Retention retention;
  friend bool operator==(const SnapshotPolicySpec&, const SnapshotPolicySpec&) = default;
};

struct SnapshotPolicy {
  ObjectMeta meta;
  SnapshotPolicySpec spec;
  friend bool operator==(const SnapshotPolicy&, const SnapshotPolicy&) = default;
};

struct BackupTarget {
  // On the controller host. (A pool on the VM's node, `target.pool`, is refused by the loader:
  // not supported yet.)
  std::string directory;
  friend bool operator==(const BackupTarget&, const BackupTarget&) = default;
};

struct BackupPolicySpec {
  Selector selector;
  std::string schedule;
  std::string time_zone = "UTC";
  bool suspend = false;
  BackupTarget target;
  BackupMode mode = BackupMode::kSnapshot;
  Compression compression = Compression::kZstd;
  std::optional<int> compression_level;
  Retention retention;
  bool protect = false;
  int max_parallel = 3;
  bool verify = false;
  std::string description;
  friend bool operator==(const BackupPolicySpec&, const BackupPolicySpec&) = default;
};

struct BackupPolicy {
  ObjectMeta meta;
  BackupPolicySpec spec;
  friend bool operator==(const BackupPolicy&, const BackupPolicy&) = default;
};

struct ImageSpec {
  std::string source;  // absolute path, file:// or http(s):// URL; relative paths are resolved
                       // against the manifest file's directory by the loader
  std::string sha256;  // lowercase hex
  ImageFormat format = ImageFormat::kQcow2;
  std::string pool = "default";
  OsInfo os;
  std::string arch = "x86_64";
  std::string firmware;  // bios | uefi, informational
  std::string description;
  friend bool operator==(const ImageSpec&, const ImageSpec&) = default;
};

struct Image {
  ObjectMeta meta;
  ImageSpec spec;
  // Volume name in the pool: "<name>.<format>".
  std::string VolumeName() const;
  friend bool operator==(const Image&, const Image&) = default;
};

// When changes may be applied to a selection of VMs: an allow window opens on its cron schedule
// for `duration`; outside every allow window that selects a VM (if any selects it), and inside
// any deny window that selects it, `serve` plans the VM's changes but does not apply them, and
// `apply` does not either unless the window allows a manual override (sync_window.h).
struct SyncWindowSpec {
  SyncWindowType type = SyncWindowType::kAllow;
  std::string schedule;  // cron (cron.h)
  Seconds duration{3600};
  std::string time_zone = "UTC";
  Selector selector;
  bool manual_sync = false;  // `gitvirt apply --override-windows` may apply inside it
  friend bool operator==(const SyncWindowSpec&, const SyncWindowSpec&) = default;
};

struct SyncWindow {
  ObjectMeta meta;
  SyncWindowSpec spec;
  friend bool operator==(const SyncWindow&, const SyncWindow&) = default;
};

// How many of a selection of VMs a change that restarts or replaces them may take down at once
// (Kubernetes' PodDisruptionBudget, for VMs): a number or a percentage of the selection.
struct DisruptionBudgetSpec {
  Selector selector;
  std::string max_unavailable = "1";
  friend bool operator==(const DisruptionBudgetSpec&, const DisruptionBudgetSpec&) = default;
};

struct DisruptionBudget {
  ObjectMeta meta;
  DisruptionBudgetSpec spec;
  friend bool operator==(const DisruptionBudget&, const DisruptionBudget&) = default;
};

// "N" or "N%" of `total`: a percentage rounds down but is at least 1; nullopt when malformed.
std::optional<int> ResolveMaxUnavailable(std::string_view text, int total);

// Everything the repository declares, validated and expanded. VMs include cluster members and
// are sorted by name; every list is sorted by name so equal repositories give equal values.
struct DesiredState {
  std::vector<VirtualMachine> vms;
  std::vector<Cluster> clusters;
  std::vector<SnapshotPolicy> snapshot_policies;
  std::vector<BackupPolicy> backup_policies;
  std::vector<Image> images;
  std::vector<SyncWindow> sync_windows;
  std::vector<DisruptionBudget> disruption_budgets;

  const VirtualMachine* FindVm(std::string_view name) const;
  const Image* FindImage(std::string_view name) const;
  const Cluster* FindCluster(std::string_view name) const;
  friend bool operator==(const DesiredState&, const DesiredState&) = default;
};

}  // namespace gitvirt
