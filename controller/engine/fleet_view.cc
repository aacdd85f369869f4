#include "gitvirt/engine/fleet_view.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "gitvirt/core/suggest.h"
#include "gitvirt/engine/manual.h"
#include "gitvirt/engine/readiness.h"
#include "gitvirt/engine/session.h"
#include "gitvirt/engine/status_builder.h"
#include "gitvirt/hypervisor/node_set.h"

namespace gitvirt {

Result<FleetView> GatherFleetView(Session& session, const SourceSelection& selection) {
  FleetView view;
  const ControllerConfig& config = session.config();
  if (!selection.empty() || !config.source.path.empty() || !config.source.repo.empty()) {
    if (auto desired = session.ReadDesired(selection)) {
      view.desired = std::move(*desired);
    } else if (!selection.empty()) {
      // Manifests named on the command line (-f, --repo) that cannot be read are the user's
      // mistake, not a reason to show the nodes alone.
      return std::unexpected(desired.error());
    } else {
      session.Notice(desired.error().ToString());
      session.Notice("showing what the nodes run, without the manifests");
    }
  }
  view.observed = session.Observe();
  if (view.desired) {
    if (auto plan = session.MakePlan(*view.desired, view.observed, PlanRequest{})) {
      view.plan = std::move(*plan);
    } else {
      session.Notice(plan.error().ToString());
    }
  }
  StatusInputs inputs;
  inputs.desired = view.desired ? &view.desired->state : nullptr;
  inputs.observed = &view.observed;
  inputs.plan = view.plan ? &*view.plan : nullptr;
  // Addresses and readiness of the running VMs, asked of their guests now.
  inputs.guests = ProbeGuests(session.nodes(), inputs.desired, view.observed);
  view.resources = BuildResourceStatuses(inputs);
  view.nodes = BuildNodeStatuses(config, view.observed);
  if (view.desired) view.clusters = BuildClusterStatuses(view.desired->state, view.resources);
  return view;
}

namespace {

MigrationRecord FromStep(const StepRecord& s) {
  const auto action = nlohmann::json::parse(s.action_json, nullptr, false);
  const auto result = nlohmann::json::parse(s.result_json, nullptr, false);
  auto text = [](const nlohmann::json& j, const char* key, const std::string& fallback = "?") {
    return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : fallback;
  };
  MigrationRecord m;
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


std::vector<std::string> VmNames(const FleetView& view) {
  std::set<std::string> names;
  for (const ResourceStatus& r : view.resources) {
    if (r.kind == Kind::kVirtualMachine) names.insert(r.name);
  }
  for (const ObservedNode& n : view.observed.nodes) {
    for (const ObservedVm& vm : n.vms) names.insert(vm.name);
  }
  return {names.begin(), names.end()};
}

// The names of what the view holds of `type`.
std::vector<std::string> NamesInView(Session* session, const FleetView& view, std::string_view type) {
  std::vector<std::string> names;
  if (type == "VirtualMachine") return VmNames(view);
  if (type == "Node") {
    for (const NodeStatus& n : view.nodes) names.push_back(n.name);
  } else if (type == "Image") {
    for (const ResourceStatus& r : view.resources) {
      if (r.kind == Kind::kImage) names.push_back(r.name);
    }
  } else if (type == "Cluster") {
    for (const ClusterStatus& c : view.clusters) names.push_back(c.name);
  } else if (type == "Snapshot") {
    for (const ObservedNode& n : view.observed.nodes) {
      for (const ObservedVm& vm : n.vms) {
        for (const ObservedSnapshot& snap : vm.snapshots) names.push_back(snap.name);
      }
    }
  } else if (type == "Backup" && session != nullptr) {
    if (auto records = ListBackups(*session, BackupFilter{})) {
      for (const BackupRecord& r : *records) names.push_back(r.id);
    }
  }
  return names;
}

Error NotFoundInView(const FleetView& view, std::string_view type, const std::string& name) {
  return NotFoundError(type, name, NamesInView(nullptr, view, type));
}

}  // namespace

Result<void> FindInView(Session& session, const FleetView& view, std::string_view type, const std::string& name) {
  const std::vector<std::string> names = NamesInView(&session, view, type);
  if (std::find(names.begin(), names.end(), name) != names.end()) return {};
  return std::unexpected(NotFoundError(type, name, names));
}

Result<NodeDetails> DescribeNode(const FleetView& view, const std::string& name) {
  NodeDetails d;
  for (const NodeStatus& n : view.nodes) {
    if (n.name == name) d.status = &n;
  }
  if (d.status == nullptr) return std::unexpected(NotFoundInView(view, "Node", name));
  d.observed = view.observed.FindNode(name);
  for (const ResourceStatus& r : view.resources) {
    if (r.kind == Kind::kVirtualMachine && r.node == name) d.vms.push_back(&r);
  }
  return d;
}

Result<VmDetails> DescribeVm(Session& session, const FleetView& view, const std::string& name) {
  VmDetails d;
  d.name = name;
  for (const ResourceStatus& s : view.resources) {
    if (s.kind == Kind::kVirtualMachine && s.name == name) d.resource = &s;
  }
  for (const ObservedNode& n : view.observed.nodes) {
    if (const ObservedVm* vm = n.FindVm(name)) d.observed = vm;
  }
  if (d.resource == nullptr && d.observed == nullptr) return std::unexpected(NotFoundInView(view, "VirtualMachine", name));
  if (d.observed == nullptr || !d.observed->Owned()) return d;
  if (Node* node = session.nodes().Find(d.observed->node)) {
    if (auto snaps = node->snapshots().List(name)) d.snapshots = std::move(*snaps);
  }
  auto journal = session.journal();
  if (!journal) return d;
  if (auto steps = (*journal)->FindSteps(StepFilter{"migrate", "VirtualMachine/" + name, 5})) {
    d.migrations.emplace();
    for (const StepRecord& s : *steps) d.migrations->push_back(FromStep(s));
  }
  const std::string& job_id = d.observed->owner->job;
  if (job_id.empty()) return d;
  if (auto job = (*journal)->GetJob(job_id)) d.last_job = std::move(*job);
  if (auto events = (*journal)->GetEvents(job_id)) {
    for (EventRecord& e : *events) {
      if (e.step_id.find("/" + name) != std::string::npos) d.last_job_events.push_back(std::move(e));
    }
  }
  return d;
}

}  // namespace gitvirt
