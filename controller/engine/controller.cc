#include "gitvirt/engine/controller.h"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "gitvirt/core/json.h"
#include "gitvirt/hypervisor/node_set.h"
#include "gitvirt/engine/scheduler.h"
#include "gitvirt/engine/status_builder.h"
#include "gitvirt/source/redact_url.h"
#include "gitvirt/store/backup_catalog.h"

namespace gitvirt {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::chrono::seconds kMaxBackoff{300};
constexpr std::chrono::seconds kFirstBackoff{10};

TimePoint Now() {
  return std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
}

// The backup counters come from the state file, not from this process: every backup step
// records its outcome there (BackupCatalog::RecordRun), so `gitvirt backup run` in another
// process counts as much as a scheduled run, and the totals survive a restart.
void CountBackups(BackupCatalog& catalog, ControllerMetrics& metrics) {
  auto totals = catalog.RunTotals();
  if (!totals) return;  // the last figures stay
  metrics.backups_total = totals->taken;
  metrics.backups_failed_total = totals->failed;
  metrics.backup_bytes_total = totals->bytes;
  metrics.backup_seconds_sum = totals->seconds;
}

}  // namespace

Controller::Controller(std::unique_ptr<Session> session)
    : session_(std::move(session)), config_(session_->config()), log_(session_->log()) {}

Controller::~Controller() = default;

Result<std::unique_ptr<Controller>> Controller::Start(ControllerConfig config, std::shared_ptr<spdlog::logger> log) {
  Session::Options options;
  options.log = std::move(log);
  options.hypervisor = HypervisorOptions::FromEnvironment();
  return Start(Session::FromConfig(std::move(config), std::move(options)));
}

Result<std::unique_ptr<Controller>> Controller::Start(std::unique_ptr<Session> session) {
  if (auto locked = session->Lock(); !locked) return std::unexpected(locked.error());
  auto journal = session->journal();
  if (!journal) return std::unexpected(journal.error());
  auto source = DesiredSource::Open(session->config(), {}, session->paths(), session->log());
  if (!source) return std::unexpected(source.error());
  std::unique_ptr<Controller> c(new Controller(std::move(session)));
  c->journal_ = *journal;
  c->source_ = std::move(*source);
  for (const NodeConfig& n : c->config_.nodes) {
    if (c->session_->nodes().Find(n.name) == nullptr) {
      c->log_->warn("node={} not connected: {} (retried every pass)", n.name, c->session_->nodes().ConnectError(n.name));
    }
  }
  if (auto applied = c->journal_->GetState("applied_revision"); applied && *applied) {
    c->applied_revision_ = **applied;
  }
  // Before anything new: what a killed or stopped controller left half done. A job that cannot
  // be recovered is failed with its reason, and the controller goes on.
  auto recovered = c->session_->RecoverUnfinishedJobs();
  if (!recovered) return std::unexpected(recovered.error().Wrap("recovering unfinished jobs"));
  auto scheduler = c->session_->MakeScheduler(c->session_->clock());
  if (!scheduler) return std::unexpected(scheduler.error());
  c->scheduler_ = std::move(*scheduler);
  if (auto catalog = BackupCatalog::Open(c->session_->paths().state)) {
    c->catalog_ = std::move(*catalog);
    CountBackups(*c->catalog_, c->metrics_);
  } else {
    c->log_->warn("backup catalog unavailable: {}", catalog.error().ToString());
  }
  c->Publish(nullptr, nullptr);
  return c;
}

