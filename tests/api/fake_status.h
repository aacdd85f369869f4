// Test doubles for the status API: an in-memory journal (the reads the API makes, and the
// writes tests make to fill it), a StatusSource whose snapshot tests
// replace at will, a demo snapshot of N VMs, and a job that makes progress on its own. Used by
// the api tests and by demo_status_server (the dashboard's browser test and the benchmark).
//
// Everything here is thread-safe: the server reads from its io threads while tests (or the demo
// job thread) write.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "gitvirt/core/status.h"

namespace gitvirt::testing {

inline TimePoint NowSeconds() {
  return std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
}

// A Journal in memory, with the SQLite journal's read semantics (newest jobs first, steps_done
// counting every step no longer pending, running or undoing).
class FakeJournal : public JobHistory {
 public:
  Result<std::string> CreateJob(const JobRecord& job,
                                const std::vector<StepRecord>& steps) {
    std::lock_guard lock(mutex_);
    JobRecord record = job;
    if (record.id.empty()) record.id = "job-" + std::to_string(++next_id_);
    if (record.created_at == TimePoint{}) record.created_at = NowSeconds();
    Entry& entry = jobs_[record.id];
    entry.job = record;
    entry.steps = steps;
    for (StepRecord& step : entry.steps) step.job_id = record.id;
    return record.id;
  }

  // The defaults repeat the interface's, so tests can call the fake directly.
  Result<void> RecordJobStatus(const std::string& job_id, JobStatus status,
                               const std::string& error = {},
                               const std::string& summary_json = {}) {
    std::lock_guard lock(mutex_);
    Entry* entry = Find(job_id);
    if (!entry) return NotFound(job_id);
    entry->job.status = status;
    if (!error.empty()) entry->job.error = error;
    if (!summary_json.empty()) entry->job.summary_json = summary_json;
    if (status == JobStatus::kRunning && !entry->job.started_at)
      entry->job.started_at = NowSeconds();
    if (IsFinished(status)) entry->job.finished_at = NowSeconds();
    return {};
  }

  Result<void> RequestCancel(const std::string& job_id) {
    std::lock_guard lock(mutex_);
    Entry* entry = Find(job_id);
    if (!entry) return NotFound(job_id);
    entry->job.cancel_requested = true;
    return {};
  }

  Result<bool> CancelRequested(const std::string& job_id) {
    std::lock_guard lock(mutex_);
    Entry* entry = Find(job_id);
    if (!entry) return NotFound(job_id);
    return entry->job.cancel_requested;
  }

  Result<void> RecordStepStarted(const std::string& job_id, const std::string& step_id, int attempt,
                                 const std::string& undo_json) {
    return UpdateStep(job_id, step_id, [&](StepRecord& step) {
      step.status = StepStatus::kRunning;
      step.attempt = attempt;
      step.undo_json = undo_json;
      step.started_at = NowSeconds();
    });
  }

  Result<void> RecordStepUndoInfo(const std::string& job_id, const std::string& step_id,
                                  const std::string& undo_json) {
    return UpdateStep(job_id, step_id, [&](StepRecord& step) { step.undo_json = undo_json; });
  }

  Result<void> RecordStepFinished(const std::string& job_id, const std::string& step_id,
                                  StepStatus status, const std::string& error = {},
                                  const std::string& result_json = {}) {
    return UpdateStep(job_id, step_id, [&](StepRecord& step) {
      step.status = status;
      step.error = error;
      step.result_json = result_json;
      step.finished_at = NowSeconds();
    });
  }

  Result<void> RecordStepStatus(const std::string& job_id, const std::string& step_id,
                                StepStatus status, const std::string& error = {}) {
    return UpdateStep(job_id, step_id, [&](StepRecord& step) {
      step.status = status;
      if (!error.empty()) step.error = error;
    });
  }

