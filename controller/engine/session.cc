#include "gitvirt/engine/session.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <nlohmann/json.hpp>

#include "gitvirt/core/json.h"
#include "gitvirt/core/planner.h"
#include "gitvirt/hypervisor/node_set.h"
#include "gitvirt/engine/clock.h"
#include "gitvirt/engine/scheduler.h"
#include "gitvirt/engine/timezone_db.h"
#include "gitvirt/manifest/config_loader.h"

namespace gitvirt {

namespace {
constexpr std::chrono::seconds kLockWait{5};
}  // namespace

Session::Session(ControllerConfig config, Options options)
    : config_(std::move(config)),
      paths_(StatePaths::For(config_)),
      job_settings_(JobSettings::For(config_)),
      options_(std::move(options)) {
  log_ = options_.log ? options_.log : spdlog::default_logger();
  if (!options_.hypervisor.logger) options_.hypervisor.logger = log_;
}

Session::~Session() = default;

namespace {

#ifdef GITVIRT_FAULT_INJECTION
// Test builds: GITVIRT_FAKE_NOW=2026-12-08T01:30:00Z fixes the time plans are made at, so the
// command line's tests can stand inside or outside a sync window.
class EnvironmentClock final : public WallClock {
 public:
  explicit EnvironmentClock(TimePoint at) : at_(at) {}
  TimePoint Now() const override { return at_; }

