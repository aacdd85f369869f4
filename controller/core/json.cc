#include "gitvirt/core/json.h"

#include "gitvirt/core/json_table.h"

#include "gitvirt/core/diagnostic.h"
#include "gitvirt/core/observed_codec.h"
#include "gitvirt/core/plan.h"

#include <cstdio>
#include <cstring>
#include <map>
#include <tuple>
#include <type_traits>

namespace gitvirt {

using nlohmann::json;
using json_table::Decode;
using json_table::Encode;
using json_table::HasFields;
using json_table::IsOptional;
using json_table::IsVector;
using json_table::NamedEnum;

GITVIRT_JSON_FIELDS(SecretRef, FieldDef{"file", &SecretRef::file}, FieldDef{"env", &SecretRef::env});
GITVIRT_JSON_FIELDS(DiskSource, FieldDef{"type", &DiskSource::type},
                    FieldDef{"ref", &DiskSource::ref}, FieldDef{"clone", &DiskSource::clone});
GITVIRT_JSON_FIELDS(Disk, FieldDef{"name", &Disk::name}, FieldDef{"size", &Disk::size},
                    FieldDef{"pool", &Disk::pool}, FieldDef{"bus", &Disk::bus},
                    FieldDef{"format", &Disk::format}, FieldDef{"source", &Disk::source},
                    FieldDef{"cache", &Disk::cache}, FieldDef{"discard", &Disk::discard},
                    FieldDef{"ssd", &Disk::ssd}, FieldDef{"iothread", &Disk::iothread},
                    FieldDef{"readonly", &Disk::readonly},
                    FieldDef{"bootOrder", &Disk::boot_order}, FieldDef{"backup", &Disk::backup});
GITVIRT_JSON_FIELDS(Cdrom, FieldDef{"name", &Cdrom::name}, FieldDef{"image", &Cdrom::image},
                    FieldDef{"path", &Cdrom::path}, FieldDef{"bus", &Cdrom::bus},
                    FieldDef{"bootOrder", &Cdrom::boot_order});
GITVIRT_JSON_FIELDS(Nic, FieldDef{"network", &Nic::network}, FieldDef{"bridge", &Nic::bridge},
                    FieldDef{"user", &Nic::user},
                    FieldDef{"model", &Nic::model}, FieldDef{"vlan", &Nic::vlan},
                    FieldDef{"mac", &Nic::mac}, FieldDef{"filter", &Nic::filter},
                    FieldDef{"bootOrder", &Nic::boot_order});
GITVIRT_JSON_FIELDS(CpuTopology, FieldDef{"sockets", &CpuTopology::sockets},
                    FieldDef{"cores", &CpuTopology::cores},
                    FieldDef{"threads", &CpuTopology::threads});
GITVIRT_JSON_FIELDS(CpuSpec, FieldDef{"mode", &CpuSpec::mode}, FieldDef{"model", &CpuSpec::model},
                    FieldDef{"topology", &CpuSpec::topology});
GITVIRT_JSON_FIELDS(Firmware, FieldDef{"type", &Firmware::type},
                    FieldDef{"secureBoot", &Firmware::secure_boot},
                    FieldDef{"tpm", &Firmware::tpm});
GITVIRT_JSON_FIELDS(DirectBoot, FieldDef{"kernel", &DirectBoot::kernel},
                    FieldDef{"initrd", &DirectBoot::initrd}, FieldDef{"cmdline", &DirectBoot::cmdline});
GITVIRT_JSON_FIELDS(OsInfo, FieldDef{"type", &OsInfo::type}, FieldDef{"variant", &OsInfo::variant});
GITVIRT_JSON_FIELDS(IpConfig, FieldDef{"v4", &IpConfig::v4},
                    FieldDef{"v4Address", &IpConfig::v4_address},
                    FieldDef{"v4Gateway", &IpConfig::v4_gateway}, FieldDef{"v6", &IpConfig::v6},
                    FieldDef{"v6Address", &IpConfig::v6_address},
                    FieldDef{"v6Gateway", &IpConfig::v6_gateway});
GITVIRT_JSON_FIELDS(CloudInitUser, FieldDef{"name", &CloudInitUser::name},
                    FieldDef{"sshAuthorizedKeys", &CloudInitUser::ssh_authorized_keys},
                    FieldDef{"passwordHash", &CloudInitUser::password_hash},
                    FieldDef{"passwordFrom", &CloudInitUser::password_from},
                    FieldDef{"sudo", &CloudInitUser::sudo},
                    FieldDef{"groups", &CloudInitUser::groups},
                    FieldDef{"shell", &CloudInitUser::shell});
GITVIRT_JSON_FIELDS(CloudInit, FieldDef{"hostname", &CloudInit::hostname},
                    FieldDef{"users", &CloudInit::users},
                    FieldDef{"ipConfigs", &CloudInit::ip_configs},
                    FieldDef{"nameservers", &CloudInit::nameservers},
                    FieldDef{"searchDomains", &CloudInit::search_domains},
                    FieldDef{"userData", &CloudInit::user_data},
                    FieldDef{"userDataMode", &CloudInit::user_data_mode});
GITVIRT_JSON_FIELDS(Graphics, FieldDef{"type", &Graphics::type},
                    FieldDef{"listen", &Graphics::listen}, FieldDef{"port", &Graphics::port},
                    FieldDef{"passwordFrom", &Graphics::password_from},
                    FieldDef{"video", &Graphics::video});
GITVIRT_JSON_FIELDS(Gpu, FieldDef{"pci", &Gpu::pci_address}, FieldDef{"mdevType", &Gpu::mdev_type},
                    FieldDef{"mdevUuid", &Gpu::mdev_uuid});
GITVIRT_JSON_FIELDS(PreChangeSnapshot, FieldDef{"keep", &PreChangeSnapshot::keep});
GITVIRT_JSON_FIELDS(UpdatePolicy, FieldDef{"restart", &UpdatePolicy::restart},
                    FieldDef{"shutdownTimeout", &UpdatePolicy::shutdown_timeout},
                    FieldDef{"forceOff", &UpdatePolicy::force_off},
                    FieldDef{"snapshot", &UpdatePolicy::snapshot});
GITVIRT_JSON_FIELDS(Readiness, FieldDef{"agent", &Readiness::agent},
                    FieldDef{"tcp", &Readiness::tcp},
                    FieldDef{"consoleMarker", &Readiness::console_marker},
                    FieldDef{"timeout", &Readiness::timeout});
GITVIRT_JSON_FIELDS(MigrationPolicy, FieldDef{"live", &MigrationPolicy::live},
                    FieldDef{"allowOffline", &MigrationPolicy::allow_offline},
                    FieldDef{"copyStorage", &MigrationPolicy::copy_storage},
                    FieldDef{"bandwidth", &MigrationPolicy::bandwidth});
GITVIRT_JSON_FIELDS(Placement, FieldDef{"nodeSelector", &Placement::node_selector},
                    FieldDef{"antiAffinity", &Placement::anti_affinity},
                    FieldDef{"topologyKey", &Placement::topology_key});
GITVIRT_JSON_FIELDS(ResourceRef, FieldDef{"kind", &ResourceRef::kind},
                    FieldDef{"name", &ResourceRef::name});
GITVIRT_JSON_FIELDS(VmSpec, FieldDef{"node", &VmSpec::node},
                    FieldDef{"placement", &VmSpec::placement},
                    FieldDef{"description", &VmSpec::description},
                    FieldDef{"vcpus", &VmSpec::vcpus}, FieldDef{"maxVcpus", &VmSpec::max_vcpus},
                    FieldDef{"memory", &VmSpec::memory},
                    FieldDef{"maxMemory", &VmSpec::max_memory}, FieldDef{"cpu", &VmSpec::cpu},
                    FieldDef{"machine", &VmSpec::machine},
                    FieldDef{"firmware", &VmSpec::firmware}, FieldDef{"os", &VmSpec::os},
                    FieldDef{"boot", &VmSpec::boot},
                    FieldDef{"guestAgent", &VmSpec::guest_agent},
                    FieldDef{"disks", &VmSpec::disks}, FieldDef{"cdroms", &VmSpec::cdroms},
                    FieldDef{"networks", &VmSpec::networks},
                    FieldDef{"cloudInit", &VmSpec::cloud_init},
                    FieldDef{"graphics", &VmSpec::graphics}, FieldDef{"gpus", &VmSpec::gpus},
                    FieldDef{"autostart", &VmSpec::autostart},
                    FieldDef{"powerState", &VmSpec::power_state},
                    FieldDef{"updatePolicy", &VmSpec::update_policy},
                    FieldDef{"deletionPolicy", &VmSpec::deletion_policy},
                    FieldDef{"dependsOn", &VmSpec::depends_on},
                    FieldDef{"readiness", &VmSpec::readiness},
                    FieldDef{"migration", &VmSpec::migration},
                    FieldDef{"ignoreDifferences", &VmSpec::ignore_differences},
                    FieldDef{"adopt", &VmSpec::adopt});
GITVIRT_JSON_FIELDS(SourceLocation, FieldDef{"file", &SourceLocation::file},
                    FieldDef{"line", &SourceLocation::line},
                    FieldDef{"column", &SourceLocation::column});
GITVIRT_JSON_FIELDS(ObjectMeta, FieldDef{"name", &ObjectMeta::name},
                    FieldDef{"labels", &ObjectMeta::labels},
                    FieldDef{"annotations", &ObjectMeta::annotations},
                    FieldDef{"tags", &ObjectMeta::tags},
                    FieldDef{"location", &ObjectMeta::location});
GITVIRT_JSON_FIELDS(ClusterMembership, FieldDef{"cluster", &ClusterMembership::cluster},
                    FieldDef{"group", &ClusterMembership::group},
                    FieldDef{"role", &ClusterMembership::role},
                    FieldDef{"index", &ClusterMembership::index},
                    FieldDef{"groupOrder", &ClusterMembership::group_order},
                    FieldDef{"rollbackStrategy", &ClusterMembership::rollback});
GITVIRT_JSON_FIELDS(VirtualMachine, FieldDef{"metadata", &VirtualMachine::meta},
                    FieldDef{"spec", &VirtualMachine::spec},
                    FieldDef{"cluster", &VirtualMachine::cluster});
GITVIRT_JSON_FIELDS(ImageSpec, FieldDef{"source", &ImageSpec::source},
                    FieldDef{"sha256", &ImageSpec::sha256}, FieldDef{"format", &ImageSpec::format},
                    FieldDef{"pool", &ImageSpec::pool}, FieldDef{"os", &ImageSpec::os},
                    FieldDef{"arch", &ImageSpec::arch}, FieldDef{"firmware", &ImageSpec::firmware},
                    FieldDef{"description", &ImageSpec::description});
GITVIRT_JSON_FIELDS(Image, FieldDef{"metadata", &Image::meta}, FieldDef{"spec", &Image::spec});
GITVIRT_JSON_FIELDS(Selector, FieldDef{"all", &Selector::all},
                    FieldDef{"matchLabels", &Selector::match_labels},
                    FieldDef{"names", &Selector::names}, FieldDef{"tags", &Selector::tags},
                    FieldDef{"clusters", &Selector::clusters});
GITVIRT_JSON_FIELDS(Retention, FieldDef{"keep", &Retention::keep},
                    FieldDef{"maxAge", &Retention::max_age});
GITVIRT_JSON_FIELDS(SnapshotPolicySpec, FieldDef{"selector", &SnapshotPolicySpec::selector},
                    FieldDef{"schedule", &SnapshotPolicySpec::schedule},
                    FieldDef{"timeZone", &SnapshotPolicySpec::time_zone},
                    FieldDef{"suspend", &SnapshotPolicySpec::suspend},
                    FieldDef{"namePattern", &SnapshotPolicySpec::name_pattern},
                    FieldDef{"description", &SnapshotPolicySpec::description},
                    FieldDef{"memory", &SnapshotPolicySpec::memory},
                    FieldDef{"quiesce", &SnapshotPolicySpec::quiesce},
                    FieldDef{"maxParallel", &SnapshotPolicySpec::max_parallel},
                    FieldDef{"retention", &SnapshotPolicySpec::retention});
GITVIRT_JSON_FIELDS(SnapshotPolicy, FieldDef{"metadata", &SnapshotPolicy::meta},
                    FieldDef{"spec", &SnapshotPolicy::spec});
GITVIRT_JSON_FIELDS(BackupTarget, FieldDef{"directory", &BackupTarget::directory});
GITVIRT_JSON_FIELDS(BackupPolicySpec, FieldDef{"selector", &BackupPolicySpec::selector},
                    FieldDef{"schedule", &BackupPolicySpec::schedule},
                    FieldDef{"timeZone", &BackupPolicySpec::time_zone},
                    FieldDef{"suspend", &BackupPolicySpec::suspend},
                    FieldDef{"target", &BackupPolicySpec::target},
                    FieldDef{"mode", &BackupPolicySpec::mode},
                    FieldDef{"compression", &BackupPolicySpec::compression},
                    FieldDef{"compressionLevel", &BackupPolicySpec::compression_level},
                    FieldDef{"retention", &BackupPolicySpec::retention},
                    FieldDef{"protect", &BackupPolicySpec::protect},
                    FieldDef{"maxParallel", &BackupPolicySpec::max_parallel},
                    FieldDef{"verify", &BackupPolicySpec::verify},
                    FieldDef{"description", &BackupPolicySpec::description});
GITVIRT_JSON_FIELDS(BackupPolicy, FieldDef{"metadata", &BackupPolicy::meta},
                    FieldDef{"spec", &BackupPolicy::spec});
GITVIRT_JSON_FIELDS(NodeGroup, FieldDef{"name", &NodeGroup::name}, FieldDef{"role", &NodeGroup::role},
                    FieldDef{"count", &NodeGroup::count},
                    FieldDef{"namePattern", &NodeGroup::name_pattern},
                    FieldDef{"scaleDown", &NodeGroup::scale_down},
                    FieldDef{"labels", &NodeGroup::labels}, FieldDef{"tags", &NodeGroup::tags},
                    FieldDef{"placement", &NodeGroup::placement},
                    FieldDef{"ipConfigPatterns", &NodeGroup::ip_config_patterns},
                    FieldDef{"maxUnavailable", &NodeGroup::max_unavailable},
                    FieldDef{"template", &NodeGroup::tmpl});
GITVIRT_JSON_FIELDS(ClusterSpec, FieldDef{"rollbackStrategy", &ClusterSpec::rollback},
                    FieldDef{"maxParallel", &ClusterSpec::max_parallel},
                    FieldDef{"nameservers", &ClusterSpec::nameservers},
                    FieldDef{"searchDomains", &ClusterSpec::search_domains},
                    FieldDef{"nodeGroups", &ClusterSpec::node_groups});
GITVIRT_JSON_FIELDS(Cluster, FieldDef{"metadata", &Cluster::meta}, FieldDef{"spec", &Cluster::spec});
GITVIRT_JSON_FIELDS(SyncWindowSpec, FieldDef{"type", &SyncWindowSpec::type},
                    FieldDef{"schedule", &SyncWindowSpec::schedule},
                    FieldDef{"duration", &SyncWindowSpec::duration},
                    FieldDef{"timeZone", &SyncWindowSpec::time_zone},
                    FieldDef{"selector", &SyncWindowSpec::selector},
                    FieldDef{"manualSync", &SyncWindowSpec::manual_sync});
GITVIRT_JSON_FIELDS(SyncWindow, FieldDef{"metadata", &SyncWindow::meta}, FieldDef{"spec", &SyncWindow::spec});
GITVIRT_JSON_FIELDS(DisruptionBudgetSpec, FieldDef{"selector", &DisruptionBudgetSpec::selector},
                    FieldDef{"maxUnavailable", &DisruptionBudgetSpec::max_unavailable});
GITVIRT_JSON_FIELDS(DisruptionBudget, FieldDef{"metadata", &DisruptionBudget::meta},
                    FieldDef{"spec", &DisruptionBudget::spec});

GITVIRT_JSON_FIELDS(Diagnostic, FieldDef{"severity", &Diagnostic::severity},
                    FieldDef{"location", &Diagnostic::location},
                    FieldDef{"path", &Diagnostic::path}, FieldDef{"message", &Diagnostic::message});
GITVIRT_JSON_FIELDS(FieldChange, FieldDef{"path", &FieldChange::path},
                    FieldDef{"before", &FieldChange::before}, FieldDef{"after", &FieldChange::after},
                    FieldDef{"class", &FieldChange::change_class});
GITVIRT_JSON_FIELDS(Action, FieldDef{"id", &Action::id}, FieldDef{"type", &Action::type},
                    FieldDef{"node", &Action::node}, FieldDef{"sourceNode", &Action::source_node},
                    FieldDef{"target", &Action::target}, FieldDef{"changes", &Action::changes},
                    FieldDef{"reason", &Action::reason},
                    FieldDef{"dependsOn", &Action::depends_on}, FieldDef{"stage", &Action::stage},
                    FieldDef{"unit", &Action::unit}, FieldDef{"vm", &Action::vm},
                    FieldDef{"image", &Action::image}, FieldDef{"volumes", &Action::volumes},
                    FieldDef{"snapshot", &Action::snapshot}, FieldDef{"policy", &Action::policy},
                    FieldDef{"powerBefore", &Action::power_before});
// An action's "params" (its family's type, by the action's type) are written with string
// values: JsonCodec<Action> below.
GITVIRT_JSON_FIELDS(SnapshotParams, FieldDef{"description", &SnapshotParams::description},
                    FieldDef{"memory", &SnapshotParams::memory}, FieldDef{"quiesce", &SnapshotParams::quiesce});
GITVIRT_JSON_FIELDS(ShutdownParams, FieldDef{"forceOff", &ShutdownParams::force_off});
GITVIRT_JSON_FIELDS(MigrateParams, FieldDef{"mode", &MigrateParams::mode},
                    FieldDef{"allowOffline", &MigrateParams::allow_offline},
                    FieldDef{"bandwidth", &MigrateParams::bandwidth},
                    FieldDef{"simulated", &MigrateParams::simulated});
GITVIRT_JSON_FIELDS(BackupParams, FieldDef{"id", &BackupParams::id}, FieldDef{"directory", &BackupParams::directory},
                    FieldDef{"target", &BackupParams::target}, FieldDef{"mode", &BackupParams::mode},
                    FieldDef{"compression", &BackupParams::compression}, FieldDef{"level", &BackupParams::level},
                    FieldDef{"verify", &BackupParams::verify}, FieldDef{"protect", &BackupParams::protect},
                    FieldDef{"description", &BackupParams::description},
                    FieldDef{"created", &BackupParams::created});
GITVIRT_JSON_FIELDS(BackupDeleteParams, FieldDef{"id", &BackupDeleteParams::id},
                    FieldDef{"directory", &BackupDeleteParams::directory},
                    FieldDef{"force", &BackupDeleteParams::force});
GITVIRT_JSON_FIELDS(BackupRestoreParams, FieldDef{"directory", &BackupRestoreParams::directory},
                    FieldDef{"id", &BackupRestoreParams::id}, FieldDef{"managed", &BackupRestoreParams::managed});
GITVIRT_JSON_FIELDS(PendingChange, FieldDef{"target", &PendingChange::target},
                    FieldDef{"node", &PendingChange::node},
                    FieldDef{"changes", &PendingChange::changes},
                    FieldDef{"reason", &PendingChange::reason});
GITVIRT_JSON_FIELDS(Plan, FieldDef{"revision", &Plan::revision}, FieldDef{"source", &Plan::source},
                    FieldDef{"prune", &Plan::prune}, FieldDef{"adopt", &Plan::adopt},
                    FieldDef{"actions", &Plan::actions},
                    FieldDef{"pending", &Plan::pending}, FieldDef{"ignored", &Plan::ignored},
                    FieldDef{"warnings", &Plan::warnings},
                    FieldDef{"fingerprints", &Plan::fingerprints},
                    FieldDef{"unmanaged", &Plan::unmanaged}, FieldDef{"images", &Plan::images},
                    FieldDef{"unreachable", &Plan::unreachable});

// The observed model: only the binary snapshot form (observed_codec.h) walks these so far.
GITVIRT_JSON_FIELDS(Ownership, FieldDef{"kind", &Ownership::kind}, FieldDef{"name", &Ownership::name},
                    FieldDef{"cluster", &Ownership::cluster}, FieldDef{"group", &Ownership::group},
                    FieldDef{"specHash", &Ownership::spec_hash},
                    FieldDef{"revision", &Ownership::revision}, FieldDef{"job", &Ownership::job},
                    FieldDef{"cloudInitHash", &Ownership::cloud_init_hash},
                    FieldDef{"createdVolumes", &Ownership::created_volumes},
                    FieldDef{"appliedSpec", &Ownership::applied_spec},
                    FieldDef{"labels", &Ownership::labels}, FieldDef{"tags", &Ownership::tags});
GITVIRT_JSON_FIELDS(ObservedSnapshot, FieldDef{"name", &ObservedSnapshot::name},
                    FieldDef{"created", &ObservedSnapshot::created},
                    FieldDef{"state", &ObservedSnapshot::state},
                    FieldDef{"description", &ObservedSnapshot::description},
                    FieldDef{"policy", &ObservedSnapshot::policy},
                    FieldDef{"current", &ObservedSnapshot::current});
GITVIRT_JSON_FIELDS(ObservedVm, FieldDef{"name", &ObservedVm::name}, FieldDef{"uuid", &ObservedVm::uuid},
                    FieldDef{"node", &ObservedVm::node}, FieldDef{"power", &ObservedVm::power},
                    FieldDef{"stateDetail", &ObservedVm::state_detail},
                    FieldDef{"persistent", &ObservedVm::persistent},
                    FieldDef{"autostart", &ObservedVm::autostart},
                    FieldDef{"actual", &ObservedVm::actual}, FieldDef{"owner", &ObservedVm::owner},
                    FieldDef{"lastApplied", &ObservedVm::last_applied},
                    FieldDef{"snapshots", &ObservedVm::snapshots},
                    FieldDef{"definitionFingerprint", &ObservedVm::definition_fingerprint},
                    FieldDef{"unexpressed", &ObservedVm::unexpressed});
GITVIRT_JSON_FIELDS(ObservedVolume, FieldDef{"pool", &ObservedVolume::pool},
                    FieldDef{"name", &ObservedVolume::name}, FieldDef{"path", &ObservedVolume::path},
                    FieldDef{"capacity", &ObservedVolume::capacity},
                    FieldDef{"allocation", &ObservedVolume::allocation},
                    FieldDef{"physical", &ObservedVolume::physical},
                    FieldDef{"format", &ObservedVolume::format},
                    FieldDef{"backing", &ObservedVolume::backing});
GITVIRT_JSON_FIELDS(ObservedPool, FieldDef{"name", &ObservedPool::name}, FieldDef{"path", &ObservedPool::path},
                    FieldDef{"active", &ObservedPool::active}, FieldDef{"volumes", &ObservedPool::volumes});
GITVIRT_JSON_FIELDS(NodeCapabilities, FieldDef{"driver", &NodeCapabilities::driver},
                    FieldDef{"liveDeviceChanges", &NodeCapabilities::live_device_changes},
                    FieldDef{"blockResize", &NodeCapabilities::block_resize},
                    FieldDef{"volumeResize", &NodeCapabilities::volume_resize},
                    FieldDef{"backup", &NodeCapabilities::backup},
                    FieldDef{"migration", &NodeCapabilities::migration},
                    FieldDef{"volumeUpload", &NodeCapabilities::volume_upload},
                    FieldDef{"persistentSimulation", &NodeCapabilities::persistent_simulation},
                    FieldDef{"guests", &NodeCapabilities::guests});
GITVIRT_JSON_FIELDS(ObservedNode, FieldDef{"name", &ObservedNode::name},
                    FieldDef{"reachable", &ObservedNode::reachable}, FieldDef{"error", &ObservedNode::error},
                    FieldDef{"cpus", &ObservedNode::cpus}, FieldDef{"memory", &ObservedNode::memory},
                    FieldDef{"capabilities", &ObservedNode::capabilities},
                    FieldDef{"vms", &ObservedNode::vms}, FieldDef{"pools", &ObservedNode::pools},
                    FieldDef{"networks", &ObservedNode::networks},
                    FieldDef{"interfaces", &ObservedNode::interfaces});

namespace {

// ---- action params: the family's table, every value a string ---------------------------------

template <typename M>
std::string ParamText(const M& v) {
  if constexpr (std::is_same_v<M, bool>) {
    return v ? "true" : "false";
  } else if constexpr (NamedEnum<M>) {
    return std::string(EnumName(v));
  } else if constexpr (std::is_integral_v<M>) {
    return std::to_string(v);
  } else {
    return v;  // strings
  }
}

template <typename M>
void ParamValue(const json& j, M& out) {
  if constexpr (std::is_same_v<M, bool>) {
    if (j.is_boolean()) {
      out = j.get<bool>();
    } else if (j == "true" || j == "false") {
      out = j == "true";
    } else {
      throw std::invalid_argument("expected \"true\" or \"false\", got " + j.dump());
    }
  } else if constexpr (NamedEnum<M>) {
    auto parsed = ParseEnum<M>(j.get<std::string>());
    if (!parsed) throw std::invalid_argument("unknown value " + j.dump());
    out = *parsed;
  } else if constexpr (std::is_integral_v<M>) {
    if (j.is_number_integer()) {
      out = j.get<M>();
      return;
    }
    const std::string text = j.get<std::string>();
    std::size_t used = 0;
    const long long value = std::stoll(text, &used);
    if (used != text.size()) throw std::invalid_argument("expected a whole number, got " + j.dump());
    out = static_cast<M>(value);
  } else {
    out = j.get<M>();
  }
}

template <typename T>
json ParamsObject(const T& value) {
  return json_table::EncodeFields(value, [](const auto& member) { return json(ParamText(member)); });
}

template <typename T>
T ParamsOf(const json& j) {
  T value{};
  json_table::DecodeFields(j, value, [](const json& item, auto& member) { ParamValue(item, member); });
  return value;
}

json ParamsToJson(const ActionParams& params) {
  return std::visit(
      [](const auto& p) -> json {
        using P = std::remove_cvref_t<decltype(p)>;
        if constexpr (std::is_same_v<P, std::monostate>) {
          return json::object();
        } else {
          return ParamsObject(p);
        }
      },
      params);
}

void ParamsFromJson(const json& j, ActionType type, ActionParams& params) {
  // None given (an action of a family without parameters, or one that needs none here, such
  // as a shutdown the planner makes): as written.
  if (j.is_object() && j.empty()) {
    params = std::monostate{};
    return;
  }
  switch (type) {
    case ActionType::kSnapshot: params = ParamsOf<SnapshotParams>(j); return;
    case ActionType::kShutdown: params = ParamsOf<ShutdownParams>(j); return;
    case ActionType::kMigrate: params = ParamsOf<MigrateParams>(j); return;
    case ActionType::kBackup: params = ParamsOf<BackupParams>(j); return;
    case ActionType::kBackupDelete: params = ParamsOf<BackupDeleteParams>(j); return;
    case ActionType::kBackupRestore: params = ParamsOf<BackupRestoreParams>(j); return;
    default:
      if (!j.is_object()) throw std::invalid_argument("expected an object");
      params = std::monostate{};
      return;
  }
}

// ---- the binary form (observed_codec.h) ------------------------------------------------------

template <typename T>
struct IsMap : std::false_type {};
template <typename K, typename V, typename C, typename A>
struct IsMap<std::map<K, V, C, A>> : std::true_type {};
template <typename T>
inline constexpr bool kUnsupported = false;

class BinaryWriter {
 public:
  template <typename V>
  void Put(const V& v) {
    if constexpr (HasFields<V>) {
      std::apply([&](const auto&... field) { (Put(v.*(field.member)), ...); }, JsonFields<V>::kFields);
    } else if constexpr (std::is_same_v<V, std::string>) {
      Fixed(static_cast<std::uint64_t>(v.size()));
      out_.append(v);
    } else if constexpr (std::is_same_v<V, bool>) {
      out_.push_back(v ? 1 : 0);
    } else if constexpr (std::is_enum_v<V>) {
      Fixed(static_cast<std::int64_t>(v));
    } else if constexpr (std::is_integral_v<V>) {
      Fixed(static_cast<std::conditional_t<std::is_signed_v<V>, std::int64_t, std::uint64_t>>(v));
    } else if constexpr (std::is_same_v<V, Seconds>) {
      Fixed(static_cast<std::int64_t>(v.count()));
    } else if constexpr (std::is_same_v<V, TimePoint>) {
      Fixed(static_cast<std::int64_t>(v.time_since_epoch().count()));
    } else if constexpr (IsOptional<V>::value) {
      out_.push_back(v ? 1 : 0);
      if (v) Put(*v);
    } else if constexpr (IsVector<V>::value || IsMap<V>::value) {
      Fixed(static_cast<std::uint64_t>(v.size()));
      for (const auto& item : v) {
        if constexpr (IsMap<V>::value) {
          Put(item.first);
          Put(item.second);
        } else {
          Put(item);
        }
      }
    } else {
      static_assert(kUnsupported<V>, "no binary form for this type: add one");
    }
  }
  std::string Take() { return std::move(out_); }

