#include "gitvirt/engine/manual.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <set>

#include "gitvirt/core/policy_plan.h"
#include "gitvirt/core/selector.h"
#include "gitvirt/core/suggest.h"
#include "gitvirt/core/time.h"
#include "gitvirt/engine/clock.h"
#include "gitvirt/engine/session.h"

namespace gitvirt {

namespace fs = std::filesystem;

namespace {

TimePoint Now() { return std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()); }

Result<BackupCatalog*> Catalog(Session& session, std::unique_ptr<BackupCatalog>& slot) {
  if (!slot) {
    auto opened = BackupCatalog::Open(session.paths().state);
    if (!opened) return std::unexpected(opened.error());
    slot = std::move(*opened);
  }
  return slot.get();
}

}  // namespace

// ---- snapshots and power ----------------------------------------------------------------------

Result<Plan> PlanSnapshotCreate(Session& session, SnapshotCreateRequest request) {
  if (request.now == TimePoint{}) request.now = Now();
  auto observed = session.ObserveEvery();
  if (!observed) return std::unexpected(observed.error());
  return PlanSnapshotCreate(*observed, request);
}

Result<Plan> PlanSnapshotDelete(Session& session, const std::string& vm, const std::string& snapshot) {
  auto observed = session.ObserveEvery();
  if (!observed) return std::unexpected(observed.error());
  return PlanSnapshotDelete(*observed, vm, snapshot);
}

Result<Plan> PlanSnapshotRevert(Session& session, const std::string& vm, const std::string& snapshot) {
  auto observed = session.ObserveEvery();
  if (!observed) return std::unexpected(observed.error());
  return PlanSnapshotRevert(*observed, vm, snapshot);
}

Result<PowerPlan> PlanPower(Session& session, const PowerRequest& request) {
  auto observed = session.ObserveEvery();
  if (!observed) return std::unexpected(observed.error());
  return PlanPower(*observed, request);
}

Result<ObservedState> ObserveSnapshots(Session& session, const std::string& vm) {
  auto observed = session.ObserveEvery();
  if (!observed) return std::unexpected(observed.error());
  if (!vm.empty()) {
    if (auto found = FindVm(*observed, vm); !found) return std::unexpected(found.error());
  }
  return observed;
}

// ---- policies run now -------------------------------------------------------------------------

Result<PolicyRun> PlanPolicyRun(Session& session, Kind kind, const std::string& policy, const SourceSelection& source) {
  auto desired = session.ReadDesired(source);
  if (!desired) return std::unexpected(desired.error());
  PolicyRun run;
  run.desired = std::move(*desired);
  auto observed = session.ObserveEvery();
  if (!observed) return std::unexpected(observed.error());
  run.observed = std::move(*observed);
  auto scheduler = session.MakeScheduler(SystemWallClock());
  if (!scheduler) return std::unexpected(scheduler.error());
  auto plan = (*scheduler)->PlanRun(kind, policy, run.desired.state, run.observed, run.desired.revision);
  if (!plan) return std::unexpected(plan.error());
  run.plan = std::move(*plan);
  return run;
}

Result<PolicyRunResult> RunPolicyNow(Session& session, Kind kind, const std::string& policy, const PolicyRun& run,
                                     const RunHooks& hooks) {
  if (auto locked = session.Lock(); !locked) return std::unexpected(locked.error());
  auto scheduler = session.MakeScheduler(SystemWallClock());
  if (!scheduler) return std::unexpected(scheduler.error());
  return (*scheduler)->RunNow(kind, policy, run.desired.state, run.observed, run.desired.revision, hooks);
}

// ---- backups ----------------------------------------------------------------------------------

