#include "gitvirt/store/journal.h"

#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iterator>
#include <mutex>
#include <random>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include "sqlite_db.h"

namespace gitvirt {
namespace {

using store_internal::Connection;
using store_internal::Query;

// Long enough to ride out another process's write batch or a WAL checkpoint, short enough that
// a wedged process turns into an error someone sees.
constexpr std::chrono::milliseconds kBusyTimeout{10'000};

// Steps still in progress; every other status counts towards JobRecord::steps_done.
constexpr StepStatus kStepsInProgress[] = {StepStatus::kPending, StepStatus::kRunning,
                                           StepStatus::kUndoing};

TimePoint Now() {
  return std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
}
std::int64_t Seconds(TimePoint t) {
  return t.time_since_epoch().count();
}
TimePoint FromSeconds(std::int64_t s) {
  return TimePoint{std::chrono::seconds{s}};
}
std::optional<TimePoint> FromSeconds(std::optional<std::int64_t> s) {
  if (!s) return std::nullopt;
  return FromSeconds(*s);
}

// "20261123-163000-7f3a": the creation time sorts the ids; the random suffix keeps two jobs of
// the same second apart (a collision is caught by the primary key and retried).
std::string MakeJobId(TimePoint created, unsigned random) {
  const CivilTime c = ToCivil(created);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d%02u%02u-%02ld%02ld%02ld-%04x", c.year, c.month, c.day,
                c.hour, c.minute, c.second, random & 0xffffu);
  return buf;
}

// "('pending','running')": an SQL list of enum spellings, so the SQL and the enum tables cannot
// drift apart.
template <typename E, std::size_t N>
std::string SqlList(const E (&values)[N]) {
  std::string out = "(";
  for (E value : values) {
    if (out.size() > 1) out += ",";
    out += "'";
    out += EnumName(value);
    out += "'";
  }
  return out + ")";
}

template <typename... Args>
Result<void> Execute(Connection& db, const std::string& sql, const Args&... args) {
  auto query = db.Prepare(sql);
  if (!query) return std::unexpected(query.error());
  (query->Bind(args), ...);
  return query->Run();
}

// An UPDATE of one existing row: touching none means the job or step does not exist.
template <typename... Args>
Result<void> UpdateExisting(Connection& db, const std::string& missing, const std::string& sql,
                            const Args&... args) {
  if (auto done = Execute(db, sql, args...); !done) return done;
  if (db.Changes() == 0) return Fail(ErrorCode::kNotFound, missing);
  return {};
}

template <typename E>
Result<E> ParseColumn(const Query& row, int column, std::string_view what) {
  const std::string text = row.Text(column);
  if (auto value = ParseEnum<E>(text)) return *value;
  return Fail(ErrorCode::kIo,
              "the state file holds an unknown " + std::string(what) + " '" + text + "'");
}

const std::string& JobColumns() {
  static const std::string columns =
      "j.id, j.kind, j.status, j.strategy, j.revision, j.source, j.plan_json, j.error, "
      "j.summary_json, j.created_at, j.started_at, j.finished_at, j.cancel_requested, "
      "j.owner_pid, "
      "(SELECT count(*) FROM steps s WHERE s.job_id = j.id), "
      "(SELECT count(*) FROM steps s WHERE s.job_id = j.id AND s.status NOT IN " +
      SqlList(kStepsInProgress) + ")";
  return columns;
}

Result<JobRecord> ReadJob(const Query& row) {
  JobRecord job;
  job.id = row.Text(0);
  job.kind = row.Text(1);
  auto status = ParseColumn<JobStatus>(row, 2, "job status");
  if (!status) return std::unexpected(status.error().Wrap("reading job " + job.id));
  job.status = *status;
  job.strategy = row.Text(3);
  job.revision = row.Text(4);
  job.source = row.Text(5);
  job.plan_json = row.Text(6);
  job.error = row.Text(7);
  job.summary_json = row.Text(8);
  job.created_at = FromSeconds(row.Int(9));
  job.started_at = FromSeconds(row.OptionalInt(10));
  job.finished_at = FromSeconds(row.OptionalInt(11));
  job.cancel_requested = row.Int(12) != 0;
  job.owner_pid = static_cast<int>(row.Int(13));
  job.steps_total = static_cast<int>(row.Int(14));
  job.steps_done = static_cast<int>(row.Int(15));
  return job;
}

constexpr const char* kStepColumns =
    "job_id, step_id, seq, type, node, target, action_json, status, attempt, undo_json, "
    "result_json, error, started_at, finished_at";

Result<StepRecord> ReadStep(const Query& row) {
  StepRecord step;
  step.job_id = row.Text(0);
  step.id = row.Text(1);
  step.seq = static_cast<int>(row.Int(2));
  step.type = row.Text(3);
  step.node = row.Text(4);
  step.target = row.Text(5);
  step.action_json = row.Text(6);
  auto status = ParseColumn<StepStatus>(row, 7, "step status");
  if (!status) return std::unexpected(status.error().Wrap("reading step " + step.id));
  step.status = *status;
  step.attempt = static_cast<int>(row.Int(8));
  step.undo_json = row.Text(9);
  step.result_json = row.Text(10);
  step.error = row.Text(11);
  step.started_at = FromSeconds(row.OptionalInt(12));
  step.finished_at = FromSeconds(row.OptionalInt(13));
  return step;
}

// Collects every row of a query through `read`.
template <typename T, typename ReadRow>
Result<std::vector<T>> CollectRows(Query& query, ReadRow read) {
  std::vector<T> rows;
  while (true) {
    auto more = query.Step();
    if (!more) return std::unexpected(more.error());
    if (!*more) return rows;
    auto row = read(query);
    if (!row) return std::unexpected(row.error());
    rows.push_back(std::move(*row));
  }
}

// Prepares `sql`, binds `args` and collects every row through `read`.
template <typename T, typename ReadRow, typename... Args>
Result<std::vector<T>> SelectRows(Connection& db, const std::string& sql, ReadRow read,
                                  const Args&... args) {
  auto query = db.Prepare(sql);
  if (!query) return std::unexpected(query.error());
  (query->Bind(args), ...);
  return CollectRows<T>(*query, read);
}

Result<bool> JobExists(Connection& db, const std::string& job_id) {
  auto query = db.Prepare("SELECT 1 FROM jobs WHERE id = ?");
  if (!query) return std::unexpected(query.error());
  query->Bind(job_id);
  return query->Step();
}

// The WHERE clause and parameters of a JobFilter (without limit and offset).
struct JobWhere {
  std::string sql = " WHERE 1";
  std::vector<std::string> params;
};
JobWhere WhereOf(const JobFilter& filter) {
  JobWhere where;
  if (filter.status) {
    where.sql += " AND j.status = ?";
    where.params.emplace_back(EnumName(*filter.status));
  }
  if (!filter.kind.empty()) {
    where.sql += " AND j.kind = ?";
    where.params.push_back(filter.kind);
  }
  return where;
}

// Failures of asynchronous writes that nobody has been told about yet. The first is kept whole;
// the rest are counted.
class AsyncFailures {
 public:
  void Add(Error error) {
    if (!first_) {
      first_ = std::move(error);
    } else {
      ++more_;
    }
  }
  void Merge(AsyncFailures other) {
    if (auto taken = std::move(other.first_)) Add(std::move(*taken));
    more_ += other.more_;
  }
  // The report, once: afterwards nothing is pending.
  std::optional<Error> Take() {
    if (!first_) return std::nullopt;
    Error error = std::move(*first_);
    first_.reset();
    if (more_ > 0) {
      error.message += " (and " + std::to_string(more_) + " more failed writes)";
      more_ = 0;
    }
    return error.Wrap("an earlier asynchronous journal write failed");
  }