// Runs the policies that are due, counts what they did, and refreshes what Publish shows of
// them; re-observes when a run changed something.
void Controller::RunPolicies(const std::atomic<bool>& stop, std::shared_ptr<ObservedState>& observed) {
  if (!scheduler_ || !desired_) return;
  RunHooks hooks;
  hooks.shutdown = &stop;
  hooks.on_progress = [this](const StepProgress& p) {
    bool first = false;
    {
      std::lock_guard lock(snapshot_mu_);
      first = current_job_ != p.job_id;
      current_job_ = p.job_id;
    }
    if (first) Publish(nullptr, nullptr);  // the dashboard follows the policy's job
  };
  bool ran = false;
  if (!stop) {
    for (const PolicyRunResult& r : scheduler_->RunDue(desired_->state, *observed, revision_, hooks)) {
      ran = ran || r.ran;
      if (r.ran) {
        ++metrics_.jobs_total;
        if (r.status != JobStatus::kSucceeded) ++metrics_.jobs_failed_total;
      }
      metrics_.snapshots_total += static_cast<std::uint64_t>(r.snapshots);
      metrics_.snapshots_failed_total += static_cast<std::uint64_t>(r.snapshots_failed);
    }
  }
  {
    std::lock_guard lock(snapshot_mu_);
    current_job_.clear();
  }
  if (ran) observed = std::make_shared<ObservedState>(session_->Observe());
  std::vector<PolicyStatus> statuses = scheduler_->Statuses(desired_->state);
  std::vector<BackupEntry> backups;
  if (catalog_) {
    CountBackups(*catalog_, metrics_);
    if (auto records = catalog_->List(BackupFilter{})) {
      for (const BackupRecord& r : *records) {
        backups.push_back(BackupEntry{r.id, r.vm, r.node, r.policy, r.location, r.mode, r.compression, r.bytes,
                                      r.verified, r.is_protected, r.status, r.created, r.error});
      }
    }
  }
  std::lock_guard lock(snapshot_mu_);
  policy_statuses_ = std::move(statuses);
  backup_entries_ = std::move(backups);
}

void Controller::RequestRefresh() {
  {
    std::lock_guard lock(wake_mu_);
    refresh_ = true;
  }
  wake_.notify_all();
}

std::shared_ptr<const StatusSnapshot> Controller::Snapshot() const {
  std::lock_guard lock(snapshot_mu_);
  return snapshot_;
}

void Controller::Run(const std::atomic<bool>& stop) {
  stop_ = &stop;
  while (!stop) {
    // The edge of the loop: a pass that throws (a library's exception, a record of a shape no
    // one expected) is counted and logged, and the next pass comes as usual; the API stays up.
    try {
      ReconcileOnce(stop);
    } catch (const std::exception& e) {
      ++metrics_.reconcile_errors_total;
      source_error_ = std::string("the reconcile pass failed: ") + e.what();
      log_->error("{}", source_error_);
      Publish(nullptr, nullptr);
    }
    std::unique_lock lock(wake_mu_);
    // The next pass: after the interval (at most 5 s, for self-heal and policies), or when a
    // failed apply's backoff is up if that is sooner. Passes during a backoff fetch and plan but
    // do not apply, so a new commit is still seen within its interval.
    auto until = Clock::now() + std::min<Clock::duration>(config_.source.interval, std::chrono::seconds(5));
    if (retry_at_ > Clock::now()) until = std::min(until, retry_at_);
    // Wake for SIGHUP, stop, the next pass; poll `stop` (set from a signal handler).
    while (!stop && !refresh_ && Clock::now() < until) {
      wake_.wait_for(lock, std::chrono::milliseconds(200));
    }
    if (refresh_) next_fetch_ = Clock::now();
    refresh_ = false;
  }
}

// Reads the desired state: git (when the fetch interval is up) or the directory (every pass;
// reading a working copy is cheap). Returns whether the desired state in force changed.
bool Controller::ReadSource(bool fetch) {
  // A repository is fetched when its interval is up (or on request); a working copy is read every
  // pass, as reading it is cheap.
  if (source_->ref().IsGit() && !fetch && desired_) return false;
  ++metrics_.source_fetches_total;
  auto revision = source_->Fetch();
  if (!revision) {
    source_error_ = revision.error().ToString();
    if (source_->ref().IsGit()) log_->error("source={} fetch failed: {}", config_.source.repo, source_error_);
    return false;
  }
  fetched_revision_ = *revision;
  if (*revision == revision_ || *revision == rejected_revision_) {
    source_error_.clear();
    return false;
  }
  auto read = source_->Load();
  if (!read) {
    source_error_ = read.error().ToString();
    return false;
  }
  source_error_.clear();
  ++metrics_.source_loads_total;
  if (!read->desired) {
    // Refused, and not read again until it changes; the last good state stays in force.
    rejected_revision_ = *revision;
    diagnostics_ = read->diagnostics;
    log_->error("revision={} is invalid ({} problem(s)); keeping revision {}", *revision, diagnostics_.size(),
                revision_.empty() ? "(none)" : revision_);
    for (const Diagnostic& d : diagnostics_) log_->error("  {}", d.ToString());
    (void)journal_->RecordSync(
        SyncRecord{0, Now(), *revision, "invalid", diagnostics_.empty() ? "" : diagnostics_.front().ToString(), ""});
    return false;
  }
  diagnostics_.clear();
  rejected_revision_.clear();
  revision_ = read->desired->revision;
  revision_author_ = read->desired->author;
  revision_message_ = read->desired->message;
  desired_ = std::move(*read->desired);
  log_->info("revision={} loaded: {} VMs", revision_, desired_->state.vms.size());
  return true;
}

