#pragma once
// What the snapshot, backup and power commands share with `get` (internal to the cli folder).

#include <ostream>
#include <string>

#include "gitvirt/core/observed.h"
#include "gitvirt/core/plan.h"
#include "gitvirt/core/selector.h"
#include "gitvirt/store/backup_catalog.h"
#include "session.h"

namespace gitvirt::cli {

// Which snapshots a listing shows ("" = any).
struct SnapshotQuery {
  std::string vm;
  std::string policy;
  std::string name;
};

// `gitvirt get snapshots`, `snapshot list`: every snapshot of every VM gitvirt owns (and of the
// others when no selector is given), oldest first per VM. `output`: table | wide | json | yaml
// | name (Snapshot/VM/NAME).
int PrintSnapshots(std::ostream& out, const ObservedState& observed, const LabelSelector& selector,
                   bool selector_given, const SnapshotQuery& query, const std::string& output);

// `gitvirt get backups`, `backup list`: the backup catalog of the configuration's state file
// (`id`: only that one). `output`: table | wide | json | yaml | name (Backup/ID).
int PrintBackups(std::ostream& out, Session& session, const BackupFilter& filter, const std::string& id,
                 const std::string& output);

// The session of a command that changes something: the state lock taken and unfinished jobs
// recovered first. Null after printing why not.
std::unique_ptr<Session> OpenChangeSession(const GlobalOptions& global);

// Prints the plan (or the error that made it impossible), and (unless `dry_run`) runs it as a
// job of `kind` (strategy NONE), after asking `confirm` (ConfirmAction) when it is not empty.
int RunOneActionJob(const GlobalOptions& global, Session& session, const Result<Plan>& plan, const std::string& kind,
                    bool dry_run, int parallel = 1, const std::string& confirm = "");

// Runs a SnapshotPolicy or BackupPolicy now (retention included), printing the plan and the
// outcome; `dry_run` prints the plan only.
int RunPolicyNow(const GlobalOptions& global, Session& session, Kind kind, const std::string& name,
                 const SourceSelection& source, bool dry_run);

}  // namespace gitvirt::cli