 private:
  std::optional<Error> first_;
  int more_ = 0;
};

// One write waiting for the writer thread. `apply` runs inside the batch transaction, in its
// own savepoint, so a failed write leaves the rest of the batch intact.
struct PendingWrite {
  std::uint64_t seq = 0;
  bool blocking = false;
  std::string context;  // "recording step s1 of job j started", for errors
  std::function<Result<void>(Connection&)> apply;
};

class SqliteJournal final : public Journal {
 public:
  SqliteJournal(Options options, Connection writer_db, Connection reader_db)
      : options_(options),
        writer_db_(std::move(writer_db)),
        reader_db_(std::move(reader_db)),
        random_(std::random_device{}()) {
    writer_ = std::thread([this] { WriterLoop(); });
  }

  // Flushes everything submitted and joins the writer. Errors of writes that nobody asked
  // about (by Flush or a blocking call) are dropped here: call Flush() first to see them.
  ~SqliteJournal() override {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    work_cv_.notify_one();
    writer_.join();
  }

  // ---- jobs ----

  Result<std::string> CreateJob(const JobRecord& job,
                                const std::vector<StepRecord>& steps) override {
    std::string id = job.id;
    const TimePoint created = job.created_at == TimePoint{} ? Now() : job.created_at;
    const int owner = job.owner_pid != 0 ? job.owner_pid : static_cast<int>(::getpid());
    // The caller waits for the write, so the write may refer to its arguments.
    auto created_job =
        SubmitAndWait("creating a " + job.kind + " job", [&](Connection& db) -> Result<void> {
          const bool generate = id.empty();
          for (int attempt = 0;; ++attempt) {
            if (generate) id = MakeJobId(created, static_cast<unsigned>(random_()));
            auto inserted = Execute(
                db,
                "INSERT INTO jobs (id, kind, status, strategy, revision, source, plan_json, "
                "created_at, owner_pid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                id, job.kind, EnumName(JobStatus::kPending), job.strategy, job.revision, job.source,
                job.plan_json, Seconds(created), owner);
            if (inserted) break;
            const bool collided = inserted.error().code == ErrorCode::kAlreadyExists;
            if (!generate || !collided || attempt >= 16) {
              return std::unexpected(inserted.error().Wrap("job " + id));
            }
          }
          for (const StepRecord& step : steps) {
            auto inserted =
                Execute(db,
                        "INSERT INTO steps (job_id, step_id, seq, type, node, target, action_json, "
                        "status, undo_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        id, step.id, step.seq, step.type, step.node, step.target, step.action_json,
                        EnumName(StepStatus::kPending), step.undo_json);
            if (!inserted) return std::unexpected(inserted.error().Wrap("step " + step.id));
          }
          return {};
        });
    if (!created_job) return std::unexpected(created_job.error());
    std::lock_guard lock(mu_);
    event_seqs_[id] = EventCounter{};  // a new job has no events: no need to ask the file
    return id;
  }