  Result<void> AppendEvent(const std::string& job_id, const std::string& step_id, EventLevel level,
                           const std::string& message) {
    std::lock_guard lock(mutex_);
    Entry* entry = Find(job_id);
    if (!entry) return NotFound(job_id);
    EventRecord event;
    event.job_id = job_id;
    event.seq = static_cast<std::int64_t>(entry->events.size()) + 1;
    event.time = NowSeconds();
    event.step_id = step_id;
    event.level = level;
    event.message = message;
    entry->events.push_back(std::move(event));
    return {};
  }

  Result<std::vector<JobRecord>> ListJobs(const JobFilter& filter) override {
    std::lock_guard lock(mutex_);
    std::vector<JobRecord> matches = Matching(filter);
    const std::size_t first = std::min<std::size_t>(filter.offset, matches.size());
    const std::size_t last = std::min<std::size_t>(first + filter.limit, matches.size());
    return std::vector<JobRecord>(matches.begin() + first, matches.begin() + last);
  }

  Result<int> CountJobs(const JobFilter& filter) override {
    std::lock_guard lock(mutex_);
    return static_cast<int>(Matching(filter).size());
  }

  Result<JobRecord> GetJob(const std::string& job_id) override {
    std::lock_guard lock(mutex_);
    Entry* entry = Find(job_id);
    if (!entry) return NotFound(job_id);
    return WithCounts(*entry);
  }

  Result<std::vector<StepRecord>> GetSteps(const std::string& job_id) override {
    std::lock_guard lock(mutex_);
    Entry* entry = Find(job_id);
    if (!entry) return NotFound(job_id);
    return entry->steps;
  }

  Result<std::vector<StepRecord>> FindSteps(const StepFilter& filter) override {
    std::lock_guard lock(mutex_);
    std::vector<StepRecord> out;
    for (const auto& [id, entry] : jobs_) {
      for (const StepRecord& s : entry.steps) {
        if (s.type == filter.type && s.target == filter.target) out.push_back(s);
      }
    }
    std::stable_sort(out.begin(), out.end(), [](const StepRecord& a, const StepRecord& b) {
      return a.started_at.value_or(TimePoint{}) > b.started_at.value_or(TimePoint{});
    });
    if (filter.limit > 0 && out.size() > static_cast<std::size_t>(filter.limit)) out.resize(filter.limit);
    return out;
  }

  Result<std::vector<EventRecord>> GetEvents(const std::string& job_id,
                                             std::int64_t after_seq = 0) override {
    std::lock_guard lock(mutex_);
    Entry* entry = Find(job_id);
    if (!entry) return NotFound(job_id);
    ++event_reads_;
    std::vector<EventRecord> out;
    for (const EventRecord& event : entry->events) {
      if (event.seq > after_seq) out.push_back(event);
    }
    return out;
  }

  Result<std::vector<JobRecord>> UnfinishedJobs() override {
    std::lock_guard lock(mutex_);
    std::vector<JobRecord> out;
    for (auto& [id, entry] : jobs_) {
      if (!IsFinished(entry.job.status)) out.push_back(WithCounts(entry));
    }
    return out;
  }

