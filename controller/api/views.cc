#include "gitvirt/api/views.h"

#include <algorithm>
#include <cmath>
#include <map>

namespace gitvirt::api_views {
namespace {

template <typename E>
std::string Name(E value) {
  return std::string(EnumName(value));
}

Json Seconds(const std::optional<TimePoint>& from, const std::optional<TimePoint>& to) {
  if (!from || !to) return nullptr;
  return static_cast<double>((*to - *from).count());
}

Json LabelsJson(const Labels& labels) {
  Json out = Json::object();
  for (const auto& [key, value] : labels) out[key] = value;
  return out;
}

// Statuses a step has left behind it (it will not run again in this job).
bool StepDone(StepStatus status) {
  return status != StepStatus::kPending && status != StepStatus::kRunning &&
         status != StepStatus::kUndoing;
}

bool StepActive(StepStatus status) {
  return status == StepStatus::kRunning || status == StepStatus::kUndoing;
}

Json StepJson(const StepRecord& step) {
  return Json{{"id", step.id},
              {"seq", step.seq},
              {"type", step.type},
              {"node", step.node},
              {"target", step.target},
              {"status", Name(step.status)},
              {"done", StepDone(step.status)},
              {"attempt", step.attempt},
              {"error", step.error},
              {"startedAt", Time(step.started_at)},
              {"finishedAt", Time(step.finished_at)},
              {"durationSeconds", Seconds(step.started_at, step.finished_at)},
              {"action", EmbeddedJson(step.action_json)},
              {"result", EmbeddedJson(step.result_json)}};
}

// What happened to each target (a VM, an image...): the step running on it now, else the last
// step that ran on it, with the first error any of its steps had.
Json TargetsJson(const std::vector<const StepRecord*>& ordered) {
  struct TargetState {
    const StepRecord* decisive = nullptr;
    std::string error;
    int steps = 0;
    int done = 0;
  };
  std::vector<std::string> order;
  std::map<std::string, TargetState> states;
  for (const StepRecord* step : ordered) {
    if (step->target.empty()) continue;
    auto [it, inserted] = states.try_emplace(step->target);
    if (inserted) order.push_back(step->target);
    TargetState& state = it->second;
    ++state.steps;
    if (StepDone(step->status)) ++state.done;
    if (state.error.empty() && !step->error.empty()) state.error = step->error;
    const bool decisive_active = state.decisive && StepActive(state.decisive->status);
    if (!decisive_active &&
        (StepActive(step->status) || step->status != StepStatus::kPending || !state.decisive)) {
      state.decisive = step;
    }
  }
  Json out = Json::array();
  for (const std::string& target : order) {
    const TargetState& state = states.at(target);
    const auto slash = target.find('/');
    out.push_back(
        Json{{"target", target},
             {"kind", slash == std::string::npos ? std::string() : target.substr(0, slash)},
             {"name", slash == std::string::npos ? target : target.substr(slash + 1)},
             {"status", Name(state.decisive->status)},
             {"step", state.decisive->id},
             {"node", state.decisive->node},
             {"steps", state.steps},
             {"stepsDone", state.done},
             {"error", state.error}});
  }
  return out;
}

Json RollbackJson(const JobRecord& job, const std::vector<const StepRecord*>& ordered,
                  const Json& summary) {
  int undone = 0, undo_failed = 0, not_undoable = 0, undoing = 0;
  for (const StepRecord* step : ordered) {
    switch (step->status) {
      case StepStatus::kUndone:
        ++undone;
        break;
      case StepStatus::kUndoFailed:
        ++undo_failed;
        break;
      case StepStatus::kNotUndoable:
        ++not_undoable;
        break;
      case StepStatus::kUndoing:
        ++undoing;
        break;
      default:
        break;
    }
  }
  std::string outcome = "none";
  switch (job.status) {
    case JobStatus::kRollingBack:
      outcome = "in-progress";
      break;
    case JobStatus::kRolledBack:
      outcome = "rolled-back";
      break;
    case JobStatus::kRollbackIncomplete:
      outcome = "incomplete";
      break;
    default:
      if (undoing > 0)
        outcome = "in-progress";
      else if (undo_failed > 0)
        outcome = "incomplete";
      else if (undone > 0)
        outcome = "rolled-back";
      break;
  }
  Json out{{"strategy", job.strategy},  {"attempted", outcome != "none"},
           {"outcome", outcome},        {"undone", undone},
           {"undoFailed", undo_failed}, {"notUndoable", not_undoable},
           {"details", nullptr}};
  // The executor's own account, when it wrote one, is the authority on the outcome.
  if (summary.is_object() && summary.contains("rollback")) {
    const Json& details = summary["rollback"];
    out["details"] = details;
    if (details.is_object() && details.contains("outcome") && details["outcome"].is_string()) {
      out["outcome"] = details["outcome"];
      out["attempted"] = details["outcome"] != "none";
    }
  }
  return out;
}

}  // namespace

std::string Dump(const Json& json) {
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

Json Time(const std::optional<TimePoint>& time) {
  if (!time || *time == TimePoint{}) return nullptr;
  return FormatTime(*time);
}

Json EmbeddedJson(const std::string& text) {
  if (text.empty()) return nullptr;
  Json parsed = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return text;
  return parsed;
}

Json ResourceSummary(const ResourceStatus& r) {
  std::optional<bool> ready;
  Json blocked = nullptr;  // "blocked by window W until T": a sync window holds its changes
  for (const Condition& c : r.conditions) {
    if (c.type == "Ready") ready = c.status;
    if (c.type == "Pending" && c.reason == "BlockedByWindow") blocked = c.message;
  }
  return Json{{"kind", Name(r.kind)},     {"name", r.name},
              {"node", r.node},           {"labels", LabelsJson(r.labels)},
              {"tags", r.tags},           {"sync", Name(r.sync)},
              {"health", Name(r.health)}, {"ready", ready ? Json(*ready) : Json(nullptr)},
              {"revision", r.revision},   {"power", r.power},
              {"address", r.address},     {"addressSource", r.address_source},
              {"cluster", r.cluster},
              {"group", r.group},         {"driftCount", r.drift.size()},
              {"lastJob", r.last_job},    {"blocked", blocked}};
}

Json ResourceDetail(const ResourceStatus& r) {
  Json out = ResourceSummary(r);
  Json conditions = Json::array();
  for (const Condition& c : r.conditions) {
    conditions.push_back(Json{{"type", c.type},
                              {"status", c.status},
                              {"reason", c.reason},
                              {"message", c.message},
                              {"since", Time(c.since)}});
  }
  Json drift = Json::array();
  for (const FieldChange& change : r.drift) {
    drift.push_back(Json{{"path", change.path},
                         {"desired", change.after},
                         {"observed", change.before},
                         {"changeClass", Name(change.change_class)}});
  }
  out["conditions"] = std::move(conditions);
  out["drift"] = std::move(drift);
  out["desired"] = EmbeddedJson(r.desired_json);
  out["observed"] = EmbeddedJson(r.observed_json);
  return out;
}

Json Node(const NodeStatus& n) {
  return Json{{"name", n.name},
              {"uri", n.uri},
              {"driver", n.driver},
              {"reachable", n.reachable},
              {"error", n.error},
              {"labels", LabelsJson(n.labels)},
              {"draining", n.draining},
              {"capacity", Json{{"vcpus", n.vcpus}, {"memory", n.memory}}},
              {"allocated", Json{{"vcpus", n.vcpus_allocated}, {"memory", n.memory_allocated}}},
              {"vms", n.vms},
              {"vmsManaged", n.vms_managed}};
}

Json Cluster(const ClusterStatus& c) {
  Json groups = Json::array();
  for (const ClusterGroupStatus& g : c.groups) {
    Json members = Json::array();
    for (const ClusterMemberStatus& m : g.members) {
      members.push_back(
          Json{{"name", m.name}, {"node", m.node}, {"power", m.power}, {"ready", m.ready}});
    }
    groups.push_back(Json{{"name", g.name},
                          {"role", g.role},
                          {"desired", g.desired},
                          {"ready", g.ready},
                          {"members", std::move(members)}});
  }
  return Json{
      {"name", c.name}, {"desired", c.desired}, {"ready", c.ready}, {"groups", std::move(groups)}};
}

Json Policy(const PolicyStatus& p) {
  return Json{{"kind", Name(p.kind)},        {"name", p.name},
              {"schedule", p.schedule},      {"suspended", p.suspended},
              {"lastRun", Time(p.last_run)}, {"nextRun", Time(p.next_run)},
              {"lastResult", p.last_result}};
}

Json Snapshot(const SnapshotEntry& s) {
  return Json{{"vm", s.vm},
              {"node", s.node},
              {"name", s.name},
              {"policy", s.policy},
              {"description", s.description},
              {"state", s.state},
              {"created", Time(s.created)}};
}

Json Backup(const BackupEntry& b) {
  Json out{{"id", b.id},
           {"vm", b.vm},
           {"node", b.node},
           {"policy", b.policy},
           {"location", b.location},
           {"mode", b.mode},
           {"compression", b.compression},
           {"bytes", b.bytes},
           {"verified", b.verified},
           {"protected", b.is_protected},
           {"status", b.status},
           {"created", Time(b.created)}};
  if (!b.error.empty()) out["error"] = b.error;
  return out;
}

Json DiagnosticView(const Diagnostic& d) {
  return Json{{"severity", Name(d.severity)}, {"file", d.location.file}, {"line", d.location.line},
              {"column", d.location.column},  {"path", d.path},          {"message", d.message},
              {"text", d.ToString()}};
}

double JobProgress(const JobRecord& job) {
  if (job.steps_total <= 0) return IsFinished(job.status) ? 100.0 : 0.0;
  const double percent = 100.0 * job.steps_done / job.steps_total;
  return std::round(std::min(percent, 100.0) * 10.0) / 10.0;
}

Json JobSummary(const JobRecord& job) {
  return Json{{"id", job.id},
              {"kind", job.kind},
              {"status", Name(job.status)},
              {"finished", IsFinished(job.status)},
              {"strategy", job.strategy},
              {"revision", job.revision},
              {"source", job.source},
              {"error", job.error},
              {"createdAt", Time(job.created_at)},
              {"startedAt", Time(job.started_at)},
              {"finishedAt", Time(job.finished_at)},
              {"durationSeconds", Seconds(job.started_at, job.finished_at)},
              {"cancelRequested", job.cancel_requested},
              {"ownerPid", job.owner_pid},
              {"stepsTotal", job.steps_total},
              {"stepsDone", job.steps_done},
              {"progress", JobProgress(job)}};
}

Json JobDetail(const JobRecord& job, const std::vector<StepRecord>& steps) {
  std::vector<const StepRecord*> ordered;
  ordered.reserve(steps.size());
  for (const StepRecord& step : steps) ordered.push_back(&step);
  std::stable_sort(ordered.begin(), ordered.end(),
                   [](const StepRecord* a, const StepRecord* b) { return a->seq < b->seq; });

  Json out = JobSummary(job);
  Json step_list = Json::array();
  Json current = Json::array();
  Json errors = Json::array();
  for (const StepRecord* step : ordered) {
    step_list.push_back(StepJson(*step));
    if (StepActive(step->status)) current.push_back(step->id);
    if (!step->error.empty()) {
      errors.push_back(Json{{"step", step->id}, {"target", step->target}, {"error", step->error}});
    }
  }
  const Json summary = EmbeddedJson(job.summary_json);
  out["currentSteps"] = std::move(current);
  out["steps"] = std::move(step_list);
  out["targets"] = TargetsJson(ordered);
  out["errors"] = std::move(errors);
  out["rollback"] = RollbackJson(job, ordered, summary);
  out["summary"] = summary;
  out["planUrl"] = "/api/v1/plans/" + job.id;
  out["eventsUrl"] = "/api/v1/jobs/" + job.id + "/events";
  return out;
}

Json Event(const EventRecord& e) {
  return Json{{"jobId", e.job_id},   {"seq", e.seq},           {"time", Time(e.time)},
              {"stepId", e.step_id}, {"level", Name(e.level)}, {"message", e.message}};
}

Json JobProgressView(const JobRecord& job) {
  return Json{{"jobId", job.id},
              {"status", Name(job.status)},
              {"finished", IsFinished(job.status)},
              {"stepsDone", job.steps_done},
              {"stepsTotal", job.steps_total},
              {"progress", JobProgress(job)}};
}

Json Status(const StatusSnapshot& s, const std::optional<JobRecord>& current_job) {
  Json by_sync = Json::object();
  for (const auto& [value, name] : EnumTable<SyncStatus>::kNames) by_sync[std::string(name)] = 0;
  Json by_health = Json::object();
  for (const auto& [value, name] : EnumTable<Health>::kNames) by_health[std::string(name)] = 0;
  Json by_kind = Json::object();
  for (const ResourceStatus& r : s.resources) {
    by_sync[Name(r.sync)] = by_sync[Name(r.sync)].get<int>() + 1;
    by_health[Name(r.health)] = by_health[Name(r.health)].get<int>() + 1;
    const std::string kind = Name(r.kind);
    by_kind[kind] = by_kind.contains(kind) ? by_kind[kind].get<int>() + 1 : 1;
  }
  int reachable = 0;
  for (const NodeStatus& n : s.nodes) reachable += n.reachable ? 1 : 0;
  int clusters_ready = 0;
  for (const ClusterStatus& c : s.clusters) clusters_ready += c.ready >= c.desired ? 1 : 0;

  Json diagnostics = Json::array();
  for (const Diagnostic& d : s.diagnostics) diagnostics.push_back(DiagnosticView(d));
  Json policies = Json::array();
  for (const PolicyStatus& p : s.policies) policies.push_back(Policy(p));

  return Json{{"ready", s.ready},
              {"generation", s.generation},
              {"generatedAt", Time(s.generated_at)},
              {"repo", s.source},
              {"ref", s.ref},
              {"revision", s.revision},
              {"revisionAuthor", s.revision_author},
              {"revisionMessage", s.revision_message},
              {"fetchedRevision", s.fetched_revision},
              // The newest commit was refused: the revision in force is older than the one fetched.
              {"newestRefused", !s.fetched_revision.empty() && s.fetched_revision != s.revision &&
                                    (s.last_sync_result == "invalid" || !s.diagnostics.empty())},
              {"lastSync", Time(s.last_sync)},
              {"lastSyncResult", s.last_sync_result},
              {"lastError", s.last_error},
              {"diagnostics", std::move(diagnostics)},
              {"counts", Json{{"resources", s.resources.size()},
                              {"sync", std::move(by_sync)},
                              {"health", std::move(by_health)},
                              {"kinds", std::move(by_kind)},
                              {"nodes", s.nodes.size()},
                              {"nodesReachable", reachable},
                              {"clusters", s.clusters.size()},
                              {"clustersReady", clusters_ready},
                              {"snapshots", s.snapshots.size()},
                              {"backups", s.backups.size()}}},
              {"policies", std::move(policies)},
              {"currentJob", current_job ? JobSummary(*current_job) : Json(nullptr)},
              {"latestPlanId", s.latest_plan_id}};
}

}  // namespace gitvirt::api_views