  Result<void> RecordJobStatus(const std::string& job_id, JobStatus status,
                               const std::string& error, const std::string& summary_json) override {
    const std::int64_t now = Seconds(Now());
    const bool finished = IsFinished(status);
    const bool started = status == JobStatus::kRunning || status == JobStatus::kRollingBack;
    return SubmitAsync(
        "recording job " + job_id + " " + std::string(EnumName(status)), [=](Connection& db) {
          // An empty error or summary keeps the one already recorded: a job rolling back keeps
          // the error that made it roll back.
          return UpdateExisting(
              db, "no job " + job_id,
              "UPDATE jobs SET status = ?1, "
              "error = CASE WHEN ?2 = '' THEN error ELSE ?2 END, "
              "summary_json = CASE WHEN ?3 = '' THEN summary_json ELSE ?3 END, "
              "started_at = CASE WHEN ?4 AND started_at IS NULL THEN ?6 ELSE started_at END, "
              "finished_at = CASE WHEN ?5 THEN ?6 ELSE NULL END "
              "WHERE id = ?7",
              EnumName(status), error, summary_json, std::int64_t{started}, std::int64_t{finished},
              now, job_id);
        });
  }

  Result<void> RequestCancel(const std::string& job_id) override {
    std::lock_guard lock(mu_);
    last_cancel_write_ =
        EnqueueLocked("requesting cancellation of job " + job_id, false, [job_id](Connection& db) {
          return UpdateExisting(db, "no job " + job_id,
                                "UPDATE jobs SET cancel_requested = 1 WHERE id = ?", job_id);
        });
    return {};
  }

  Result<bool> CancelRequested(const std::string& job_id) override {
    // Only RequestCancel changes the answer, so wait for pending cancellations (from any
    // thread) rather than for this thread's writes: polling between steps forces no commit.
    {
      std::unique_lock lock(mu_);
      WaitCommittedLocked(lock, last_cancel_write_);
    }
    std::lock_guard lock(read_mu_);
    auto query = reader_db_.Prepare("SELECT cancel_requested FROM jobs WHERE id = ?");
    if (!query) return std::unexpected(query.error());
    query->Bind(job_id);
    auto row = query->Step();
    if (!row) return std::unexpected(row.error().Wrap("reading job " + job_id));
    if (!*row) return Fail(ErrorCode::kNotFound, "no job " + job_id);
    return query->Int(0) != 0;
  }

  // ---- steps ----

  Result<void> RecordStepStarted(const std::string& job_id, const std::string& step_id, int attempt,
                                 const std::string& undo_json) override {
    const std::int64_t now = Seconds(Now());
    return SubmitAndWait(
        "recording step " + step_id + " of job " + job_id + " started", [&](Connection& db) {
          return UpdateExisting(
              db, "no step " + step_id + " in job " + job_id,
              "UPDATE steps SET status = ?, attempt = ?, undo_json = ?, started_at = ?, "
              "finished_at = NULL, result_json = '', error = '' "
              "WHERE job_id = ? AND step_id = ?",
              EnumName(StepStatus::kRunning), attempt, undo_json, now, job_id, step_id);
        });
  }

  Result<void> RecordStepUndoInfo(const std::string& job_id, const std::string& step_id,
                                  const std::string& undo_json) override {
    return SubmitAndWait(
        "recording undo information of step " + step_id + " of job " + job_id, [&](Connection& db) {
          return UpdateExisting(db, "no step " + step_id + " in job " + job_id,
                                "UPDATE steps SET undo_json = ? WHERE job_id = ? AND step_id = ?",
                                undo_json, job_id, step_id);
        });
  }

  Result<void> RecordStepFinished(const std::string& job_id, const std::string& step_id,
                                  StepStatus status, const std::string& error,
                                  const std::string& result_json) override {
    const std::int64_t now = Seconds(Now());
    return SubmitAsync(
        "recording step " + step_id + " of job " + job_id + " " + std::string(EnumName(status)),
        [=](Connection& db) {
          return UpdateExisting(
              db, "no step " + step_id + " in job " + job_id,
              "UPDATE steps SET status = ?, error = ?, result_json = ?, finished_at = ? "
              "WHERE job_id = ? AND step_id = ?",
              EnumName(status), error, result_json, now, job_id, step_id);
        });
  }