  Result<void> RecordSync(const SyncRecord& record) {
    std::lock_guard lock(mutex_);
    syncs_.push_back(record);
    return {};
  }
  Result<std::vector<SyncRecord>> SyncHistory(int limit) override {
    std::lock_guard lock(mutex_);
    std::vector<SyncRecord> out(syncs_.rbegin(), syncs_.rend());
    if (static_cast<int>(out.size()) > limit) out.resize(limit);
    return out;
  }
  Result<void> SetState(const std::string& key, const std::string& value) {
    std::lock_guard lock(mutex_);
    state_[key] = value;
    return {};
  }
  Result<std::optional<std::string>> GetState(const std::string& key) {
    std::lock_guard lock(mutex_);
    const auto it = state_.find(key);
    if (it == state_.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }
  Result<void> Flush() { return {}; }

  // How many times GetEvents ran: tests see the event stream poll.
  int event_reads() const { return event_reads_.load(); }

 private:
  struct Entry {
    JobRecord job;
    std::vector<StepRecord> steps;
    std::vector<EventRecord> events;
  };

  static std::unexpected<Error> NotFound(const std::string& job_id) {
    return Fail(ErrorCode::kNotFound, "no job " + job_id);
  }

  Entry* Find(const std::string& job_id) {
    const auto it = jobs_.find(job_id);
    return it == jobs_.end() ? nullptr : &it->second;
  }

  template <typename F>
  Result<void> UpdateStep(const std::string& job_id, const std::string& step_id, F&& update) {
    std::lock_guard lock(mutex_);
    Entry* entry = Find(job_id);
    if (!entry) return NotFound(job_id);
    for (StepRecord& step : entry->steps) {
      if (step.id == step_id) {
        update(step);
        return {};
      }
    }
    return Fail(ErrorCode::kNotFound, "no step " + step_id + " in job " + job_id);
  }

  static JobRecord WithCounts(const Entry& entry) {
    JobRecord job = entry.job;
    job.steps_total = static_cast<int>(entry.steps.size());
    job.steps_done = static_cast<int>(
        std::count_if(entry.steps.begin(), entry.steps.end(), [](const StepRecord& step) {
          return step.status != StepStatus::kPending && step.status != StepStatus::kRunning &&
                 step.status != StepStatus::kUndoing;
        }));
    return job;
  }

  std::vector<JobRecord> Matching(const JobFilter& filter) {
    std::vector<JobRecord> out;
    for (auto& [id, entry] : jobs_) {
      if (filter.status && entry.job.status != *filter.status) continue;
      if (!filter.kind.empty() && entry.job.kind != filter.kind) continue;
      out.push_back(WithCounts(entry));
    }
    std::sort(out.begin(), out.end(), [](const JobRecord& a, const JobRecord& b) {
      return std::tie(a.created_at, a.id) > std::tie(b.created_at, b.id);
    });
    return out;
  }

  std::mutex mutex_;
  std::map<std::string, Entry> jobs_;
  std::vector<SyncRecord> syncs_;
  std::map<std::string, std::string> state_;
  int next_id_ = 0;
  std::atomic<int> event_reads_{0};
};

// A StatusSource whose snapshot is replaced by Publish (generation increases by one each time).
class FakeStatusSource : public StatusSource {
 public:
  explicit FakeStatusSource(StatusSnapshot snapshot = {}) { Publish(std::move(snapshot)); }

  void Publish(StatusSnapshot snapshot) {
    std::lock_guard lock(mutex_);
    snapshot.generation = ++generation_;
    snapshot_ = std::make_shared<const StatusSnapshot>(std::move(snapshot));
  }
  // Changes a copy of the current snapshot and publishes it.
  template <typename F>
  void Update(F&& change) {
    StatusSnapshot next = *Snapshot();
    change(next);
    Publish(std::move(next));
  }

  std::shared_ptr<const StatusSnapshot> Snapshot() const override {
    std::lock_guard lock(mutex_);
    return snapshot_;
  }
  JobHistory& history() const override { return journal_; }
  FakeJournal& fake_journal() { return journal_; }