 private:
  TimePoint at_;
};

const WallClock* FakeNowFromEnvironment() {
  static const std::unique_ptr<WallClock> clock = []() -> std::unique_ptr<WallClock> {
    const char* text = std::getenv("GITVIRT_FAKE_NOW");
    if (text == nullptr) return nullptr;
    int y = 0;
    unsigned mo = 0, d = 0;
    int h = 0, mi = 0, s = 0;
    char z = 0;
    if (std::sscanf(text, "%d-%u-%uT%d:%d:%d%c", &y, &mo, &d, &h, &mi, &s, &z) != 7 || z != 'Z') return nullptr;
    const std::chrono::year_month_day day{std::chrono::year{y}, std::chrono::month{mo}, std::chrono::day{d}};
    if (!day.ok()) return nullptr;
    return std::make_unique<EnvironmentClock>(TimePoint{std::chrono::sys_days{day}} + std::chrono::hours{h} +
                                              std::chrono::minutes{mi} + std::chrono::seconds{s});
  }();
  return clock.get();
}
#else
const WallClock* FakeNowFromEnvironment() { return nullptr; }
#endif

}  // namespace

const WallClock& Session::clock() const {
  if (options_.clock != nullptr) return *options_.clock;
  if (const WallClock* fake = FakeNowFromEnvironment()) return *fake;
  return SystemWallClock();
}

Result<std::unique_ptr<Session>> Session::Open(const std::string& config_file, Options options) {
  ConfigLoadResult loaded = LoadControllerConfig(config_file);
  if (options.diagnostics && !loaded.diagnostics.empty()) options.diagnostics(loaded.diagnostics, "");
  if (!loaded.ok()) {
    return Fail(ErrorCode::kInvalidArgument, "the configuration has errors", config_file);
  }
  return FromConfig(std::move(loaded.config), std::move(options));
}

std::unique_ptr<Session> Session::FromConfig(ControllerConfig config, Options options) {
  return std::unique_ptr<Session>(new Session(std::move(config), std::move(options)));
}

void Session::Notice(const std::string& text) const {
  if (options_.notice) {
    options_.notice(text);
  } else {
    log_->warn("{}", text);
  }
}

// ---- the desired state ----------------------------------------------------------------------

Result<Desired> Session::ReadDesired(const SourceSelection& selection) {
  auto source = DesiredSource::Open(config_, selection, paths_, log_);
  if (!source) return std::unexpected(source.error());
  if (auto fetched = (*source)->Fetch(); !fetched) return std::unexpected(fetched.error());
  auto read = (*source)->Load();
  if (!read) return std::unexpected(read.error());
  if (options_.diagnostics && !read->diagnostics.empty()) options_.diagnostics(read->diagnostics, read->shown_root);
  if (!read->desired) {
    return Fail(ErrorCode::kInvalidArgument, "the manifests have errors; nothing was planned or changed");
  }
  return std::move(*read->desired);
}

// ---- the nodes ------------------------------------------------------------------------------

NodeSet& Session::nodes() {
  if (!nodes_) nodes_ = NodeSet::Connect(config_.nodes, options_.hypervisor);
  return *nodes_;
}

ObservedState Session::Observe() { return nodes().ObserveAll(); }

Result<ObservedState> Session::ObserveEvery() {
  ObservedState observed = Observe();
  if (auto ok = RequireReachable(observed); !ok) return std::unexpected(ok.error());
  return observed;
}

Result<void> Session::RequireReachable(const ObservedState& observed) const {
  if (options_.ignore_unreachable) return {};
  std::vector<const ObservedNode*> down;
  for (const ObservedNode& n : observed.nodes) {
    if (!n.reachable) down.push_back(&n);
  }
  if (down.empty()) return {};
  std::string message;
  if (down.size() == 1) {
    message = "node " + down.front()->name + " is unreachable: " + down.front()->error;
  } else {
    message = std::to_string(down.size()) + " nodes are unreachable:";
    for (const ObservedNode* n : down) message += "\n  " + n->name + ": " + n->error;
  }
  message += "\nNothing was planned or changed; --ignore-unreachable plans around unreachable nodes.";
  return Fail(ErrorCode::kUnavailable, message);
}

// ---- planning -------------------------------------------------------------------------------

Result<Plan> Session::MakePlan(const Desired& desired, const ObservedState& observed,
                               const PlanRequest& request) const {
  PlanOptions options;
  options.prune = request.prune;
  options.prune_by = request.prune_by;
  options.adopt = request.adopt;
  options.revision = desired.revision;
  options.source = desired.source;
  options.target = request.target;
  options.now = clock().Now();
  options.override_windows = request.override_windows;
  options.zones = [this](std::string_view name) -> const TimeZone* {
    auto it = zones_.find(name);
    if (it == zones_.end()) {
      auto zone = LoadTimeZone(name);
      it = zones_.emplace(std::string(name), zone ? std::move(*zone) : nullptr).first;
    }
    return it->second.get();
  };
  options.manifest_root = DisplayPath(desired.shown_root);
  return Planner(config_).MakePlan(desired.state, observed, options);
}

PlanRequest PlanRequest::ServeRequest(const ControllerConfig& config) {
  PlanRequest request;
  request.prune = config.sync.prune;
  request.prune_by = PruneBy::kConfig;
  return request;
}

Result<Planned> Session::PlanCurrent(const PlanRequest& request) {
  auto desired = ReadDesired(request.source);
  if (!desired) return std::unexpected(desired.error());
  Planned p;
  p.desired = std::move(*desired);
  auto observed = ObserveEvery();
  if (!observed) return std::unexpected(observed.error());
  p.observed = std::move(*observed);
  auto plan = MakePlan(p.desired, p.observed, request);
  if (!plan) return std::unexpected(plan.error());
  p.plan = std::move(*plan);
  return p;
}

Result<Plan> Session::ReadSavedPlan(const std::string& file) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const std::string shown = DisplayPath(file);
  if (fs::is_directory(file, ec)) {
    return Fail(ErrorCode::kInvalidArgument, shown + " is a directory, not a saved plan; to apply the manifests in it: "
                                                 "gitvirt apply -f " + shown);
  }
  std::ifstream in(file);
  if (!in) return Fail(ErrorCode::kNotFound, "cannot read " + shown + ": no such file");
  auto json = nlohmann::json::parse(in, nullptr, false);
  if (json.is_discarded() || !json.is_object() || !json.contains("formatVersion")) {
    const std::string ext = fs::path(file).extension().string();
    const bool manifest = ext == ".yaml" || ext == ".yml";
    return Fail(ErrorCode::kInvalidArgument,
                shown + " is not a saved plan (a JSON file written by `gitvirt plan --out FILE`)" +
                    (manifest ? "; to apply the manifests in it: gitvirt apply -f " + shown : std::string()));
  }
  auto plan = PlanFromJson(json);
  if (!plan) return std::unexpected(Error{plan.error().code, plan.error().message, shown});
  return std::move(*plan);
}

Result<Planned> Session::Replan(const Plan& saved, bool override_windows) {
  if (saved.source.IsStdin()) {
    return Fail(ErrorCode::kFailedPrecondition,
                "the plan was made from manifests on standard input, which cannot be read again to check that "
                "it is current; save the manifests to a file and plan with -f FILE --out PLAN");
  }
  PlanRequest request;
  request.source = SourceSelection::Of(saved.source);
  request.prune = saved.prune;
  request.override_windows = override_windows;
  request.adopt = saved.adopt;
  auto now = PlanCurrent(request);
  if (!now) return std::unexpected(now.error());
  // A saved plan applies only to the world it was made against: the same manifests, and every
  // target as it was observed then.
  std::vector<std::string> why;
  if (saved.source != now->desired.source) {
    why.push_back("the plan is for " + saved.source.ToString() + ", the source now is " +
                  now->desired.source.ToString());
  } else if (saved.revision != now->desired.revision) {
    why.push_back("the source changed: revision " + saved.revision + " then, " + now->desired.revision + " now");
  }
  for (const auto& [key, fingerprint] : saved.fingerprints) {
    const std::string name = key.substr(key.find('/') + 1);
    auto vms = now->observed.FindVms(name);
    const std::string current = vms.empty() ? "absent" : ObservedFingerprint(*vms.front());
    if (current != fingerprint) {
      why.push_back(key + (vms.empty()               ? " no longer exists"
                           : fingerprint == "absent" ? " exists now"
                                                     : " changed since the plan was made"));
    }
  }
  // A window may have closed since the plan was made.
  std::set<std::string> reported;
  for (const Action& a : saved.actions) {
    for (const PendingChange& p : now->plan.pending) {
      if (p.target == a.target && p.reason.starts_with("blocked by window") && reported.insert(p.target.ToString()).second) {
        why.push_back(p.target.ToString() + " is " + p.reason + " now");
      }
    }
  }
  if (why.empty()) {
    now->plan = saved;
    return now;
  }
  std::string message = "the plan is stale:";
  for (const std::string& w : why) message += "\n  - " + w;
  message += "\nMake a new plan with `gitvirt plan --out FILE`.";
  return Fail(ErrorCode::kFailedPrecondition, message);
}

