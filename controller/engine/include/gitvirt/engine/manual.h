#pragma once
// What the command line asks of the engine besides plan and apply: changes made by hand
// (snapshots, power, backups and restores of one VM, a policy run now) as plans to print, confirm
// and run through the Session, and the backup catalog. Each function reads what it needs through
// the Session; none prints.

#include <optional>
#include <string>
#include <vector>

#include "gitvirt/core/manual_plans.h"
#include "gitvirt/core/plan.h"
#include "gitvirt/engine/backup.h"
#include "gitvirt/engine/desired_source.h"
#include "gitvirt/engine/scheduler.h"
#include "gitvirt/store/backup_catalog.h"

namespace gitvirt {

class Session;

// ---- snapshots and power ----------------------------------------------------------------------
// The plans of core/manual_plans.h, made against the nodes as they are now (every node: one
// that cannot be reached is an error, unless the session ignores unreachable nodes).
Result<Plan> PlanSnapshotCreate(Session& session, SnapshotCreateRequest request);
Result<Plan> PlanSnapshotDelete(Session& session, const std::string& vm, const std::string& snapshot);
Result<Plan> PlanSnapshotRevert(Session& session, const std::string& vm, const std::string& snapshot);
Result<PowerPlan> PlanPower(Session& session, const PowerRequest& request);
// `gitvirt snapshot list [VM]`: every node observed, and the VM, when one is named, found on one
// of them (kNotFound with the closest names otherwise).
Result<ObservedState> ObserveSnapshots(Session& session, const std::string& vm);

// ---- policies run now -------------------------------------------------------------------------
// The plan a SnapshotPolicy or BackupPolicy would run now (retention included), and running it
// (the policy's own job, as the scheduler runs it; the schedule's slot is not touched).
struct PolicyRun {
  Desired desired;
  ObservedState observed;
  Plan plan;
};
Result<PolicyRun> PlanPolicyRun(Session& session, Kind kind, const std::string& policy, const SourceSelection& source);
Result<PolicyRunResult> RunPolicyNow(Session& session, Kind kind, const std::string& policy, const PolicyRun& run,
                                     const RunHooks& hooks);

// ---- backups ----------------------------------------------------------------------------------
// `gitvirt backup run WHAT`: WHAT names a BackupPolicy (run it now) or a VirtualMachine (back
// it up once, with the settings given, or with those of the one BackupPolicy that selects it).
struct BackupRunRequest {
  std::string what;
  SourceSelection source;
  std::string target;       // VM: absolute directory
  std::string mode;         // VM: snapshot | suspend | stop
  std::string compression;  // VM: zstd | gzip | none
  int level = 0;
  bool verify = false;
  bool protect = false;
};
struct BackupRun {
  std::optional<std::string> policy;  // WHAT is this BackupPolicy: run it with PlanPolicyRun
  Plan plan;                          // otherwise the backup of the VM
};
Result<BackupRun> PlanBackupRun(Session& session, const BackupRunRequest& request);

// A backup by its catalog id, or by its directory.
struct FoundBackup {
  std::string directory;  // absolute
  BackupManifest manifest;
};
Result<FoundBackup> FindBackup(Session& session, const std::string& id_or_directory);
Result<std::vector<BackupRecord>> ListBackups(Session& session, const BackupFilter& filter);
// Rebuilds the catalog from every directory a backup can be in: the policies' targets (when the
// manifests can be read), the catalog's own locations, and `extra_dirs`. Failed attempts, which
// leave no directory, are kept.
struct CatalogRescan {
  std::size_t directories = 0;
  std::size_t backups = 0;      // found on disk
  std::size_t failed_kept = 0;  // failed attempts kept from the catalog
  std::vector<std::string> problems;  // directories skipped, and why
};
Result<CatalogRescan> RescanBackups(Session& session, const SourceSelection& source,
                                    const std::vector<std::string>& extra_dirs);
// `gitvirt backup delete`: a backup (kFailedPrecondition for a protected one without `force`),
// or the record of a failed attempt.
Result<Plan> PlanBackupDelete(Session& session, const std::string& id_or_directory, bool force);
// `gitvirt backup restore`: the VM's disks and definition from a backup, under `as` (default
// its name) on `node` (default where it was). Managed by gitvirt only when the manifests declare
// a VM of that name.
struct BackupRestoreRequest {
  std::string what;
  std::string as;
  std::string node;
  bool start = false;
  SourceSelection source;
};
struct BackupRestore {
  Plan plan;
  FoundBackup backup;
  std::string name;
  std::string node;
  bool managed = false;
};
Result<BackupRestore> PlanBackupRestore(Session& session, const BackupRestoreRequest& request);

// ---- jobs -------------------------------------------------------------------------------------
// A job by its id: kNotFound with the closest of the recent jobs' ids otherwise.
Result<JobRecord> FindJob(Session& session, const std::string& job_id);
// FindJob, and kFailedPrecondition when the job has finished: what cancel and abandon (and their
// dry runs) refuse.
Result<JobRecord> FindUnfinishedJob(Session& session, const std::string& job_id);
// The newest jobs that match `filter` (its limit; 0 = all), and how many match in all.
struct JobList {
  std::vector<JobRecord> jobs;
  int total = 0;
};
Result<JobList> ListJobs(Session& session, const JobFilter& filter);
// Asks a running job to stop (it starts no more steps, then applies its strategy). The job as it
// was; kFailedPrecondition when it has finished already.
Result<JobRecord> CancelJob(Session& session, const std::string& job_id);
// The way out of an unfinished job that cannot be resumed or rolled back (its plan or records
// unreadable, or a rollback nobody wants): marks it failed, "abandoned by hand", with an event
// saying who and when, under the state lock (so no process is running it). Never touches a
// node: what its steps did stays, and the next plan shows it. kFailedPrecondition when it has
// finished already.
Result<JobRecord> AbandonJob(Session& session, const std::string& job_id);

}  // namespace gitvirt