 private:
  template <typename I>
  void Fixed(I value) {
    char bytes[sizeof value];
    std::memcpy(bytes, &value, sizeof value);
    out_.append(bytes, sizeof value);
  }
  std::string out_;
};

class BinaryReader {
 public:
  explicit BinaryReader(std::string_view in) : in_(in) {}

  template <typename V>
  void Get(V& v) {
    if constexpr (HasFields<V>) {
      std::apply([&](const auto&... field) { (Get(v.*(field.member)), ...); }, JsonFields<V>::kFields);
    } else if constexpr (std::is_same_v<V, std::string>) {
      const auto size = Fixed<std::uint64_t>();
      Need(size);
      v.assign(in_.substr(0, size));
      in_.remove_prefix(size);
    } else if constexpr (std::is_same_v<V, bool>) {
      Need(1);
      v = in_[0] != 0;
      in_.remove_prefix(1);
    } else if constexpr (std::is_enum_v<V>) {
      v = static_cast<V>(Fixed<std::int64_t>());
    } else if constexpr (std::is_integral_v<V>) {
      v = static_cast<V>(Fixed<std::conditional_t<std::is_signed_v<V>, std::int64_t, std::uint64_t>>());
    } else if constexpr (std::is_same_v<V, Seconds>) {
      v = Seconds(Fixed<std::int64_t>());
    } else if constexpr (std::is_same_v<V, TimePoint>) {
      v = TimePoint(std::chrono::seconds(Fixed<std::int64_t>()));
    } else if constexpr (IsOptional<V>::value) {
      bool present = false;
      Get(present);
      if (!present) {
        v.reset();
        return;
      }
      v.emplace();
      Get(*v);
    } else if constexpr (IsVector<V>::value) {
      const auto size = Fixed<std::uint64_t>();
      Need(size);  // every element takes at least a byte: a corrupt count cannot allocate much
      v.clear();
      v.resize(size);
      for (auto& item : v) Get(item);
    } else if constexpr (IsMap<V>::value) {
      const auto size = Fixed<std::uint64_t>();
      Need(size);
      v.clear();
      for (std::uint64_t i = 0; i < size; ++i) {
        typename V::key_type key{};
        typename V::mapped_type value{};
        Get(key);
        Get(value);
        v.emplace_hint(v.end(), std::move(key), std::move(value));
      }
    } else {
      static_assert(kUnsupported<V>, "no binary form for this type: add one");
    }
  }
  bool AtEnd() const { return in_.empty(); }