 private:
  mutable std::mutex mutex_;
  std::uint64_t generation_ = 0;
  std::shared_ptr<const StatusSnapshot> snapshot_;
  mutable FakeJournal journal_;
};

inline std::string VmName(int i) {
  char name[32];
  std::snprintf(name, sizeof name, "%s-%03d", i % 4 == 3 ? "db" : "web", i + 1);
  return name;
}

// A plausible snapshot: `vms` VMs over two nodes (the last VMs of a 3-node cluster "pg"), one
// OutOfSync with drift, one Missing, one Degraded; a refused newest commit when `refused`.
inline StatusSnapshot DemoSnapshot(int vms, bool refused = false) {
  StatusSnapshot s;
  s.generated_at = NowSeconds();
  s.ready = true;
  s.source = "https://git.example.com/infra/vms.git";
  s.ref = "main";
  s.revision = "4f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39";
  s.revision_author = "Ada Lovelace <ada@example.com>";
  s.revision_message = "Grow web tier";
  s.fetched_revision = s.revision;
  s.last_sync = s.generated_at - std::chrono::seconds(12);
  s.last_sync_result = "out-of-sync";
  if (refused) {
    s.fetched_revision = "9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b";
    s.last_sync_result = "invalid";
    s.last_error = "the newest commit has 1 error";
    Diagnostic d;
    d.location = {"vms/web.yaml", 14, 11};
    d.path = "spec.memory";
    d.message = "expected a size like 4GiB, got 'lots'";
    s.diagnostics.push_back(d);
  }
  s.latest_plan_id = "plan-latest";
  s.latest_plan_json = R"({"formatVersion":1,"revision":"4f2a9c1","actions":[]})";

  for (int i = 0; i < vms; ++i) {
    ResourceStatus r;
    r.kind = Kind::kVirtualMachine;
    r.name = VmName(i);
    r.node = i % 2 == 0 ? "hv1" : "hv2";
    r.labels = {{"tier", i % 4 == 3 ? "db" : "web"}, {"env", i % 5 == 0 ? "dev" : "prod"}};
    r.tags = {"managed", i % 2 == 0 ? "rack-a" : "rack-b"};
    r.sync = SyncStatus::kSynced;
    r.health = Health::kHealthy;
    r.revision = s.revision;
    r.power = "Running";
    r.address = "10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 2);
    r.conditions = {{"Ready", true, "Running", "the guest agent answers", s.generated_at}};
    r.desired_json = R"({"vcpus":2,"memory":"4GiB","power":"Running"})";
    r.observed_json = R"({"vcpus":2,"memory":"4GiB","power":"Running"})";
    r.last_job = "job-1";
    if (i == 1) {
      r.sync = SyncStatus::kOutOfSync;
      r.drift = {{"memory", "4GiB", "8GiB", ChangeClass::kRestart}};
      r.desired_json = R"({"vcpus":2,"memory":"8GiB","power":"Running"})";
    }
    if (i == 2) {
      r.sync = SyncStatus::kMissing;
      r.health = Health::kUnknown;
      r.power = "";
      r.address = "";
      r.observed_json = "";
      r.conditions = {{"Ready", false, "NotFound", "no domain on any node", s.generated_at}};
    }
    if (i == 4) {
      r.health = Health::kDegraded;
      r.conditions = {{"Ready", false, "AgentSilent", "no guest agent answer", s.generated_at}};
    }
    if (vms >= 6 && i >= vms - 3) {
      r.cluster = "pg";
      r.group = i == vms - 3 ? "primary" : "replica";
      r.labels["tier"] = "db";
    }
    s.resources.push_back(std::move(r));
  }
  ResourceStatus policy;
  policy.kind = Kind::kSnapshotPolicy;
  policy.name = "nightly";
  policy.sync = SyncStatus::kSynced;
  policy.health = Health::kHealthy;
  s.resources.push_back(policy);
  std::sort(s.resources.begin(), s.resources.end(), [](const auto& a, const auto& b) {
    return std::tie(a.kind, a.name) < std::tie(b.kind, b.name);
  });

  for (int n = 1; n <= 2; ++n) {
    NodeStatus node;
    node.name = "hv" + std::to_string(n);
    node.uri = "qemu+ssh://hv" + std::to_string(n) + "/system";
    node.driver = "qemu";
    node.reachable = true;
    node.labels = {{"zone", n == 1 ? "a" : "b"}};
    node.vcpus = 64;
    node.memory = 256ULL << 30;
    node.vms = (vms + (n == 1 ? 1 : 0)) / 2;
    node.vms_managed = node.vms;
    node.vcpus_allocated = node.vms * 2;
    node.memory_allocated = static_cast<std::uint64_t>(node.vms) * (4ULL << 30);
    s.nodes.push_back(node);
  }

  if (vms >= 6) {
    ClusterStatus cluster;
    cluster.name = "pg";
    cluster.desired = 3;
    cluster.ready = 3;
    ClusterGroupStatus primary{"primary", "primary", 1, 1, {}};
    ClusterGroupStatus replica{"replica", "replica", 2, 2, {}};
    for (int i = vms - 3; i < vms; ++i) {
      ClusterMemberStatus member{VmName(i), i % 2 == 0 ? "hv1" : "hv2", "Running", true};
      (i == vms - 3 ? primary : replica).members.push_back(member);
    }
    cluster.groups = {primary, replica};
    s.clusters.push_back(cluster);
  }

  PolicyStatus snapshots_policy;
  snapshots_policy.kind = Kind::kSnapshotPolicy;
  snapshots_policy.name = "nightly";
  snapshots_policy.schedule = "0 2 * * *";
  snapshots_policy.last_run = s.generated_at - std::chrono::hours(10);
  snapshots_policy.next_run = s.generated_at + std::chrono::hours(14);
  snapshots_policy.last_result = "succeeded";
  s.policies.push_back(snapshots_policy);
  PolicyStatus backups_policy;
  backups_policy.kind = Kind::kBackupPolicy;
  backups_policy.name = "weekly";
  backups_policy.schedule = "0 3 * * 0";
  backups_policy.next_run = s.generated_at + std::chrono::hours(50);
  backups_policy.last_result = "failed: hv2 unreachable";
  s.policies.push_back(backups_policy);

  for (int i = 0; i < std::min(vms, 3); ++i) {
    s.snapshots.push_back({VmName(i), i % 2 == 0 ? "hv1" : "hv2", "nightly-20261122", "nightly",
                           "before upgrade", "running", s.generated_at - std::chrono::hours(20)});
    s.backups.push_back({"bk-" + std::to_string(i), VmName(i), i % 2 == 0 ? "hv1" : "hv2", "weekly",
                         "/backups/" + VmName(i), "snapshot", "zstd", 1000000ULL * (i + 1), true,
                         false, i == 2 ? "failed" : "complete",
                         s.generated_at - std::chrono::hours(30)});
  }
  s.metrics.reconciles_total = 42;
  s.metrics.reconcile_errors_total = 1;
  s.metrics.source_fetches_total = 40;
  s.metrics.source_loads_total = 4;
  s.metrics.last_reconcile_seconds = 0.25;
  s.metrics.jobs_total = 3;
  s.metrics.jobs_failed_total = 1;
  s.metrics.steps_total = 30;
  s.metrics.steps_failed_total = 2;
  s.metrics.steps_seconds_sum = 61.5;
  s.metrics.backups_total = 3;
  s.metrics.backups_failed_total = 1;
  s.metrics.backup_bytes_total = 3000000;
  s.metrics.backup_seconds_sum = 12.5;
  s.metrics.snapshots_total = 3;
  return s;
}

// Creates an apply job with one `start` step per target, pending.
inline std::string CreateDemoJob(FakeJournal& journal, const std::vector<std::string>& vms,
                                 std::string id = {}) {
  JobRecord job;
  job.id = std::move(id);
  job.kind = "apply";
  job.strategy = "FULL";
  job.revision = "4f2a9c1d";
  job.source = "https://git.example.com/infra/vms.git";
  job.plan_json = R"({"formatVersion":1,"actions":[)";
  std::vector<StepRecord> steps;
  for (std::size_t i = 0; i < vms.size(); ++i) {
    StepRecord step;
    step.id = "start/" + vms[i];
    step.seq = static_cast<int>(i);
    step.type = "start";
    step.node = i % 2 == 0 ? "hv1" : "hv2";
    step.target = "VirtualMachine/" + vms[i];
    step.action_json = R"({"type":"start","target":")" + step.target + R"("})";
    steps.push_back(step);
    job.plan_json += (i ? "," : "") + step.action_json;
  }
  job.plan_json += "]}";
  return journal.CreateJob(job, steps).value();
}

}  // namespace gitvirt::testing