Result<BackupRun> PlanBackupRun(Session& session, const BackupRunRequest& request) {
  auto desired = session.ReadDesired(request.source);
  if (!desired) return std::unexpected(desired.error());
  for (const BackupPolicy& p : desired->state.backup_policies) {
    if (p.meta.name != request.what) continue;
    if (!request.target.empty() || !request.mode.empty() || !request.compression.empty()) {
      return Fail(ErrorCode::kInvalidArgument, request.what +
                                                   " is a BackupPolicy: its settings come from the manifest "
                                                   "(--dir, --mode and --compression are for a backup of one VM)");
    }
    return BackupRun{p.meta.name, {}};
  }
  // One VM: settings from the request, or from the one policy that selects it.
  const VirtualMachine* vm = desired->state.FindVm(request.what);
  if (vm == nullptr) {
    std::vector<std::string> names;
    for (const BackupPolicy& p : desired->state.backup_policies) names.push_back(p.meta.name);
    for (const VirtualMachine& v : desired->state.vms) names.push_back(v.meta.name);
    return std::unexpected(NotFoundError("BackupPolicy or VirtualMachine", request.what, names));
  }
  BackupPolicySpec spec;
  std::string from_policy;
  if (request.target.empty()) {
    std::vector<const BackupPolicy*> selecting;
    for (const BackupPolicy& p : desired->state.backup_policies) {
      auto compiled = CompiledSelector::Compile(p.spec.selector);
      if (compiled && compiled->Matches(vm->meta.name, vm->meta.labels, vm->meta.tags)) selecting.push_back(&p);
    }
    if (selecting.size() != 1) {
      return Fail(ErrorCode::kInvalidArgument,
                  "give --dir DIR: " + vm->meta.name +
                      (selecting.empty() ? " is selected by no BackupPolicy" : " is selected by several BackupPolicies"));
    }
    spec = selecting.front()->spec;
    from_policy = selecting.front()->meta.name;
  } else {
    if (!fs::path(request.target).is_absolute()) {
      return Fail(ErrorCode::kInvalidArgument, "--dir must be an absolute directory");
    }
    spec.target.directory = request.target;
  }
  if (!request.mode.empty()) {
    auto mode = ParseEnum<BackupMode>(request.mode);
    if (!mode) return Fail(ErrorCode::kInvalidArgument, "unknown backup mode " + request.mode);
    spec.mode = *mode;
  }
  if (!request.compression.empty()) {
    auto compression = ParseEnum<Compression>(request.compression);
    if (!compression) return Fail(ErrorCode::kInvalidArgument, "unknown compression " + request.compression);
    spec.compression = *compression;
  }
  if (request.level > 0) spec.compression_level = request.level;
  if (request.verify) spec.verify = true;
  spec.protect = request.protect;  // a backup by hand is protected only when asked
  if (spec.target.directory.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "the backup needs a target directory (--dir DIR)");
  }

  auto observed = session.ObserveEvery();
  if (!observed) return std::unexpected(observed.error());
  auto domain = FindOwnedVm(*observed, vm->meta.name);
  if (!domain) return std::unexpected(domain.error());
  std::vector<CatalogBackup> existing;
  std::unique_ptr<BackupCatalog> catalog;
  if (auto opened = Catalog(session, catalog)) {
    if (auto records = (*opened)->List(BackupFilter{vm->meta.name, "", ""})) {
      for (const BackupRecord& r : *records) {
        existing.push_back(CatalogBackup{r.id, r.vm, r.node, r.policy, r.location, r.created, r.is_protected});
      }
    }
  }
  const TimePoint now = Now();
  BackupRun run;
  run.plan.source = SourceRef::Command("backup run");
  run.plan.revision = desired->revision;
  // A backup by hand belongs to no policy: retention never deletes it.
  Action a = MakeBackupAction(*vm, (*domain)->node, spec, "", MakeBackupId(vm->meta.name, now, existing), now);
  if (!from_policy.empty()) a.reason += ", settings of BackupPolicy " + from_policy;
  run.plan.actions.push_back(std::move(a));
  return run;
}

