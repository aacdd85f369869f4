#include "gitvirt/core/suggest.h"
#include "gitvirt/engine/scheduler.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "gitvirt/core/cron.h"
#include "gitvirt/core/policy_plan.h"
#include "gitvirt/engine/backup.h"
#include "gitvirt/engine/timezone_db.h"
#include "gitvirt/store/backup_catalog.h"

namespace gitvirt {

using nlohmann::json;

namespace {

std::optional<TimePoint> TimeField(const json& j, const char* key) {
  if (!j.contains(key) || !j[key].is_number_integer()) return std::nullopt;
  return TimePoint{std::chrono::seconds{j[key].get<std::int64_t>()}};
}

const SnapshotPolicy* FindSnapshotPolicy(const DesiredState& d, const std::string& name) {
  for (const SnapshotPolicy& p : d.snapshot_policies) {
    if (p.meta.name == name) return &p;
  }
  return nullptr;
}

const BackupPolicy* FindBackupPolicy(const DesiredState& d, const std::string& name) {
  for (const BackupPolicy& p : d.backup_policies) {
    if (p.meta.name == name) return &p;
  }
  return nullptr;
}

// What the scheduler needs of either kind of policy.
struct PolicyView {
  Kind kind;
  std::string name;
  std::string schedule;
  std::string time_zone;
  bool suspend = false;
  int max_parallel = 3;
};

std::vector<PolicyView> Policies(const DesiredState& d) {
  std::vector<PolicyView> out;
  for (const SnapshotPolicy& p : d.snapshot_policies) {
    out.push_back({Kind::kSnapshotPolicy, p.meta.name, p.spec.schedule, p.spec.time_zone, p.spec.suspend,
                   p.spec.max_parallel});
  }
  for (const BackupPolicy& p : d.backup_policies) {
    out.push_back({Kind::kBackupPolicy, p.meta.name, p.spec.schedule, p.spec.time_zone, p.spec.suspend,
                   p.spec.max_parallel});
  }
  return out;
}

}  // namespace

struct PolicyScheduler::State {
  std::optional<TimePoint> first_seen;
  std::optional<TimePoint> slot;
  std::optional<TimePoint> last_run;
  std::string last_result;
  std::string last_job;
};

PolicyScheduler::PolicyScheduler(NodeSet& nodes, Journal& journal, const WallClock& clock, SchedulerOptions options,
                                 std::shared_ptr<spdlog::logger> log)
    : nodes_(nodes),
      journal_(journal),
      clock_(clock),
      options_(std::move(options)),
      log_(log ? std::move(log) : spdlog::default_logger()) {}

std::string PolicyScheduler::StateKey(Kind kind, const std::string& name) {
  return "schedule/" + std::string(EnumName(kind)) + "/" + name;
}

Result<PolicyScheduler::State> PolicyScheduler::LoadState(Kind kind, const std::string& name) {
  auto text = journal_.GetState(StateKey(kind, name));
  if (!text) return std::unexpected(text.error());
  State s;
  if (!*text) return s;
  const json j = json::parse(**text, nullptr, false);
  if (!j.is_object()) return s;
  s.first_seen = TimeField(j, "firstSeen");
  s.slot = TimeField(j, "slot");
  s.last_run = TimeField(j, "lastRun");
  s.last_result = j.value("lastResult", "");
  s.last_job = j.value("lastJob", "");
  return s;
}

Result<void> PolicyScheduler::SaveState(Kind kind, const std::string& name, const State& s) {
  json j = json::object();
  auto put = [&](const char* key, const std::optional<TimePoint>& t) {
    if (t) j[key] = t->time_since_epoch().count();
  };
  put("firstSeen", s.first_seen);
  put("slot", s.slot);
  put("lastRun", s.last_run);
  if (!s.last_result.empty()) j["lastResult"] = s.last_result;
  if (!s.last_job.empty()) j["lastJob"] = s.last_job;
  if (auto ok = journal_.SetState(StateKey(kind, name), j.dump()); !ok) return ok;
  // Durable before anything else happens: the slot must never run twice.
  return journal_.Flush();
}

Result<Plan> PolicyScheduler::PlanRun(Kind kind, const std::string& name, const DesiredState& desired,
                                      const ObservedState& observed, const std::string& revision) {
  const TimePoint now = clock_.Now();
  if (kind == Kind::kSnapshotPolicy) {
    const SnapshotPolicy* p = FindSnapshotPolicy(desired, name);
    if (p == nullptr) {
      std::vector<std::string> names;
      for (const SnapshotPolicy& sp : desired.snapshot_policies) names.push_back(sp.meta.name);
      return std::unexpected(NotFoundError("SnapshotPolicy", name, names));
    }
    auto tz = LoadTimeZone(p->spec.time_zone);
    if (!tz) return std::unexpected(tz.error().Wrap("SnapshotPolicy/" + name));
    return PlanSnapshotPolicyRun(*p, desired, observed, now, **tz, revision);
  }
  if (kind == Kind::kBackupPolicy) {
    const BackupPolicy* p = FindBackupPolicy(desired, name);
    if (p == nullptr) {
      std::vector<std::string> names;
      for (const BackupPolicy& bp : desired.backup_policies) names.push_back(bp.meta.name);
      return std::unexpected(NotFoundError("BackupPolicy", name, names));
    }
    auto catalog = BackupCatalog::Open(options_.jobs.runner.paths.state);
    if (!catalog) return std::unexpected(catalog.error());
    if (!p->spec.target.directory.empty()) {
      std::vector<std::string> problems;
      auto synced = SyncCatalogWithTarget(**catalog, p->spec.target.directory, &problems);
      if (!synced) return std::unexpected(synced.error().Wrap("BackupPolicy/" + name + ": scanning its target"));
      if (*synced > 0) log_->info("policy=BackupPolicy/{} catalog brought in line with {}: {} record(s)", name,
                                  p->spec.target.directory, *synced);
      for (const std::string& problem : problems) log_->warn("policy=BackupPolicy/{} skipped: {}", name, problem);
    }
    auto records = (*catalog)->List(BackupFilter{});
    if (!records) return std::unexpected(records.error());
    std::vector<CatalogBackup> backups;
    for (const BackupRecord& r : *records) {
      if (r.status != "complete") continue;
      backups.push_back(CatalogBackup{r.id, r.vm, r.node, r.policy, r.location, r.created, r.is_protected});
    }
    return PlanBackupPolicyRun(*p, desired, observed, backups, now, revision);
  }
  return Fail(ErrorCode::kInvalidArgument, std::string(EnumName(kind)) + " is not a policy kind");
}

Result<PolicyRunResult> PolicyScheduler::Execute(Kind kind, const std::string& name, int max_parallel,
                                                 const Plan& plan, const RunHooks& hooks) {
  PolicyRunResult r;
  r.kind = kind;
  r.policy = name;
  for (const Diagnostic& w : plan.warnings) r.warnings.push_back(w.message);
  if (plan.actions.empty()) {
    r.result = "nothing to do";
    r.status = JobStatus::kSucceeded;
    return r;
  }
  RunRequest request;
  request.kind = kind == Kind::kSnapshotPolicy ? "snapshot" : "backup";
  request.strategy = RollbackStrategy::kNone;
  request.parallel = std::max(1, max_parallel);
  request.interrupt = hooks.interrupt;
  request.shutdown = hooks.shutdown;
  request.on_progress = hooks.on_progress;
  auto outcome = RunJob(nodes_, journal_, plan, options_.jobs, request, log_);
  if (!outcome) return std::unexpected(outcome.error());
  r.ran = true;
  r.job_id = outcome->job_id;
  r.status = outcome->status;
  r.result = outcome->Ok() ? "succeeded"
                           : std::string(EnumName(outcome->status)) +
                                 (outcome->errors.empty() ? "" : ": " + outcome->errors.front());
  if (auto steps = journal_.GetSteps(outcome->job_id)) {
    for (const StepRecord& s : *steps) {
      const bool ok = s.status == StepStatus::kSucceeded;
      const bool failed = s.status == StepStatus::kFailed;
      if (s.type == EnumName(ActionType::kSnapshot)) {
        r.snapshots += ok;
        r.snapshots_failed += failed;
      } else if (s.type == EnumName(ActionType::kBackup)) {
        r.backups += ok;
        r.backups_failed += failed;
        if (ok) {
          const json result = json::parse(s.result_json, nullptr, false);
          if (result.is_object()) {
            r.backup_bytes += result.value("bytes", std::uint64_t{0});
            r.backup_seconds += result.value("seconds", 0.0);
          }
        }
      } else if (ok && (s.type == EnumName(ActionType::kSnapshotDelete) || s.type == EnumName(ActionType::kBackupDelete))) {
        ++r.deleted;
      }
    }
  }
  return r;
}

std::vector<PolicyRunResult> PolicyScheduler::RunDue(const DesiredState& desired, const ObservedState& observed,
                                                     const std::string& revision, const RunHooks& hooks) {
  std::vector<PolicyRunResult> results;
  for (const PolicyView& p : Policies(desired)) {
    if (hooks.shutdown != nullptr && hooks.shutdown->load()) break;
    if (p.schedule.empty() || p.suspend) continue;
    const std::string label = std::string(EnumName(p.kind)) + "/" + p.name;
    auto cron = ParseCron(p.schedule);
    auto tz = LoadTimeZone(p.time_zone);
    if (!cron || !tz) {
      log_->error("policy={} cannot be scheduled: {}", label, (!cron ? cron.error() : tz.error()).ToString());
      continue;
    }
    auto state = LoadState(p.kind, p.name);
    if (!state) {
      log_->error("policy={} reading its schedule state: {}", label, state.error().ToString());
      continue;
    }
    const TimePoint now = clock_.Now();
    if (!state->first_seen) {
      state->first_seen = now;
      if (auto ok = SaveState(p.kind, p.name, *state); !ok) {
        log_->error("policy={} recording it: {}", label, ok.error().ToString());
        continue;
      }
    }
    const ScheduleDecision decision = DecideSchedule(*cron, **tz, state->slot, *state->first_seen, now);
    if (!decision.due) continue;
    // The slot is taken before the run: whatever happens next, it never runs again.
    state->slot = decision.slot;
    if (auto ok = SaveState(p.kind, p.name, *state); !ok) {
      log_->error("policy={} recording slot: {}", label, ok.error().ToString());
      continue;
    }
    log_->info("policy={} due (slot {}); running", label, FormatTime(*decision.slot));
    PolicyRunResult r;
    auto plan = PlanRun(p.kind, p.name, desired, observed, revision);
    if (!plan) {
      r.kind = p.kind;
      r.policy = p.name;
      r.result = "failed: " + plan.error().ToString();
    } else {
      auto executed = Execute(p.kind, p.name, p.max_parallel, *plan, hooks);
      if (executed) {
        r = std::move(*executed);
      } else {
        r.kind = p.kind;
        r.policy = p.name;
        r.result = "failed: " + executed.error().ToString();
      }
    }
    r.slot = decision.slot;
    state->last_run = now;
    state->last_result = r.result;
    state->last_job = r.job_id;
    if (auto ok = SaveState(p.kind, p.name, *state); !ok) {
      log_->error("policy={} recording the run: {}", label, ok.error().ToString());
    }
    log_->info("policy={} slot {}: {}{}", label, FormatTime(*decision.slot), r.result,
               r.job_id.empty() ? "" : " (job " + r.job_id + ")");
    results.push_back(std::move(r));
  }
  return results;
}

Result<PolicyRunResult> PolicyScheduler::RunNow(Kind kind, const std::string& name, const DesiredState& desired,
                                                const ObservedState& observed, const std::string& revision,
                                                const RunHooks& hooks) {
  auto plan = PlanRun(kind, name, desired, observed, revision);
  if (!plan) return std::unexpected(plan.error());
  int max_parallel = 3;
  if (const SnapshotPolicy* p = FindSnapshotPolicy(desired, name); kind == Kind::kSnapshotPolicy && p) {
    max_parallel = p->spec.max_parallel;
  }
  if (const BackupPolicy* p = FindBackupPolicy(desired, name); kind == Kind::kBackupPolicy && p) {
    max_parallel = p->spec.max_parallel;
  }
  const TimePoint now = clock_.Now();
  auto r = Execute(kind, name, max_parallel, *plan, hooks);
  if (!r) return r;
  if (auto state = LoadState(kind, name)) {
    if (!state->first_seen) state->first_seen = now;
    state->last_run = now;
    state->last_result = r->result + " (run by hand)";
    state->last_job = r->job_id;
    (void)SaveState(kind, name, *state);
  }
  return r;
}

std::vector<PolicyStatus> PolicyScheduler::Statuses(const DesiredState& desired) {
  std::vector<PolicyStatus> out;
  const TimePoint now = clock_.Now();
  for (const PolicyView& p : Policies(desired)) {
    PolicyStatus s;
    s.kind = p.kind;
    s.name = p.name;
    s.schedule = p.schedule;
    s.suspended = p.suspend;
    auto state = LoadState(p.kind, p.name);
    if (state) {
      s.last_run = state->last_run;
      s.last_result = state->last_result;
    }
    if (!p.schedule.empty() && !p.suspend) {
      auto cron = ParseCron(p.schedule);
      auto tz = LoadTimeZone(p.time_zone);
      if (cron && tz) {
        const TimePoint first_seen = state && state->first_seen ? *state->first_seen : now;
        const ScheduleDecision d = DecideSchedule(*cron, **tz, state ? state->slot : std::nullopt, first_seen, now);
        s.next_run = d.due ? std::optional<TimePoint>(now) : d.next;
      } else if (!tz) {
        s.last_result = "error: " + tz.error().message;
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace gitvirt
