#pragma once
// The journal: every job, step, attempt and event, in SQLite, written before and after each
// side effect so that a controller killed at any moment can resume or roll back on restart.
//
// Durability: the database runs in WAL mode with synchronous=FULL. Writes go through one writer
// thread that commits them in batches (group commit): CreateJob, RecordStepStarted and
// RecordStepUndoInfo block until their record is durable (journal-ahead: no side effect before
// its undo information is on disk); the other writes return at once and are made durable by the next batch, at most `flush_interval` later,
// and always before Flush() or the destructor returns. A crash can lose only records that the
// executor can re-derive from the real state (a step found "running" is reconciled).
//
// Writes are committed in submission order, so a blocking write also makes durable every write
// submitted before it, from any thread.
//
// Errors: a write that returns at once cannot report its own failure (an unknown job or step, a
// full disk); the first such error is kept and returned, once, by the next blocking write or
// Flush() submitted after it. A blocking write that returns an error did not make its own
// record: when it has an earlier asynchronous failure to report, it reports it instead of being
// made (the caller may retry it).
//
// Several processes may open the same file (readers such as `gitvirt jobs` beside `serve`);
// event numbering assumes that only one of them appends events, the holder of the StateLock.
//
// Thread-safety: every method may be called from any thread. Reads see all writes submitted
// before them by the same thread (they flush those first; a thread with nothing pending does
// not wait). Lifetime: the destructor commits every submitted write and joins the writer thread;
// errors not yet reported are then dropped, so call Flush() first to see them.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gitvirt/core/error.h"
#include "gitvirt/core/observed.h"

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

}  // namespace gitvirt

#include "gitvirt/core/enums.h"

namespace gitvirt {

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

// Every status but pending, running and rolling-back (the ones UnfinishedJobs returns).
// Interrupted counts as finished here: whoever resumes interrupted jobs lists them by status.
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

class Journal {
 public:
  struct Options {
    std::chrono::milliseconds flush_interval{20};
  };

  // Opens (creating or migrating the schema) the state file.
  static Result<std::unique_ptr<Journal>> Open(const std::string& path, Options options);
  static Result<std::unique_ptr<Journal>> Open(const std::string& path) {
    return Open(path, Options{});
  }
  virtual ~Journal() = default;

  // ---- jobs ----
  // Creates the job (status pending) with its steps (status pending), atomically and durably.
  // The journal picks the id unless job.id is set (kAlreadyExists if taken); an unset
  // created_at is now, an unset owner_pid is this process. Steps keep their seq; GetSteps
  // returns them by seq, and steps of equal seq in the order given here.
  virtual Result<std::string> CreateJob(const JobRecord& job, const std::vector<StepRecord>& steps) = 0;
  // Running or rolling-back sets started_at (once); a finished status (IsFinished) sets
  // finished_at, any other clears it. An empty error or summary keeps the recorded one.
  virtual Result<void> RecordJobStatus(const std::string& job_id, JobStatus status,
                                       const std::string& error = {},
                                       const std::string& summary_json = {}) = 0;
  virtual Result<void> RequestCancel(const std::string& job_id) = 0;
  // Sees every RequestCancel submitted before it in this process, from any thread, and waits
  // for nothing else: polling it between steps forces no commit.
  virtual Result<bool> CancelRequested(const std::string& job_id) = 0;

  // ---- steps ----
  // Journal-ahead: durable before it returns. `undo_json` says how to reverse the step.
  // Sets status running and started_at, and clears the previous attempt's outcome.
  virtual Result<void> RecordStepStarted(const std::string& job_id, const std::string& step_id,
                                         int attempt, const std::string& undo_json) = 0;
  // Durable before it returns: more undo information learnt mid-step (a volume just created).
  // Replaces the step's undo_json.
  virtual Result<void> RecordStepUndoInfo(const std::string& job_id, const std::string& step_id,
                                          const std::string& undo_json) = 0;
  // Sets the outcome and finished_at.
  virtual Result<void> RecordStepFinished(const std::string& job_id, const std::string& step_id,
                                          StepStatus status, const std::string& error = {},
                                          const std::string& result_json = {}) = 0;
  // For later transitions (skipped, undoing, undone, ...); an empty error keeps the recorded one.
  virtual Result<void> RecordStepStatus(const std::string& job_id, const std::string& step_id,
                                        StepStatus status, const std::string& error = {}) = 0;

  // ---- events ----
  // Numbered (seq) when called, so seq follows the order of the calls across threads.
  virtual Result<void> AppendEvent(const std::string& job_id, const std::string& step_id,
                                   EventLevel level, const std::string& message) = 0;

  // ---- reads ----
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

  // ---- sync history ----
  // record.id is assigned by the journal; an unset time is now.
  virtual Result<void> RecordSync(const SyncRecord& record) = 0;
  // Newest first. limit <= 0: no limit.
  virtual Result<std::vector<SyncRecord>> SyncHistory(int limit) = 0;

  // ---- key/value state (last applied revision, scheduler slots, ...) ----
  virtual Result<void> SetState(const std::string& key, const std::string& value) = 0;
  virtual Result<std::optional<std::string>> GetState(const std::string& key) = 0;

  // Makes every write submitted so far durable; returns the first unreported error of an
  // asynchronous write.
  virtual Result<void> Flush() = 0;
};

std::string FormatTime(TimePoint t);  // RFC 3339 UTC, "2026-11-23T16:30:00Z"

}  // namespace gitvirt
