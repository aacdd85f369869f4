#pragma once
// A plan is a value: the ordered actions that take the observed state to the desired one, with
// the dependencies between them (a DAG), the field-level differences and the reason for each.
// It prints like `terraform plan`, saves as JSON with the source revision and a fingerprint of
// every observed target, and is what `apply` executes. Nothing here does I/O.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "gitvirt/core/diagnostic.h"
#include "gitvirt/core/enums.h"
#include "gitvirt/core/model.h"
#include "gitvirt/core/observed.h"
#include "gitvirt/core/source_ref.h"
#include "gitvirt/core/time.h"

namespace gitvirt {

enum class ActionType {
  kImageImport,    // import an Image into a node's pool
  kCreate,         // volumes + seed + define (not start)
  kUpdateLive,     // redefine + live changes; no restart (or the VM is stopped)
  kUpdateRestart,  // redefine of a VM that the preceding shutdown stopped
  kReplace,        // destroy and create again (a disk's source or format changed)
  kStart,
  kStop,      // force off
  kShutdown,  // graceful, with the VM's shutdownTimeout and forceOff
  kReboot,
  kSuspend,
  kResume,
  kMigrate,
  kDelete,        // destroy + undefine; the created volumes go in a volume-delete
  kRelease,       // deletionPolicy Retain: drop gitvirt's owner mark, keep VM and disks
  kVolumeDelete,  // runs last, so a FULL rollback can undo everything before it
  kSnapshot,
  kSnapshotDelete,
  kBackup,
  kBackupDelete,
  kSnapshotRevert,  // `snapshot restore`: revert a VM to one of its snapshots
  kBackupRestore,   // `backup restore`: new volumes + definition from a backup
  kAdopt,           // take over a domain gitvirt does not own: the owner mark only
};

GITVIRT_ENUM_TABLE(ActionType, {ActionType::kImageImport, "image-import"},
                   {ActionType::kCreate, "create"}, {ActionType::kUpdateLive, "update-live"},
                   {ActionType::kUpdateRestart, "update-restart"},
                   {ActionType::kReplace, "replace"}, {ActionType::kStart, "start"},
                   {ActionType::kStop, "stop"}, {ActionType::kShutdown, "shutdown"},
                   {ActionType::kReboot, "reboot"}, {ActionType::kSuspend, "suspend"},
                   {ActionType::kResume, "resume"}, {ActionType::kMigrate, "migrate"},
                   {ActionType::kDelete, "delete"}, {ActionType::kRelease, "release"},
                   {ActionType::kVolumeDelete, "volume-delete"},
                   {ActionType::kSnapshot, "snapshot"},
                   {ActionType::kSnapshotDelete, "snapshot-delete"},
                   {ActionType::kBackup, "backup"}, {ActionType::kBackupDelete, "backup-delete"},
                   {ActionType::kSnapshotRevert, "snapshot-revert"},
                   {ActionType::kBackupRestore, "backup-restore"}, {ActionType::kAdopt, "adopt"});

enum class ChangeClass {
  kLive,      // applied to the running VM without a restart
  kRestart,   // needs the VM stopped
  kReplace,   // needs the VM recreated
  kMetadata,  // only gitvirt's own metadata (labels, policies)
  kGrow,      // a disk grows (live on drivers that can, else offline)
  kPower,     // power state
  kDestroy,   // something is deleted
};

GITVIRT_ENUM_TABLE(ChangeClass, {ChangeClass::kLive, "live"}, {ChangeClass::kRestart, "restart"},
                   {ChangeClass::kReplace, "replace"}, {ChangeClass::kMetadata, "metadata"},
                   {ChangeClass::kGrow, "grow"}, {ChangeClass::kPower, "power"},
                   {ChangeClass::kDestroy, "destroy"});

// One field's difference, shown as `path: before -> after`.
struct FieldChange {
  std::string path;    // "memory", "disks[data].size", "networks[1]"
  std::string before;  // "" = absent
  std::string after;   // "" = removed
  ChangeClass change_class = ChangeClass::kLive;
  friend bool operator==(const FieldChange&, const FieldChange&) = default;
};

// What a step needs beyond its target, one type per action family, so that a journaled job is
// resumed exactly as it was planned. Plan files and the journal carry them as "params", an
// object whose values are strings ("true", "5"), the form they have always had.
// The policy mark of the snapshots updatePolicy.snapshot takes before a change (no
// SnapshotPolicy can have this name: names are lowercase).
inline constexpr std::string_view kPreChangeSnapshotPolicy = "updatePolicy.snapshot";
// "pre-change-20261207-210000": the name of a pre-change snapshot taken by a plan made at `at`.
std::string PreChangeSnapshotName(TimePoint at);

struct SnapshotParams {  // snapshot
  std::string description;
  bool memory = false;
  bool quiesce = false;
  friend bool operator==(const SnapshotParams&, const SnapshotParams&) = default;
};
struct ShutdownParams {  // shutdown: `gitvirt power shutdown --force` powers off after the timeout
  bool force_off = false;
  friend bool operator==(const ShutdownParams&, const ShutdownParams&) = default;
};
struct MigrateParams {  // migrate
  std::string mode = "offline";       // live | offline
  bool allow_offline = false;         // a failed live migration falls back to offline
  std::optional<std::uint64_t> bandwidth;  // bytes per second
  bool simulated = false;             // two simulated nodes: metadata moves
  friend bool operator==(const MigrateParams&, const MigrateParams&) = default;
};
struct BackupParams {  // backup
  std::string id;
  std::string directory;  // <target>/<vm>/<id>
  std::string target;
  BackupMode mode = BackupMode::kSnapshot;
  Compression compression = Compression::kZstd;
  int level = 3;
  bool verify = false;
  bool protect = false;
  std::string description;
  std::int64_t created = 0;  // Unix seconds
  friend bool operator==(const BackupParams&, const BackupParams&) = default;
};
struct BackupDeleteParams {  // backup-delete
  std::string id;
  std::string directory;
  bool force = false;  // a protected backup too
  friend bool operator==(const BackupDeleteParams&, const BackupDeleteParams&) = default;
};
struct BackupRestoreParams {  // backup-restore
  std::string directory;  // the backup
  std::string id;
  bool managed = false;  // the manifests declare the new VM: it carries gitvirt's owner mark
  friend bool operator==(const BackupRestoreParams&, const BackupRestoreParams&) = default;
};
using ActionParams = std::variant<std::monostate, SnapshotParams, ShutdownParams, MigrateParams, BackupParams,
                                  BackupDeleteParams, BackupRestoreParams>;

struct Action {
  std::string id;  // unique in the plan: "create/web-01", "image-import/hv1/debian-12"
  ActionType type = ActionType::kCreate;
  std::string node;         // where it runs (the target node of a migration)
  std::string source_node;  // migrate: where the VM is now
  ResourceRef target;
  std::vector<FieldChange> changes;
  std::string reason;
  std::vector<std::string> depends_on;  // action ids
  // Coarse order: no action starts before every action of a lower stage has finished (images,
  // then changes, then deletions, then power-only changes, then volume deletions).
  int stage = 0;
  std::string unit;  // rollback unit: the cluster a member belongs to, else empty
  // Payloads: what the executor needs, so a saved plan can be applied as it is.
  std::optional<VirtualMachine> vm;     // create, update, replace, migrate
  std::optional<Image> image;           // image-import
  std::vector<std::string> volumes;     // volume-delete: "pool/volume"
  std::string snapshot;                 // snapshot, snapshot-delete
  std::string policy;                   // snapshot/backup policy
  // The family's parameters (ActionParams): the alternative for the action's type, or none.
  ActionParams params;
  std::optional<PowerState> power_before;  // for undo of power actions
  // The parameters of the action's family; defaults when the action carries none.
  template <typename P>
  const P& Params() const {
    static const P kDefaults{};
    const P* p = std::get_if<P>(&params);
    return p != nullptr ? *p : kDefaults;
  }
  friend bool operator==(const Action&, const Action&) = default;
};

// A difference the plan will not act on, and why (restart not allowed, Protect, no --prune, a
// sync window: "blocked by window W until T"). Also the form of an ignored difference, whose
// reason names the ignoreDifferences rules that cover it.
struct PendingChange {
  ResourceRef target;
  std::string node;
  std::vector<FieldChange> changes;
  std::string reason;
  friend bool operator==(const PendingChange&, const PendingChange&) = default;
};

struct PlanSummary {
  int add = 0;      // create, image-import
  int change = 0;   // updates, migrate, power
  int replace = 0;
  int destroy = 0;  // delete, release, volume-delete
  int adopt = 0;    // adopt: domains gitvirt takes over as they are
  int pending = 0;
  int ignored = 0;  // VMs with drift an ignoreDifferences rule covers
  friend bool operator==(const PlanSummary&, const PlanSummary&) = default;
};

struct Plan {
  static constexpr int kFormatVersion = 1;
  std::string revision;  // source revision the desired state came from
  SourceRef source;      // where the desired state came from
  bool prune = false;
  bool adopt = false;  // made with --adopt: every manifest may take over a same-name domain
  std::vector<Action> actions;  // a topological order; execution follows depends_on
  std::vector<PendingChange> pending;
  // Drift that ignoreDifferences rules cover (ignore.h): shown, never acted on, not OutOfSync.
  std::vector<PendingChange> ignored;
  std::vector<Diagnostic> warnings;
  // "vm/<name>" -> fingerprint of the domain (node, definition, power state) the plan was made
  // against ("absent" when it did not exist); `apply plan.json` refuses when any differ.
  std::map<std::string, std::string> fingerprints;
  std::vector<std::string> unmanaged;  // "node/vm" domains seen and left alone
  // Nodes that could not be observed (and why): the plan leaves out what runs there.
  std::map<std::string, std::string> unreachable;
  std::vector<Image> images;  // the repository's Images, which creates and imports refer to

  PlanSummary Summary() const;
  bool Empty() const { return actions.empty(); }
  // Desired and observed agree: nothing to do, nothing pending, every node seen. What
  // `plan --detailed-exitcode` answers 0 to.
  bool InSync() const { return actions.empty() && pending.empty() && unreachable.empty(); }
  const Action* FindAction(std::string_view id) const;
  friend bool operator==(const Plan&, const Plan&) = default;
};

// The fingerprint of one observed domain as used in Plan::fingerprints.
std::string ObservedFingerprint(const ObservedVm& vm);

}  // namespace gitvirt