  Result<void> RecordStepStatus(const std::string& job_id, const std::string& step_id,
                                StepStatus status, const std::string& error) override {
    return SubmitAsync(
        "recording step " + step_id + " of job " + job_id + " " + std::string(EnumName(status)),
        [=](Connection& db) {
          // As for jobs, an empty error keeps the step's earlier one (why it is being undone).
          return UpdateExisting(db, "no step " + step_id + " in job " + job_id,
                                "UPDATE steps SET status = ?1, "
                                "error = CASE WHEN ?2 = '' THEN error ELSE ?2 END "
                                "WHERE job_id = ?3 AND step_id = ?4",
                                EnumName(status), error, job_id, step_id);
        });
  }

  // ---- events ----

  Result<void> AppendEvent(const std::string& job_id, const std::string& step_id, EventLevel level,
                           const std::string& message) override {
    std::lock_guard lock(mu_);
    // Numbered here, under the queue lock, so seq follows submission order across threads.
    auto counter = EventCounterLocked(job_id);
    if (!counter) return std::unexpected(counter.error());
    EventRecord event{job_id, (*counter)->last_seq + 1, Now(), step_id, level, message};
    const std::uint64_t write = EnqueueLocked(
        "appending event " + std::to_string(event.seq) + " of job " + job_id, false,
        [event](Connection& db) {
          return Execute(db,
                         "INSERT INTO events (job_id, seq, time, step_id, level, message) "
                         "VALUES (?, ?, ?, ?, ?, ?)",
                         event.job_id, event.seq, Seconds(event.time), event.step_id,
                         EnumName(event.level), event.message);
        });
    (*counter)->last_seq = event.seq;
    (*counter)->last_write = write;
    return {};
  }

  // ---- reads ----

  Result<std::vector<JobRecord>> ListJobs(const JobFilter& filter) override {
    const JobWhere where = WhereOf(filter);
    return Read([&](Connection& db) -> Result<std::vector<JobRecord>> {
      auto query = db.Prepare("SELECT " + JobColumns() + " FROM jobs j" + where.sql +
                              " ORDER BY j.created_at DESC, j.rowid DESC LIMIT ? OFFSET ?");
      if (!query) return std::unexpected(query.error());
      for (const auto& param : where.params) query->Bind(param);
      query->Bind(std::int64_t{filter.limit > 0 ? filter.limit : -1});
      query->Bind(std::int64_t{std::max(filter.offset, 0)});
      return CollectRows<JobRecord>(*query, ReadJob);
    });
  }

  Result<int> CountJobs(const JobFilter& filter) override {
    const JobWhere where = WhereOf(filter);
    return Read([&](Connection& db) -> Result<int> {
      auto query = db.Prepare("SELECT count(*) FROM jobs j" + where.sql);
      if (!query) return std::unexpected(query.error());
      for (const auto& param : where.params) query->Bind(param);
      auto row = query->Step();
      if (!row) return std::unexpected(row.error());
      return static_cast<int>(query->Int(0));
    });
  }

  Result<JobRecord> GetJob(const std::string& job_id) override {
    return Read([&](Connection& db) -> Result<JobRecord> {
      auto jobs = SelectRows<JobRecord>(
          db, "SELECT " + JobColumns() + " FROM jobs j WHERE j.id = ?", ReadJob, job_id);
      if (!jobs) return std::unexpected(jobs.error().Wrap("reading job " + job_id));
      if (jobs->empty()) return Fail(ErrorCode::kNotFound, "no job " + job_id);
      return std::move(jobs->front());
    });
  }

  Result<std::vector<StepRecord>> GetSteps(const std::string& job_id) override {
    return Read([&](Connection& db) -> Result<std::vector<StepRecord>> {
      auto steps = SelectRows<StepRecord>(db,
                                          std::string("SELECT ") + kStepColumns +
                                              " FROM steps WHERE job_id = ? ORDER BY seq, rowid",
                                          ReadStep, job_id);
      if (!steps) return std::unexpected(steps.error().Wrap("reading steps of job " + job_id));
      return RequireJob(db, job_id, std::move(*steps));
    });
  }

  Result<std::vector<StepRecord>> FindSteps(const StepFilter& filter) override {
    return Read([&](Connection& db) -> Result<std::vector<StepRecord>> {
      auto steps = SelectRows<StepRecord>(db,
                                          std::string("SELECT ") + kStepColumns +
                                              " FROM steps WHERE type = ? AND target = ?"
                                              " ORDER BY COALESCE(started_at, 0) DESC, rowid DESC LIMIT ?",
                                          ReadStep, filter.type, filter.target,
                                          static_cast<std::int64_t>(filter.limit <= 0 ? -1 : filter.limit));
      if (!steps) return std::unexpected(steps.error().Wrap("reading " + filter.type + " steps of " + filter.target));
      return std::move(*steps);
    });
  }

