#include <unistd.h>

#include <iostream>

#include "command.h"
#include "gitvirt/cli/app.h"
#include "gitvirt/core/plan_text.h"
#include "output.h"
#include "planning.h"

namespace gitvirt::cli {
namespace {

struct ApplyOptionsCli {
  PlanRequest request;
  std::string target;
  std::string plan_file;
  bool auto_approve = false;
  int parallel = 0;
  std::string rollback;
  bool no_color = false;
};

bool Confirm() {
  std::cout << "\nDo you want to perform these actions? Only 'yes' will be accepted: " << std::flush;
  std::string answer;
  std::getline(std::cin, answer);
  return answer == "yes";
}

int RunApplyCommand(const GlobalOptions& global, const ApplyOptionsCli& opts) {
  auto log = MakeLogger(global.verbosity);
  auto session = OpenSession(global, log);
  if (!session) return kExitError;
  if (!LockAndRecover(*session)) return kExitError;

  Result<Planned> planned = std::unexpected(Error{});
  bool saved = false;
  if (!opts.plan_file.empty()) {
    // Exactly the saved plan, once the world it was made against is found unchanged.
    auto plan = Session::ReadSavedPlan(opts.plan_file);
    if (!plan) {
      PrintError(plan.error());
      return kExitError;
    }
    planned = session->Replan(*plan);
    saved = true;
  } else {
    planned = session->PlanCurrent(opts.request);
  }
  if (!planned) {
    PrintError(planned.error());
    return kExitError;
  }
  const Plan& plan = planned->plan;
  std::cout << RenderPlan(plan, PlanTextOptions{StdoutIsTerminal() && !opts.no_color, DisplaySource(plan.source)});
  if (plan.Empty()) return kExitOk;
  if (!opts.auto_approve && !saved) {
    if (!StdoutIsTerminal() || !isatty(0)) {
      std::cerr << "gitvirt: apply needs confirmation; run it on a terminal or pass --auto-approve\n";
      return kExitError;
    }
    if (!Confirm()) {
      std::cout << "Apply cancelled.\n";
      return kExitError;
    }
  }
  RunOptions run;
  run.parallel = opts.parallel;
  if (!opts.rollback.empty()) run.strategy = ParseEnum<RollbackStrategy>(opts.rollback);
  auto outcome = RunPlan(*session, plan, run);
  if (!outcome) return kExitError;
  return outcome->Ok() ? kExitOk : kExitError;
}

}  // namespace

void AddApplyCommand(CLI::App& app, GlobalOptions& global, CommandResult& result) {
  auto opts = std::make_shared<ApplyOptionsCli>();
  auto* cmd = app.add_subcommand("apply", "Make the hypervisors match the manifests (or run a saved plan)");
  AddSourceOptions(cmd, opts->request.source);
  cmd->add_option("plan", opts->plan_file, "A plan saved by `gitvirt plan -o FILE`; refused if stale");
  cmd->add_flag("--auto-approve,-y", opts->auto_approve, "Do not ask for confirmation");
  cmd->add_flag("--prune", opts->request.prune, "Delete gitvirt's VMs that left the repository");
  cmd->add_flag("--adopt", opts->request.adopt,
                 "Take over same-name domains gitvirt does not own, as they run (as spec.adopt: true)");
  cmd->add_option("--target", opts->target, "Only this resource (Kind/name) and what it needs");
  cmd->add_option("--parallel", opts->parallel, "Steps at once (default: apply.parallel, 8)")->check(CLI::Range(1, 1024));
  cmd->add_option("--rollback", opts->rollback, "On failure: FULL, PARTIAL, NONE or MARK_FAILED")
      ->check(CLI::IsMember({"FULL", "PARTIAL", "NONE", "MARK_FAILED"}));
  cmd->add_flag("--no-color", opts->no_color, "No colours on a terminal");
  cmd->callback([&global, &result, opts] {
    if (!ParseTargetOption(opts->target, opts->request.target)) {
      result.exit_code = kExitError;
      return;
    }
    result.exit_code = RunApplyCommand(global, *opts);
  });
}

}  // namespace gitvirt::cli