 private:
  void Need(std::uint64_t n) const {
    if (n > in_.size()) throw std::invalid_argument("truncated");
  }
  template <typename I>
  I Fixed() {
    Need(sizeof(I));
    I value;
    std::memcpy(&value, in_.data(), sizeof value);
    in_.remove_prefix(sizeof value);
    return value;
  }
  std::string_view in_;
};

}  // namespace

json JsonCodec<Action>::Encode(const Action& action) {
  json out = json_table::EncodeObject(action);
  out["params"] = ParamsToJson(action.params);
  return out;
}

void JsonCodec<Action>::Decode(const json& j, Action& action) {
  json_table::DecodeObject(j, action);
  if (auto it = j.find("params"); it != j.end() && !it->is_null()) {
    try {
      ParamsFromJson(*it, action.type, action.params);
    } catch (const std::exception& e) {
      throw std::invalid_argument(std::string("params: ") + e.what());
    }
  }
}

json JsonCodec<SourceRef>::Encode(const SourceRef& source) { return source.ToString(); }

void JsonCodec<SourceRef>::Decode(const json& j, SourceRef& source) {
  auto parsed = SourceRef::Parse(j.get<std::string>());
  if (!parsed) throw std::invalid_argument("not a source: " + j.dump());
  source = std::move(*parsed);
}

json JsonCodec<Ownership>::Encode(const Ownership& owner) { return json_table::EncodeObject(owner); }

void JsonCodec<Ownership>::Decode(const json& j, Ownership& owner) { json_table::DecodeObject(j, owner); }

std::string EncodeObservedNode(const ObservedNode& node) {
  BinaryWriter out;
  out.Put(node);
  return out.Take();
}

Result<ObservedNode> DecodeObservedNode(std::string_view bytes) {
  ObservedNode node;
  try {
    BinaryReader in(bytes);
    in.Get(node);
    if (!in.AtEnd()) throw std::invalid_argument("trailing bytes");
  } catch (const std::exception& e) {
    return Fail(ErrorCode::kInvalidArgument, e.what(), "reading an observed node snapshot");
  }
  return node;
}

json ToJson(const VmSpec& spec) { return Encode(spec); }

const std::vector<std::string_view>& VmSpecFieldNames() {
  static const std::vector<std::string_view> kNames = std::apply(
      [](const auto&... field) { return std::vector<std::string_view>{field.key...}; }, JsonFields<VmSpec>::kFields);
  return kNames;
}
json ToJson(const VirtualMachine& vm) { return Encode(vm); }
json ToJson(const Image& image) { return Encode(image); }
json ToJson(const ObjectMeta& meta) { return Encode(meta); }
json ToJson(const SnapshotPolicy& policy) { return Encode(policy); }
json ToJson(const BackupPolicy& policy) { return Encode(policy); }
json ToJson(const Cluster& cluster) { return Encode(cluster); }
json ToJson(const Ownership& owner) { return Encode(owner); }

Result<VmSpec> VmSpecFromJson(const json& j) { return json_table::Read<VmSpec>(j, "VM spec"); }
Result<VirtualMachine> VirtualMachineFromJson(const json& j) {
  return json_table::Read<VirtualMachine>(j, "VirtualMachine");
}
Result<Image> ImageFromJson(const json& j) { return json_table::Read<Image>(j, "Image"); }
Result<Ownership> OwnershipFromJson(const json& j) { return json_table::Read<Ownership>(j, "owner mark"); }

json PlanToJson(const Plan& plan) {
  json j = Encode(plan);
  j["formatVersion"] = Plan::kFormatVersion;
  const PlanSummary s = plan.Summary();
  j["summary"] = {{"add", s.add}, {"change", s.change}, {"replace", s.replace},
                  {"destroy", s.destroy}, {"adopt", s.adopt}, {"pending", s.pending}, {"ignored", s.ignored}};
  return j;
}

Result<Plan> PlanFromJson(const json& j) {
  if (!j.is_object() || j.value("formatVersion", 0) != Plan::kFormatVersion) {
    return Fail(ErrorCode::kInvalidArgument,
                "not a gitvirt plan of format version " + std::to_string(Plan::kFormatVersion));
  }
  return json_table::Read<Plan>(j, "plan");
}

std::string JsonFingerprint(const json& j) { return Fingerprint(std::string_view(j.dump())); }

std::string SpecHash(const VmSpec& spec) {
  json j = ToJson(spec);
  // Where a VM runs and whether it runs are changed without redefining it; which drift to
  // ignore, and whether a domain may be adopted, say nothing about its shape.
  j.erase("powerState");
  j.erase("node");
  j.erase("ignoreDifferences");
  j.erase("adopt");
  return JsonFingerprint(j);
}

}  // namespace gitvirt