// ---- changes --------------------------------------------------------------------------------

Result<void> Session::Lock() {
  if (lock_) return {};
  auto lock = StateLock::Acquire(config_.state, kLockWait);
  if (!lock) return std::unexpected(lock.error());
  lock_.emplace(std::move(*lock));
  return {};
}

Result<Journal*> Session::journal() {
  if (!journal_) {
    auto opened = Journal::Open(config_.state);
    if (!opened) return std::unexpected(opened.error());
    journal_ = std::move(*opened);
  }
  return journal_.get();
}

Result<std::unique_ptr<PolicyScheduler>> Session::MakeScheduler(const WallClock& clock) {
  auto journal = this->journal();
  if (!journal) return std::unexpected(journal.error());
  return std::make_unique<PolicyScheduler>(nodes(), **journal, clock, SchedulerOptions{job_settings_}, log_);
}

Result<std::vector<RecoveredJob>> Session::RecoverUnfinishedJobs() {
  if (auto ok = Lock(); !ok) return std::unexpected(ok.error());
  auto journal = this->journal();
  if (!journal) return std::unexpected(journal.error());
  auto unfinished = (*journal)->UnfinishedJobs();
  if (!unfinished) return std::unexpected(unfinished.error());
  std::vector<RecoveredJob> recovered;
  for (const JobRecord& job : *unfinished) {
    RecoveredJob r{job.id, job.status, job.strategy, job.status, ""};
    Notice("job " + job.id + " was interrupted (" + std::string(EnumName(job.status)) + "); recovering it (" +
           job.strategy + ": " + (job.strategy == "FULL" ? "roll back" : "resume") + ")");
    auto plan = PlanFromJson(nlohmann::json::parse(job.plan_json, nullptr, false));
    if (!plan) {
      // Nothing can be done on the strength of a plan that cannot be read: the job is failed,
      // saying why, and the next ones go on.
      r.error = "its plan in the journal cannot be read (" + plan.error().ToString() +
                "); nothing was done on its account; inspect it with `gitvirt jobs " + job.id + "`";
      (void)(*journal)->AppendEvent(job.id, "", EventLevel::kError, "recovery: " + r.error);
      (void)(*journal)->RecordJobStatus(job.id, JobStatus::kFailed, r.error);
      (void)(*journal)->Flush();
      r.now = JobStatus::kFailed;
      Notice("job " + job.id + " failed: " + r.error);
      recovered.push_back(std::move(r));
      continue;
    }
    auto outcome = RecoverJob(nodes(), **journal, job.id, *plan, job_settings_, log_);
    if (!outcome) {
      r.error = "it could not be recovered: " + outcome.error().ToString();
      (void)(*journal)->AppendEvent(job.id, "", EventLevel::kError, "recovery: " + r.error);
      (void)(*journal)->RecordJobStatus(job.id, JobStatus::kFailed, r.error);
      (void)(*journal)->Flush();
      r.now = JobStatus::kFailed;
      Notice("job " + job.id + " failed: " + r.error);
    } else {
      r.now = outcome->status;
      Notice("job " + job.id + " " + std::string(EnumName(outcome->status)));
    }
    log_->warn("job={} recovered: {}", job.id, EnumName(r.now));
    recovered.push_back(std::move(r));
  }
  return recovered;
}

Result<JobOutcome> Session::Run(const Plan& plan, const RunRequest& request) {
  if (auto ok = Lock(); !ok) return std::unexpected(ok.error());
  auto journal = this->journal();
  if (!journal) return std::unexpected(journal.error());
  return RunJob(nodes(), **journal, plan, job_settings_, request, log_);
}

}  // namespace gitvirt