Result<FoundBackup> FindBackup(Session& session, const std::string& what) {
  std::string dir;
  if (what.find('/') != std::string::npos && fs::exists(fs::path(what) / "manifest.json")) {
    dir = what;
  } else {
    std::unique_ptr<BackupCatalog> catalog;
    auto opened = Catalog(session, catalog);
    if (!opened) return std::unexpected(opened.error());
    auto record = (*opened)->Get(what);
    if (!record && record.error().code == ErrorCode::kNotFound) {
      std::vector<std::string> ids;
      if (auto all = (*opened)->List(BackupFilter{})) {
        for (const BackupRecord& r : *all) ids.push_back(r.id);
      }
      Error e = NotFoundError("Backup", what, ids);
      e.message += "; give its id from `gitvirt backup list` or its directory (`backup list --rescan` rebuilds "
                   "the catalog)";
      return std::unexpected(e);
    }
    if (!record) return std::unexpected(record.error());
    if (record->status == "failed") {
      return Fail(ErrorCode::kFailedPrecondition, "backup " + what + " is a failed attempt (" + record->error +
                                                      "): there is no backup to use; `gitvirt backup delete " + what +
                                                      "` removes the record");
    }
    dir = record->location;
  }
  auto manifest = ReadManifest(dir);
  if (!manifest) return std::unexpected(manifest.error());
  return FoundBackup{fs::absolute(dir).lexically_normal().string(), std::move(*manifest)};
}

Result<std::vector<BackupRecord>> ListBackups(Session& session, const BackupFilter& filter) {
  std::unique_ptr<BackupCatalog> catalog;
  auto opened = Catalog(session, catalog);
  if (!opened) return std::unexpected(opened.error());
  return (*opened)->List(filter);
}

Result<CatalogRescan> RescanBackups(Session& session, const SourceSelection& source,
                                    const std::vector<std::string>& extra_dirs) {
  std::set<std::string> roots(extra_dirs.begin(), extra_dirs.end());
  if (auto desired = session.ReadDesired(source)) {
    for (const BackupPolicy& p : desired->state.backup_policies) {
      if (!p.spec.target.directory.empty()) roots.insert(p.spec.target.directory);
    }
  } else {
    session.Notice("scanning without the manifests' BackupPolicies");
  }
  std::unique_ptr<BackupCatalog> catalog;
  auto opened = Catalog(session, catalog);
  if (!opened) return std::unexpected(opened.error());
  std::vector<BackupRecord> failed;  // attempts that left no directory: history the scan cannot find
  if (auto records = (*opened)->List(BackupFilter{})) {
    for (const BackupRecord& r : *records) {
      roots.insert(fs::path(r.location).parent_path().parent_path().string());
      if (r.status == "failed") failed.push_back(r);
    }
  }
  CatalogRescan out;
  std::vector<BackupRecord> found;
  for (const std::string& root : roots) {
    for (BackupRecord& r : ScanBackups(root, &out.problems)) found.push_back(std::move(r));
  }
  out.directories = roots.size();
  out.backups = found.size();
  for (BackupRecord& r : failed) {
    const bool complete = std::any_of(found.begin(), found.end(), [&](const BackupRecord& f) { return f.id == r.id; });
    if (!complete) found.push_back(std::move(r));
  }
  out.failed_kept = found.size() - out.backups;
  if (auto ok = (*opened)->ReplaceAll(found); !ok) return std::unexpected(ok.error());
  return out;
}

