#include <iostream>
#include <nlohmann/json.hpp>

#include "command.h"
#include "gitvirt/api/views.h"
#include "gitvirt/cli/app.h"
#include "flags.h"
#include "output.h"
#include "view.h"

namespace gitvirt::cli {
namespace {

struct DescribeOptions {
  std::string kind;
  std::string name;
  SourceSelection source;
  std::string output = "table";
};

// A spec as its manifest would say it (SpecManifest), indented under a title.
void PrintSpec(const std::string& title, const std::string& name, const std::string& spec_json) {
  std::cout << title << ":\n";
  if (spec_json.empty()) {
    std::cout << "  <none>\n";
    return;
  }
  std::string line;
  std::istringstream in(SpecManifest(name, spec_json));
  while (std::getline(in, line)) std::cout << "  " << line << "\n";
}

void PrintText(const VmDetails& d) {
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
    PrintSpec("Desired", d.name, r->desired_json);
  }
  if (observed != nullptr) {
    PrintSpec("Observed", d.name, r ? r->observed_json : "");
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
    for (const MigrationRecord& m : *d.migrations) {
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
void PrintStructuredVm(const VmDetails& d, const std::string& format) {
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
    for (const MigrationRecord& m : *d.migrations) {
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

// `describe node NAME`: the node's status, capacity, storage and networks, and its VMs.
void PrintNodeText(const NodeDetails& d) {
  const NodeStatus& n = *d.status;
  std::cout << "Name:        " << n.name << "\n"
            << "URI:         " << n.uri << "\n"
            << "Driver:      " << (n.driver.empty() ? "-" : n.driver) << "\n"
            << "Reachable:   " << (n.reachable ? "yes" : "no") << "\n";
  if (!n.reachable) std::cout << "Error:       " << n.error << "\n";
  std::string labels;
  for (const auto& [k, v] : n.labels) labels += (labels.empty() ? "" : ",") + k + "=" + v;
  std::cout << "Labels:      " << (labels.empty() ? "<none>" : labels) << "\n"
            << "Draining:    " << (n.draining ? "yes" : "no") << "\n"
            << "vCPUs:       " << n.vcpus_allocated << " allocated of " << n.vcpus << "\n"
            << "Memory:      " << FormatSize(n.memory_allocated) << " allocated of " << FormatSize(n.memory) << "\n"
            << "Domains:     " << n.vms << " (" << n.vms_managed << " gitvirt's)\n";
  if (d.observed != nullptr && d.observed->reachable) {
    std::cout << "Pools:\n";
    if (d.observed->pools.empty()) std::cout << "  none\n";
    for (const ObservedPool& p : d.observed->pools) {
      std::cout << "  " << p.name << "  " << (p.path.empty() ? "-" : p.path) << "  " << (p.active ? "active" : "inactive")
                << "  " << p.volumes.size() << " volume(s)\n";
    }
    std::cout << "Networks:\n";
    if (d.observed->networks.empty()) std::cout << "  none\n";
    for (const std::string& net : d.observed->networks) std::cout << "  " << net << "\n";
    std::cout << "VMs:\n";
    if (d.observed->vms.empty()) std::cout << "  none\n";
    for (const ObservedVm& vm : d.observed->vms) {
      std::cout << "  " << vm.name << "  " << EnumName(vm.power) << "  " << vm.actual.vcpus << " vCPU  "
                << FormatSize(vm.actual.memory) << (vm.Owned() ? "" : "  (not gitvirt's)") << "\n";
    }
  }
  std::cout << "Placed here by the manifests:\n";
  if (d.vms.empty()) std::cout << "  none\n";
  for (const ResourceStatus* r : d.vms) std::cout << "  " << r->name << "  " << EnumName(r->sync) << "\n";
}

void PrintStructuredNode(const NodeDetails& d, const std::string& format) {
  using api_views::Json;
  Json doc = {{"kind", "Node"}, {"name", d.status->name}, {"status", api_views::Node(*d.status)}};
  Json pools = Json::array(), networks = Json::array(), vms = Json::array();
  if (d.observed != nullptr) {
    for (const ObservedPool& p : d.observed->pools) {
      pools.push_back({{"name", p.name}, {"path", p.path}, {"active", p.active}, {"volumes", p.volumes.size()}});
    }
    for (const std::string& net : d.observed->networks) networks.push_back(net);
    for (const ObservedVm& vm : d.observed->vms) {
      vms.push_back({{"name", vm.name},
                     {"power", EnumName(vm.power)},
                     {"vcpus", vm.actual.vcpus},
                     {"memory", vm.actual.memory},
                     {"managed", vm.Owned()}});
    }
  }
  doc["pools"] = std::move(pools);
  doc["networks"] = std::move(networks);
  doc["vms"] = std::move(vms);
  Json placed = Json::array();
  for (const ResourceStatus* r : d.vms) placed.push_back(r->name);
  doc["placed"] = std::move(placed);
  PrintDocument(std::cout, doc, format);
}

int RunDescribe(const GlobalOptions& global, const DescribeOptions& opts) {
  auto view = GatherView(global, opts.source);
  if (!view) return kExitError;
  WarnUnreachable(*view);
  const std::string name = opts.name.substr(opts.name.find('/') == std::string::npos ? 0 : opts.name.find('/') + 1);
  if (opts.kind == "node" || opts.kind == "nodes" || opts.kind == "Node") {
    auto d = DescribeNode(*view, name);
    if (!d) {
      PrintError(d.error());
      return kExitError;
    }
    if (opts.output == "table") {
      PrintNodeText(*d);
    } else {
      PrintStructuredNode(*d, opts.output);
    }
    return kExitOk;
  }
  auto d = DescribeVm(*view->session, *view, name);
  if (!d) {
    PrintError(d.error());
    return kExitError;
  }
  if (opts.output == "table") {
    PrintText(*d);
  } else {
    PrintStructuredVm(*d, opts.output);
  }
  return kExitOk;
}

}  // namespace

void AddDescribeCommand(CLI::App& app, GlobalOptions& global, CommandResult& result) {
  auto opts = std::make_shared<DescribeOptions>();
  auto* cmd = app.add_subcommand("describe", "Show one VM (desired, observed, drift, snapshots, last job) or one node");
  AddChoice(cmd, "kind", opts->kind, {"vm", "vms", "VirtualMachine", "node", "nodes", "Node"}, "vm | node")->required();
  cmd->add_option("name", opts->name, "Its name (NotFound if there is none)")->required();
  AddSourceOptions(cmd, opts->source);
  AddOutputOption(cmd, opts->output, {"table", "json", "yaml"});
  SetExamples(cmd, {"gitvirt describe vm web-01", "gitvirt describe node hv1", "gitvirt describe vm web-01 -o yaml"});
  cmd->callback([&global, &result, opts] { result.exit_code = RunDescribe(global, *opts); });
}

}  // namespace gitvirt::cli
