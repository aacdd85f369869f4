#pragma once
// The planner: desired state + observed state -> Plan. Pure and deterministic: the same inputs
// give the same plan, byte for byte, which is what the golden plan tests hold it to.
//
// Ordering rules: images before the VMs that use them; dependsOn and cluster group order (a
// group's members wait for the previous group's); a change that needs a stop runs as
// shutdown -> update-restart -> start; deletions after creations; power changes of VMs that
// otherwise stay as they are run last; volume deletions run after everything else. A domain
// taken over (adopt) is adopted before any other change to it.

#include <optional>
#include <string>

#include "gitvirt/core/config.h"
#include "gitvirt/core/error.h"
#include "gitvirt/core/model.h"
#include "gitvirt/core/observed.h"
#include "gitvirt/core/plan.h"
#include "gitvirt/core/sync_window.h"

namespace gitvirt {

// Who switches deletion on: the command line's --prune, or `sync.prune` (serve). The plan's
// pending entries for VMs it keeps say which.
enum class PruneBy { kFlag, kConfig };

struct PlanOptions {
  bool prune = false;
  PruneBy prune_by = PruneBy::kFlag;
  bool adopt = false;  // --adopt: a manifest may take over a domain gitvirt does not own (spec.adopt)
  std::optional<ResourceRef> target;  // --target: only this resource and what it needs
  std::string revision;
  SourceRef source;
  // The plan's time: sync windows are evaluated at it (sync_window.h), pre-change snapshots
  // are named after it and deleted once older than their keep.
  TimePoint now{};
  // Resolves a sync window's timeZone (null: only UTC is known).
  SyncWindows::ZoneLookup zones;
  // `apply --override-windows`: a VM a window blocks is changed anyway when every window that
  // blocks it says manualSync: true.
  bool override_windows = false;
  // Where the manifests are, as the user named them: errors a manifest is at fault for name
  // its file under this directory (empty: relative to the manifest root).
  std::string manifest_root;
};

class Planner {
 public:
  // `config` supplies node names, labels, capacity overrides, overcommit and drain flags.
  explicit Planner(const ControllerConfig& config) : config_(config) {}

  // Fails (with every reason in the message, "file:line:column: " first where a manifest is at
  // fault) when the desired state cannot be reached: a VM pinned to an unknown node, a disk that
  // would shrink, a HARD anti-affinity that cannot hold, no room for a VM, a name taken by a
  // domain gitvirt does not own (unless it may be adopted: spec.adopt or PlanOptions::adopt).
  Result<Plan> MakePlan(const DesiredState& desired, const ObservedState& observed,
                        const PlanOptions& options) const;

 private:
  const ControllerConfig& config_;
};

}  // namespace gitvirt