Result<Plan> PlanBackupDelete(Session& session, const std::string& what, bool force) {
  Plan plan;
  plan.source = SourceRef::Command("backup delete");
  Action a;
  a.type = ActionType::kBackupDelete;
  {
    std::unique_ptr<BackupCatalog> catalog;
    if (auto opened = Catalog(session, catalog)) {
      if (auto record = (*opened)->Get(what); record && record->status == "failed") {
        // Nothing on disk: the step finds no manifest and drops the record.
        a.id = "backup-delete/" + record->id;
        a.target = ResourceRef{Kind::kVirtualMachine, record->vm};
        a.reason = "the record of failed backup attempt " + record->id + " deleted by hand";
        a.params = BackupDeleteParams{record->id, record->location, false};
        plan.actions.push_back(std::move(a));
        return plan;
      }
    }
  }
  auto found = FindBackup(session, what);
  if (!found) return std::unexpected(found.error());
  const BackupManifest& manifest = found->manifest;
  if (manifest.is_protected && !force) {
    return Fail(ErrorCode::kFailedPrecondition,
                "backup " + manifest.id + " is protected; pass --force to delete it anyway");
  }
  a.id = "backup-delete/" + manifest.id;
  a.target = ResourceRef{Kind::kVirtualMachine, manifest.vm};
  a.reason = "backup " + manifest.id + " deleted by hand";
  a.params = BackupDeleteParams{manifest.id, found->directory, force};
  plan.actions.push_back(std::move(a));
  return plan;
}

Result<BackupRestore> PlanBackupRestore(Session& session, const BackupRestoreRequest& request) {
  auto found = FindBackup(session, request.what);
  if (!found) return std::unexpected(found.error());
  BackupRestore out;
  const BackupManifest& manifest = found->manifest;
  out.name = request.as.empty() ? manifest.vm : request.as;
  out.node = request.node.empty() ? manifest.node : request.node;
  const NodeConfig* node_config = session.config().FindNode(out.node);
  if (node_config == nullptr) {
    std::vector<std::string> names;
    for (const NodeConfig& n : session.config().nodes) names.push_back(n.name);
    Error e = NotFoundError("Node", out.node, names);
    e.message += "; choose one of " + session.config().file + "'s nodes with --node";
    return std::unexpected(e);
  }
  // Owned by gitvirt only when the manifests declare a VM of that name; otherwise it is left
  // alone (never pruned, never changed) until someone adopts it.
  if (auto desired = session.ReadDesired(request.source)) out.managed = desired->state.FindVm(out.name) != nullptr;
  auto observed = session.ObserveEvery();
  if (!observed) return std::unexpected(observed.error());
  if (!observed->FindVms(out.name).empty()) {
    return Fail(ErrorCode::kAlreadyExists,
                "a domain named " + out.name + " exists already; restore under a new name with --as NAME");
  }
  // Pre-flight: every disk goes back into the pool it came from, on the node restored onto.
  if (const ObservedNode* node = observed->FindNode(out.node); node != nullptr && node->reachable) {
    std::set<std::string> missing;
    for (const BackupFile& f : manifest.files) {
      const bool configured = std::any_of(node_config->pools.begin(), node_config->pools.end(),
                                          [&](const PoolConfig& p) { return p.name == f.pool; });
      if (!f.pool.empty() && node->FindPool(f.pool) == nullptr && !configured) missing.insert(f.pool);
    }
    if (!missing.empty()) {
      std::string pools, have;
      for (const std::string& p : missing) pools += (pools.empty() ? "" : ", ") + p;
      for (const ObservedPool& p : node->pools) have += (have.empty() ? "" : ", ") + p.name;
      return Fail(ErrorCode::kFailedPrecondition,
                  "backup " + manifest.id + " restores disks into pool" + (missing.size() == 1 ? " " : "s ") + pools +
                      ", which node " + out.node + " does not have (its pools: " + (have.empty() ? "none" : have) +
                      "); restore onto another node with --node, or declare the pool for " + out.node + " in " +
                      session.config().file);
    }
  }
  out.plan.source = SourceRef::Command("backup restore");
  out.plan.revision = manifest.revision;
  Action a;
  a.id = "backup-restore/" + out.name;
  a.type = ActionType::kBackupRestore;
  a.node = out.node;
  a.target = ResourceRef{Kind::kVirtualMachine, out.name};
  a.reason = "restore backup " + manifest.id + " of " + manifest.vm + (manifest.simulated ? " (simulated)" : "") +
             (out.managed ? "; managed (in the manifests)" : "; not managed by gitvirt");
  a.params = BackupRestoreParams{found->directory, manifest.id, out.managed};
  out.plan.actions.push_back(a);
  if (request.start) {
    Action start;
    start.id = "start/" + out.name;
    start.type = ActionType::kStart;
    start.node = out.node;
    start.target = a.target;
    start.reason = "start the restored VM";
    start.depends_on = {a.id};
    start.power_before = PowerState::kStopped;
    out.plan.actions.push_back(std::move(start));
  }
  out.backup = std::move(*found);
  return out;
}

