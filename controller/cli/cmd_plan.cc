#include <fstream>
#include <iostream>

#include "command.h"
#include "gitvirt/cli/app.h"
#include "gitvirt/core/json.h"
#include "gitvirt/core/plan_text.h"
#include "output.h"
#include "planning.h"

namespace gitvirt::cli {
namespace {

struct PlanOptionsCli {
  PlanRequest request;
  std::string target;
  std::string out;
  bool detailed_exitcode = false;
  bool json = false;
  bool no_color = false;
};

int RunPlanCommand(const GlobalOptions& global, const PlanOptionsCli& opts) {
  auto log = MakeLogger(global.verbosity);
  auto session = OpenSession(global, log);
  if (!session) return kExitError;
  // Planning reads state another controller may be changing: take the same lock as apply.
  if (auto locked = session->Lock(); !locked) {
    PrintError(locked.error());
    return kExitError;
  }
  auto planned = session->PlanCurrent(opts.request);
  if (!planned) {
    PrintError(planned.error());
    return kExitError;
  }
  const Plan& plan = planned->plan;
  if (opts.json) {
    std::cout << PlanToJson(plan).dump(2) << "\n";
  } else {
    std::cout << RenderPlan(plan, PlanTextOptions{StdoutIsTerminal() && !opts.no_color, DisplaySource(plan.source)});
  }
  if (!opts.out.empty()) {
    std::ofstream out(opts.out, std::ios::binary | std::ios::trunc);
    out << PlanToJson(plan).dump(2) << "\n";
    if (!out) {
      std::cerr << "gitvirt: cannot write " << opts.out << "\n";
      return kExitError;
    }
    std::cout << "\nSaved the plan to " << opts.out << ". Apply exactly this plan with:\n  gitvirt apply "
              << opts.out << "\n";
  }
  if (opts.detailed_exitcode && !plan.Empty()) return kExitChanges;
  return kExitOk;
}

}  // namespace

void AddPlanCommand(CLI::App& app, GlobalOptions& global, CommandResult& result) {
  auto opts = std::make_shared<PlanOptionsCli>();
  auto* cmd = app.add_subcommand("plan", "Show what apply would change, like terraform plan");
  AddSourceOptions(cmd, opts->request.source);
  cmd->add_option("-o,--out", opts->out, "Save the plan as JSON, to apply it later exactly");
  cmd->add_flag("--detailed-exitcode", opts->detailed_exitcode, "Exit 0: no changes, 2: changes, 1: error");
  cmd->add_flag("--prune", opts->request.prune, "Delete gitvirt's VMs that left the repository");
  cmd->add_flag("--adopt", opts->request.adopt,
                 "Take over same-name domains gitvirt does not own, as they run (as spec.adopt: true)");
  cmd->add_option("--target", opts->target, "Only this resource (Kind/name) and what it needs");
  cmd->add_flag("--json", opts->json, "Print the plan as JSON");
  cmd->add_flag("--no-color", opts->no_color, "No colours on a terminal");
  cmd->callback([&global, &result, opts] {
    if (!ParseTargetOption(opts->target, opts->request.target)) {
      result.exit_code = kExitError;
      return;
    }
    result.exit_code = RunPlanCommand(global, *opts);
  });
}

}  // namespace gitvirt::cli