  Result<std::vector<EventRecord>> GetEvents(const std::string& job_id,
                                             std::int64_t after_seq) override {
    return Read([&](Connection& db) -> Result<std::vector<EventRecord>> {
      auto events = SelectRows<EventRecord>(
          db,
          "SELECT job_id, seq, time, step_id, level, message FROM events "
          "WHERE job_id = ? AND seq > ? ORDER BY seq",
          [](const Query& row) -> Result<EventRecord> {
            auto level = ParseColumn<EventLevel>(row, 4, "event level");
            if (!level) return std::unexpected(level.error());
            return EventRecord{row.Text(0), row.Int(1), FromSeconds(row.Int(2)),
                               row.Text(3), *level,     row.Text(5)};
          },
          job_id, after_seq);
      if (!events) return std::unexpected(events.error().Wrap("reading events of job " + job_id));
      return RequireJob(db, job_id, std::move(*events));
    });
  }

  Result<std::vector<JobRecord>> UnfinishedJobs() override {
    return Read([&](Connection& db) {
      // Oldest first: a restart resumes or rolls back jobs in the order they began.
      return SelectRows<JobRecord>(db,
                                   "SELECT " + JobColumns() + " FROM jobs j WHERE j.status IN " +
                                       SqlList(kUnfinishedJobStatuses) +
                                       " ORDER BY j.created_at, j.rowid",
                                   ReadJob);
    });
  }

  // ---- sync history ----

  Result<void> RecordSync(const SyncRecord& record) override {
    const TimePoint time = record.time == TimePoint{} ? Now() : record.time;
    return SubmitAsync("recording a sync of revision " + record.revision, [record,
                                                                           time](Connection& db) {
      return Execute(db,
                     "INSERT INTO sync_history (time, revision, result, "
                     "message, job_id) VALUES (?, ?, ?, ?, ?)",
                     Seconds(time), record.revision, record.result, record.message, record.job_id);
    });
  }

  Result<std::vector<SyncRecord>> SyncHistory(int limit) override {
    return Read([&](Connection& db) {
      return SelectRows<SyncRecord>(
          db,
          "SELECT id, time, revision, result, message, job_id FROM sync_history "
          "ORDER BY id DESC LIMIT ?",
          [](const Query& row) -> Result<SyncRecord> {
            return SyncRecord{row.Int(0),  FromSeconds(row.Int(1)),
                              row.Text(2), row.Text(3),
                              row.Text(4), row.Text(5)};
          },
          std::int64_t{limit > 0 ? limit : -1});
    });
  }

  // ---- key/value state ----