void Controller::ReconcileOnce(const std::atomic<bool>& stop) {
  const auto started = Clock::now();
  ++metrics_.reconciles_total;
  const bool fetch = Clock::now() >= next_fetch_;
  if (fetch) next_fetch_ = Clock::now() + config_.source.interval;
  const bool new_revision = ReadSource(fetch);
  if (new_revision) {
    // A new commit is tried at once: the backoff was for the revision that failed.
    backoff_ = std::chrono::seconds(0);
    retry_at_ = {};
  }

  session_->nodes().RetryUnreachable();
  auto observed = std::make_shared<ObservedState>(session_->Observe());
  std::shared_ptr<Plan> plan;
  if (desired_) {
    auto made = session_->MakePlan(*desired_, *observed, PlanRequest::ServeRequest(config_));
    if (made) {
      plan = std::make_shared<Plan>(std::move(*made));
      latest_plan_json_ = PlanToJson(*plan).dump();
    } else {
      ++metrics_.reconcile_errors_total;
      source_error_ = made.error().ToString();
      last_sync_result_ = "failed";
      log_->error("revision={} cannot be planned: {}", revision_, source_error_);
    }
  }

  // Apply: a revision not yet applied (sync.auto), or drift (sync.selfHeal).
  const bool unapplied = revision_ != applied_revision_;
  const bool wants_apply = plan && !plan->Empty() && config_.sync.automatic && (unapplied || config_.sync.self_heal);
  const bool backing_off = Clock::now() < retry_at_;
  if (wants_apply && !backing_off && !stop) {
    Publish(observed, plan);
    log_->info("revision={} applying {} action(s){}", revision_, plan->actions.size(),
               unapplied ? "" : " (self-heal)");
    RunRequest run;
    run.kind = "sync";
    run.shutdown = &stop;
    run.on_progress = [this](const StepProgress& p) {
      bool first = false;
      {
        std::lock_guard lock(snapshot_mu_);
        first = current_job_ != p.job_id;
        current_job_ = p.job_id;
      }
      if (first) Publish(nullptr, nullptr);  // the dashboard follows the job from now on
    };
    auto outcome = session_->Run(*plan, run);
    {
      std::lock_guard lock(snapshot_mu_);
      current_job_.clear();
    }
    ++metrics_.jobs_total;
    last_sync_ = Now();
    if (outcome && outcome->Ok()) {
      applied_revision_ = revision_;
      (void)journal_->SetState("applied_revision", applied_revision_);
      last_sync_result_ = "synced";
      backoff_ = std::chrono::seconds(0);
      retry_at_ = {};
      failed_targets_.clear();
      metrics_.steps_total += outcome->succeeded;
    } else {
      ++metrics_.jobs_failed_total;
      last_sync_result_ = "failed";
      if (outcome) {
        metrics_.steps_total += outcome->succeeded + outcome->failed;
        metrics_.steps_failed_total += outcome->failed;
        for (const std::string& t : outcome->failed_targets) failed_targets_.insert(t);
        source_error_ = outcome->errors.empty() ? std::string(EnumName(outcome->status)) : outcome->errors.front();
      } else {
        source_error_ = outcome.error().ToString();
      }
      backoff_ = backoff_.count() == 0 ? kFirstBackoff : std::min(backoff_ * 2, kMaxBackoff);
      retry_at_ = Clock::now() + backoff_;
      log_->error("revision={} apply failed: {}; retrying in {}", revision_, source_error_, FormatDuration(backoff_));
    }
    (void)journal_->RecordSync(SyncRecord{0, Now(), revision_, last_sync_result_, source_error_,
                                          outcome ? outcome->job_id : ""});
    // Re-observe so the published status shows the result.
    observed = std::make_shared<ObservedState>(session_->Observe());
    if (auto again = session_->MakePlan(*desired_, *observed, PlanRequest::ServeRequest(config_))) {
      plan = std::make_shared<Plan>(std::move(*again));
    }
  } else if (plan && !(wants_apply && backing_off)) {  // a failure waiting for its retry stays "failed"
    if (!last_sync_) last_sync_ = Now();
    const bool in_sync = plan->Empty() && plan->pending.empty();
    const std::string result = in_sync ? "synced" : "out-of-sync";
    if (result != last_sync_result_) {
      (void)journal_->RecordSync(SyncRecord{0, Now(), revision_, result, "", ""});
      last_sync_result_ = result;
    }
    if (in_sync && unapplied) {
      applied_revision_ = revision_;
      (void)journal_->SetState("applied_revision", applied_revision_);
    }
  }
  RunPolicies(stop, observed);
  {
    auto guests = ProbeGuests(session_->nodes(), desired_ ? &desired_->state : nullptr, *observed);
    std::lock_guard lock(snapshot_mu_);
    guests_ = std::move(guests);
  }
  metrics_.last_reconcile_seconds = std::chrono::duration<double>(Clock::now() - started).count();
  ready_ = true;
  Publish(observed, plan);
}

