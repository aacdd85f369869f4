#include "gitvirt/engine/fleet_view.h"

#include <nlohmann/json.hpp>

#include "gitvirt/hypervisor/node_set.h"
#include "gitvirt/engine/readiness.h"
#include "gitvirt/engine/session.h"
#include "gitvirt/engine/status_builder.h"

namespace gitvirt {

FleetView GatherFleetView(Session& session, const SourceSelection& selection) {
  FleetView view;
  const ControllerConfig& config = session.config();
  if (!selection.empty() || !config.source.path.empty() || !config.source.repo.empty()) {
    if (auto desired = session.ReadDesired(selection)) {
      view.desired = std::move(*desired);
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

}  // namespace

Result<VmDetails> DescribeVm(Session& session, const FleetView& view, const std::string& name) {
  VmDetails d;
  d.name = name;
  for (const ResourceStatus& s : view.resources) {
    if (s.kind == Kind::kVirtualMachine && s.name == name) d.resource = &s;
  }
  for (const ObservedNode& n : view.observed.nodes) {
    if (const ObservedVm* vm = n.FindVm(name)) d.observed = vm;
  }
  if (d.resource == nullptr && d.observed == nullptr) {
    return Fail(ErrorCode::kNotFound, "no VM named " + name + " in the manifests or on any node");
  }
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
