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

namespace gitvirt {

struct PlanOptions {
  bool prune = false;
  bool adopt = false;  // --adopt: a manifest may take over a domain gitvirt does not own (spec.adopt)
  std::optional<ResourceRef> target;  // --target: only this resource and what it needs
  std::string revision;
  SourceRef source;
};

class Planner {
 public:
  // `config` supplies node names, labels, capacity overrides, overcommit and drain flags.
  explicit Planner(const ControllerConfig& config) : config_(config) {}

  // Fails (with every reason in the message) when the desired state cannot be reached: a VM
  // pinned to an unknown node, a disk that would shrink, a HARD anti-affinity that cannot hold,
  // no room for a VM, a name taken by a domain gitvirt does not own (unless it may be adopted:
  // spec.adopt or PlanOptions::adopt).
  Result<Plan> MakePlan(const DesiredState& desired, const ObservedState& observed,
                        const PlanOptions& options) const;

 private:
  const ControllerConfig& config_;
};

}  // namespace gitvirt