void Controller::Publish(std::shared_ptr<const ObservedState> observed, std::shared_ptr<const Plan> plan) {
  {
    std::lock_guard lock(snapshot_mu_);
    if (observed) {
      last_observed_ = observed;
      last_plan_ = plan;
    } else {
      observed = last_observed_;
      plan = last_plan_;
    }
  }
  std::map<std::string, ReadinessReport> guests;
  {
    std::lock_guard lock(snapshot_mu_);
    guests = guests_;
  }
  auto s = std::make_shared<StatusSnapshot>();
  s->generated_at = Now();
  s->ready = ready_;
  s->source = config_.source.IsGit() ? RedactUrl(config_.source.repo) : config_.source.path;
  s->ref = config_.source.IsGit() ? config_.source.ref : "";
  s->revision = revision_;
  s->revision_author = revision_author_;
  s->revision_message = revision_message_;
  s->fetched_revision = fetched_revision_;
  s->last_sync = last_sync_;
  s->last_sync_result = diagnostics_.empty() ? last_sync_result_ : "invalid";
  s->last_error = !diagnostics_.empty()
                      ? "revision " + fetched_revision_ + " was refused: " + diagnostics_.front().ToString()
                      : source_error_;
  s->diagnostics = diagnostics_;
  s->latest_plan_id = latest_plan_json_.empty() ? "" : "latest";
  s->latest_plan_json = latest_plan_json_;
  s->metrics = metrics_;
  if (observed != nullptr) {
    StatusInputs inputs;
    inputs.desired = desired_ ? &desired_->state : nullptr;
    inputs.observed = observed.get();
    inputs.plan = plan.get();
    inputs.failed = failed_targets_;
    inputs.guests = std::move(guests);
    std::string job;
    {
      std::lock_guard lock(snapshot_mu_);
      job = current_job_;
    }
    if (plan != nullptr && !job.empty()) {
      for (const Action& a : plan->actions) inputs.in_progress.insert(a.target.ToString());
    }
    s->resources = BuildResourceStatuses(inputs);
    s->nodes = BuildNodeStatuses(config_, *observed);
    if (desired_) s->clusters = BuildClusterStatuses(desired_->state, s->resources);
    for (const ObservedNode& n : observed->nodes) {
      for (const ObservedVm& vm : n.vms) {
        if (!vm.Owned()) continue;
        for (const ObservedSnapshot& snap : vm.snapshots) {
          s->snapshots.push_back(
              SnapshotEntry{vm.name, n.name, snap.name, snap.policy, snap.description, snap.state, snap.created});
        }
      }
    }
  }
  std::lock_guard lock(snapshot_mu_);
  s->policies = policy_statuses_;
  s->backups = backup_entries_;
  s->current_job = current_job_;
  s->generation = ++generation_;
  snapshot_ = std::move(s);
}

}  // namespace gitvirt
