#pragma once
// The controller: `gitvirt serve`'s level-based reconcile loop. Every pass re-reads the desired
// state (fetching git when its interval is up, or on request) and the observed state, plans,
// and — with sync.auto — applies; it then publishes a new StatusSnapshot.
//
//  * A new commit is applied when sync.auto is on. Drift made by hand (no new commit) is
//    reverted only with sync.selfHeal; otherwise it shows as OutOfSync.
//  * An invalid commit is reported (with every diagnostic) and not retried until a newer
//    commit arrives; the last good desired state stays in force.
//  * A failed apply is retried with exponential backoff (10s, 20s, ... up to 5 minutes); passes
//    go on meanwhile (fetch, plan, status), and a new commit is tried at once.
//  * Unfinished jobs found at start are resumed or rolled back before anything else.
//
// Thread-safety: Run() on one thread; Snapshot(), history() and journal() from any (the status API).

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "gitvirt/core/config.h"
#include "gitvirt/core/model.h"
#include "gitvirt/hypervisor/node_set.h"
#include "gitvirt/engine/readiness.h"
#include "gitvirt/core/status.h"
#include "gitvirt/store/journal.h"
#include "gitvirt/store/state_lock.h"

namespace spdlog {
class logger;
}

namespace gitvirt {

class GitSource;
struct GitSnapshot;
class PolicyScheduler;
class BackupCatalog;

class Controller final : public StatusSource {
 public:
  ~Controller() override;

  // Takes the state lock, opens the journal, connects the nodes, opens the git source and
  // recovers unfinished jobs.
  static Result<std::unique_ptr<Controller>> Start(ControllerConfig config,
                                                   std::shared_ptr<spdlog::logger> log);

  // Reconciles until `stop` is set. A pass runs at once, then every source.interval, and
  // whenever RequestRefresh() is called (SIGHUP). On stop, a running job finishes its running
  // steps and is recorded as interrupted.
  void Run(const std::atomic<bool>& stop);
  // One pass, for tests and `serve --once`.
  void ReconcileOnce(const std::atomic<bool>& stop);
  void RequestRefresh();

  std::shared_ptr<const StatusSnapshot> Snapshot() const override;
  JobHistory& history() const override { return *journal_; }
  Journal& journal() const { return *journal_; }

 private:
  Controller(ControllerConfig config, std::shared_ptr<spdlog::logger> log, StateLock lock);

  struct Source;  // the desired state as last read
  bool ReadSource(bool fetch);
  // Builds and swaps in a new snapshot; null keeps the last observation and plan.
  void Publish(std::shared_ptr<const ObservedState> observed, std::shared_ptr<const Plan> plan);

  ControllerConfig config_;
  std::shared_ptr<spdlog::logger> log_;
  StateLock lock_;
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<NodeSet> nodes_;
  std::unique_ptr<GitSource> git_;

  // The last good desired state, and what the newest source said.
  std::optional<DesiredState> desired_;
  std::string revision_;          // of desired_
  std::string revision_author_;
  std::string revision_message_;
  std::string fetched_revision_;  // newest seen, good or not
  std::string rejected_revision_; // newest seen and invalid: not re-read until it changes
  std::vector<Diagnostic> diagnostics_;
  std::string source_error_;
  std::string applied_revision_;  // the revision last applied successfully

  std::set<std::string> failed_targets_;  // marked Failed by MARK_FAILED jobs
  std::string current_job_;
  std::chrono::steady_clock::time_point next_fetch_{};
  std::chrono::steady_clock::time_point retry_at_{};
  std::chrono::seconds backoff_{0};
  std::optional<TimePoint> last_sync_;
  std::string last_sync_result_;
  std::string latest_plan_json_;
  ControllerMetrics metrics_;
  bool ready_ = false;

  // Snapshot and backup policies (issue 7): run after each pass's sync; what they did and the
  // backup catalog, as last published.
  std::unique_ptr<PolicyScheduler> scheduler_;
  std::unique_ptr<BackupCatalog> catalog_;
  std::vector<PolicyStatus> policy_statuses_;
  std::vector<BackupEntry> backup_entries_;
  void RunPolicies(const std::atomic<bool>& stop, std::shared_ptr<ObservedState>& observed);

  std::shared_ptr<const ObservedState> last_observed_;
  std::shared_ptr<const Plan> last_plan_;
  // Readiness and addresses of the running VMs, probed once per pass (not at every Publish:
  // those also come from job worker threads and must stay cheap).
  std::map<std::string, ReadinessReport> guests_;
  mutable std::mutex snapshot_mu_;
  std::shared_ptr<const StatusSnapshot> snapshot_;
  std::uint64_t generation_ = 0;

  std::mutex wake_mu_;
  std::condition_variable wake_;
  bool refresh_ = false;
  const std::atomic<bool>* stop_ = nullptr;
};

}  // namespace gitvirt
