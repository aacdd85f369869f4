// gitvirt power start|stop|shutdown|reboot: the same power operation on every VM a label
// selector picks (the seeds' bulk power scripts), as one journaled job (kind "power").
//
// Only gitvirt's VMs are chosen (by the labels gitvirt recorded on them). By default a VM
// already in the wanted state is skipped (start: running; stop, shutdown: stopped; reboot:
// not running); --no-skip-if-in-state includes them (each step is a no-op then).
// --force: shutdown powers off after the VM's shutdownTimeout; reboot is a hard reset
// (power off, start).
#include <algorithm>
#include <iostream>
#include <set>

#include "command.h"
#include "gitvirt/cli/app.h"
#include "gitvirt/core/selector.h"
#include "output.h"
#include "planning.h"
#include "policy_commands.h"

namespace gitvirt::cli {
namespace {

struct PowerOptions {
  std::string operation;
  std::string selector;
  std::vector<std::string> names;
  bool dry_run = false;
  int max_parallel = 4;
  bool force = false;
  bool skip_if_in_state = true;
  bool yes = false;
};

int RunPower(const GlobalOptions& global, const PowerOptions& opts) {
  auto log = MakeLogger(global.verbosity);
  if (opts.selector.empty() && opts.names.empty()) {
    std::cerr << "gitvirt power: choose the VMs with -l SELECTOR (e.g. -l tier=web) or name them\n";
    return kExitError;
  }
  auto selector = ParseLabelSelector(opts.selector);
  if (!selector) {
    std::cerr << "gitvirt: -l: " << selector.error().message << "\n";
    return kExitError;
  }
  auto s = OpenChangeSession(global, log);
  if (!s) return kExitError;
  const ObservedState observed = s->nodes->ObserveAll();
  Plan plan;
  plan.source = "cli:power " + opts.operation + (opts.selector.empty() ? "" : " -l " + opts.selector);
  int skipped = 0;
  std::set<std::string> seen;
  for (const ObservedNode& node : observed.nodes) {
    for (const ObservedVm& vm : node.vms) {
      if (!vm.Owned() || !seen.insert(vm.name).second) continue;
      const bool named = std::find(opts.names.begin(), opts.names.end(), vm.name) != opts.names.end();
      if (!named && (opts.selector.empty() || !selector->Matches(vm.owner->labels))) continue;
      std::vector<ActionType> steps;
      bool in_state = false;
      if (opts.operation == "start") {
        in_state = vm.power == PowerState::kRunning;
        steps = {vm.power == PowerState::kPaused ? ActionType::kResume : ActionType::kStart};
      } else if (opts.operation == "stop") {
        in_state = vm.power == PowerState::kStopped;
        steps = {ActionType::kStop};
      } else if (opts.operation == "shutdown") {
        in_state = vm.power == PowerState::kStopped;
        steps = {ActionType::kShutdown};
      } else {
        in_state = vm.power != PowerState::kRunning;
        steps = opts.force ? std::vector<ActionType>{ActionType::kStop, ActionType::kStart}
                           : std::vector<ActionType>{ActionType::kReboot};
      }
      if (in_state && opts.skip_if_in_state) {
        std::cout << "skipping " << vm.name << ": " << EnumName(vm.power) << " already\n";
        ++skipped;
        continue;
      }
      std::string previous;
      for (ActionType type : steps) {
        Action a;
        a.id = std::string(EnumName(type)) + "/" + vm.name;
        a.type = type;
        a.node = node.name;
        a.target = ResourceRef{Kind::kVirtualMachine, vm.name};
        a.reason = "power " + opts.operation + (opts.force ? " --force" : "");
        a.power_before = vm.power;
        if (type == ActionType::kShutdown && opts.force) a.params["forceOff"] = "true";
        if (!previous.empty()) a.depends_on = {previous};
        previous = a.id;
        plan.actions.push_back(std::move(a));
      }
    }
  }
  if (plan.actions.empty()) {
    std::cout << "Nothing to do: " << (skipped > 0 ? std::to_string(skipped) + " VM(s) already in that state"
                                                   : std::string("no VM of gitvirt's matches"))
              << ".\n";
    return kExitOk;
  }
  const std::string question = opts.operation == "start" || opts.yes
                                   ? ""
                                   : opts.operation + ": run these " + std::to_string(plan.actions.size()) + " step(s)?";
  return RunOneActionJob(*s, std::move(plan), "power", opts.dry_run, log, opts.max_parallel, question);
}

}  // namespace

void AddPowerCommand(CLI::App& app, GlobalOptions& global, CommandResult& result) {
  auto* cmd = app.add_subcommand("power", "Start, stop, shut down or reboot the VMs a label selector picks");
  cmd->require_subcommand(1);
  for (const char* op : {"start", "stop", "shutdown", "reboot"}) {
    auto opts = std::make_shared<PowerOptions>();
    opts->operation = op;
    const std::string help = std::string(op) == "start"      ? "Start (or resume) the VMs"
                             : std::string(op) == "stop"     ? "Power the VMs off at once"
                             : std::string(op) == "shutdown" ? "Shut the VMs down gracefully (ACPI)"
                                                             : "Reboot the VMs";
    auto* sub = cmd->add_subcommand(op, help);
    sub->add_option("names", opts->names, "VM names (in addition to -l)");
    sub->add_option("-l,--selector", opts->selector, "Label selector, e.g. tier=web,env!=dev");
    sub->add_flag("--dry-run", opts->dry_run, "Show the job, change nothing");
    sub->add_option("--max-parallel", opts->max_parallel, "VMs at once (default 4)")->check(CLI::Range(1, 256));
    sub->add_flag("--force", opts->force,
                  "shutdown: power off after the timeout; reboot: hard reset (off, then on)");
    sub->add_flag("--skip-if-in-state,!--no-skip-if-in-state", opts->skip_if_in_state,
                  "Skip VMs already in the wanted state (default on)");
    sub->add_flag("--yes,-y,--auto-approve", opts->yes, "Do not ask for confirmation");
    sub->callback([&global, &result, opts] { result.exit_code = RunPower(global, *opts); });
  }
}

}  // namespace gitvirt::cli
