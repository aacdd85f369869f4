#include <fstream>
#include <iostream>
#include <set>

#include "command.h"
#include "flags.h"
#include "gitvirt/cli/app.h"
#include "gitvirt/core/json.h"
#include "output.h"
#include "planning.h"

namespace gitvirt::cli {
namespace {

struct PlanOptionsCli {
  PlanRequest request;
  std::string target;
  std::string out;
  std::string output = "table";
  bool detailed_exitcode = false;
  bool json = false;  // --json: hidden alias of -o json, for one release
};

// `-o name`: the resources that differ, once each: those the plan acts on, in plan order, then
// those whose changes are pending (--detailed-exitcode counts both).
void PrintTargets(const Plan& plan) {
  std::set<std::string> seen;
  for (const Action& a : plan.actions) {
    if (seen.insert(a.target.ToString()).second) std::cout << a.target.ToString() << "\n";
  }
  for (const PendingChange& p : plan.pending) {
    if (seen.insert(p.target.ToString()).second) std::cout << p.target.ToString() << "\n";
  }
}

int RunPlanCommand(const GlobalOptions& global, const PlanOptionsCli& opts) {
  if (!opts.out.empty() && opts.request.source.dir == "-") {
    std::cerr << "gitvirt: a plan made from standard input cannot be saved: apply could not read the same "
                 "manifests again to check that it is current; save them to a file and plan with -f FILE --out "
              << opts.out << "\n";
    return kExitError;
  }
  auto session = OpenSession(global);
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
  const std::string output = opts.json ? "json" : opts.output;
  if (output == "table") {
    PrintPlan(global, plan);
  } else if (output == "name") {
    PrintTargets(plan);
  } else {
    PrintDocument(std::cout, PlanToJson(plan), output);
  }
  if (!opts.out.empty()) {
    std::ofstream out(opts.out, std::ios::binary | std::ios::trunc);
    out << PlanToJson(plan).dump(2) << "\n";
    if (!out) {
      std::cerr << "gitvirt: cannot write " << opts.out << "\n";
      return kExitError;
    }
    // Beside a document on stdout, the note goes to stderr.
    (output == "table" ? std::cout : std::cerr)
        << "\nSaved the plan to " << opts.out << ". Apply exactly this plan with:\n  gitvirt apply " << opts.out << "\n";
  }
  if (opts.detailed_exitcode && !plan.InSync()) return kExitChanges;
  return kExitOk;
}

}  // namespace

void AddPlanCommand(CLI::App& app, GlobalOptions& global, CommandResult& result) {
  auto opts = std::make_shared<PlanOptionsCli>();
  auto* cmd = app.add_subcommand("plan", "Show what apply would change, like terraform plan");
  AddSourceOptions(cmd, opts->request.source);
  cmd->add_option("--out", opts->out, "Save the plan as JSON to FILE, to apply exactly it later");
  AddOutputOption(cmd, opts->output, {"table", "json", "yaml", "name"});
  cmd->add_flag("--json", opts->json, "Same as -o json")->group("");
  cmd->add_flag("--detailed-exitcode", opts->detailed_exitcode,
                "Exit 0: in sync, 2: anything to do, pending or not seen, 1: error");
  AddPruneFlags(cmd, opts->request.prune);
  cmd->add_flag("--adopt", opts->request.adopt,
                "Take over same-name domains gitvirt does not own, as they run (as spec.adopt: true)");
  cmd->add_flag("--override-windows", opts->request.override_windows,
                "Plan as `apply --override-windows` would: through sync windows that allow manualSync");
  AddTargetOption(cmd, opts->target);
  AddIgnoreUnreachableFlag(cmd, global);
  SetExamples(cmd, {"gitvirt plan",
                    "gitvirt plan --out plan.json  # then: gitvirt apply plan.json",
                    "gitvirt plan -f web.yaml --target VirtualMachine/web-01",
                    "gitvirt plan --detailed-exitcode  # 0 in sync, 2 changes, 1 error (for CI)",
                    "gitvirt plan -o json | jq .summary",
                    "gitvirt plan --repo https://git.example.com/vms.git --ref main --path prod"});
  cmd->callback([&global, &result, opts] {
    if (opts->json) std::cerr << "gitvirt: --json is deprecated; use -o json\n";
    if (!ParseTargetOption(opts->target, opts->request.target)) {
      result.exit_code = kExitError;
      return;
    }
    result.exit_code = RunPlanCommand(global, *opts);
  });
}

}  // namespace gitvirt::cli
