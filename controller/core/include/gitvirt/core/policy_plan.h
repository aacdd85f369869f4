#pragma once
// What one run of a SnapshotPolicy or BackupPolicy does, as a Plan the executor carries out:
// a snapshot (or backup) of each selected VM, then the retention deletions of that policy's own
// items. Pure functions: the scheduler supplies the clock's time, the policy's TimeZone and
// the backup catalog.
//
// Rules shared by both kinds:
//  * The VMs are the desired VMs the selector matches (names, labels, tags, all) that exist:
//    a domain gitvirt owns, on a reachable node. A VM the manifests declare but no node runs
//    is skipped (and named in Plan::warnings).
//  * Retention goes per VM over the items made by this policy only (hand-made ones and other
//    policies' never count and are never deleted), with the new items counted as the newest;
//    it covers every VM holding items of the policy, also VMs no longer selected.
//  * A VM's deletions depend on its new item: when the snapshot or backup fails, nothing of
//    that VM is deleted.

#include <map>
#include <string>
#include <vector>

#include "gitvirt/core/error.h"
#include "gitvirt/core/model.h"
#include "gitvirt/core/observed.h"
#include "gitvirt/core/plan.h"
#include "gitvirt/core/retention.h"
#include "gitvirt/core/timezone.h"

namespace gitvirt {

// A VM a policy applies to, and the domain that runs it.
struct PolicyVm {
  const VirtualMachine* vm = nullptr;
  const ObservedVm* observed = nullptr;
};

// The selected VMs, sorted by name. Fails on a selector that does not compile.
Result<std::vector<PolicyVm>> SelectPolicyVms(const Selector& selector, const DesiredState& desired,
                                              const ObservedState& observed,
                                              std::vector<Diagnostic>* warnings = nullptr);

// Snapshot actions: "snapshot/<vm>/<name>" (snapshot = the name rendered from namePattern at
// `now` in `tz`, made unique per VM with "-2", "-3"... when taken), params description, memory,
// quiesce; then "snapshot-delete/<vm>/<name>" for retention (stage 1, after that VM's
// snapshot).
Result<Plan> PlanSnapshotPolicyRun(const SnapshotPolicy& policy, const DesiredState& desired,
                                   const ObservedState& observed, TimePoint now, const TimeZone& tz,
                                   const std::string& revision);

// A backup the catalog holds.
struct CatalogBackup {
  std::string id;
  std::string vm;
  std::string node;
  std::string policy;
  std::string location;  // its directory
  TimePoint created{};
  bool is_protected = false;
  friend bool operator==(const CatalogBackup&, const CatalogBackup&) = default;
};

// "<vm>-<YYYYMMDDTHHMMSSZ>" (UTC), with "-2", "-3"... when taken.
std::string MakeBackupId(const std::string& vm, TimePoint now, const std::vector<CatalogBackup>& existing);

// Backup actions "backup/<vm>/<id>" with action.vm = the desired VM (its updatePolicy for mode
// stop, its disks' `backup` flags) and params: id, directory (target/<vm>/<id>), target, mode,
// compression, level, verify, protect, description, created (Unix seconds); then
// "backup-delete/<id>" for retention (never a protected backup: a policy's `protect` marks
// every backup it makes).
Result<Plan> PlanBackupPolicyRun(const BackupPolicy& policy, const DesiredState& desired,
                                 const ObservedState& observed,
                                 const std::vector<CatalogBackup>& catalog, TimePoint now,
                                 const std::string& revision);

// One backup of one VM outside any policy (`gitvirt backup run VM --target DIR`), or as a
// policy would take it when `policy` is given: the same action as PlanBackupPolicyRun's.
Action MakeBackupAction(const VirtualMachine& vm, const std::string& node, const BackupPolicySpec& spec,
                        const std::string& policy, const std::string& id, TimePoint now);

}  // namespace gitvirt
