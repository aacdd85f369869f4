#pragma once
// The plan as people read it, in the manner of `terraform plan`:
//   + create, ~ update (live / restart), -/+ replace, - delete, with field before -> after,
// pending changes and warnings, and a summary line. Pure.

#include <string>

#include "gitvirt/core/plan.h"

namespace gitvirt {

struct PlanTextOptions {
  bool color = false;  // ANSI colours, for terminals
  // Printed as the source instead of plan.source when not empty: the CLI names a directory
  // relative to where it runs, while the plan keeps the absolute one that identifies it.
  std::string source;
};

std::string RenderPlan(const Plan& plan, const PlanTextOptions& options = {});

// "Plan: 3 to add, 1 to change, 0 to replace, 2 to destroy." (+ pending)
std::string RenderSummary(const Plan& plan);

// The symbol for an action: "+", "~", "-/+", "-".
std::string_view ActionSymbol(ActionType type);

}  // namespace gitvirt
