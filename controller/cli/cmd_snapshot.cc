// gitvirt snapshot create|list|delete|run|restore: snapshots by hand and SnapshotPolicies run
// now. Every change is a journaled job (kind "snapshot"), like apply's.
#include <unistd.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "command.h"
#include "flags.h"
#include "gitvirt/cli/app.h"
#include "gitvirt/engine/manual.h"
#include "output.h"
#include "planning.h"
#include "policy_commands.h"

namespace gitvirt::cli {

// ---- shared with `get` -------------------------------------------------------------------

int PrintSnapshots(std::ostream& out, const ObservedState& observed, const LabelSelector& selector,
                   bool selector_given, const SnapshotQuery& query, const std::string& output) {
  nlohmann::json list = nlohmann::json::array();
  Table table(output == "wide" ? std::vector<std::string>{"VM", "NODE", "SNAPSHOT", "POLICY", "CREATED", "STATE",
                                                          "CURRENT", "DESCRIPTION"}
                               : std::vector<std::string>{"VM", "NODE", "SNAPSHOT", "POLICY", "CREATED", "STATE"});
  std::vector<std::string> names;
  for (const ObservedNode& node : observed.nodes) {
    for (const ObservedVm& vm : node.vms) {
      if (!query.vm.empty() && vm.name != query.vm) continue;
      if (selector_given && (!vm.Owned() || !selector.Matches(vm.owner->labels))) continue;
      for (const ObservedSnapshot& s : vm.snapshots) {
        if (!query.policy.empty() && s.policy != query.policy) continue;
        if (!query.name.empty() && s.name != query.name) continue;
        list.push_back({{"vm", vm.name},
                        {"node", node.name},
                        {"name", s.name},
                        {"policy", s.policy},
                        {"created", FormatTime(s.created)},
                        {"state", s.state},
                        {"current", s.current},
                        {"description", s.description},
                        {"managed", vm.Owned()}});
        std::vector<std::string> row = {vm.name, node.name, s.name, s.policy.empty() ? "(by hand)" : s.policy,
                                        FormatTime(s.created), s.state.empty() ? "-" : s.state};
        if (output == "wide") row.insert(row.end(), {s.current ? "yes" : "", s.description.empty() ? "-" : s.description});
        table.Add(row);
        names.push_back(vm.name + "/" + s.name);
      }
    }
  }
  if (output == "json" || output == "yaml") {
    PrintDocument(out, list, output);
  } else if (output == "name") {
    for (const std::string& n : names) out << "Snapshot/" << n << "\n";
  } else if (table.size() == 0) {
    out << "No snapshots.\n";
  } else {
    table.Print(out);
  }
  return kExitOk;
}

int PrintBackups(std::ostream& out, Session& session, const BackupFilter& filter, const std::string& id,
                 const std::string& output) {
  auto listed = ListBackups(session, filter);
  if (!listed) {
    PrintError(listed.error());
    return kExitError;
  }
  std::vector<BackupRecord> records;
  for (BackupRecord& r : *listed) {
    if (id.empty() || r.id == id) records.push_back(std::move(r));
  }
  if (output == "json" || output == "yaml") {
    nlohmann::json list = nlohmann::json::array();
    for (const BackupRecord& r : records) {
      list.push_back({{"id", r.id},
                      {"vm", r.vm},
                      {"node", r.node},
                      {"policy", r.policy},
                      {"location", r.location},
                      {"mode", r.mode},
                      {"compression", r.compression},
                      {"bytes", r.bytes},
                      {"verified", r.verified},
                      {"protected", r.is_protected},
                      {"simulated", r.simulated},
                      {"status", r.status},
                      {"error", r.error},
                      {"revision", r.revision},
                      {"job", r.job_id},
                      {"created", FormatTime(r.created)}});
    }
    PrintDocument(out, list, output);
    return kExitOk;
  }
  if (output == "name") {
    for (const BackupRecord& r : records) out << "Backup/" << r.id << "\n";
    return kExitOk;
  }
  if (records.empty()) {
    out << "No backups.\n";
    return kExitOk;
  }
  std::vector<std::string> header = {"ID", "VM", "POLICY", "CREATED", "MODE", "STATUS", "SIZE", "VERIFIED", "PROTECTED"};
  if (output == "wide") header.insert(header.end(), {"NODE", "COMPRESSION", "JOB", "LOCATION", "ERROR"});
  Table table(header);
  for (const BackupRecord& r : records) {
    std::vector<std::string> row = {r.id,
                                    r.vm,
                                    r.policy.empty() ? "(by hand)" : r.policy,
                                    FormatTime(r.created),
                                    r.mode + (r.simulated && r.mode != "simulated" ? " (simulated)" : ""),
                                    r.status,
                                    r.status == "failed" ? "-" : HumanSize(r.bytes),
                                    r.verified ? "yes" : "no",
                                    r.is_protected ? "yes" : "no"};
    if (output == "wide") {
      row.insert(row.end(), {r.node, r.compression, r.job_id.empty() ? "-" : r.job_id, r.location,
                             r.error.empty() ? "-" : r.error});
    }
    table.Add(row);
  }
  table.Print(out);
  return kExitOk;
}

std::unique_ptr<Session> OpenChangeSession(const GlobalOptions& global) {
  auto session = OpenSession(global);
  if (!session || !LockAndRecover(*session)) return nullptr;
  return session;
}

int RunOneActionJob(const GlobalOptions& global, Session& session, const Result<Plan>& plan, const std::string& kind,
                    bool dry_run, int parallel, const std::string& confirm) {
  if (!plan) {
    PrintError(plan.error());
    return kExitError;
  }
  PrintPlan(global, *plan);
  if (dry_run) return kExitOk;
  if (!confirm.empty() && !ConfirmAction(confirm)) return kExitError;
  RunOptions run;
  run.kind = kind;
  run.strategy = RollbackStrategy::kNone;
  run.parallel = std::max(1, parallel);
  auto outcome = RunPlan(session, *plan, run);
  return outcome && outcome->Ok() ? kExitOk : kExitError;
}

namespace {

struct SnapshotOptions {
  SourceSelection source;
  std::string vm;
  std::string name;
  std::string description;
  std::string policy;
  bool quiesce = false;
  bool memory = false;
  bool yes = false;
  bool dry_run = false;
  std::string output = "table";
};

int RunCreate(const GlobalOptions& global, const SnapshotOptions& opts) {
  auto session = OpenChangeSession(global);
  if (!session) return kExitError;
  SnapshotCreateRequest request;
  request.vm = opts.vm;
  request.name = opts.name;
  request.description = opts.description;
  request.memory = opts.memory;
  request.quiesce = opts.quiesce;
  return RunOneActionJob(global, *session, PlanSnapshotCreate(*session, request), "snapshot", opts.dry_run);
}

int RunList(const GlobalOptions& global, const SnapshotOptions& opts) {
  auto session = OpenSession(global);
  if (!session) return kExitError;
  auto observed = ObserveSnapshots(*session, opts.vm);
  if (!observed) {
    PrintError(observed.error());
    return kExitError;
  }
  return PrintSnapshots(std::cout, *observed, LabelSelector{}, false, SnapshotQuery{opts.vm, opts.policy, ""},
                        opts.output);
}

int RunDelete(const GlobalOptions& global, const SnapshotOptions& opts) {
  auto session = OpenChangeSession(global);
  if (!session) return kExitError;
  auto plan = PlanSnapshotDelete(*session, opts.vm, opts.name);
  std::string question;
  if (plan && !opts.yes) {
    const Action& a = plan->actions.front();
    question = "Delete snapshot " + opts.name + " of " + a.target.name + (a.policy.empty() ? "" : " (policy " + a.policy + ")") + "?";
  }
  return RunOneActionJob(global, *session, plan, "snapshot", opts.dry_run, 1, question);
}

int RunRestore(const GlobalOptions& global, const SnapshotOptions& opts) {
  auto session = OpenChangeSession(global);
  if (!session) return kExitError;
  auto plan = PlanSnapshotRevert(*session, opts.vm, opts.name);
  const std::string question = opts.yes || !plan ? "" : "Revert " + plan->actions.front().target.name + " to snapshot " + opts.name +
                                                   "? Its disks (and state) go back to then; what changed since is lost.";
  return RunOneActionJob(global, *session, plan, "restore", opts.dry_run, 1, question);
}

}  // namespace

// Runs a policy now, for `snapshot run` and `backup run`.
int RunPolicyNow(const GlobalOptions& global, Session& session, Kind kind, const std::string& name,
                 const SourceSelection& source, bool dry_run) {
  auto run = PlanPolicyRun(session, kind, name, source);
  if (!run) {
    PrintError(run.error());
    return kExitError;
  }
  for (const Diagnostic& w : run->plan.warnings) std::cerr << "gitvirt: warning: " << w.message << "\n";
  PrintPlan(global, run->plan);
  if (dry_run || run->plan.Empty()) return kExitOk;
  ProgressPrinter printer(false);
  RunHooks hooks;
  hooks.on_progress = [&printer](const StepProgress& p) { printer(p); };
  auto result = RunPolicyNow(session, kind, name, *run, hooks);
  if (!result) {
    PrintError(result.error());
    return kExitError;
  }
  std::cout << "\n" << EnumName(kind) << " " << name << ": " << result->result;
  if (!result->job_id.empty()) std::cout << " (job " << result->job_id << ")";
  std::cout << "\n";
  if (kind == Kind::kSnapshotPolicy) {
    std::cout << "  snapshots created: " << result->snapshots << ", failed: " << result->snapshots_failed
              << ", deleted by retention: " << result->deleted << "\n";
  } else {
    std::cout << "  backups taken: " << result->backups << ", failed: " << result->backups_failed
              << ", deleted by retention: " << result->deleted << ", stored " << HumanSize(result->backup_bytes)
              << " in " << HumanSeconds(result->backup_seconds) << "\n";
  }
  return result->status == JobStatus::kSucceeded ? kExitOk : kExitError;
}

void AddSnapshotCommand(CLI::App& app, GlobalOptions& global, CommandResult& result) {
  auto opts = std::make_shared<SnapshotOptions>();
  auto* cmd = app.add_subcommand("snapshot", "Create, list, delete and restore snapshots; run a SnapshotPolicy now");
  cmd->require_subcommand(1);
  SetExamples(cmd, {"gitvirt snapshot create web-01 before-upgrade", "gitvirt snapshot list web-01",
                    "gitvirt snapshot restore web-01 before-upgrade"});

  auto* create = cmd->add_subcommand("create", "Snapshot a VM now (by hand: retention never deletes it)");
  create->add_option("vm", opts->vm, "The VM")->required();
  create->add_option("name", opts->name, "Snapshot name (default manual-YYYYMMDDTHHMMSS, UTC)");
  create->add_option("--description", opts->description, "Free text");
  create->add_flag("--quiesce", opts->quiesce, "Freeze the guest's filesystems through its agent, if it answers");
  create->add_flag("--memory", opts->memory, "Include the RAM state (running VM)");
  AddDryRunFlag(create, opts->dry_run, "Show the job, change nothing");
  AddIgnoreUnreachableFlag(create, global);
  SetExamples(create, {"gitvirt snapshot create web-01  # named manual-<UTC time>",
                       "gitvirt snapshot create web-01 before-upgrade --description \"before 2.0\"",
                       "gitvirt snapshot create db-01 --quiesce --dry-run"});
  create->callback([&global, &result, opts] { result.exit_code = RunCreate(global, *opts); });

  auto* list = cmd->add_subcommand("list", "List snapshots (all VMs, or one)");
  list->add_option("vm", opts->vm, "Only this VM (NotFound if no node runs it)");
  list->add_option("--policy", opts->policy, "Only this policy's");
  AddOutputOption(list, opts->output, {"table", "wide", "json", "yaml", "name"});
  AddIgnoreUnreachableFlag(list, global);
  SetExamples(list, {"gitvirt snapshot list", "gitvirt snapshot list web-01 -o wide",
                     "gitvirt snapshot list --policy nightly -o json"});
  list->callback([&global, &result, opts] { result.exit_code = RunList(global, *opts); });

  auto* del = cmd->add_subcommand("delete", "Delete one snapshot of a VM");
  del->add_option("vm", opts->vm, "The VM")->required();
  del->add_option("name", opts->name, "The snapshot")->required();
  AddYesFlag(del, opts->yes);
  AddDryRunFlag(del, opts->dry_run, "Show the job, change nothing");
  AddIgnoreUnreachableFlag(del, global);
  SetExamples(del, {"gitvirt snapshot delete web-01 before-upgrade", "gitvirt snapshot delete web-01 before-upgrade -y"});
  del->callback([&global, &result, opts] { result.exit_code = RunDelete(global, *opts); });

  auto* run = cmd->add_subcommand("run", "Run a SnapshotPolicy now, retention included");
  run->add_option("policy", opts->policy, "The SnapshotPolicy")->required();
  AddSourceOptions(run, opts->source);
  AddDryRunFlag(run, opts->dry_run, "Show what it would do, change nothing");
  AddIgnoreUnreachableFlag(run, global);
  SetExamples(run, {"gitvirt snapshot run nightly --dry-run", "gitvirt snapshot run nightly"});
  run->callback([&global, &result, opts] {
    auto session = OpenChangeSession(global);
    result.exit_code = session ? RunPolicyNow(global, *session, Kind::kSnapshotPolicy, opts->policy, opts->source,
                                              opts->dry_run)
                               : kExitError;
  });

  auto* restore = cmd->add_subcommand("restore", "Revert a VM to one of its snapshots");
  restore->add_option("vm", opts->vm, "The VM")->required();
  restore->add_option("snapshot", opts->name, "The snapshot")->required();
  AddYesFlag(restore, opts->yes);
  AddDryRunFlag(restore, opts->dry_run, "Show the job, change nothing");
  AddIgnoreUnreachableFlag(restore, global);
  SetExamples(restore, {"gitvirt snapshot restore web-01 before-upgrade",
                        "gitvirt snapshot restore web-01 before-upgrade --yes"});
  restore->callback([&global, &result, opts] { result.exit_code = RunRestore(global, *opts); });
}

}  // namespace gitvirt::cli
