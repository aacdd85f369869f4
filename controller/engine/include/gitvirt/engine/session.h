#pragma once
// The pipeline, in one place: configuration -> desired state -> nodes -> observation -> plan ->
// state lock -> recovery of unfinished jobs -> a job. Every command of the command line and the
// `serve` loop go through a Session; they only ask it, and format what it answers.
//
//   auto session = Session::Open("gitvirt.yaml", options);   // the configuration, once
//   session->Lock();                                         // changes: the state lock
//   session->RecoverUnfinishedJobs();                        // what a killed process left
//   auto desired = session->ReadDesired(selection);          // manifests, every diagnostic
//   ObservedState observed = session->Observe();             // nodes connected once
//   auto plan = session->MakePlan(*desired, observed, request);
//   auto outcome = session->Run(*plan, run);                 // a journaled job
//
// A Session connects each node once (at the first call that needs the nodes), opens the
// journal once, and takes the state lock at most once. Messages meant for the person at the
// command line (a job being recovered, a node not reached) go to Options::notice; manifest and
// configuration diagnostics to Options::diagnostics; failures come back as Errors.
//
// Thread-safety: one thread drives a Session; the nodes and the journal it hands out are
// thread-safe themselves. Lifetime: what it hands out (nodes, journal) lives as long as it.

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gitvirt/core/config.h"
#include "gitvirt/core/diagnostic.h"
#include "gitvirt/core/error.h"
#include "gitvirt/core/observed.h"
#include "gitvirt/core/plan.h"
#include "gitvirt/core/timezone.h"
#include "gitvirt/core/planner.h"
#include "gitvirt/engine/desired_source.h"
#include "gitvirt/engine/executor.h"
#include "gitvirt/engine/jobs.h"
#include "gitvirt/engine/state_paths.h"
#include "gitvirt/hypervisor/connect.h"
#include "gitvirt/store/journal.h"
#include "gitvirt/store/state_lock.h"

namespace spdlog {
class logger;
}

namespace gitvirt {

class NodeSet;
class PolicyScheduler;
class WallClock;

// What a plan is asked for.
struct PlanRequest {
  SourceSelection source;
  // Delete owned VMs that left the source: on the command line only with --prune; serve passes
  // its configuration's sync.prune (ServeRequest).
  bool prune = false;
  PruneBy prune_by = PruneBy::kFlag;
  bool adopt = false;  // --adopt: every manifest may take over a same-name domain
  std::optional<ResourceRef> target;   // only this resource and what it needs
  // `apply --override-windows`: change VMs a sync window blocks where the window allows it.
  bool override_windows = false;
  // What `serve` plans with: pruning as sync.prune says.
  static PlanRequest ServeRequest(const ControllerConfig& config);
};

// A plan with what it was made from.
struct Planned {
  Desired desired;
  ObservedState observed;
  Plan plan;
};

// What recovering one unfinished job did.
struct RecoveredJob {
  std::string id;
  JobStatus was = JobStatus::kPending;  // its status when found
  std::string strategy;
  JobStatus now = JobStatus::kPending;  // after recovery
  std::string error;                    // why it could not be recovered (it is failed now)
};

class Session {
 public:
  struct Options {
    std::shared_ptr<spdlog::logger> log;  // null: spdlog's default logger
    HypervisorOptions hypervisor;         // how nodes are connected (its logger: `log`)
    // Diagnostics of the configuration and of the manifests, as they are found.
    std::function<void(const std::vector<Diagnostic>&, const std::string& shown_root)> diagnostics;
    // One line for the person watching ("job X was interrupted; recovering it").
    std::function<void(const std::string&)> notice;
    // The time plans are made at (sync windows, pre-change snapshots). Null: the system clock;
    // test builds read GITVIRT_FAKE_NOW (RFC 3339) for the command line's tests.
    const WallClock* clock = nullptr;
    // Commands that need every node (PlanCurrent, ObserveEvery) fail when one cannot be
    // reached, unless this is set (--ignore-unreachable): then they plan around it, and the
    // plan lists it as not seen.
    bool ignore_unreachable = false;
  };

