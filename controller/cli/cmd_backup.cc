// gitvirt backup run|list|restore|verify|delete: BackupPolicies run now, backups of one VM by
// hand, the catalog, and restoring a VM from a backup. Changes are journaled jobs.
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <set>

#include "command.h"
#include "gitvirt/cli/app.h"
#include "flags.h"
#include "gitvirt/engine/manual.h"
#include "output.h"
#include "planning.h"
#include "policy_commands.h"

namespace gitvirt::cli {
namespace {

struct BackupOptions {
  SourceSelection source;
  std::string what;  // POLICY | VM | BACKUP
  std::string dir;
  std::string target;  // --target: the hidden, deprecated name of --dir
  std::string mode;
  std::string compression;
  int level = 0;
  bool verify = false;
  bool protect = false;
  bool dry_run = false;
  bool yes = false;
  bool force = false;
  bool start = false;
  bool rescan = false;
  std::vector<std::string> scan_dirs;
  std::string as;
  std::string node;
  std::string vm;
  std::string policy;
  std::string output = "table";
};

int RunBackup(const GlobalOptions& global, const BackupOptions& opts) {
  auto session = OpenChangeSession(global);
  if (!session) return kExitError;
  BackupRunRequest request;
  request.what = opts.what;
  request.source = opts.source;
  request.target = opts.dir.empty() ? opts.target : opts.dir;
  request.mode = opts.mode;
  request.compression = opts.compression;
  request.level = opts.level;
  request.verify = opts.verify;
  request.protect = opts.protect;
  auto run = PlanBackupRun(*session, request);
  if (!run) {
    PrintError(run.error());
    return kExitError;
  }
  if (run->policy) return RunPolicyNow(global, *session, Kind::kBackupPolicy, *run->policy, opts.source, opts.dry_run);
  return RunOneActionJob(global, *session, run->plan, "backup", opts.dry_run);
}

int RunList(const GlobalOptions& global, const BackupOptions& opts) {
  auto session = OpenSession(global);
  if (!session) return kExitError;
  if (opts.rescan) {
    auto rescan = RescanBackups(*session, opts.source, opts.scan_dirs);
    if (!rescan) {
      PrintError(rescan.error());
      return kExitError;
    }
    for (const std::string& p : rescan->problems) std::cerr << "gitvirt: skipped: " << p << "\n";
    std::cerr << "gitvirt: catalog rebuilt from " << rescan->directories << " director"
              << (rescan->directories == 1 ? "y" : "ies") << ": " << rescan->backups << " backup(s)"
              << (rescan->failed_kept > 0 ? ", " + std::to_string(rescan->failed_kept) + " failed attempt(s) kept" : "")
              << "\n";
  }
  return PrintBackups(std::cout, *session, BackupFilter{opts.vm, opts.policy, ""}, "", opts.output);
}

int RunVerify(const GlobalOptions& global, const BackupOptions& opts) {
  auto session = OpenSession(global);
  if (!session) return kExitError;
  auto found = FindBackup(*session, opts.what);
  if (!found) {
    PrintError(found.error());
    return kExitError;
  }
  const BackupManifest& manifest = found->manifest;
  if (auto ok = VerifyBackup(manifest, found->directory); !ok) {
    PrintError(ok.error());
    return kExitError;
  }
  std::cout << "Backup " << manifest.id << " of " << manifest.vm << ": " << manifest.files.size()
            << " file(s), every sha256 matches" << (manifest.simulated ? " (a simulated backup: metadata only)" : "")
            << ".\n";
  return kExitOk;
}

int RunDelete(const GlobalOptions& global, const BackupOptions& opts) {
  auto session = OpenChangeSession(global);
  if (!session) return kExitError;
  auto plan = PlanBackupDelete(*session, opts.what, opts.force);
  std::string question;
  if (plan && !opts.yes) {
    const Action& a = plan->actions.front();
    const BackupDeleteParams& p = a.Params<BackupDeleteParams>();
    question = a.reason.starts_with("the record of failed")
                   ? "Delete the record of failed backup attempt " + p.id + "?"
                   : "Delete backup " + p.id + " (" + p.directory + ")?";
  }
  return RunOneActionJob(global, *session, plan, "backup", opts.dry_run, 1, question);
}

int RunRestore(const GlobalOptions& global, const BackupOptions& opts) {
  auto session = OpenChangeSession(global);
  if (!session) return kExitError;
  BackupRestoreRequest request;
  request.what = opts.what;
  request.as = opts.as;
  request.node = opts.node;
  request.start = opts.start;
  request.source = opts.source;
  auto restore = PlanBackupRestore(*session, request);
  if (!restore) {
    PrintError(restore.error());
    return kExitError;
  }
  const BackupManifest& manifest = restore->backup.manifest;
  if (!restore->managed) {
    // Said before it happens: once restored unmanaged, a manifest of that name is refused (the
    // domain is not gitvirt's), so the way to a managed copy is to declare it first.
    std::cout << "Note: " << restore->name << " is not in the manifests, so the restored VM will not be gitvirt's: "
              << "gitvirt will leave it alone. To have gitvirt manage it, declare a VirtualMachine named "
              << restore->name << " in the manifests before restoring.\n";
  }
  const std::string question = opts.yes ? "" : "Restore backup " + manifest.id + " of " + manifest.vm + " as " +
                                                   restore->name + " on " + restore->node + "?";
  return RunOneActionJob(global, *session, restore->plan, "restore", opts.dry_run, 1, question);
}

}  // namespace

void AddBackupCommand(CLI::App& app, GlobalOptions& global, CommandResult& result) {
  auto opts = std::make_shared<BackupOptions>();
  auto* cmd = app.add_subcommand("backup", "Run backups now, list, verify, delete and restore them");
  cmd->require_subcommand(1);
  SetExamples(cmd, {"gitvirt backup run web-01 --dir /srv/backups", "gitvirt backup list",
                    "gitvirt backup restore ID --as web-01-copy"});

  auto* run = cmd->add_subcommand("run", "Run a BackupPolicy now (retention included), or back up one VM");
  run->add_option("what", opts->what, "A BackupPolicy, or a VirtualMachine")->required();
  AddSourceOptions(run, opts->source);
  run->add_option("--dir", opts->dir, "VM: absolute directory to write into (default: its one BackupPolicy's)");
  run->add_option("--target", opts->target, "Same as --dir")->group("");
  AddChoice(run, "--mode", opts->mode, {"snapshot", "suspend", "stop"}, "VM: snapshot | suspend | stop");
  AddChoice(run, "--compression", opts->compression, {"zstd", "gzip", "none"}, "VM: zstd | gzip | none");
  run->add_option("--level", opts->level, "VM: compression level (zstd 1-19, gzip 1-9)")->check(CLI::Range(1, 19));
  run->add_flag("--verify", opts->verify, "VM: re-read and check the sums after writing");
  run->add_flag("--protect", opts->protect, "VM: mark the backup protected");
  AddDryRunFlag(run, opts->dry_run, "Show what it would do, change nothing");
  AddIgnoreUnreachableFlag(run, global);
  SetExamples(run, {"gitvirt backup run nightly  # a BackupPolicy, retention included",
                    "gitvirt backup run web-01 --dir /srv/backups --compression zstd --verify",
                    "gitvirt backup run web-01 --dry-run"});
  run->callback([&global, &result, opts] {
    if (!opts->target.empty()) std::cerr << "gitvirt: backup run --target is deprecated; use --dir\n";
    result.exit_code = RunBackup(global, *opts);
  });

  auto* list = cmd->add_subcommand("list", "List the backup catalog");
  list->add_option("--vm", opts->vm, "Only this VM's");
  list->add_option("--policy", opts->policy, "Only this policy's");
  list->add_flag("--rescan", opts->rescan, "Rebuild the catalog from the backup directories first");
  list->add_option("--dir", opts->scan_dirs, "With --rescan: another target directory to scan");
  AddSourceOptions(list, opts->source);
  AddOutputOption(list, opts->output, {"table", "wide", "json", "yaml", "name"});
  SetExamples(list, {"gitvirt backup list", "gitvirt backup list --vm web-01 -o wide",
                     "gitvirt backup list --rescan --dir /srv/backups"});
  list->callback([&global, &result, opts] { result.exit_code = RunList(global, *opts); });

  auto* verify = cmd->add_subcommand("verify", "Re-read a backup and check every sha256");
  verify->add_option("backup", opts->what, "Backup id or directory")->required();
  SetExamples(verify, {"gitvirt backup verify web-01-20261207T020000Z"});
  verify->callback([&global, &result, opts] { result.exit_code = RunVerify(global, *opts); });

  auto* del = cmd->add_subcommand("delete", "Delete a backup");
  del->add_option("backup", opts->what, "Backup id or directory")->required();
  del->add_flag("--force", opts->force, "Delete a protected backup too");
  AddYesFlag(del, opts->yes);
  AddDryRunFlag(del, opts->dry_run, "Show the job, change nothing");
  SetExamples(del, {"gitvirt backup delete web-01-20261207T020000Z", "gitvirt backup delete ID --force -y"});
  del->callback([&global, &result, opts] { result.exit_code = RunDelete(global, *opts); });

  auto* restore = cmd->add_subcommand("restore", "Recreate a VM (disks and definition) from a backup");
  restore->add_option("backup", opts->what, "Backup id or directory")->required();
  restore->add_option("--as", opts->as, "Name of the restored VM (default: the original name)");
  restore->add_option("--node", opts->node, "Node to restore onto (default: where it was)");
  restore->add_flag("--start", opts->start, "Start the VM once restored");
  AddSourceOptions(restore, opts->source);
  AddYesFlag(restore, opts->yes);
  AddDryRunFlag(restore, opts->dry_run, "Show the job, change nothing");
  AddIgnoreUnreachableFlag(restore, global);
  SetExamples(restore, {"gitvirt backup restore web-01-20261207T020000Z  # as web-01, where it was",
                        "gitvirt backup restore ID --as web-01-copy --node hv2 --start"});
  restore->callback([&global, &result, opts] { result.exit_code = RunRestore(global, *opts); });
}

}  // namespace gitvirt::cli
