#pragma once
// What the controller publishes about itself: a StatusSnapshot value (replaced as a whole after
// each reconcile pass, never mutated) plus read access to the journal. The status API and the
// dashboard read only this; they never call libvirt.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gitvirt/core/diagnostic.h"
#include "gitvirt/core/enums.h"
#include "gitvirt/core/model.h"
#include "gitvirt/core/observed.h"
#include "gitvirt/core/plan.h"
#include "gitvirt/core/history.h"

namespace gitvirt {

enum class SyncStatus { kSynced, kOutOfSync, kMissing, kOrphaned, kFailed };
enum class Health { kHealthy, kProgressing, kDegraded, kUnknown };

GITVIRT_ENUM_TABLE(SyncStatus, {SyncStatus::kSynced, "Synced"},
                   {SyncStatus::kOutOfSync, "OutOfSync"}, {SyncStatus::kMissing, "Missing"},
                   {SyncStatus::kOrphaned, "Orphaned"}, {SyncStatus::kFailed, "Failed"});
GITVIRT_ENUM_TABLE(Health, {Health::kHealthy, "Healthy"}, {Health::kProgressing, "Progressing"},
                   {Health::kDegraded, "Degraded"}, {Health::kUnknown, "Unknown"});

// A Kubernetes-style condition: "Ready" true/false with why.
struct Condition {
  std::string type;
  bool status = false;
  std::string reason;
  std::string message;
  TimePoint since{};
  friend bool operator==(const Condition&, const Condition&) = default;
};

struct ResourceStatus {
  Kind kind = Kind::kVirtualMachine;
  std::string name;
  std::string node;  // where it runs (VMs)
  Labels labels;
  std::vector<std::string> tags;
  SyncStatus sync = SyncStatus::kMissing;
  Health health = Health::kUnknown;
  std::string revision;  // the revision that last applied it
  std::string power;     // observed power state: Running | Stopped | Paused | "" (not found)
  std::string address;   // the VM's IP address when known
  std::string address_source;  // agent | lease | static ("" when unknown)
  std::string cluster;   // for cluster members
  std::string group;
  std::vector<Condition> conditions;
  std::vector<FieldChange> drift;  // desired vs observed, when OutOfSync
  std::string desired_json;        // the desired spec (secret references only, no secrets)
  std::string observed_json;       // what libvirt reports, in the same shape
  std::string last_job;
  friend bool operator==(const ResourceStatus&, const ResourceStatus&) = default;
};

struct NodeStatus {
  std::string name;
  std::string uri;
  std::string driver;
  bool reachable = false;
  std::string error;
  Labels labels;
  bool draining = false;
  int vcpus = 0;                        // capacity
  std::uint64_t memory = 0;
  int vcpus_allocated = 0;              // by all defined domains
  std::uint64_t memory_allocated = 0;
  int vms = 0;                          // domains on the node
  int vms_managed = 0;
  friend bool operator==(const NodeStatus&, const NodeStatus&) = default;
};

struct ClusterMemberStatus {
  std::string name;
  std::string node;
  std::string power;
  bool ready = false;
  friend bool operator==(const ClusterMemberStatus&, const ClusterMemberStatus&) = default;
};

struct ClusterGroupStatus {
  std::string name;
  std::string role;
  int desired = 0;
  int ready = 0;
  std::vector<ClusterMemberStatus> members;
  friend bool operator==(const ClusterGroupStatus&, const ClusterGroupStatus&) = default;
};

struct ClusterStatus {
  std::string name;
  int desired = 0;
  int ready = 0;
  std::vector<ClusterGroupStatus> groups;
  friend bool operator==(const ClusterStatus&, const ClusterStatus&) = default;
};

struct PolicyStatus {
  Kind kind = Kind::kSnapshotPolicy;
  std::string name;
  std::string schedule;
  bool suspended = false;
  std::optional<TimePoint> last_run;
  std::optional<TimePoint> next_run;
  std::string last_result;  // succeeded | failed: ... | ""
  friend bool operator==(const PolicyStatus&, const PolicyStatus&) = default;
};

struct SnapshotEntry {
  std::string vm;
  std::string node;
  std::string name;
  std::string policy;  // "" when made by hand
  std::string description;
  std::string state;
  TimePoint created{};
  friend bool operator==(const SnapshotEntry&, const SnapshotEntry&) = default;
};

struct BackupEntry {
  std::string id;
  std::string vm;
  std::string node;
  std::string policy;
  std::string location;  // directory of the backup
  std::string mode;
  std::string compression;
  std::uint64_t bytes = 0;
  bool verified = false;
  bool is_protected = false;
  std::string status;  // complete | failed | deleted
  TimePoint created{};
  std::string error;  // why a failed attempt failed
  friend bool operator==(const BackupEntry&, const BackupEntry&) = default;
};

// Monotonic counters and last values for /metrics.
struct ControllerMetrics {
  std::uint64_t reconciles_total = 0;
  std::uint64_t reconcile_errors_total = 0;
  std::uint64_t source_fetches_total = 0;  // git fetches (or directory reads) attempted
  std::uint64_t source_loads_total = 0;    // revisions whose manifests were loaded, valid or not
  double last_reconcile_seconds = 0;
  std::uint64_t jobs_total = 0;
  std::uint64_t jobs_failed_total = 0;
  std::uint64_t steps_total = 0;
  std::uint64_t steps_failed_total = 0;
  double steps_seconds_sum = 0;  // total time spent in steps
  std::uint64_t backup_bytes_total = 0;
  std::uint64_t backups_total = 0;
  std::uint64_t backups_failed_total = 0;
  double backup_seconds_sum = 0;
  std::uint64_t snapshots_total = 0;
  std::uint64_t snapshots_failed_total = 0;
  friend bool operator==(const ControllerMetrics&, const ControllerMetrics&) = default;
};

struct StatusSnapshot {
  std::uint64_t generation = 0;  // increases with every published snapshot
  TimePoint generated_at{};
  bool ready = false;            // at least one reconcile pass has completed
  std::string source;            // repository URL or directory
  std::string ref;
  std::string revision;          // the commit in force (last good)
  std::string revision_author;
  std::string revision_message;
  std::string fetched_revision;  // the newest commit seen (may be invalid)
  std::optional<TimePoint> last_sync;
  std::string last_sync_result;  // synced | out-of-sync | failed | invalid
  std::string last_error;
  std::vector<Diagnostic> diagnostics;  // why the newest commit was refused
  std::string current_job;       // running job id, if any
  std::string latest_plan_id;    // "latest" plan: the last one the loop computed
  std::string latest_plan_json;
  std::vector<ResourceStatus> resources;  // sorted by kind, name
  std::vector<NodeStatus> nodes;
  std::vector<ClusterStatus> clusters;
  std::vector<PolicyStatus> policies;
  std::vector<SnapshotEntry> snapshots;
  std::vector<BackupEntry> backups;
  ControllerMetrics metrics;
  friend bool operator==(const StatusSnapshot&, const StatusSnapshot&) = default;
};

// What the status API reads. Implementations are thread-safe; the snapshot is immutable.
class StatusSource {
 public:
  virtual ~StatusSource() = default;
  virtual std::shared_ptr<const StatusSnapshot> Snapshot() const = 0;
  // The journal's jobs, steps and events, read-only (also jobs run by a CLI `apply` process
  // sharing the state file).
  virtual JobHistory& history() const = 0;
};

}  // namespace gitvirt