  Result<void> SetState(const std::string& key, const std::string& value) override {
    return SubmitAsync("setting state " + key, [key, value](Connection& db) {
      return Execute(db,
                     "INSERT INTO state (key, value) VALUES (?, ?) "
                     "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                     key, value);
    });
  }

  Result<std::optional<std::string>> GetState(const std::string& key) override {
    return Read([&](Connection& db) -> Result<std::optional<std::string>> {
      auto query = db.Prepare("SELECT value FROM state WHERE key = ?");
      if (!query) return std::unexpected(query.error());
      query->Bind(key);
      auto row = query->Step();
      if (!row) return std::unexpected(row.error().Wrap("reading state " + key));
      if (!*row) return std::nullopt;
      return query->Text(0);
    });
  }

  Result<void> Flush() override {
    std::unique_lock lock(mu_);
    WaitCommittedLocked(lock, submitted_seq_);
    if (auto earlier = async_failures_.Take()) return std::unexpected(std::move(*earlier));
    return {};
  }

 private:
  struct EventCounter {
    std::int64_t last_seq = 0;     // the last seq handed out for the job
    std::uint64_t last_write = 0;  // the write carrying it
  };

  template <typename T>
  static Result<std::vector<T>> RequireJob(Connection& db, const std::string& job_id,
                                           std::vector<T> rows) {
    if (!rows.empty()) return rows;
    auto exists = JobExists(db, job_id);
    if (!exists) return std::unexpected(exists.error());
    if (!*exists) return Fail(ErrorCode::kNotFound, "no job " + job_id);
    return rows;
  }

  // Runs a read on the read connection once this thread's own writes are committed.
  template <typename F>
  std::invoke_result_t<F&, Connection&> Read(F&& read) {
    {
      std::unique_lock lock(mu_);
      const auto mine = last_write_by_thread_.find(std::this_thread::get_id());
      if (mine != last_write_by_thread_.end()) WaitCommittedLocked(lock, mine->second);
    }
    std::lock_guard lock(read_mu_);
    return read(reader_db_);
  }

  std::uint64_t EnqueueLocked(std::string context, bool blocking,
                              std::function<Result<void>(Connection&)> apply) {
    const std::uint64_t seq = ++submitted_seq_;
    const bool was_empty = queue_.empty();
    if (was_empty) oldest_queued_ = std::chrono::steady_clock::now();
    queue_.push_back(PendingWrite{seq, blocking, std::move(context), std::move(apply)});
    last_write_by_thread_[std::this_thread::get_id()] = seq;
    if (blocking) urgent_seq_ = seq;
    // The writer sleeps until the oldest write is flush_interval old, unless woken for urgency.
    if (was_empty || blocking) work_cv_.notify_one();
    return seq;
  }

  Result<void> SubmitAsync(std::string context, std::function<Result<void>(Connection&)> apply) {
    std::lock_guard lock(mu_);
    EnqueueLocked(std::move(context), false, std::move(apply));
    return {};
  }

  // Queues a write and waits until its batch is committed. The writer refuses the write when an
  // asynchronous write submitted before it has failed unreported (see CommitBatch).
  Result<void> SubmitAndWait(std::string context, std::function<Result<void>(Connection&)> apply) {
    std::unique_lock lock(mu_);
    const std::uint64_t seq = EnqueueLocked(std::move(context), true, std::move(apply));
    done_cv_.wait(lock, [&] { return committed_seq_ >= seq; });
    if (auto failed = blocking_errors_.extract(seq))
      return std::unexpected(std::move(failed.mapped()));
    return {};
  }

  void WaitCommittedLocked(std::unique_lock<std::mutex>& lock, std::uint64_t seq) {
    if (committed_seq_ >= seq) return;
    if (urgent_seq_ < seq) {
      urgent_seq_ = seq;
      work_cv_.notify_one();
    }
    done_cv_.wait(lock, [&] { return committed_seq_ >= seq; });
  }

  // The job's event counter, read from the file the first time the job is seen. Takes the
  // read lock under the queue lock: the only place the two nest, always in this order.
  Result<EventCounter*> EventCounterLocked(const std::string& job_id) {
    auto it = event_seqs_.find(job_id);
    if (it != event_seqs_.end()) return &it->second;
    std::lock_guard read_lock(read_mu_);
    auto query = reader_db_.Prepare("SELECT coalesce(max(seq), 0) FROM events WHERE job_id = ?");
    if (!query) return std::unexpected(query.error());
    query->Bind(job_id);
    auto row = query->Step();
    if (!row) return std::unexpected(row.error().Wrap("numbering events of job " + job_id));
    return &event_seqs_.emplace(job_id, EventCounter{query->Int(0), 0}).first->second;
  }

  void WriterLoop() {
    std::unique_lock lock(mu_);
    while (true) {
      if (queue_.empty()) {
        if (stopping_) return;
        work_cv_.wait(lock);
        continue;
      }
      if (!stopping_ && urgent_seq_ <= committed_seq_) {
        const auto deadline = oldest_queued_ + options_.flush_interval;
        if (std::chrono::steady_clock::now() < deadline) {
          work_cv_.wait_until(lock, deadline);
          continue;
        }
      }
      // Everything queued goes into one transaction: the writes that arrived while the last
      // batch was being synced share the next sync. That is the group commit.
      std::vector<PendingWrite> batch;
      batch.swap(queue_);
      // The batch carries the unreported failures so that its first blocking write reports them.
      // Flush cannot miss them meanwhile: it waits for this batch, and they are back by then.
      AsyncFailures unreported = std::exchange(async_failures_, {});
      lock.unlock();
      std::vector<std::optional<Error>> outcome = CommitBatch(batch, unreported);
      lock.lock();
      async_failures_.Merge(std::move(unreported));
      for (std::size_t i = 0; i < batch.size(); ++i) {
        if (batch[i].blocking && outcome[i]) {
          blocking_errors_.emplace(batch[i].seq, std::move(*outcome[i]));
        }
      }
      committed_seq_ = batch.back().seq;
      // What is committed needs no more tracking: reads need not wait for it, and an event
      // counter can be read back from the file.
      std::erase_if(last_write_by_thread_,
                    [&](const auto& entry) { return entry.second <= committed_seq_; });
      if (event_seqs_.size() > 256) {
        std::erase_if(event_seqs_,
                      [&](const auto& entry) { return entry.second.last_write <= committed_seq_; });
      }
      done_cv_.notify_all();
    }
  }

  Result<void> RunStatement(const std::string& sql) { return Execute(writer_db_, sql); }

  // Applies a batch in one transaction. Returns, per write, the error that kept it out of the
  // file (nullopt: committed); failures of asynchronous writes also go to `unreported`.
  //
  // A blocking write is refused, unmade, while `unreported` holds anything: its caller learns
  // of every asynchronous write submitted before it that failed, and an error from a blocking
  // call always means that its own record was not made.
  std::vector<std::optional<Error>> CommitBatch(std::vector<PendingWrite>& batch,
                                                AsyncFailures& unreported) {
    std::vector<std::optional<Error>> outcome(batch.size());
    std::optional<Error> batch_error;
    if (auto begun = RunStatement("BEGIN IMMEDIATE"); !begun) {
      batch_error = begun.error().Wrap("starting a journal transaction");
    }
    for (std::size_t i = 0; i < batch.size() && !batch_error; ++i) {
      if (batch[i].blocking) {
        if (auto earlier = unreported.Take()) {
          outcome[i] = earlier->Wrap(batch[i].context);
          continue;
        }
      }
      Result<void> applied = RunStatement("SAVEPOINT journal_write");
      if (applied) applied = batch[i].apply(writer_db_);
      if (applied) {
        applied = RunStatement("RELEASE journal_write");
      } else {
        (void)RunStatement("ROLLBACK TO journal_write");
        (void)RunStatement("RELEASE journal_write");
      }
      if (!applied) {
        outcome[i] = applied.error().Wrap(batch[i].context);
        if (!batch[i].blocking) unreported.Add(*outcome[i]);
      }
      // Some errors (disk full, I/O) roll back the whole transaction; what follows must not
      // run in autocommit mode and what preceded is gone.
      if (!writer_db_.InTransaction()) {
        batch_error = outcome[i].value_or(Error{ErrorCode::kIo, "transaction aborted", {}});
      }
    }
    if (!batch_error) {
      if (auto committed = RunStatement("COMMIT"); !committed) {
        batch_error = committed.error().Wrap("committing journal writes");
      }
    }
    if (batch_error) {
      if (writer_db_.InTransaction()) (void)RunStatement("ROLLBACK");
      for (std::size_t i = 0; i < batch.size(); ++i) {
        if (outcome[i]) continue;
        outcome[i] = batch_error->Wrap(batch[i].context);
        if (!batch[i].blocking) unreported.Add(*outcome[i]);
      }
    }
    return outcome;
  }

  const Options options_;
  Connection writer_db_;  // used by the writer thread only, once it runs

  std::mutex read_mu_;  // guards reader_db_; taken after mu_ when both are held
  Connection reader_db_;

  std::mutex mu_;                    // guards everything below
  std::condition_variable work_cv_;  // the writer waits for work, urgency or stop
  std::condition_variable done_cv_;  // submitters wait for committed_seq_
  std::vector<PendingWrite> queue_;
  std::chrono::steady_clock::time_point oldest_queued_;
  std::uint64_t submitted_seq_ = 0;
  std::uint64_t committed_seq_ = 0;  // every write up to here is committed (or has failed)
  std::uint64_t urgent_seq_ = 0;     // someone waits for every write up to here
  std::uint64_t last_cancel_write_ = 0;
  bool stopping_ = false;
  std::unordered_map<std::uint64_t, Error> blocking_errors_;  // by write seq, until collected
  AsyncFailures async_failures_;  // while a batch runs, the writer holds them
  std::unordered_map<std::thread::id, std::uint64_t> last_write_by_thread_;
  std::unordered_map<std::string, EventCounter> event_seqs_;  // by job id

  std::mt19937 random_;  // job id suffixes; used by the writer thread only
  std::thread writer_;   // last: starts after, and is joined before, everything above goes
};

}  // namespace

namespace {

// Turning a new file to WAL needs an exclusive lock, and SQLite reports contention for it at
// once instead of calling the busy handler (waiting there could deadlock), so two processes
// opening a new file at once would fail. Retry until the busy timeout instead.
Result<std::string> SwitchToWal(Connection& db) {
  const auto deadline = std::chrono::steady_clock::now() + kBusyTimeout;
  while (true) {
    auto mode = db.QueryText("PRAGMA journal_mode = WAL");
    if (mode || mode.error().code != ErrorCode::kUnavailable ||
        std::chrono::steady_clock::now() >= deadline) {
      return mode;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

// What to do with a state file that cannot be trusted, said once for every refusal.
constexpr const char* kStateAdvice =
    "; gitvirt will not start a new journal in its place. Restore the file from a backup, or, to start "
    "over without the history (jobs, undo records, ownership of running steps), move it aside";

// An existing state file is checked before it is used: an empty file or one that is not
// gitvirt's is refused rather than silently made into a new, empty journal, and a damaged one
// (PRAGMA quick_check: every page and index, not the cross-checks of integrity_check) is refused
// rather than read as partial history. `size_before`: the file's size before it was opened
// (nullopt: there was no file, and opening made a new one).
Result<void> CheckExistingStateFile(const std::string& path, std::optional<std::uintmax_t> size_before,
                                    Connection& db) {
  if (!size_before) return {};  // a new file: the schema is made next
  if (*size_before == 0) {
    return Fail(ErrorCode::kFailedPrecondition,
                "the state file " + path + " is empty (0 bytes), so it is not a gitvirt journal" + kStateAdvice);
  }
  auto check = db.QueryText("PRAGMA quick_check");
  if (!check) {
    return Fail(ErrorCode::kFailedPrecondition, "the state file " + path + " cannot be read as a SQLite database (" +
                                                    check.error().message + ")" + kStateAdvice);
  }
  if (*check != "ok") {
    return Fail(ErrorCode::kFailedPrecondition,
                "the state file " + path + " is damaged (SQLite quick_check: " + check->substr(0, 200) + ")" +
                    kStateAdvice);
  }
  auto version = db.QueryText("PRAGMA user_version");
  auto tables = db.QueryText("SELECT count(*) FROM sqlite_master");
  if (version && tables && *version == "0" && *tables != "0") {
    return Fail(ErrorCode::kFailedPrecondition,
                "the state file " + path + " is a SQLite database that is not gitvirt's (it has tables and no "
                "gitvirt schema version)" + kStateAdvice);
  }
  return {};
}

}  // namespace

Result<std::unique_ptr<Journal>> Journal::Open(const std::string& path, Options options) {
  const std::string context = "opening journal " + path;
  // Its size before opening (opening creates a missing file, empty). An empty file may be one
  // another process is creating this instant (it writes the header within milliseconds); one
  // that stays empty for two seconds is refused.
  const auto size_of = [&path]() -> std::optional<std::uintmax_t> {
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    return ec ? std::nullopt : std::optional<std::uintmax_t>(size);
  };
  std::optional<std::uintmax_t> size_before = size_of();
  for (const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
       size_before == std::uintmax_t{0} && std::chrono::steady_clock::now() < deadline;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    size_before = size_of();
  }
  auto writer = Connection::Open(path, Connection::Mode::kReadWriteCreate, kBusyTimeout);
  if (!writer) return std::unexpected(writer.error());
  if (auto trusted = CheckExistingStateFile(path, size_before, *writer); !trusted) {
    return std::unexpected(trusted.error());
  }
  // journal_mode is stored in the file; synchronous and foreign_keys belong to the connection.
  auto mode = SwitchToWal(*writer);
  if (!mode) return std::unexpected(mode.error().Wrap(context + ": setting WAL mode"));
  if (*mode != "wal") {
    return Fail(ErrorCode::kIo,
                "the file system does not support write-ahead logging (journal mode " + *mode + ")",
                context);
  }
  // FULL syncs the WAL at every commit: a committed batch survives a power cut, not only a
  // crash of the process.
  if (auto set = writer->Exec("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON"); !set) {
    return std::unexpected(set.error().Wrap(context));
  }
  if (auto migrated = store_internal::MigrateSchema(*writer); !migrated) {
    return std::unexpected(migrated.error().Wrap(context));
  }
  auto reader = Connection::Open(path, Connection::Mode::kReadWrite, kBusyTimeout);
  if (!reader) return std::unexpected(reader.error());
  if (auto set = reader->Exec("PRAGMA query_only = ON"); !set) {
    return std::unexpected(set.error().Wrap(context));
  }
  return std::make_unique<SqliteJournal>(options, std::move(*writer), std::move(*reader));
}

Result<Journal::CheckReport> Journal::Check(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return Fail(ErrorCode::kNotFound, "the state file " + path + " does not exist (" + ec.message() + ")");
  if (size == 0) {
    return Fail(ErrorCode::kFailedPrecondition,
                "the state file " + path + " is empty (0 bytes), so it is not a gitvirt journal" + kStateAdvice);
  }
  auto db = Connection::Open(path, Connection::Mode::kReadWrite, kBusyTimeout);
  if (!db) return std::unexpected(db.error());
  if (auto ro = db->Exec("PRAGMA query_only = ON"); !ro) return std::unexpected(ro.error());
  auto rows = db->Prepare("PRAGMA integrity_check");
  if (!rows) {
    return Fail(ErrorCode::kFailedPrecondition, "the state file " + path + " cannot be read as a SQLite database (" +
                                                    rows.error().message + ")" + kStateAdvice);
  }
  CheckReport report;
  while (true) {
    auto more = rows->Step();
    if (!more) {
      return Fail(ErrorCode::kFailedPrecondition, "the state file " + path + " cannot be checked (" +
                                                      more.error().message + ")" + kStateAdvice);
    }
    if (!*more) break;
    if (const std::string line = rows->Text(0); line != "ok") report.problems.push_back(line);
  }
  if (!report.problems.empty()) return report;
  if (auto v = db->QueryText("PRAGMA user_version")) report.schema_version = std::atoi(v->c_str());
  if (report.schema_version == 0) {
    report.problems.push_back("no gitvirt schema (user_version 0): not a gitvirt state file");
    return report;
  }
  if (auto n = db->QueryText("SELECT count(*) FROM jobs")) report.jobs = std::atoll(n->c_str());
  if (auto n = db->QueryText("SELECT count(*) FROM jobs WHERE status IN " + SqlList(kUnfinishedJobStatuses))) {
    report.unfinished = std::atoll(n->c_str());
  }
  return report;
}

}  // namespace gitvirt
