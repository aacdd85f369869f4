#include <iostream>

#include "command.h"
#include "flags.h"
#include "gitvirt/cli/app.h"
#include "gitvirt/core/json.h"
#include "output.h"
#include "planning.h"

namespace gitvirt::cli {
namespace {

struct ApplyOptionsCli {
  PlanRequest request;
  std::string target;
  std::string plan_file;
  bool yes = false;
  bool dry_run = false;
  int parallel = 0;
  std::string rollback;
  std::string output = "table";  // -o: json|yaml|name print the job (or, when none runs, the plan)
};

// What stays different once the plan has run: its pending changes and the nodes it could not
// see. Said in words; apply then exits 2, as plan --detailed-exitcode would.
int StillDifferent(const Plan& plan) {
  std::cout << "\nThe hypervisors still differ from the manifests: ";
  if (!plan.pending.empty()) std::cout << plan.pending.size() << " change(s) pending";
  if (!plan.pending.empty() && !plan.unreachable.empty()) std::cout << ", ";
  if (!plan.unreachable.empty()) std::cout << plan.unreachable.size() << " node(s) not seen";
  std::cout << " (see above).\n";
  return kExitChanges;
}

// The job's options from the flags; quiet for a document on stdout (apply -o json).
RunOptions RunOptionsOf(const ApplyOptionsCli& opts, bool quiet) {
  RunOptions run;
  run.parallel = opts.parallel;
  run.quiet = quiet;
  if (!opts.rollback.empty()) run.strategy = ParseEnum<RollbackStrategy>(opts.rollback);
  return run;
}

int RunApplyCommand(const GlobalOptions& global, const ApplyOptionsCli& opts) {
  auto session = OpenSession(global);
  if (!session) return kExitError;
  // A dry run reads like `plan` (the lock, no recovery); a real one first finishes what killed
  // processes left.
  if (opts.dry_run) {
    if (auto locked = session->Lock(); !locked) {
      PrintError(locked.error());
      return kExitError;
    }
  } else if (!LockAndRecover(*session)) {
    return kExitError;
  }

  Result<Planned> planned = std::unexpected(Error{});
  const bool saved = !opts.plan_file.empty();
  if (saved) {
    // Exactly the saved plan, once the world it was made against is found unchanged.
    auto plan = Session::ReadSavedPlan(opts.plan_file);
    if (!plan) {
      PrintError(plan.error());
      return kExitError;
    }
    planned = session->Replan(*plan, opts.request.override_windows);
  } else {
    planned = session->PlanCurrent(opts.request);
  }
  if (!planned) {
    PrintError(planned.error());
    return kExitError;
  }
  const Plan& plan = planned->plan;
  const int differ = plan.InSync() ? kExitOk : kExitChanges;
  if (opts.output != "table") {
    // A document on stdout: the job that ran, as `jobs ID -o FORMAT`; the plan when none runs.
    if (opts.dry_run || plan.Empty()) {
      if (opts.output == "name") {
        for (const Action& a : plan.actions) std::cout << a.target.ToString() << "\n";
      } else {
        PrintDocument(std::cout, PlanToJson(plan), opts.output);
      }
      return differ;
    }
    if (!opts.yes && !saved) {
      std::cerr << "gitvirt: apply -o " << opts.output << " does not show the plan to confirm; pass -y "
                << "(--yes, --auto-approve), or look first with plan -o " << opts.output << "\n";
      return kExitError;
    }
    auto outcome = RunPlan(*session, plan, RunOptionsOf(opts, /*quiet=*/true));
    if (!outcome) return kExitError;
    if (ShowJob(*session, outcome->job_id, opts.output) != kExitOk || !outcome->Ok()) return kExitError;
    return plan.pending.empty() && plan.unreachable.empty() ? kExitOk : kExitChanges;
  }
  PrintPlan(global, plan);
  if (opts.dry_run) return differ;
  if (plan.Empty()) return plan.InSync() ? kExitOk : StillDifferent(plan);
  if (!opts.yes && !saved) {
    if (!ConfirmAction("\nDo you want to perform these actions?")) {
      std::cout << "Apply cancelled.\n";
      return kExitError;
    }
  }
  auto outcome = RunPlan(*session, plan, RunOptionsOf(opts, /*quiet=*/false));
  if (!outcome || !outcome->Ok()) return kExitError;
  return plan.pending.empty() && plan.unreachable.empty() ? kExitOk : StillDifferent(plan);
}

}  // namespace

void AddApplyCommand(CLI::App& app, GlobalOptions& global, CommandResult& result) {
  auto opts = std::make_shared<ApplyOptionsCli>();
  auto* cmd = app.add_subcommand("apply", "Make the hypervisors match the manifests (or run a saved plan)");
  cmd->add_option("plan", opts->plan_file, "A plan saved by `gitvirt plan --out FILE`; refused if stale");
  AddSourceOptions(cmd, opts->request.source);
  AddYesFlag(cmd, opts->yes);
  AddDryRunFlag(cmd, opts->dry_run, "Print the plan, run nothing; exit as plan --detailed-exitcode would");
  AddPruneFlags(cmd, opts->request.prune);
  cmd->add_flag("--adopt", opts->request.adopt,
                "Take over same-name domains gitvirt does not own, as they run (as spec.adopt: true)");
  cmd->add_flag("--override-windows", opts->request.override_windows,
                "Change VMs a sync window blocks now, where every blocking window says manualSync: true");
  AddTargetOption(cmd, opts->target);
  AddParallelOption(cmd, opts->parallel, "Steps at once (default: apply.parallel, 8)");
  AddChoice(cmd, "--rollback", opts->rollback, {"FULL", "PARTIAL", "NONE", "MARK_FAILED"},
            "On failure: FULL, PARTIAL, NONE or MARK_FAILED (default: apply.rollback)");
  AddIgnoreUnreachableFlag(cmd, global);
  AddOutputOption(cmd, opts->output, {"table", "json", "yaml", "name"});
  SetExamples(cmd, {"gitvirt apply  # shows the plan, asks, then runs it as a job",
                    "gitvirt apply --auto-approve --prune",
                    "gitvirt apply plan.json  # exactly a plan saved by plan --out",
                    "gitvirt apply --dry-run  # the plan only; exit 0 in sync, 2 changes",
                    "cat vm.yaml | gitvirt apply -f - --auto-approve",
                    "gitvirt apply --rollback PARTIAL --parallel 2"});
  cmd->callback([&global, &result, opts] {
    if (!opts->plan_file.empty() &&
        (!opts->request.source.empty() || opts->request.prune || !opts->target.empty())) {
      std::cerr << "gitvirt: a saved plan is applied exactly as it was made: -f, --repo, --prune and --target "
                   "belong to `gitvirt plan`\n";
      result.exit_code = kExitError;
      return;
    }
    if (opts->request.source.dir == "-" && !opts->yes && !opts->dry_run) {
      std::cerr << "gitvirt: apply -f - reads the manifests from standard input, so it cannot ask; pass "
                   "--auto-approve (or --dry-run)\n";
      result.exit_code = kExitError;
      return;
    }
    if (!ParseTargetOption(opts->target, opts->request.target)) {
      result.exit_code = kExitError;
      return;
    }
    result.exit_code = RunApplyCommand(global, *opts);
  });
}

}  // namespace gitvirt::cli
