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
#include "flags.h"
#include "gitvirt/core/selector.h"
#include "gitvirt/engine/manual.h"
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
  int parallel = 4;
  bool force = false;
  bool skip_if_in_state = true;
  bool yes = false;
  bool wait_ready = false;
  std::string max_unavailable;
  bool max_parallel_given = false;  // --max-parallel: the deprecated name of --parallel
};

int RunPower(const GlobalOptions& global, const PowerOptions& opts) {
  if (opts.max_parallel_given) std::cerr << "gitvirt: --max-parallel is deprecated; use --parallel\n";
  if (opts.selector.empty() && opts.names.empty()) {
    std::cerr << "gitvirt power: choose the VMs with -l SELECTOR (e.g. -l tier=web) or name them\n";
    return kExitError;
  }
  auto selector = ParseLabelSelector(opts.selector);
  if (!selector) {
    std::cerr << "gitvirt: -l: " << selector.error().message << "\n";
    return kExitError;
  }
  auto session = OpenChangeSession(global);
  if (!session) return kExitError;
  PowerRequest request;
  request.operation = opts.operation;
  request.selector_text = opts.selector;
  request.selector = *selector;
  request.names = opts.names;
  request.force = opts.force;
  request.skip_if_in_state = opts.skip_if_in_state;
  request.wait_ready = opts.wait_ready;
  request.max_unavailable = opts.max_unavailable;
  auto planned = PlanPower(*session, request);
  if (!planned) {
    PrintError(planned.error());
    return kExitError;
  }
  for (const std::string& s : planned->skipped) std::cout << "skipping " << s << "\n";
  if (planned->plan.actions.empty()) {
    std::cout << "Nothing to do: "
              << (!planned->skipped.empty() ? std::to_string(planned->skipped.size()) + " VM(s) already in that state"
                                            : std::string("no VM of gitvirt's matches"))
              << ".\n";
    return kExitOk;
  }
  const std::string question = opts.operation == "start" || opts.yes
                                   ? ""
                                   : opts.operation + ": run these " + std::to_string(planned->plan.actions.size()) +
                                         " step(s)?";
  return RunOneActionJob(global, *session, planned->plan, "power", opts.dry_run, opts.parallel, question);
}

}  // namespace

void AddPowerCommand(CLI::App& app, GlobalOptions& global, CommandResult& result) {
  auto* cmd = app.add_subcommand("power", "Start, stop, shut down or reboot the VMs a label selector picks");
  cmd->require_subcommand(1);
  SetExamples(cmd, {"gitvirt power shutdown -l tier=web", "gitvirt power start web-01"});
  for (const char* op : {"start", "stop", "shutdown", "reboot"}) {
    auto opts = std::make_shared<PowerOptions>();
    opts->operation = op;
    const std::string help = std::string(op) == "start"      ? "Start (or resume) the VMs"
                             : std::string(op) == "stop"     ? "Power the VMs off at once"
                             : std::string(op) == "shutdown" ? "Shut the VMs down gracefully (ACPI)"
                                                             : "Reboot the VMs";
    auto* sub = cmd->add_subcommand(op, help);
    sub->add_option("names", opts->names, "VM names (in addition to -l; NotFound if not gitvirt's)");
    sub->add_option("-l,--selector", opts->selector, "Label selector, e.g. tier=web,env!=dev");
    AddDryRunFlag(sub, opts->dry_run, "Show the job, change nothing");
    AddParallelOption(sub, opts->parallel, "VMs at once (default 4)");
    sub->add_option_function<int>(
           "--max-parallel",
           [opts](int n) {
             opts->parallel = n;
             opts->max_parallel_given = true;
           },
           "Same as --parallel")
        ->check(CLI::Range(1, 1024))
        ->group("");
    sub->add_flag("--force", opts->force,
                  "shutdown: power off after the timeout; reboot: hard reset (off, then on)");
    sub->add_flag("--skip-if-in-state,!--no-skip-if-in-state", opts->skip_if_in_state,
                  "Skip VMs already in the wanted state (default on)");
    AddYesFlag(sub, opts->yes);
    AddIgnoreUnreachableFlag(sub, global);
    SetExamples(sub, {"gitvirt power " + std::string(op) + " -l tier=web",
                      "gitvirt power " + std::string(op) + " web-01 web-02 --dry-run",
                      "gitvirt power " + std::string(op) + " -l env=dev --parallel 8 -y"});
    if (std::string(op) == "reboot") {
      sub->add_option("--max-unavailable", opts->max_unavailable,
                      "A rolling reboot: at most N VMs (or N% of them) down at once, by name order");
      sub->add_flag("--wait-ready", opts->wait_ready,
                    "Shut each VM down and start it, waiting until it is Ready (its readiness block) "
                    "before the next goes down");
    }
    sub->callback([&global, &result, opts] { result.exit_code = RunPower(global, *opts); });
  }
}

}  // namespace gitvirt::cli
