// gitvirt backup run|list|restore|verify|delete: BackupPolicies run now, backups of one VM by
// hand, the catalog, and restoring a VM from a backup. Changes are journaled jobs.
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <set>

#include "command.h"
#include "gitvirt/cli/app.h"
#include "gitvirt/core/policy_plan.h"
#include "gitvirt/core/selector.h"
#include "gitvirt/engine/backup.h"
#include "gitvirt/store/backup_catalog.h"
#include "output.h"
#include "planning.h"
#include "policy_commands.h"

namespace gitvirt::cli {
namespace {

namespace fs = std::filesystem;

struct BackupOptions {
  SourceOptions source;
  std::string what;  // POLICY | VM | BACKUP
  std::string target;
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

TimePoint Now() { return std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()); }

// A backup by id (the catalog) or by directory.
std::optional<std::pair<std::string, BackupManifest>> FindBackup(const ControllerConfig& config, const std::string& what) {
  std::string dir;
  if (what.find('/') != std::string::npos && fs::exists(fs::path(what) / "manifest.json")) {
    dir = what;
  } else {
    auto catalog = BackupCatalog::Open(config.state);
    if (!catalog) {
      std::cerr << "gitvirt: " << catalog.error().ToString() << "\n";
      return std::nullopt;
    }
    auto record = (*catalog)->Get(what);
    if (!record) {
      std::cerr << "gitvirt: " << record.error().ToString()
                << " (give its id from `gitvirt backup list`, or its directory; `backup list --rescan` "
                   "rebuilds the catalog)\n";
      return std::nullopt;
    }
    if (record->status == "failed") {
      std::cerr << "gitvirt: backup " << what << " is a failed attempt (" << record->error
                << "): there is no backup to use; `gitvirt backup delete " << what << "` removes the record\n";
      return std::nullopt;
    }
    dir = record->location;
  }
  auto manifest = ReadManifest(dir);
  if (!manifest) {
    std::cerr << "gitvirt: " << manifest.error().ToString() << "\n";
    return std::nullopt;
  }
  return std::make_pair(fs::absolute(dir).lexically_normal().string(), std::move(*manifest));
}

int RunBackup(const GlobalOptions& global, const BackupOptions& opts) {
  auto log = MakeLogger(global.verbosity);
  auto config = LoadConfig(global);
  if (!config) return kExitError;
  auto desired = LoadDesired(*config, opts.source, log);
  if (!desired) return kExitError;
  for (const BackupPolicy& p : desired->state.backup_policies) {
    if (p.meta.name == opts.what) {
      if (!opts.target.empty() || !opts.mode.empty() || !opts.compression.empty()) {
        std::cerr << "gitvirt: " << opts.what << " is a BackupPolicy: its settings come from the manifest "
                  << "(--target, --mode and --compression are for a backup of one VM)\n";
        return kExitError;
      }
      return RunPolicyNow(global, Kind::kBackupPolicy, opts.what, opts.source, opts.dry_run);
    }
  }
  // One VM: settings from --target etc., or from the one policy that selects it.
  const VirtualMachine* vm = desired->state.FindVm(opts.what);
  if (vm == nullptr) {
    std::cerr << "gitvirt: " << opts.what << " is neither a BackupPolicy nor a VirtualMachine in the manifests\n";
    return kExitError;
  }
  BackupPolicySpec spec;
  std::string from_policy;
  if (opts.target.empty()) {
    std::vector<const BackupPolicy*> selecting;
    for (const BackupPolicy& p : desired->state.backup_policies) {
      auto compiled = CompiledSelector::Compile(p.spec.selector);
      if (compiled && compiled->Matches(vm->meta.name, vm->meta.labels, vm->meta.tags)) selecting.push_back(&p);
    }
    if (selecting.size() != 1) {
      std::cerr << "gitvirt: give --target DIR: " << vm->meta.name
                << (selecting.empty() ? " is selected by no BackupPolicy" : " is selected by several BackupPolicies")
                << "\n";
      return kExitError;
    }
    spec = selecting.front()->spec;
    from_policy = selecting.front()->meta.name;
  } else {
    if (!fs::path(opts.target).is_absolute()) {
      std::cerr << "gitvirt: --target must be an absolute directory\n";
      return kExitError;
    }
    spec.target.directory = opts.target;
  }
  if (!opts.mode.empty()) spec.mode = *ParseEnum<BackupMode>(opts.mode);
  if (!opts.compression.empty()) spec.compression = *ParseEnum<Compression>(opts.compression);
  if (opts.level > 0) spec.compression_level = opts.level;
  if (opts.verify) spec.verify = true;
  spec.protect = opts.protect;  // a backup by hand is protected only when asked
  if (spec.target.directory.empty()) {
    std::cerr << "gitvirt: the backup needs a target directory (--target DIR)\n";
    return kExitError;
  }

  auto s = OpenChangeSession(global, log);
  if (!s) return kExitError;
  const ObservedState observed = s->nodes->ObserveAll();
  const ObservedVm* domain = FindOwnedVm(observed, vm->meta.name);
  if (domain == nullptr) return kExitError;
  std::vector<CatalogBackup> existing;
  if (auto catalog = BackupCatalog::Open(s->config.state)) {
    if (auto records = (*catalog)->List(BackupFilter{vm->meta.name, "", ""})) {
      for (const BackupRecord& r : *records) existing.push_back(CatalogBackup{r.id, r.vm, r.node, r.policy, r.location, r.created, r.is_protected});
    }
  }
  const TimePoint now = Now();
  Plan plan;
  plan.source = "cli:backup run";
  plan.revision = desired->revision;
  // A backup by hand belongs to no policy: retention never deletes it.
  Action a = MakeBackupAction(*vm, domain->node, spec, "", MakeBackupId(vm->meta.name, now, existing), now);
  if (!from_policy.empty()) a.reason += ", settings of BackupPolicy " + from_policy;
  plan.actions.push_back(std::move(a));
  return RunOneActionJob(*s, std::move(plan), "backup", opts.dry_run, log);
}

int RunList(const GlobalOptions& global, const BackupOptions& opts) {
  auto log = MakeLogger(global.verbosity);
  auto config = LoadConfig(global);
  if (!config) return kExitError;
  if (opts.rescan) {
    // Every directory a backup can be in: the policies' targets, where the catalog has
    // backups, and --dir.
    std::set<std::string> roots(opts.scan_dirs.begin(), opts.scan_dirs.end());
    if (auto desired = LoadDesired(*config, opts.source, log)) {
      for (const BackupPolicy& p : desired->state.backup_policies) {
        if (!p.spec.target.directory.empty()) roots.insert(p.spec.target.directory);
      }
    } else {
      std::cerr << "gitvirt: scanning without the manifests' BackupPolicies\n";
    }
    auto catalog = BackupCatalog::Open(config->state);
    if (!catalog) {
      std::cerr << "gitvirt: " << catalog.error().ToString() << "\n";
      return kExitError;
    }
    std::vector<BackupRecord> failed;  // attempts that left no directory: history the scan cannot find
    if (auto records = (*catalog)->List(BackupFilter{})) {
      for (const BackupRecord& r : *records) {
        roots.insert(fs::path(r.location).parent_path().parent_path().string());
        if (r.status == "failed") failed.push_back(r);
      }
    }
    std::vector<BackupRecord> found;
    std::vector<std::string> problems;
    for (const std::string& root : roots) {
      for (BackupRecord& r : ScanBackups(root, &problems)) found.push_back(std::move(r));
    }
    const std::size_t scanned = found.size();
    for (BackupRecord& r : failed) {
      const bool complete = std::any_of(found.begin(), found.end(), [&](const BackupRecord& f) { return f.id == r.id; });
      if (!complete) found.push_back(std::move(r));
    }
    for (const std::string& p : problems) std::cerr << "gitvirt: skipped: " << p << "\n";
    if (auto ok = (*catalog)->ReplaceAll(found); !ok) {
      std::cerr << "gitvirt: " << ok.error().ToString() << "\n";
      return kExitError;
    }
    std::cerr << "gitvirt: catalog rebuilt from " << roots.size() << " director" << (roots.size() == 1 ? "y" : "ies")
              << ": " << scanned << " backup(s)"
              << (found.size() > scanned ? ", " + std::to_string(found.size() - scanned) + " failed attempt(s) kept" : "")
              << "\n";
  }
  return PrintBackups(std::cout, *config, opts.vm, opts.policy, opts.output);
}

int RunVerify(const GlobalOptions& global, const BackupOptions& opts) {
  MakeLogger(global.verbosity);
  auto config = LoadConfig(global);
  if (!config) return kExitError;
  auto found = FindBackup(*config, opts.what);
  if (!found) return kExitError;
  const auto& [dir, manifest] = *found;
  if (auto ok = VerifyBackup(manifest, dir); !ok) {
    std::cerr << "gitvirt: " << ok.error().ToString() << "\n";
    return kExitError;
  }
  std::cout << "Backup " << manifest.id << " of " << manifest.vm << ": " << manifest.files.size()
            << " file(s), every sha256 matches" << (manifest.simulated ? " (a simulated backup: metadata only)" : "")
            << ".\n";
  return kExitOk;
}

// The record of a failed attempt, when `what` is one's id.
std::optional<BackupRecord> FailedAttempt(const ControllerConfig& config, const std::string& what) {
  auto catalog = BackupCatalog::Open(config.state);
  if (!catalog) return std::nullopt;
  auto record = (*catalog)->Get(what);
  if (!record || record->status != "failed") return std::nullopt;
  return *record;
}

int RunDelete(const GlobalOptions& global, const BackupOptions& opts) {
  auto log = MakeLogger(global.verbosity);
  auto s = OpenChangeSession(global, log);
  if (!s) return kExitError;
  if (auto failed = FailedAttempt(s->config, opts.what)) {
    // Nothing on disk: the step finds no manifest and drops the record.
    Plan plan;
    plan.source = "cli:backup delete";
    Action a;
    a.id = "backup-delete/" + failed->id;
    a.type = ActionType::kBackupDelete;
    a.target = ResourceRef{Kind::kVirtualMachine, failed->vm};
    a.reason = "the record of failed backup attempt " + failed->id + " deleted by hand";
    a.params = {{"id", failed->id}, {"directory", failed->location}, {"force", "false"}};
    plan.actions.push_back(std::move(a));
    const std::string question = opts.yes ? "" : "Delete the record of failed backup attempt " + failed->id + "?";
    return RunOneActionJob(*s, std::move(plan), "backup", opts.dry_run, log, 1, question);
  }
  auto found = FindBackup(s->config, opts.what);
  if (!found) return kExitError;
  const auto& [dir, manifest] = *found;
  if (manifest.is_protected && !opts.force) {
    std::cerr << "gitvirt: backup " << manifest.id << " is protected; pass --force to delete it anyway\n";
    return kExitError;
  }
  Plan plan;
  plan.source = "cli:backup delete";
  Action a;
  a.id = "backup-delete/" + manifest.id;
  a.type = ActionType::kBackupDelete;
  a.target = ResourceRef{Kind::kVirtualMachine, manifest.vm};
  a.reason = "backup " + manifest.id + " deleted by hand";
  a.params = {{"id", manifest.id}, {"directory", dir}, {"force", opts.force ? "true" : "false"}};
  plan.actions.push_back(std::move(a));
  const std::string question = opts.yes ? "" : "Delete backup " + manifest.id + " (" + dir + ")?";
  return RunOneActionJob(*s, std::move(plan), "backup", opts.dry_run, log, 1, question);
}

int RunRestore(const GlobalOptions& global, const BackupOptions& opts) {
  auto log = MakeLogger(global.verbosity);
  auto s = OpenChangeSession(global, log);
  if (!s) return kExitError;
  auto found = FindBackup(s->config, opts.what);
  if (!found) return kExitError;
  const auto& [dir, manifest] = *found;
  const std::string name = opts.as.empty() ? manifest.vm : opts.as;
  const std::string node = opts.node.empty() ? manifest.node : opts.node;
  if (s->config.FindNode(node) == nullptr) {
    std::cerr << "gitvirt: node " << node << " is not in " << s->config.file << "; choose one with --node\n";
    return kExitError;
  }
  // Owned by gitvirt only when the manifests declare a VM of that name; otherwise it is left
  // alone (never pruned, never changed) until someone adopts it.
  bool managed = false;
  if (auto desired = LoadDesired(s->config, opts.source, log)) managed = desired->state.FindVm(name) != nullptr;
  const ObservedState observed = s->nodes->ObserveAll();
  if (!observed.FindVms(name).empty()) {
    std::cerr << "gitvirt: a domain named " << name << " exists already; restore under a new name with --as NAME\n";
    return kExitError;
  }
  Plan plan;
  plan.source = "cli:backup restore";
  plan.revision = manifest.revision;
  Action a;
  a.id = "backup-restore/" + name;
  a.type = ActionType::kBackupRestore;
  a.node = node;
  a.target = ResourceRef{Kind::kVirtualMachine, name};
  a.reason = "restore backup " + manifest.id + " of " + manifest.vm + (manifest.simulated ? " (simulated)" : "") +
             (managed ? "; managed (in the manifests)" : "; not managed by gitvirt");
  a.params = {{"directory", dir}, {"id", manifest.id}, {"managed", managed ? "true" : "false"}};
  plan.actions.push_back(a);
  if (opts.start) {
    Action start;
    start.id = "start/" + name;
    start.type = ActionType::kStart;
    start.node = node;
    start.target = a.target;
    start.reason = "start the restored VM";
    start.depends_on = {a.id};
    start.power_before = PowerState::kStopped;
    plan.actions.push_back(std::move(start));
  }
  const std::string question =
      opts.yes ? "" : "Restore backup " + manifest.id + " of " + manifest.vm + " as " + name + " on " + node + "?";
  const int rc = RunOneActionJob(*s, std::move(plan), "restore", opts.dry_run, log, 1, question);
  if (rc == kExitOk && !opts.dry_run && !managed) {
    std::cout << name << " is not in the manifests, so gitvirt leaves it alone; add a VirtualMachine named " << name
              << " to manage it.\n";
  }
  return rc;
}

}  // namespace

void AddBackupCommand(CLI::App& app, GlobalOptions& global, CommandResult& result) {
  auto opts = std::make_shared<BackupOptions>();
  auto* cmd = app.add_subcommand("backup", "Run backups now, list, verify, delete and restore them");
  cmd->require_subcommand(1);

  auto* run = cmd->add_subcommand("run", "Run a BackupPolicy now (retention included), or back up one VM");
  run->add_option("what", opts->what, "A BackupPolicy, or a VirtualMachine")->required();
  AddSourceOptions(run, opts->source);
  run->add_option("--target", opts->target, "VM: directory to write into (default: its one BackupPolicy's)");
  run->add_option("--mode", opts->mode, "VM: snapshot | suspend | stop")->check(CLI::IsMember({"snapshot", "suspend", "stop"}));
  run->add_option("--compression", opts->compression, "VM: zstd | gzip | none")->check(CLI::IsMember({"zstd", "gzip", "none"}));
  run->add_option("--level", opts->level, "VM: compression level (zstd 1-19, gzip 1-9)")->check(CLI::Range(1, 19));
  run->add_flag("--verify", opts->verify, "VM: re-read and check the sums after writing");
  run->add_flag("--protect", opts->protect, "VM: mark the backup protected");
  run->add_flag("--dry-run", opts->dry_run, "Show what it would do, change nothing");
  run->callback([&global, &result, opts] { result.exit_code = RunBackup(global, *opts); });

  auto* list = cmd->add_subcommand("list", "List the backup catalog");
  list->add_option("--vm", opts->vm, "Only this VM's");
  list->add_option("--policy", opts->policy, "Only this policy's");
  list->add_flag("--rescan", opts->rescan, "Rebuild the catalog from the backup directories first");
  list->add_option("--dir", opts->scan_dirs, "With --rescan: another target directory to scan");
  AddSourceOptions(list, opts->source);
  AddOutputOption(list, opts->output, {"table", "wide", "json", "yaml"});
  list->callback([&global, &result, opts] { result.exit_code = RunList(global, *opts); });

  auto* verify = cmd->add_subcommand("verify", "Re-read a backup and check every sha256");
  verify->add_option("backup", opts->what, "Backup id or directory")->required();
  verify->callback([&global, &result, opts] { result.exit_code = RunVerify(global, *opts); });

  auto* del = cmd->add_subcommand("delete", "Delete a backup");
  del->add_option("backup", opts->what, "Backup id or directory")->required();
  del->add_flag("--force", opts->force, "Delete a protected backup too");
  del->add_flag("--yes,-y,--auto-approve", opts->yes, "Do not ask for confirmation");
  del->add_flag("--dry-run", opts->dry_run, "Show the job, change nothing");
  del->callback([&global, &result, opts] { result.exit_code = RunDelete(global, *opts); });

  auto* restore = cmd->add_subcommand("restore", "Recreate a VM (disks and definition) from a backup");
  restore->add_option("backup", opts->what, "Backup id or directory")->required();
  restore->add_option("--as", opts->as, "Name of the restored VM (default: the original name)");
  restore->add_option("--node", opts->node, "Node to restore onto (default: where it was)");
  restore->add_flag("--start", opts->start, "Start the VM once restored");
  AddSourceOptions(restore, opts->source);
  restore->add_flag("--yes,-y,--auto-approve", opts->yes, "Do not ask for confirmation");
  restore->add_flag("--dry-run", opts->dry_run, "Show the job, change nothing");
  restore->callback([&global, &result, opts] { result.exit_code = RunRestore(global, *opts); });
}

}  // namespace gitvirt::cli
