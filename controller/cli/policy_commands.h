#pragma once
// What the snapshot, backup and power commands share with `get` (internal to the cli folder).

#include <ostream>
#include <string>

#include "gitvirt/core/observed.h"
#include "gitvirt/core/plan.h"
#include "gitvirt/core/selector.h"
#include "gitvirt/store/state_lock.h"
#include "session.h"

namespace gitvirt::cli {

// `gitvirt get snapshots`: every snapshot of every VM gitvirt owns (and of the others when no
// selector is given), oldest first per VM. `output`: table | wide | json | yaml.
int PrintSnapshots(std::ostream& out, const ObservedState& observed, const LabelSelector& selector,
                   bool selector_given, const std::string& vm, const std::string& policy,
                   const std::string& output);

// `gitvirt get backups`: the backup catalog of the configuration's state file.
int PrintBackups(std::ostream& out, const ControllerConfig& config, const std::string& vm,
                 const std::string& policy, const std::string& output);

// Asks "<question> Only 'yes' will be accepted:" on a terminal; false (with a hint to pass
// --yes, -y or --auto-approve) when stdin or stdout is not one.
bool ConfirmAction(const std::string& question);

// Config, state lock, journal, connected nodes, unfinished jobs recovered: what every command
// that changes something needs first. nullopt after printing what went wrong.
struct ChangeSession {
  ControllerConfig config;
  std::optional<StateLock> lock;
  std::unique_ptr<Journal> journal;
  std::unique_ptr<NodeSet> nodes;
};
std::optional<ChangeSession> OpenChangeSession(const GlobalOptions& global, const std::shared_ptr<spdlog::logger>& log);

// The VM's domain when gitvirt owns it; prints why not otherwise (null).
const ObservedVm* FindOwnedVm(const ObservedState& observed, const std::string& name);

// Prints the plan, and (unless `dry_run`) runs it as a job of `kind` (strategy NONE), after
// asking `confirm` (ConfirmAction) when it is not empty.
int RunOneActionJob(ChangeSession& s, Plan plan, const std::string& kind, bool dry_run,
                    const std::shared_ptr<spdlog::logger>& log, int parallel = 1, const std::string& confirm = "");

// Runs a SnapshotPolicy or BackupPolicy now (retention included), printing the plan and the
// outcome; `dry_run` prints the plan only.
int RunPolicyNow(const GlobalOptions& global, Kind kind, const std::string& name, const SourceOptions& source,
                 bool dry_run);

}  // namespace gitvirt::cli
