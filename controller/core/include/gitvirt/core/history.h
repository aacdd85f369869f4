#pragma once
// What the journal records, as values, and read access to it: jobs, their steps and events,
// and the sync history. The status API and the command line read through JobHistory; only the
// engine, through store/journal.h, writes. Pure declarations: the SQLite implementation is in
// store/.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gitvirt/core/enums.h"
#include "gitvirt/core/error.h"
#include "gitvirt/core/time.h"

namespace gitvirt {

enum class JobStatus {
  kPending,
  kRunning,
  kSucceeded,
  kFailed,            // a step failed and the strategy kept what was done (PARTIAL, NONE)
  kMarkedFailed,      // MARK_FAILED: failed resources marked, the rest kept
  kRollingBack,
  kRolledBack,        // FULL: every completed step was undone
  kRollbackIncomplete,  // FULL, but some steps could not be undone (listed in the steps)
  kCancelled,
  kInterrupted,       // the controller stopped mid-job; resumed or rolled back at next start
};

enum class StepStatus {
  kPending,
  kRunning,
  kSucceeded,
  kFailed,
  kSkipped,      // a dependency failed, or the job stopped before it
  kUndoing,
  kUndone,
  kUndoFailed,
  kNotUndoable,  // completed, and its effect cannot be reversed (a deleted volume)
};

enum class EventLevel { kInfo, kWarning, kError };

GITVIRT_ENUM_TABLE(JobStatus, {JobStatus::kPending, "pending"}, {JobStatus::kRunning, "running"},
                   {JobStatus::kSucceeded, "succeeded"}, {JobStatus::kFailed, "failed"},
                   {JobStatus::kMarkedFailed, "marked-failed"},
                   {JobStatus::kRollingBack, "rolling-back"},
                   {JobStatus::kRolledBack, "rolled-back"},
                   {JobStatus::kRollbackIncomplete, "rollback-incomplete"},
                   {JobStatus::kCancelled, "cancelled"},
                   {JobStatus::kInterrupted, "interrupted"});
GITVIRT_ENUM_TABLE(StepStatus, {StepStatus::kPending, "pending"},
                   {StepStatus::kRunning, "running"}, {StepStatus::kSucceeded, "succeeded"},
                   {StepStatus::kFailed, "failed"}, {StepStatus::kSkipped, "skipped"},
                   {StepStatus::kUndoing, "undoing"}, {StepStatus::kUndone, "undone"},
                   {StepStatus::kUndoFailed, "undo-failed"},
                   {StepStatus::kNotUndoable, "not-undoable"});
GITVIRT_ENUM_TABLE(EventLevel, {EventLevel::kInfo, "info"}, {EventLevel::kWarning, "warning"},
                   {EventLevel::kError, "error"});

// The statuses of a job a restart must deal with (JobHistory::UnfinishedJobs): an interrupted
// job (its controller was told to stop) is resumed or rolled back like a crashed one.
inline constexpr JobStatus kUnfinishedJobStatuses[] = {JobStatus::kPending, JobStatus::kRunning,
                                                       JobStatus::kRollingBack, JobStatus::kInterrupted};

// Every status but pending, running, rolling-back and interrupted.
bool IsFinished(JobStatus status);

struct JobRecord {
  std::string id;          // "20261123-163000-7f3a": sortable, unique per state file
  std::string kind;        // apply | power | snapshot | backup | restore | import | ...
  JobStatus status = JobStatus::kPending;
  std::string strategy;    // FULL | PARTIAL | NONE | MARK_FAILED
  std::string revision;
  std::string source;
  std::string plan_json;   // the plan the job executes (secret-free by construction)
  std::string error;
  std::string summary_json;  // counts and rollback outcome, written when the job finishes
  TimePoint created_at{};
  std::optional<TimePoint> started_at;
  std::optional<TimePoint> finished_at;
  bool cancel_requested = false;
  int owner_pid = 0;       // the process running it, to tell a dead owner from a live one
  int steps_total = 0;     // filled by ListJobs/GetJob
  int steps_done = 0;      // succeeded, failed, skipped, undone, ...
  friend bool operator==(const JobRecord&, const JobRecord&) = default;
};

struct StepRecord {
  std::string job_id;
  std::string id;       // the plan action id
  int seq = 0;          // position in the plan
  std::string type;     // action type
  std::string node;
  std::string target;   // "VirtualMachine/web-01"
  std::string action_json;
  StepStatus status = StepStatus::kPending;
  int attempt = 0;
  std::string undo_json;    // what is needed to undo it, recorded before the side effect
  std::string result_json;
  std::string error;
  std::optional<TimePoint> started_at;
  std::optional<TimePoint> finished_at;
  friend bool operator==(const StepRecord&, const StepRecord&) = default;
};

struct EventRecord {
  std::string job_id;
  std::int64_t seq = 0;  // increasing per job, from 1
  TimePoint time{};
  std::string step_id;   // "" for job-level events
  EventLevel level = EventLevel::kInfo;
  std::string message;
  friend bool operator==(const EventRecord&, const EventRecord&) = default;
};

struct JobFilter {
  std::optional<JobStatus> status;
  std::string kind;
  int limit = 50;
  int offset = 0;
};

// Steps across jobs: a resource's history of one kind of action (its migrations).
struct StepFilter {
  std::string type;    // action type, "migrate"
  std::string target;  // "VirtualMachine/web-01"
  int limit = 10;
};

struct SyncRecord {
  std::int64_t id = 0;
  TimePoint time{};
  std::string revision;
  std::string result;   // synced | out-of-sync | failed | invalid
  std::string message;
  std::string job_id;
  friend bool operator==(const SyncRecord&, const SyncRecord&) = default;
};

// Read access to the journal. Implementations are thread-safe (journal.h says how reads see
// writes); every method may fail (an unreadable file), never throws.
class JobHistory {
 public:
  virtual ~JobHistory() = default;

  // Newest first (creation order breaks ties). limit <= 0: no limit.
  virtual Result<std::vector<JobRecord>> ListJobs(const JobFilter& filter) = 0;
  virtual Result<int> CountJobs(const JobFilter& filter) = 0;
  // kNotFound for an unknown job (GetSteps and GetEvents too). GetSteps: in plan order (seq).
  virtual Result<JobRecord> GetJob(const std::string& job_id) = 0;
  virtual Result<std::vector<StepRecord>> GetSteps(const std::string& job_id) = 0;
  virtual Result<std::vector<EventRecord>> GetEvents(const std::string& job_id,
                                                     std::int64_t after_seq = 0) = 0;
  // Steps of every job matching the filter, newest first (by start, then creation).
  virtual Result<std::vector<StepRecord>> FindSteps(const StepFilter& filter) = 0;
  // Jobs whose status is pending, running, rolling-back or interrupted: what a restart must
  // deal with.
  // Oldest first.
  virtual Result<std::vector<JobRecord>> UnfinishedJobs() = 0;

  // The sync history, newest first. limit <= 0: no limit.
  virtual Result<std::vector<SyncRecord>> SyncHistory(int limit) = 0;
};

}  // namespace gitvirt