  // Loads the configuration file. Its diagnostics go to options.diagnostics; the error says the
  // configuration is invalid.
  static Result<std::unique_ptr<Session>> Open(const std::string& config_file, Options options);
  // A session on a configuration already loaded (tests, serve).
  static std::unique_ptr<Session> FromConfig(ControllerConfig config, Options options);
  ~Session();

  const ControllerConfig& config() const { return config_; }
  const StatePaths& paths() const { return paths_; }
  const std::shared_ptr<spdlog::logger>& log() const { return log_; }
  // What "now" is for this session's plans (Options::clock).
  const WallClock& clock() const;
  // Tells the person watching (Options::notice; the log when there is none).
  void Notice(const std::string& text) const;

  // ---- the desired state ----
  // Reads the selection's source (the configuration's when empty) at the revision it names now.
  // Diagnostics go to Options::diagnostics; an invalid revision is kInvalidArgument ("the
  // manifests have errors; nothing was planned or changed").
  Result<Desired> ReadDesired(const SourceSelection& selection = {});

  // ---- the nodes ----
  // Every node of the configuration, connected at the first call.
  NodeSet& nodes();
  // Every node as it answers; an unreachable one is marked so (serve, get, describe).
  ObservedState Observe();
  // The same, for commands that need every node: kUnavailable naming each node that could not
  // be reached and libvirt's reason, unless Options::ignore_unreachable.
  Result<ObservedState> ObserveEvery();
  Result<void> RequireReachable(const ObservedState& observed) const;

  // ---- planning ----
  Result<Plan> MakePlan(const Desired& desired, const ObservedState& observed, const PlanRequest& request) const;
  // ReadDesired + ObserveEvery + MakePlan: the plan against the world as it is now.
  Result<Planned> PlanCurrent(const PlanRequest& request);
  // A plan saved earlier (`plan --out FILE`), read from `file`. A directory, or a file that is
  // not a saved plan (a manifest, say), is kInvalidArgument saying what it is and what to do.
  static Result<Plan> ReadSavedPlan(const std::string& file);
  // The world a saved plan was made against, read again, and checked unchanged: the same source
  // and revision, and every target as it was observed then; and no target a sync window blocks
  // now (unless `override_windows` and the window allows it). kFailedPrecondition ("the plan is
  // stale") lists every difference; a plan made from standard input cannot be checked again
  // (kFailedPrecondition).
  Result<Planned> Replan(const Plan& saved, bool override_windows = false);

  // ---- changes ----
  // The state lock: one process changes the state (and the nodes) at a time. Taken once; waits
  // a few seconds for a holder to let go, then names it.
  Result<void> Lock();
  // The journal, opened once.
  Result<Journal*> journal();
  // Finishes every job a killed or stopped process left unfinished: FULL rolls back, the other
  // strategies resume. A job that cannot be read or recovered is marked failed, saying why,
  // without a call to any node on its account, and the others go on. Takes the lock. Fails only
  // when the journal cannot be opened or listed.
  Result<std::vector<RecoveredJob>> RecoverUnfinishedJobs();
  // Runs `plan` as a journaled job (engine/jobs.h). Takes the lock.
  Result<JobOutcome> Run(const Plan& plan, const RunRequest& request);
  // What every job on this configuration runs with: the strategy, parallelism per node and
  // overall, the step timeout, the runner's paths.
  const JobSettings& job_settings() const { return job_settings_; }
  // The snapshot and backup policies' scheduler over this session's nodes and journal.
  Result<std::unique_ptr<PolicyScheduler>> MakeScheduler(const WallClock& clock);

 private:
  Session(ControllerConfig config, Options options);

  ControllerConfig config_;
  StatePaths paths_;
  JobSettings job_settings_;
  Options options_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<NodeSet> nodes_;
  std::unique_ptr<Journal> journal_;
  std::optional<StateLock> lock_;
  // Sync windows' time zones, loaded once each (null: unknown).
  mutable std::map<std::string, std::unique_ptr<TimeZone>, std::less<>> zones_;
};

}  // namespace gitvirt
