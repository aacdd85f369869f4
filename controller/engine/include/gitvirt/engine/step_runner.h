#pragma once
// How each plan action is carried out on real hypervisors, and undone. Every step converges: it
// looks at the real state first, so running it again after a crash finishes it rather than
// repeating it (a create whose domain exists with our mark and the same spec hash is done).
//
// Undo information: one typed record per action family (step_records.h): DefinitionUndo for
// create, update, replace, delete and backup-restore (the volumes the step made, the definition
// the node saved before it, the power, vCPUs, memory and autostart before it, the disks grown
// or hot-plugged); PowerUndo for the power actions; ReleaseUndo (the owner mark as a value); AdoptUndo (whether
// the step wrote the owner mark: its undo removes it, nothing else);
// ImageImportUndo; SnapshotUndo; BackupUndo; MigrationUndo (migration.h). Each is read strictly
// before an undo asks the node anything.
// Secrets are resolved here, used, and dropped: never in undo information or events.

#include <memory>
#include <string>

#include "gitvirt/engine/executor.h"
#include "gitvirt/engine/secrets.h"
#include "gitvirt/engine/state_paths.h"
#include "gitvirt/hypervisor/node_set.h"

namespace gitvirt {

struct StepRunnerOptions {
  // Seeds and downloaded images are made in the cache; restores decompress there; serial
  // console logs of VMs on local nodes without a consoleDir of their own go to paths.console
  // ("" = none); backups are recorded in the catalog of paths.state.
  StatePaths paths;
  std::string secrets_dir;
};

// The options every runner of a configuration uses.
StepRunnerOptions StepRunnerOptionsFor(const ControllerConfig& config);

class LibvirtStepRunner final : public StepRunner {
 public:
  // `plan` supplies the revision and the Images; both must outlive the runner.
  LibvirtStepRunner(NodeSet& nodes, const Plan& plan, const std::vector<Image>& images,
                    StepRunnerOptions options, std::shared_ptr<spdlog::logger> logger);

  Result<std::string> Prepare(const Action& action, StepContext& context) override;
  Result<std::string> Run(const Action& action, StepContext& context) override;
  Result<UndoOutcome> Undo(const Action& action, const std::string& undo_json,
                           StepContext& context) override;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace gitvirt