// ---- jobs -------------------------------------------------------------------------------------

Result<JobRecord> FindJob(Session& session, const std::string& job_id) {
  auto journal = session.journal();
  if (!journal) return std::unexpected(journal.error());
  auto job = (*journal)->GetJob(job_id);
  if (job || job.error().code != ErrorCode::kNotFound) return job;
  std::vector<std::string> ids;
  if (auto recent = (*journal)->ListJobs(JobFilter{std::nullopt, "", 200, 0})) {
    for (const JobRecord& j : *recent) ids.push_back(j.id);
  }
  return std::unexpected(NotFoundError("Job", job_id, ids));
}

Result<JobList> ListJobs(Session& session, const JobFilter& filter) {
  auto journal = session.journal();
  if (!journal) return std::unexpected(journal.error());
  JobFilter all = filter;
  all.limit = filter.limit > 0 ? filter.limit : std::numeric_limits<int>::max();
  auto jobs = (*journal)->ListJobs(all);
  if (!jobs) return std::unexpected(jobs.error());
  auto total = (*journal)->CountJobs(filter);
  if (!total) return std::unexpected(total.error());
  return JobList{std::move(*jobs), *total};
}

Result<JobRecord> FindUnfinishedJob(Session& session, const std::string& job_id) {
  auto job = FindJob(session, job_id);
  if (!job) return std::unexpected(job.error());
  if (IsFinished(job->status)) {
    return Fail(ErrorCode::kFailedPrecondition,
                "job " + job_id + " has already finished (" + std::string(EnumName(job->status)) + ")");
  }
  return job;
}

Result<JobRecord> AbandonJob(Session& session, const std::string& job_id) {
  if (auto locked = session.Lock(); !locked) return std::unexpected(locked.error());
  auto journal = session.journal();
  if (!journal) return std::unexpected(journal.error());
  auto job = FindUnfinishedJob(session, job_id);
  if (!job) return std::unexpected(job.error());
  const char* user = std::getenv("SUDO_USER") != nullptr ? std::getenv("SUDO_USER") : std::getenv("USER");
  const std::string why = "abandoned by hand (gitvirt jobs abandon) by " + std::string(user != nullptr ? user : "?") +
                          " at " + FormatTime(Now()) + ", while " + std::string(EnumName(job->status)) +
                          ": it is neither resumed nor rolled back, and what its steps did stays on the nodes";
  if (auto ok = (*journal)->RecordJobStatus(job_id, JobStatus::kFailed, why); !ok) return std::unexpected(ok.error());
  if (auto ok = (*journal)->AppendEvent(job_id, "", EventLevel::kWarning, why); !ok) return std::unexpected(ok.error());
  if (auto ok = (*journal)->Flush(); !ok) return std::unexpected(ok.error());
  return *job;
}

Result<JobRecord> CancelJob(Session& session, const std::string& job_id) {
  auto journal = session.journal();
  if (!journal) return std::unexpected(journal.error());
  auto job = FindUnfinishedJob(session, job_id);
  if (!job) return std::unexpected(job.error());
  if (auto ok = (*journal)->RequestCancel(job_id); !ok || !(*journal)->Flush()) {
    return Fail(ErrorCode::kIo, "could not record the cancellation");
  }
  return *job;
}

}  // namespace gitvirt
