#include <unistd.h>

#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "command.h"
#include "gitvirt/cli/app.h"
#include "gitvirt/core/json.h"
#include "gitvirt/core/plan_text.h"
#include "output.h"
#include "planning.h"

namespace gitvirt::cli {
namespace {

struct ApplyOptionsCli {
  PlanRequest request;
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

// A saved plan applies only to the world it was made against: the same manifests, and every
// target as it was observed then.
bool CheckNotStale(const Plan& saved, const Planned& now) {
  std::vector<std::string> why;
  if (saved.source != now.desired.source) {
    why.push_back("the plan is for " + saved.source + ", the source now is " + now.desired.source);
  } else if (saved.revision != now.desired.revision) {
    why.push_back("the source changed: revision " + saved.revision + " then, " + now.desired.revision + " now");
  }
  for (const auto& [key, fingerprint] : saved.fingerprints) {
    const std::string name = key.substr(key.find('/') + 1);
    auto vms = now.observed.FindVms(name);
    const std::string current = vms.empty() ? "absent" : ObservedFingerprint(*vms.front());
    if (current != fingerprint) {
      why.push_back(key + (vms.empty() ? " no longer exists" : fingerprint == "absent" ? " exists now" : " changed since the plan was made"));
    }
  }
  if (why.empty()) return true;
  std::cerr << "gitvirt: the plan is stale:\n";
  for (const std::string& w : why) std::cerr << "  - " << w << "\n";
  std::cerr << "Make a new plan with `gitvirt plan -o FILE`.\n";
  return false;
}

int RunApplyCommand(const GlobalOptions& global, const ApplyOptionsCli& opts) {
  auto log = MakeLogger(global.verbosity);
  auto config = LoadConfig(global);
  if (!config) return kExitError;
  auto lock = LockState(*config);
  if (!lock) return kExitError;
  auto journal = OpenJournal(*config);
  if (!journal) return kExitError;
  {
    // Before anything new: finish what a killed apply left behind.
    auto nodes = ConnectNodes(*config, log);
    if (!RecoverUnfinishedJobs(*config, *nodes, *journal, log)) return kExitError;
  }

  std::optional<Plan> saved;
  PlanRequest request = opts.request;
  if (!opts.plan_file.empty()) {
    std::ifstream in(opts.plan_file);
    if (!in) {
      std::cerr << "gitvirt: cannot read " << opts.plan_file << "\n";
      return kExitError;
    }
    auto json = nlohmann::json::parse(in, nullptr, false);
    auto plan = PlanFromJson(json);
    if (!plan) {
      std::cerr << "gitvirt: " << opts.plan_file << ": " << plan.error().ToString() << "\n";
      return kExitError;
    }
    saved = std::move(*plan);
    // Re-read the same source to check nothing moved under the plan.
    if (saved->source.starts_with("dir:")) {
      request.source.dir = saved->source.substr(4);
    } else if (saved->source.starts_with("git:")) {
      const std::string rest = saved->source.substr(4);
      const auto at = rest.rfind('@');
      request.source.repo = rest.substr(0, at);
      std::string ref = rest.substr(at + 1);
      if (const auto colon = ref.find(':'); colon != std::string::npos) {
        request.source.path = ref.substr(colon + 1);
        ref = ref.substr(0, colon);
      }
      request.source.ref = ref;
    }
    request.prune = saved->prune;
  }
  auto planned = MakeCurrentPlan(global, request, log);
  if (!planned) return kExitError;
  Plan plan;
  if (saved) {
    if (!CheckNotStale(*saved, *planned)) return kExitError;
    plan = std::move(*saved);
  } else {
    plan = std::move(planned->plan);
  }
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
  run.parallel = opts.parallel > 0 ? opts.parallel : planned->config.apply.parallel;
  run.strategy = planned->config.apply.rollback;
  if (!opts.rollback.empty()) run.strategy = *ParseEnum<RollbackStrategy>(opts.rollback);
  auto outcome = RunPlan(planned->config, *planned->nodes, *journal, plan, run, log);
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
  cmd->add_option("--target", opts->request.target, "Only this resource (Kind/name) and what it needs");
  cmd->add_option("--parallel", opts->parallel, "Steps at once (default: apply.parallel, 8)")->check(CLI::Range(1, 1024));
  cmd->add_option("--rollback", opts->rollback, "On failure: FULL, PARTIAL, NONE or MARK_FAILED")
      ->check(CLI::IsMember({"FULL", "PARTIAL", "NONE", "MARK_FAILED"}));
  cmd->add_flag("--no-color", opts->no_color, "No colours on a terminal");
  cmd->callback([&global, &result, opts] { result.exit_code = RunApplyCommand(global, *opts); });
}

}  // namespace gitvirt::cli
