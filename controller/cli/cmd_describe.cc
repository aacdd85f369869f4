#include <iostream>
#include <nlohmann/json.hpp>

#include "command.h"
#include "gitvirt/cli/app.h"
#include "gitvirt/core/plan_text.h"
#include "view.h"

namespace gitvirt::cli {
namespace {

struct DescribeOptions {
  std::string kind;
  std::string name;
  SourceOptions source;
};

void PrintJson(const std::string& title, const std::string& text) {
  std::cout << title << ":\n";
  if (text.empty()) {
    std::cout << "  <none>\n";
    return;
  }
  auto j = nlohmann::json::parse(text, nullptr, false);
  std::string pretty = j.is_discarded() ? text : j.dump(2);
  std::string line;
  std::istringstream in(pretty);
  while (std::getline(in, line)) std::cout << "  " << line << "\n";
}

// The VM's recent migrations, from the journal: when, from where to where, how, and how it
// ended (a migration a rollback undid says so).
void PrintMigrations(const std::string& state, const std::string& name) {
  auto journal = Journal::Open(state);
  if (!journal) return;
  auto steps = (*journal)->FindSteps(StepFilter{"migrate", "VirtualMachine/" + name, 5});
  if (!steps) return;
  std::cout << "Migrations:\n";
  if (steps->empty()) std::cout << "  none\n";
  for (const StepRecord& s : *steps) {
    const auto action = nlohmann::json::parse(s.action_json, nullptr, false);
    const auto result = nlohmann::json::parse(s.result_json, nullptr, false);
    auto text = [](const nlohmann::json& j, const char* key, const std::string& fallback = "?") {
      return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : fallback;
    };
    std::string mode = text(result, "mode", "");
    if (mode.empty() && action.is_object() && action.contains("params")) mode = text(action["params"], "mode");
    const bool simulated = result.is_object() && result.value("simulated", false);
    std::cout << "  " << (s.started_at ? FormatTime(*s.started_at) : std::string("-")) << "  "
              << text(result, "source", text(action, "sourceNode")) << " -> " << s.node << "  " << mode;
    if (simulated) std::cout << " (simulated)";
    if (!simulated && result.is_object() && result.contains("bytes")) {
      std::cout << "  " << FormatSize(result["bytes"].get<std::uint64_t>()) << " copied";
    }
    std::cout << "  " << EnumName(s.status) << "  job " << s.job_id;
    if (!s.error.empty()) std::cout << ": " << s.error;
    std::cout << "\n";
  }
}

int RunDescribe(const GlobalOptions& global, const DescribeOptions& opts) {
  if (opts.kind != "vm" && opts.kind != "vms" && opts.kind != "VirtualMachine") {
    std::cerr << "gitvirt describe: only `vm NAME` is described\n";
    return kExitError;
  }
  auto log = MakeLogger(global.verbosity);
  auto view = GatherView(global, opts.source, log);
  if (!view) return kExitError;
  const ResourceStatus* r = nullptr;
  for (const ResourceStatus& s : view->resources) {
    if (s.kind == Kind::kVirtualMachine && s.name == opts.name) r = &s;
  }
  const ObservedVm* observed = nullptr;
  for (const ObservedNode& n : view->observed.nodes) {
    if (const ObservedVm* vm = n.FindVm(opts.name)) observed = vm;
  }
  if (r == nullptr && observed == nullptr) {
    std::cerr << "gitvirt: no VM named " << opts.name << " in the manifests or on any node\n";
    return kExitError;
  }
  std::cout << "Name:        " << opts.name << "\n";
  if (observed != nullptr) {
    std::cout << "Node:        " << observed->node << "\n"
              << "UUID:        " << observed->uuid << "\n"
              << "State:       " << observed->state_detail << (observed->autostart ? " (autostart)" : "") << "\n"
              << "Managed:     " << (observed->Owned() ? "yes (gitvirt)" : "no: gitvirt never touches it") << "\n";
    if (observed->owner) {
      std::cout << "Revision:    " << observed->owner->revision << "\n"
                << "Last job:    " << (observed->owner->job.empty() ? "-" : observed->owner->job) << "\n"
                << "Spec hash:   " << observed->owner->spec_hash << "\n";
      if (!observed->owner->cluster.empty()) {
        std::cout << "Cluster:     " << observed->owner->cluster << " / " << observed->owner->group << "\n";
      }
      if (!observed->owner->created_volumes.empty()) {
        std::cout << "Volumes:     ";
        for (const std::string& v : observed->owner->created_volumes) std::cout << v << " ";
        std::cout << "\n";
      }
    }
  }
  if (r != nullptr) {
    std::cout << "Sync:        " << EnumName(r->sync) << "\n"
              << "Health:      " << EnumName(r->health) << "\n";
    if (!r->address.empty()) {
      std::cout << "Address:     " << r->address << (r->address_source.empty() ? "" : " (" + r->address_source + ")")
                << "\n";
    }
    std::cout << "Conditions:\n";
    for (const Condition& c : r->conditions) {
      std::cout << "  " << c.type << "=" << (c.status ? "True" : "False") << "  " << c.reason << ": " << c.message
                << "\n";
    }
    std::cout << "Drift:\n";
    if (r->drift.empty()) std::cout << "  none: the VM matches its manifest\n";
    for (const FieldChange& c : r->drift) {
      std::cout << "  " << c.path << ": " << (c.before.empty() ? "(none)" : c.before) << " -> "
                << (c.after.empty() ? "(removed)" : c.after) << "  [" << EnumName(c.change_class) << "]\n";
    }
    PrintJson("Desired", r->desired_json);
  }
  if (observed != nullptr) {
    PrintJson("Observed", nlohmann::json(nlohmann::json::parse(r ? r->observed_json : "{}", nullptr, false)).dump());
  }
  if (observed != nullptr && observed->Owned()) {
    // Snapshots and the last job's story for this VM.
    std::cout << "Snapshots:\n";
    auto nodes = ConnectNodes(view->config, log);
    if (Hypervisor* hv = nodes->Find(observed->node)) {
      auto snaps = hv->ListSnapshots(opts.name);
      if (snaps && snaps->empty()) std::cout << "  none\n";
      if (snaps) {
        for (const ObservedSnapshot& s : *snaps) {
          std::cout << "  " << s.name << "  " << FormatTime(s.created) << "  " << s.state
                    << (s.policy.empty() ? "" : "  policy " + s.policy) << (s.current ? "  (current)" : "") << "\n";
        }
      }
    }
    PrintMigrations(view->config.state, opts.name);
    if (!observed->owner->job.empty()) {
      if (auto journal = Journal::Open(view->config.state)) {
        auto job = (*journal)->GetJob(observed->owner->job);
        auto events = (*journal)->GetEvents(observed->owner->job);
        if (job) std::cout << "Last job " << job->id << ": " << EnumName(job->status) << "\n";
        if (events) {
          for (const EventRecord& e : *events) {
            if (e.step_id.find("/" + opts.name) == std::string::npos) continue;
            std::cout << "  " << FormatTime(e.time) << "  " << EnumName(e.level) << "  " << e.message << "\n";
          }
        }
      }
    }
  }
  return kExitOk;
}

}  // namespace

void AddDescribeCommand(CLI::App& app, GlobalOptions& global, CommandResult& result) {
  auto opts = std::make_shared<DescribeOptions>();
  auto* cmd = app.add_subcommand("describe", "Show a VM: desired, observed, drift, snapshots, last job");
  cmd->add_option("kind", opts->kind, "vm")->required();
  cmd->add_option("name", opts->name, "VM name")->required();
  AddSourceOptions(cmd, opts->source);
  cmd->callback([&global, &result, opts] { result.exit_code = RunDescribe(global, *opts); });
}

}  // namespace gitvirt::cli
