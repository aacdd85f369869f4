#include <iostream>
#include <nlohmann/json.hpp>

#include "command.h"
#include "gitvirt/api/views.h"
#include "gitvirt/cli/app.h"
#include "gitvirt/core/plan_text.h"
#include "output.h"
#include "view.h"

namespace gitvirt::cli {
namespace {

struct DescribeOptions {
  std::string kind;
  std::string name;
  SourceOptions source;
  std::string output;
};

// One migration of the VM, from its journaled step: when, from where to where, how, and how it
// ended (a migration a rollback undid says so).
struct Migration {
  std::optional<TimePoint> started;
  std::string from;
  std::string to;
  std::string mode;
  bool simulated = false;
  std::optional<std::uint64_t> bytes;
  StepStatus status = StepStatus::kPending;
  std::string job;
  std::string error;
};

Migration FromStep(const StepRecord& s) {
  const auto action = nlohmann::json::parse(s.action_json, nullptr, false);
  const auto result = nlohmann::json::parse(s.result_json, nullptr, false);
  auto text = [](const nlohmann::json& j, const char* key, const std::string& fallback = "?") {
    return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : fallback;
  };
  Migration m;
  m.started = s.started_at;
  m.from = text(result, "source", text(action, "sourceNode"));
  m.to = s.node;
  m.mode = text(result, "mode", "");
  if (m.mode.empty() && action.is_object() && action.contains("params")) m.mode = text(action["params"], "mode");
  m.simulated = result.is_object() && result.value("simulated", false);
  if (!m.simulated && result.is_object() && result.contains("bytes") && result["bytes"].is_number_unsigned()) {
    m.bytes = result["bytes"].get<std::uint64_t>();
  }
  m.status = s.status;
  m.job = s.job_id;
  m.error = s.error;
  return m;
}

// Everything `describe vm` shows, gathered once, then printed as text or as a document.
struct Described {
  std::string name;
  const ResourceStatus* resource = nullptr;  // in the manifests
  const ObservedVm* observed = nullptr;      // on a node
  // For a VM gitvirt owns: its snapshots (when the node answered), its last five migrations
  // (when the journal could be read) and the last job that applied it with this VM's events.
  std::optional<std::vector<ObservedSnapshot>> snapshots;
  std::optional<std::vector<Migration>> migrations;
  std::optional<JobRecord> last_job;
  std::vector<EventRecord> last_job_events;
};

void Gather(const View& view, const std::shared_ptr<spdlog::logger>& log, Described& d) {
  if (d.observed == nullptr || !d.observed->Owned()) return;
  auto nodes = ConnectNodes(view.config, log);
  if (Node* hv = nodes->Find(d.observed->node)) {
    if (auto snaps = hv->snapshots().List(d.name)) d.snapshots = std::move(*snaps);
  }
  auto journal = Journal::Open(view.config.state);
  if (!journal) return;
  if (auto steps = (*journal)->FindSteps(StepFilter{"migrate", "VirtualMachine/" + d.name, 5})) {
    d.migrations.emplace();
    for (const StepRecord& s : *steps) d.migrations->push_back(FromStep(s));
  }
  const std::string& job_id = d.observed->owner->job;
  if (job_id.empty()) return;
  if (auto job = (*journal)->GetJob(job_id)) d.last_job = std::move(*job);
  if (auto events = (*journal)->GetEvents(job_id)) {
    for (EventRecord& e : *events) {
      if (e.step_id.find("/" + d.name) != std::string::npos) d.last_job_events.push_back(std::move(e));
    }
  }
}

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

void PrintText(const Described& d) {
  const ResourceStatus* r = d.resource;
  const ObservedVm* observed = d.observed;
  std::cout << "Name:        " << d.name << "\n";
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
  if (observed == nullptr || !observed->Owned()) return;
  std::cout << "Snapshots:\n";
  if (d.snapshots && d.snapshots->empty()) std::cout << "  none\n";
  for (const ObservedSnapshot& s : d.snapshots.value_or(std::vector<ObservedSnapshot>{})) {
    std::cout << "  " << s.name << "  " << FormatTime(s.created) << "  " << s.state
              << (s.policy.empty() ? "" : "  policy " + s.policy) << (s.current ? "  (current)" : "") << "\n";
  }
  if (d.migrations) {
    std::cout << "Migrations:\n";
    if (d.migrations->empty()) std::cout << "  none\n";
    for (const Migration& m : *d.migrations) {
      std::cout << "  " << (m.started ? FormatTime(*m.started) : std::string("-")) << "  " << m.from << " -> " << m.to
                << "  " << m.mode;
      if (m.simulated) std::cout << " (simulated)";
      if (m.bytes) std::cout << "  " << FormatSize(*m.bytes) << " copied";
      std::cout << "  " << EnumName(m.status) << "  job " << m.job;
      if (!m.error.empty()) std::cout << ": " << m.error;
      std::cout << "\n";
    }
  }
  if (d.last_job) {
    std::cout << "Last job " << d.last_job->id << ": " << EnumName(d.last_job->status) << "\n";
    for (const EventRecord& e : d.last_job_events) {
      std::cout << "  " << FormatTime(e.time) << "  " << EnumName(e.level) << "  " << e.message << "\n";
    }
  }
}

// The same as a document; `status` is the status API's /api/v1/resources/VirtualMachine/NAME.
void PrintStructuredVm(const Described& d, const std::string& format) {
  using api_views::Json;
  Json doc = {{"kind", "VirtualMachine"}, {"name", d.name}};
  doc["inManifests"] = d.resource != nullptr;
  if (const ObservedVm* o = d.observed) {
    Json observed = {{"node", o->node},
                     {"uuid", o->uuid},
                     {"state", o->state_detail},
                     {"autostart", o->autostart},
                     {"managed", o->Owned()}};
    if (o->owner) {
      observed["owner"] = {{"revision", o->owner->revision}, {"job", o->owner->job},
                           {"specHash", o->owner->spec_hash}, {"cluster", o->owner->cluster},
                           {"group", o->owner->group},        {"volumes", o->owner->created_volumes}};
    }
    doc["onNode"] = std::move(observed);
  } else {
    doc["onNode"] = nullptr;
  }
  doc["status"] = d.resource != nullptr ? api_views::ResourceDetail(*d.resource) : Json(nullptr);
  Json snapshots = nullptr;
  if (d.snapshots) {
    snapshots = Json::array();
    for (const ObservedSnapshot& s : *d.snapshots) {
      Json one = api_views::Snapshot(
          SnapshotEntry{d.name, d.observed->node, s.name, s.policy, s.description, s.state, s.created});
      one["current"] = s.current;
      snapshots.push_back(std::move(one));
    }
  }
  doc["snapshots"] = std::move(snapshots);
  Json migrations = nullptr;
  if (d.migrations) {
    migrations = Json::array();
    for (const Migration& m : *d.migrations) {
      migrations.push_back({{"started", api_views::Time(m.started)},
                            {"from", m.from},
                            {"to", m.to},
                            {"mode", m.mode},
                            {"simulated", m.simulated},
                            {"bytes", m.bytes ? Json(*m.bytes) : Json(nullptr)},
                            {"status", EnumName(m.status)},
                            {"job", m.job},
                            {"error", m.error}});
    }
  }
  doc["migrations"] = std::move(migrations);
  if (d.last_job) {
    Json job = api_views::JobSummary(*d.last_job);
    Json events = Json::array();
    for (const EventRecord& e : d.last_job_events) events.push_back(api_views::Event(e));
    job["events"] = std::move(events);
    doc["lastJob"] = std::move(job);
  } else {
    doc["lastJob"] = nullptr;
  }
  PrintDocument(std::cout, doc, format);
}

int RunDescribe(const GlobalOptions& global, const DescribeOptions& opts) {
  if (opts.kind != "vm" && opts.kind != "vms" && opts.kind != "VirtualMachine") {
    std::cerr << "gitvirt describe: only `vm NAME` is described\n";
    return kExitError;
  }
  auto log = MakeLogger(global.verbosity);
  auto view = GatherView(global, opts.source, log);
  if (!view) return kExitError;
  Described d;
  d.name = opts.name;
  for (const ResourceStatus& s : view->resources) {
    if (s.kind == Kind::kVirtualMachine && s.name == opts.name) d.resource = &s;
  }
  for (const ObservedNode& n : view->observed.nodes) {
    if (const ObservedVm* vm = n.FindVm(opts.name)) d.observed = vm;
  }
  if (d.resource == nullptr && d.observed == nullptr) {
    std::cerr << "gitvirt: no VM named " << opts.name << " in the manifests or on any node\n";
    return kExitError;
  }
  Gather(*view, log, d);
  if (opts.output == "text") {
    PrintText(d);
  } else {
    PrintStructuredVm(d, opts.output);
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
  AddOutputOption(cmd, opts->output, {"text", "json", "yaml"});
  cmd->callback([&global, &result, opts] { result.exit_code = RunDescribe(global, *opts); });
}

}  // namespace gitvirt::cli
