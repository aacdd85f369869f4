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
#include "gitvirt/core/history.h"

namespace gitvirt {

class Journal : public JobHistory {
 public:
  struct Options {
    std::chrono::milliseconds flush_interval{20};
  };

  // Opens (creating or migrating the schema) the state file.
  static Result<std::unique_ptr<Journal>> Open(const std::string& path, Options options);
  static Result<std::unique_ptr<Journal>> Open(const std::string& path) {
    return Open(path, Options{});
  }
  ~Journal() override = default;

  // `gitvirt state check`: SQLite's full PRAGMA integrity_check of an existing state file, read
  // only (it never creates, migrates or changes the file). The problems found, none when the
  // file is sound; an error when it cannot be checked at all (missing, empty, not a database).
  struct CheckReport {
    std::vector<std::string> problems;
    int schema_version = 0;
    std::int64_t jobs = 0;
    std::int64_t unfinished = 0;
  };
  static Result<CheckReport> Check(const std::string& path);

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

  // ---- sync history ----
  // record.id is assigned by the journal; an unset time is now.
  virtual Result<void> RecordSync(const SyncRecord& record) = 0;

  // ---- key/value state (last applied revision, scheduler slots, ...) ----
  virtual Result<void> SetState(const std::string& key, const std::string& value) = 0;
  virtual Result<std::optional<std::string>> GetState(const std::string& key) = 0;

  // Makes every write submitted so far durable; returns the first unreported error of an
  // asynchronous write.
  virtual Result<void> Flush() = 0;
};

}  // namespace gitvirt
