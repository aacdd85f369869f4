// The journal against real SQLite files: round trips, ordering, concurrency, error reporting,
// and durability checked by killing a child process that wrote to the file.
//
// sqlite3.h is included here only to look at the file from outside, as another program would
// (journal mode, schema version, a file from the future).

#include "gitvirt/store/journal.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "temp_dir.h"

namespace gitvirt {

// Readable failures: gtest would otherwise print the records as bytes.
void PrintTo(const JobRecord& j, std::ostream* os) {
  *os << "{id=" << j.id << " kind=" << j.kind << " status=" << EnumName(j.status)
      << " created=" << FormatTime(j.created_at)
      << " started=" << (j.started_at ? FormatTime(*j.started_at) : "-")
      << " finished=" << (j.finished_at ? FormatTime(*j.finished_at) : "-") << " error=" << j.error
      << " steps=" << j.steps_done << "/" << j.steps_total << "}";
}
void PrintTo(const StepRecord& s, std::ostream* os) {
  *os << "{" << s.job_id << "/" << s.id << " seq=" << s.seq << " status=" << EnumName(s.status)
      << " attempt=" << s.attempt << " undo=" << s.undo_json << " result=" << s.result_json
      << " error=" << s.error << "}";
}
void PrintTo(const EventRecord& e, std::ostream* os) {
  *os << "{" << e.job_id << "#" << e.seq << " " << e.step_id << " " << EnumName(e.level) << " "
      << e.message << "}";
}

namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr Journal::Options kNeverByTimer{std::chrono::hours(1)};

// Unwraps a Result or fails the test (gtest reports the exception).
template <typename T>
T Must(Result<T> result, const std::string& what = "journal call") {
  if (!result) throw std::runtime_error(what + ": " + result.error().ToString());
  return std::move(*result);
}
void Must(Result<void> result, const std::string& what = "journal call") {
  if (!result) throw std::runtime_error(what + ": " + result.error().ToString());
}

TimePoint At(int day, int hour, int minute) {
  using namespace std::chrono;
  return sys_days{year{2026} / November / day} + hours{hour} + minutes{minute};
}

JobRecord SampleJob(std::string kind = "apply", TimePoint created = At(23, 16, 30)) {
  JobRecord job;
  job.kind = std::move(kind);
  job.strategy = "FULL";
  job.revision = "3f2a9c1";
  job.source = "https://git.example/infra.git";
  job.plan_json = R"({"actions":[{"id":"a1"}]})";
  job.created_at = created;
  job.owner_pid = 4242;
  return job;
}

// Numbered from 0, as the executor does.
std::vector<StepRecord> SampleSteps() {
  std::vector<StepRecord> steps(3);
  const char* ids[] = {"create-volume web-01", "define web-01", "start web-01"};
  for (int i = 0; i < 3; ++i) {
    steps[i].id = ids[i];
    steps[i].seq = i;
    steps[i].type = i == 0 ? "CreateVolume" : i == 1 ? "DefineDomain" : "Start";
    steps[i].node = "hv1";
    steps[i].target = "VirtualMachine/web-01";
    steps[i].action_json = R"({"n":)" + std::to_string(i) + "}";
  }
  return steps;
}

// Runs `body` in a forked child and returns how the child ended: its exit code, or 128 + the
// signal that killed it. The parent must not hold an open Journal while forking: the child would
// inherit a copy of its locks and threads' state.
int RunInChild(const std::function<int()>& body) {
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    int code = 99;
    try {
      code = body();
    } catch (...) {
      code = 98;
    }
    ::_exit(code);  // no destructors, no atexit: like a crash as far as the journal knows
  }
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) throw std::runtime_error("waitpid failed");
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

// What another program reading the file would see.
std::string RawQuery(const std::string& path, const std::string& sql) {
  sqlite3* raw = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  std::unique_ptr<sqlite3, decltype(&sqlite3_close)> db(raw, &sqlite3_close);
  if (rc != SQLITE_OK) throw std::runtime_error("cannot open " + path);
  std::string out;
  auto collect = [](void* text, int columns, char** values, char**) {
    auto& s = *static_cast<std::string*>(text);
    for (int i = 0; i < columns; ++i) {
      if (!s.empty()) s += "|";
      s += values[i] ? values[i] : "NULL";
    }
    return 0;
  };
  char* error = nullptr;
  if (sqlite3_exec(db.get(), sql.c_str(), collect, &out, &error) != SQLITE_OK) {
    std::string message = error ? error : "?";
    sqlite3_free(error);
    throw std::runtime_error("raw query failed: " + message);
  }
  return out;
}

class JournalTest : public ::testing::Test {
 protected:
  std::unique_ptr<Journal> Open(Journal::Options options = {}) {
    return Must(Journal::Open(path_, options), "opening " + path_);
  }

  // A job with the three sample steps, created through a short-lived journal.
  std::string CreateSampleJob() {
    auto journal = Open();
    return Must(journal->CreateJob(SampleJob(), SampleSteps()));
  }

  testing::TempDir dir_{"gv-journal"};
  std::string path_ = (dir_.path() / "gitvirt.db").string();
};

// ---- the file ----

TEST_F(JournalTest, NewFileUsesWalAndSchemaVersion3) {
  auto journal = Open();
  EXPECT_EQ(RawQuery(path_, "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(RawQuery(path_, "PRAGMA user_version"), "3");
  EXPECT_EQ(RawQuery(path_,
                     "SELECT group_concat(name) FROM (SELECT name FROM sqlite_schema "
                     "WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name)"),
            "backup_runs,backups,events,jobs,state,steps,sync_history");
}

TEST_F(JournalTest, ReopeningKeepsTheDataAndTheSchema) {
  const std::string id = CreateSampleJob();
  auto journal = Open();
  EXPECT_EQ(Must(journal->GetJob(id)).revision, "3f2a9c1");
  EXPECT_EQ(Must(journal->GetSteps(id)).size(), 3u);
  EXPECT_EQ(RawQuery(path_, "PRAGMA user_version"), "3");
}

TEST_F(JournalTest, MigratesAVersion0File) {
  RawQuery(path_, "PRAGMA journal_mode = WAL");  // a SQLite file with no schema yet
  ASSERT_EQ(RawQuery(path_, "PRAGMA user_version"), "0");
  auto journal = Open();
  EXPECT_EQ(RawQuery(path_, "PRAGMA user_version"), "3");
  const std::string id = Must(journal->CreateJob(SampleJob(), SampleSteps()));
  EXPECT_EQ(Must(journal->GetJob(id)).status, JobStatus::kPending);
}

// ---- state that cannot be trusted is refused, never adopted as a new journal ----

TEST_F(JournalTest, RefusesAnEmptyFile) {
  std::ofstream(path_).flush();
  auto journal = Journal::Open(path_);
  ASSERT_FALSE(journal.has_value());
  EXPECT_EQ(journal.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_THAT(journal.error().message, HasSubstr(path_ + " is empty (0 bytes)"));
  EXPECT_THAT(journal.error().message, HasSubstr("move it aside"));
  EXPECT_EQ(std::filesystem::file_size(path_), 0u) << "the file was made into a journal";
}

TEST_F(JournalTest, RefusesADatabaseThatIsNotGitvirts) {
  RawQuery(path_, "CREATE TABLE leftover (x); INSERT INTO leftover VALUES (1)");
  auto journal = Journal::Open(path_);
  ASSERT_FALSE(journal.has_value());
  EXPECT_THAT(journal.error().message, HasSubstr("not gitvirt's"));
  EXPECT_EQ(RawQuery(path_, "PRAGMA user_version"), "0");
  EXPECT_EQ(RawQuery(path_, "SELECT count(*) FROM sqlite_master"), "1");
}

TEST_F(JournalTest, RefusesAFileThatIsNotADatabase) {
  std::ofstream(path_) << "jobs: none\n" << std::string(8192, 'x');
  auto journal = Journal::Open(path_);
  ASSERT_FALSE(journal.has_value());
  EXPECT_THAT(journal.error().ToString(), HasSubstr(path_));
}

TEST_F(JournalTest, RefusesADamagedFileInsteadOfReadingPartialHistory) {
  {
    auto journal = Open();
    for (int i = 0; i < 200; ++i) Must(journal->CreateJob(SampleJob(), SampleSteps()));
  }
  const auto size = std::filesystem::file_size(path_);
  ASSERT_GT(size, 4u * 4096u);
  {
    std::fstream f(path_, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(size / 2 / 4096 * 4096));
    const std::string junk(4096, '\xA5');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  auto journal = Journal::Open(path_);
  ASSERT_FALSE(journal.has_value());
  EXPECT_THAT(journal.error().ToString(), ::testing::AnyOf(HasSubstr("is damaged"), HasSubstr("cannot be read")));
  EXPECT_THAT(journal.error().ToString(), HasSubstr(path_));
}

TEST_F(JournalTest, CheckReportsASoundFileAndItsUnfinishedJobs) {
  CreateSampleJob();  // pending: unfinished
  auto report = Journal::Check(path_);
  ASSERT_TRUE(report.has_value()) << report.error().ToString();
  EXPECT_TRUE(report->problems.empty());
  EXPECT_EQ(report->schema_version, 3);
  EXPECT_EQ(report->jobs, 1);
  EXPECT_EQ(report->unfinished, 1);
}

TEST_F(JournalTest, CheckFindsDamageAndNeverCreatesAFile) {
  {
    auto journal = Open();
    for (int i = 0; i < 200; ++i) Must(journal->CreateJob(SampleJob(), SampleSteps()));
  }
  const auto size = std::filesystem::file_size(path_);
  {
    std::fstream f(path_, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(size / 2 / 4096 * 4096));
    const std::string junk(4096, '\xA5');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  auto report = Journal::Check(path_);
  EXPECT_TRUE(!report.has_value() || !report->problems.empty());
  const std::string missing = (dir_.path() / "missing.db").string();
  EXPECT_FALSE(Journal::Check(missing).has_value());
  EXPECT_FALSE(std::filesystem::exists(missing));
}

TEST_F(JournalTest, ConcurrentOpenersOfANewFileAllSucceed) {
  std::vector<std::thread> openers;
  std::atomic<int> opened{0};
  for (int i = 0; i < 4; ++i) {
    openers.emplace_back([&] {
      auto journal = Journal::Open(path_);
      if (journal) {
        ++opened;
      } else {
        ADD_FAILURE() << journal.error().ToString();
      }
    });
  }
  for (auto& opener : openers) opener.join();
  EXPECT_EQ(opened.load(), 4);
  EXPECT_EQ(RawQuery(path_, "PRAGMA user_version"), "3");
}

TEST_F(JournalTest, RefusesAFileFromANewerSchema) {
  RawQuery(path_, "PRAGMA user_version = 4");
  auto journal = Journal::Open(path_);
  ASSERT_FALSE(journal.has_value());
  EXPECT_EQ(journal.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_THAT(journal.error().message, HasSubstr("schema version 4"));
}

TEST_F(JournalTest, OpeningInAMissingDirectoryIsAnIoError) {
  auto journal = Journal::Open((dir_.path() / "no-such-dir" / "gitvirt.db").string());
  ASSERT_FALSE(journal.has_value());
  EXPECT_EQ(journal.error().code, ErrorCode::kIo);
}

// ---- jobs and steps ----

TEST_F(JournalTest, CreateJobRoundTripsEveryField) {
  auto journal = Open();
  JobRecord job = SampleJob();
  job.status = JobStatus::kRunning;  // ignored: a new job is pending
  const std::string id = Must(journal->CreateJob(job, SampleSteps()));

  JobRecord expected = job;
  expected.id = id;
  expected.status = JobStatus::kPending;
  expected.steps_total = 3;
  expected.steps_done = 0;
  EXPECT_EQ(Must(journal->GetJob(id)), expected);

  std::vector<StepRecord> expected_steps = SampleSteps();
  for (std::size_t i = 0; i < expected_steps.size(); ++i) {
    expected_steps[i].job_id = id;
    expected_steps[i].seq = static_cast<int>(i);
  }
  EXPECT_EQ(Must(journal->GetSteps(id)), expected_steps);
}

TEST_F(JournalTest, StepsComeBackInPlanOrder) {
  auto journal = Open();
  std::vector<StepRecord> steps = SampleSteps();
  steps[0].seq = 30;
  steps[1].seq = 10;
  steps[2].seq = 20;
  const std::string id = Must(journal->CreateJob(SampleJob(), steps));
  std::vector<std::string> order;
  for (const auto& step : Must(journal->GetSteps(id))) order.push_back(step.id);
  EXPECT_THAT(order, ElementsAre("define web-01", "start web-01", "create-volume web-01"));
}

TEST_F(JournalTest, StepsOfEqualSeqComeBackInTheOrderGiven) {
  auto journal = Open();
  std::vector<StepRecord> steps(4);
  const char* ids[] = {"zeta", "alpha", "mid", "beta"};
  for (int i = 0; i < 4; ++i) steps[i].id = ids[i];
  steps[3].seq = -1;
  const std::string id = Must(journal->CreateJob(SampleJob(), steps));
  std::vector<std::string> order;
  for (const auto& step : Must(journal->GetSteps(id))) order.push_back(step.id);
  EXPECT_THAT(order, ElementsAre("beta", "zeta", "alpha", "mid"));
}

TEST_F(JournalTest, CreateJobFillsCreationTimeAndOwner) {
  auto journal = Open();
  JobRecord job = SampleJob();
  job.created_at = {};
  job.owner_pid = 0;
  const auto before = std::chrono::floor<seconds>(std::chrono::system_clock::now());
  const JobRecord created = Must(journal->GetJob(Must(journal->CreateJob(job, {}))));
  EXPECT_GE(created.created_at, before);
  EXPECT_EQ(created.owner_pid, ::getpid());
  EXPECT_EQ(created.steps_total, 0);
}

TEST_F(JournalTest, JobIdsAreUniqueAndSortByCreationTime) {
  auto journal = Open();
  const std::regex shape(R"(\d{8}-\d{6}-[0-9a-f]{4})");
  std::set<std::string> ids;
  for (int i = 0; i < 40; ++i) {
    const std::string id = Must(journal->CreateJob(SampleJob("apply", At(23, 16, 30)), {}));
    EXPECT_TRUE(std::regex_match(id, shape)) << id;
    EXPECT_TRUE(id.starts_with("20261123-163000-")) << id;
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 40u);
  const std::string later = Must(journal->CreateJob(SampleJob("apply", At(23, 16, 31)), {}));
  EXPECT_GT(later, *ids.rbegin());
}

TEST_F(JournalTest, CreateJobWithATakenIdIsAlreadyExists) {
  auto journal = Open();
  JobRecord job = SampleJob();
  job.id = "import-1";
  EXPECT_EQ(Must(journal->CreateJob(job, SampleSteps())), "import-1");
  auto again = journal->CreateJob(job, {});
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, ErrorCode::kAlreadyExists);
}

TEST_F(JournalTest, StepLifecycleRoundTrips) {
  auto journal = Open();
  const std::string id = Must(journal->CreateJob(SampleJob(), SampleSteps()));
  const std::string s1 = SampleSteps()[0].id;
  const std::string s2 = SampleSteps()[1].id;

  Must(journal->RecordStepStarted(id, s1, 1, R"({"delete":"pool/web-01.qcow2"})"));
  StepRecord running = Must(journal->GetSteps(id))[0];
  EXPECT_EQ(running.status, StepStatus::kRunning);
  EXPECT_EQ(running.attempt, 1);
  EXPECT_EQ(running.undo_json, R"({"delete":"pool/web-01.qcow2"})");
  EXPECT_TRUE(running.started_at.has_value());
  EXPECT_FALSE(running.finished_at.has_value());

  Must(journal->RecordStepUndoInfo(id, s1, R"({"delete":"pool/web-01.qcow2","seed":"x"})"));
  Must(journal->RecordStepFinished(id, s1, StepStatus::kSucceeded, "", R"({"path":"/p"})"));
  Must(journal->RecordStepStarted(id, s2, 1, "{}"));
  Must(journal->RecordStepFinished(id, s2, StepStatus::kFailed, "libvirt: no space"));
  Must(journal->RecordStepStatus(id, SampleSteps()[2].id, StepStatus::kSkipped));
  Must(journal->RecordStepStatus(id, s2, StepStatus::kUndoing));  // keeps the error
  Must(journal->RecordStepStatus(id, s1, StepStatus::kUndone));

  const std::vector<StepRecord> steps = Must(journal->GetSteps(id));
  EXPECT_EQ(steps[0].status, StepStatus::kUndone);
  EXPECT_EQ(steps[0].undo_json, R"({"delete":"pool/web-01.qcow2","seed":"x"})");
  EXPECT_EQ(steps[0].result_json, R"({"path":"/p"})");
  EXPECT_TRUE(steps[0].finished_at.has_value());
  EXPECT_EQ(steps[1].status, StepStatus::kUndoing);
  EXPECT_EQ(steps[1].error, "libvirt: no space");
  EXPECT_EQ(steps[2].status, StepStatus::kSkipped);
  // Undone and skipped are done; undoing is still in progress.
  const JobRecord job = Must(journal->GetJob(id));
  EXPECT_EQ(job.steps_total, 3);
  EXPECT_EQ(job.steps_done, 2);
}

TEST_F(JournalTest, RetryingAStepClearsThePreviousOutcome) {
  auto journal = Open();
  const std::string id = Must(journal->CreateJob(SampleJob(), SampleSteps()));
  const std::string step = SampleSteps()[0].id;
  Must(journal->RecordStepStarted(id, step, 1, "{}"));
  Must(journal->RecordStepFinished(id, step, StepStatus::kFailed, "timeout", R"({"partial":1})"));
  Must(journal->RecordStepStarted(id, step, 2, R"({"u":2})"));
  const StepRecord retried = Must(journal->GetSteps(id))[0];
  EXPECT_EQ(retried.status, StepStatus::kRunning);
  EXPECT_EQ(retried.attempt, 2);
  EXPECT_EQ(retried.undo_json, R"({"u":2})");
  EXPECT_EQ(retried.error, "");
  EXPECT_EQ(retried.result_json, "");
  EXPECT_FALSE(retried.finished_at.has_value());
}

TEST_F(JournalTest, JobStatusSetsTimesAndKeepsTheError) {
  auto journal = Open();
  const std::string id = Must(journal->CreateJob(SampleJob(), SampleSteps()));
  Must(journal->RecordJobStatus(id, JobStatus::kRunning));
  JobRecord job = Must(journal->GetJob(id));
  ASSERT_TRUE(job.started_at.has_value());
  const TimePoint started = *job.started_at;
  EXPECT_FALSE(job.finished_at.has_value());

  Must(journal->RecordJobStatus(id, JobStatus::kRollingBack, "step define web-01 failed"));
  Must(journal->RecordJobStatus(id, JobStatus::kRolledBack, "", R"({"undone":2})"));
  job = Must(journal->GetJob(id));
  EXPECT_EQ(job.status, JobStatus::kRolledBack);
  EXPECT_EQ(job.error, "step define web-01 failed");
  EXPECT_EQ(job.summary_json, R"({"undone":2})");
  EXPECT_EQ(job.started_at, started);
  EXPECT_TRUE(job.finished_at.has_value());

  // Interrupted (the controller stopped): unfinished until resumed or rolled back.
  Must(journal->RecordJobStatus(id, JobStatus::kInterrupted));
  EXPECT_FALSE(Must(journal->GetJob(id)).finished_at.has_value());
  Must(journal->RecordJobStatus(id, JobStatus::kRunning));
  EXPECT_FALSE(Must(journal->GetJob(id)).finished_at.has_value());
}

TEST_F(JournalTest, CancelRequestIsSeenAtOnceFromAnotherThread) {
  const std::string id = CreateSampleJob();
  auto journal = Open(kNeverByTimer);
  EXPECT_FALSE(Must(journal->CancelRequested(id)));
  std::thread api([&] { Must(journal->RequestCancel(id)); });
  api.join();
  // No flush by anyone, and the timer would wait an hour: CancelRequested waits for the
  // pending cancellation itself.
  EXPECT_TRUE(Must(journal->CancelRequested(id)));
  EXPECT_TRUE(Must(journal->GetJob(id)).cancel_requested);
}

// ---- events ----

TEST_F(JournalTest, EventsRoundTripInOrderAndResumeAfterSeq) {
  auto journal = Open();
  const std::string id = Must(journal->CreateJob(SampleJob(), SampleSteps()));
  Must(journal->AppendEvent(id, "", EventLevel::kInfo, "job started"));
  Must(journal->AppendEvent(id, "define web-01", EventLevel::kWarning, "retrying <'\"&>"));
  Must(journal->AppendEvent(id, "define web-01", EventLevel::kError, "failed"));

  const std::vector<EventRecord> events = Must(journal->GetEvents(id));
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].seq, 1);
  EXPECT_EQ(events[0].step_id, "");
  EXPECT_EQ(events[0].level, EventLevel::kInfo);
  EXPECT_EQ(events[1].message, "retrying <'\"&>");
  EXPECT_EQ(events[1].level, EventLevel::kWarning);
  EXPECT_EQ(events[2].seq, 3);
  EXPECT_EQ(events[2].job_id, id);
  EXPECT_NE(events[2].time, TimePoint{});

  const std::vector<EventRecord> tail = Must(journal->GetEvents(id, 2));
  ASSERT_EQ(tail.size(), 1u);
  EXPECT_EQ(tail[0], events[2]);
}

TEST_F(JournalTest, EventSeqFollowsSubmissionOrderAcross8Threads) {
  auto journal = Open();
  const std::string id = Must(journal->CreateJob(SampleJob(), SampleSteps()));
  const std::string other = Must(journal->CreateJob(SampleJob(), SampleSteps()));
  constexpr int kThreads = 8;
  constexpr int kPerThread = 250;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Must(journal->AppendEvent(i % 10 == 0 ? other : id, "", EventLevel::kInfo,
                                  std::to_string(t) + ":" + std::to_string(i)));
      }
    });
  }
  for (auto& thread : threads) thread.join();
  Must(journal->Flush());

  for (const std::string& job : {id, other}) {
    const std::vector<EventRecord> events = Must(journal->GetEvents(job));
    EXPECT_EQ(events.size(), job == id ? 1800u : 200u);
    std::map<int, int> last_by_thread;  // each thread's messages in its own order
    for (std::size_t k = 0; k < events.size(); ++k) {
      ASSERT_EQ(events[k].seq, static_cast<std::int64_t>(k) + 1) << "gap or duplicate in " << job;
      const auto colon = events[k].message.find(':');
      const int t = std::stoi(events[k].message.substr(0, colon));
      const int i = std::stoi(events[k].message.substr(colon + 1));
      auto [it, first] = last_by_thread.try_emplace(t, i);
      if (!first) {
        EXPECT_GT(i, it->second) << "thread " << t << " out of order";
        it->second = i;
      }
    }
  }
}

TEST_F(JournalTest, EventSeqContinuesAfterReopening) {
  const std::string id = CreateSampleJob();
  {
    auto journal = Open();
    Must(journal->AppendEvent(id, "", EventLevel::kInfo, "one"));
    Must(journal->AppendEvent(id, "", EventLevel::kInfo, "two"));
  }
  auto journal = Open();
  Must(journal->AppendEvent(id, "", EventLevel::kInfo, "three"));
  const std::vector<EventRecord> events = Must(journal->GetEvents(id));
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[2].seq, 3);
  EXPECT_EQ(events[2].message, "three");
}

// ---- listing ----

TEST_F(JournalTest, ListJobsIsNewestFirstFilteredAndPaginated) {
  auto journal = Open();
  std::vector<std::string> ids;  // in creation order
  for (int i = 0; i < 6; ++i) {
    ids.push_back(Must(journal->CreateJob(SampleJob(i % 3 == 2 ? "power" : "apply", At(23, 10, i)),
                                          SampleSteps())));
  }
  // Two jobs of the same second: creation order breaks the tie.
  ids.push_back(Must(journal->CreateJob(SampleJob("apply", At(23, 10, 5)), {})));
  Must(journal->RecordJobStatus(ids[1], JobStatus::kSucceeded));
  Must(journal->RecordJobStatus(ids[4], JobStatus::kSucceeded));
  Must(journal->RecordStepStarted(ids[4], SampleSteps()[0].id, 1, "{}"));
  Must(journal->RecordStepFinished(ids[4], SampleSteps()[0].id, StepStatus::kSucceeded));

  auto list_ids = [&](const JobFilter& filter) {
    std::vector<std::string> out;
    for (const auto& job : Must(journal->ListJobs(filter))) out.push_back(job.id);
    return out;
  };
  EXPECT_THAT(list_ids({}), ElementsAre(ids[6], ids[5], ids[4], ids[3], ids[2], ids[1], ids[0]));
  EXPECT_THAT(list_ids({.limit = 3, .offset = 0}), ElementsAre(ids[6], ids[5], ids[4]));
  EXPECT_THAT(list_ids({.limit = 3, .offset = 3}), ElementsAre(ids[3], ids[2], ids[1]));
  EXPECT_THAT(list_ids({.limit = 3, .offset = 6}), ElementsAre(ids[0]));
  EXPECT_THAT(list_ids({.limit = 3, .offset = 9}), ElementsAre());
  EXPECT_THAT(list_ids({.kind = "power"}), ElementsAre(ids[5], ids[2]));
  EXPECT_THAT(list_ids({.status = JobStatus::kSucceeded}), ElementsAre(ids[4], ids[1]));
  EXPECT_THAT(list_ids({.status = JobStatus::kSucceeded, .kind = "power"}), ElementsAre());
  EXPECT_THAT(list_ids({.status = JobStatus::kPending, .kind = "apply", .limit = 2, .offset = 1}),
              ElementsAre(ids[3], ids[0]));

  EXPECT_EQ(Must(journal->CountJobs({.limit = 3})), 7);
  EXPECT_EQ(Must(journal->CountJobs({.kind = "apply"})), 5);
  EXPECT_EQ(Must(journal->CountJobs({.status = JobStatus::kSucceeded})), 2);

  const JobRecord listed = Must(journal->ListJobs({.limit = 1, .offset = 2}))[0];
  EXPECT_EQ(listed, Must(journal->GetJob(ids[4])));
  EXPECT_EQ(listed.steps_total, 3);
  EXPECT_EQ(listed.steps_done, 1);
}

TEST_F(JournalTest, UnfinishedJobsArePendingRunningRollingBackAndInterruptedOldestFirst) {
  auto journal = Open();
  std::map<JobStatus, std::string> ids;
  int minute = 0;
  for (const auto& [status, name] : EnumTable<JobStatus>::kNames) {
    ids[status] = Must(journal->CreateJob(SampleJob("apply", At(20, 8, minute++)), {}));
    if (status != JobStatus::kPending) Must(journal->RecordJobStatus(ids[status], status));
  }
  std::vector<std::string> unfinished;
  for (const auto& job : Must(journal->UnfinishedJobs())) {
    EXPECT_FALSE(IsFinished(job.status)) << EnumName(job.status);
    unfinished.push_back(job.id);
  }
  EXPECT_THAT(unfinished, ElementsAre(ids[JobStatus::kPending], ids[JobStatus::kRunning],
                                      ids[JobStatus::kRollingBack], ids[JobStatus::kInterrupted]));
}

TEST_F(JournalTest, IsFinishedForEveryStatusButPendingRunningRollingBackInterrupted) {
  for (const auto& [status, name] : EnumTable<JobStatus>::kNames) {
    const bool unfinished = status == JobStatus::kPending || status == JobStatus::kRunning ||
                            status == JobStatus::kRollingBack || status == JobStatus::kInterrupted;
    EXPECT_EQ(IsFinished(status), !unfinished) << name;
  }
}

// ---- sync history and state ----

TEST_F(JournalTest, SyncHistoryIsNewestFirstAndLimited) {
  auto journal = Open();
  const std::string job = Must(journal->CreateJob(SampleJob(), {}));
  Must(journal->RecordSync({.time = At(23, 9, 0), .revision = "r1", .result = "synced"}));
  Must(journal->RecordSync({.time = At(23, 9, 5),
                            .revision = "r2",
                            .result = "out-of-sync",
                            .message = "2 changes",
                            .job_id = job}));
  Must(journal->RecordSync({.revision = "r3", .result = "invalid", .message = "bad yaml"}));

  const std::vector<SyncRecord> all = Must(journal->SyncHistory(10));
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].revision, "r3");
  EXPECT_NE(all[0].time, TimePoint{});  // unset time: now
  EXPECT_EQ(all[1], (SyncRecord{all[1].id, At(23, 9, 5), "r2", "out-of-sync", "2 changes", job}));
  EXPECT_EQ(all[2].revision, "r1");
  EXPECT_GT(all[0].id, all[1].id);
  EXPECT_EQ(Must(journal->SyncHistory(2)).size(), 2u);
}

TEST_F(JournalTest, StateKeepsTheLastValue) {
  auto journal = Open();
  EXPECT_EQ(Must(journal->GetState("last-applied-revision")), std::nullopt);
  Must(journal->SetState("last-applied-revision", "r1"));
  Must(journal->SetState("last-applied-revision", "r2"));
  Must(journal->SetState("slot/daily", "2026-11-23T00:00:00Z"));
  EXPECT_EQ(Must(journal->GetState("last-applied-revision")), "r2");
  EXPECT_EQ(Must(journal->GetState("slot/daily")), "2026-11-23T00:00:00Z");
}

// ---- errors ----

TEST_F(JournalTest, UnknownJobIsNotFound) {
  auto journal = Open();
  auto job = journal->GetJob("20261123-163000-0000");
  ASSERT_FALSE(job.has_value());
  EXPECT_EQ(job.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(job.error().ToString(), HasSubstr("20261123-163000-0000"));
  EXPECT_EQ(journal->GetSteps("nope").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(journal->GetEvents("nope").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(journal->CancelRequested("nope").error().code, ErrorCode::kNotFound);
}

TEST_F(JournalTest, StartingAnUnknownStepIsNotFound) {
  auto journal = Open();
  const std::string id = Must(journal->CreateJob(SampleJob(), SampleSteps()));
  auto started = journal->RecordStepStarted(id, "no-such-step", 1, "{}");
  ASSERT_FALSE(started.has_value());
  EXPECT_EQ(started.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(started.error().ToString(), HasSubstr("no-such-step"));
  EXPECT_TRUE(journal->Flush().has_value());  // a blocking error is reported once, by its call
}

TEST_F(JournalTest, FailedAsyncWriteIsReportedOnceByTheNextFlush) {
  auto journal = Open(kNeverByTimer);
  EXPECT_TRUE(journal->AppendEvent("no-such-job", "", EventLevel::kInfo, "x").has_value());
  auto flushed = journal->Flush();
  ASSERT_FALSE(flushed.has_value());
  EXPECT_EQ(flushed.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(flushed.error().ToString(), HasSubstr("no-such-job"));
  EXPECT_THAT(flushed.error().ToString(), HasSubstr("asynchronous"));
  EXPECT_TRUE(journal->Flush().has_value());
}

TEST_F(JournalTest, FailedAsyncWriteIsReportedByTheNextBlockingWriteWhichIsNotMade) {
  auto journal = Open(kNeverByTimer);
  const std::string id = Must(journal->CreateJob(SampleJob(), SampleSteps()));
  const std::string step = SampleSteps()[0].id;
  Must(journal->RecordStepStatus("no-such-job", step, StepStatus::kSkipped));

  auto started = journal->RecordStepStarted(id, step, 1, "{}");
  ASSERT_FALSE(started.has_value());
  EXPECT_EQ(started.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(started.error().ToString(), HasSubstr("no-such-job"));
  EXPECT_EQ(Must(journal->GetSteps(id))[0].status, StepStatus::kPending);  // not made

  Must(journal->RecordStepStarted(id, step, 1, "{}"));  // reported once; the retry goes through
  EXPECT_EQ(Must(journal->GetSteps(id))[0].status, StepStatus::kRunning);
}

TEST_F(JournalTest, CountsFailedAsyncWritesBeyondTheFirst) {
  auto journal = Open(kNeverByTimer);
  for (int i = 0; i < 3; ++i) Must(journal->RequestCancel("ghost-" + std::to_string(i)));
  auto flushed = journal->Flush();
  ASSERT_FALSE(flushed.has_value());
  EXPECT_THAT(flushed.error().ToString(), HasSubstr("ghost-0"));
  EXPECT_THAT(flushed.error().ToString(), HasSubstr("and 2 more"));
}

TEST_F(JournalTest, FailedWriteDoesNotSpoilTheRestOfItsBatch) {
  auto journal = Open(kNeverByTimer);
  const std::string id = Must(journal->CreateJob(SampleJob(), SampleSteps()));
  Must(journal->SetState("before", "1"));
  Must(journal->AppendEvent("no-such-job", "", EventLevel::kInfo, "lost"));
  Must(journal->SetState("after", "2"));
  Must(journal->AppendEvent(id, "", EventLevel::kInfo, "kept"));
  EXPECT_FALSE(journal->Flush().has_value());
  EXPECT_EQ(Must(journal->GetState("before")), "1");
  EXPECT_EQ(Must(journal->GetState("after")), "2");
  EXPECT_EQ(Must(journal->GetEvents(id)).size(), 1u);
}

// ---- visibility and durability ----

TEST_F(JournalTest, ReadsSeeTheirThreadsOwnAsyncWrites) {
  auto journal = Open(kNeverByTimer);
  const std::string id = Must(journal->CreateJob(SampleJob(), SampleSteps()));
  Must(journal->RecordJobStatus(id, JobStatus::kRunning));
  EXPECT_EQ(Must(journal->GetJob(id)).status, JobStatus::kRunning);
  Must(journal->AppendEvent(id, "", EventLevel::kInfo, "e"));
  EXPECT_EQ(Must(journal->GetEvents(id)).size(), 1u);
  Must(journal->SetState("k", "v"));
  EXPECT_EQ(Must(journal->GetState("k")), "v");
  Must(journal->RecordSync({.revision = "r", .result = "synced"}));
  EXPECT_EQ(Must(journal->SyncHistory(1)).size(), 1u);
}

TEST_F(JournalTest, StepStartedIsDurableBeforeReturn) {
  const std::string id = CreateSampleJob();
  const std::string step = SampleSteps()[1].id;
  const int ended = RunInChild([&] {
    auto journal = Must(Journal::Open(path_, kNeverByTimer));
    Must(journal->RecordStepStarted(id, step, 2, R"({"undefine":"web-01"})"));
    // Control: an asynchronous write after it, which the timer would commit only in an hour.
    Must(journal->AppendEvent(id, step, EventLevel::kInfo, "never committed"));
    ::kill(::getpid(), SIGKILL);
    return 1;
  });
  ASSERT_EQ(ended, 128 + SIGKILL);

  auto journal = Open();
  const StepRecord recorded = Must(journal->GetSteps(id))[1];
  EXPECT_EQ(recorded.status, StepStatus::kRunning);
  EXPECT_EQ(recorded.attempt, 2);
  EXPECT_EQ(recorded.undo_json, R"({"undefine":"web-01"})");
  EXPECT_TRUE(Must(journal->GetEvents(id)).empty()) << "the control write was committed";
}

TEST_F(JournalTest, UndoInfoAndCreatedJobAreDurableBeforeReturn) {
  const std::string created_path = (dir_.path() / "created-id").string();
  const int ended = RunInChild([&] {
    auto journal = Must(Journal::Open(path_, kNeverByTimer));
    const std::string id = Must(journal->CreateJob(SampleJob(), SampleSteps()));
    Must(journal->RecordStepStarted(id, SampleSteps()[0].id, 1, "{}"));
    Must(journal->RecordStepUndoInfo(id, SampleSteps()[0].id, R"({"volume":"p/v"})"));
    // Tell the parent the id the journal chose (stdio would not be flushed by _exit).
    const int fd = ::open(created_path.c_str(), O_WRONLY | O_CREAT, 0600);
    (void)!::write(fd, id.data(), id.size());
    ::close(fd);
    ::kill(::getpid(), SIGKILL);
    return 1;
  });
  ASSERT_EQ(ended, 128 + SIGKILL);
  std::ifstream in(created_path);
  std::string id;
  std::getline(in, id);
  ASSERT_FALSE(id.empty());

  auto journal = Open();
  EXPECT_EQ(Must(journal->GetJob(id)).steps_total, 3);
  EXPECT_EQ(Must(journal->GetSteps(id))[0].undo_json, R"({"volume":"p/v"})");
}

TEST_F(JournalTest, BlockingWriteAlsoCommitsEarlierAsyncWrites) {
  const std::string id = CreateSampleJob();
  const int ended = RunInChild([&] {
    auto journal = Must(Journal::Open(path_, kNeverByTimer));
    Must(journal->RecordJobStatus(id, JobStatus::kRunning));
    Must(journal->RecordStepStarted(id, SampleSteps()[0].id, 1, "{}"));
    Must(journal->RecordStepFinished(id, SampleSteps()[0].id, StepStatus::kSucceeded));
    Must(journal->AppendEvent(id, SampleSteps()[0].id, EventLevel::kInfo, "volume created"));
    Must(journal->SetState("last-applied-revision", "r9"));
    Must(journal->RecordStepStarted(id, SampleSteps()[1].id, 1, "{}"));
    ::kill(::getpid(), SIGKILL);
    return 1;
  });
  ASSERT_EQ(ended, 128 + SIGKILL);

  auto journal = Open();
  EXPECT_EQ(Must(journal->GetJob(id)).status, JobStatus::kRunning);
  const std::vector<StepRecord> steps = Must(journal->GetSteps(id));
  EXPECT_EQ(steps[0].status, StepStatus::kSucceeded);
  EXPECT_EQ(steps[1].status, StepStatus::kRunning);
  EXPECT_EQ(Must(journal->GetEvents(id)).size(), 1u);
  EXPECT_EQ(Must(journal->GetState("last-applied-revision")), "r9");
}

TEST_F(JournalTest, AsyncWritesAreDurableAfterFlush) {
  const std::string id = CreateSampleJob();
  const int ended = RunInChild([&] {
    auto journal = Must(Journal::Open(path_, kNeverByTimer));
    Must(journal->RecordJobStatus(id, JobStatus::kFailed, "boom", R"({"failed":1})"));
    Must(journal->RecordStepStatus(id, SampleSteps()[2].id, StepStatus::kSkipped));
    Must(journal->AppendEvent(id, "", EventLevel::kError, "boom"));
    Must(journal->RecordSync({.revision = "r1", .result = "failed", .job_id = id}));
    Must(journal->SetState("k", "v"));
    Must(journal->RequestCancel(id));
    Must(journal->Flush());
    ::kill(::getpid(), SIGKILL);
    return 1;
  });
  ASSERT_EQ(ended, 128 + SIGKILL);

  auto journal = Open();
  const JobRecord job = Must(journal->GetJob(id));
  EXPECT_EQ(job.status, JobStatus::kFailed);
  EXPECT_EQ(job.error, "boom");
  EXPECT_TRUE(job.cancel_requested);
  EXPECT_EQ(Must(journal->GetSteps(id))[2].status, StepStatus::kSkipped);
  EXPECT_EQ(Must(journal->GetEvents(id)).size(), 1u);
  EXPECT_EQ(Must(journal->SyncHistory(5)).size(), 1u);
  EXPECT_EQ(Must(journal->GetState("k")), "v");
}

TEST_F(JournalTest, DestructorCommitsPendingWrites) {
  const std::string id = CreateSampleJob();
  {
    auto journal = Open(kNeverByTimer);
    Must(journal->RecordJobStatus(id, JobStatus::kSucceeded));
    Must(journal->AppendEvent(id, "", EventLevel::kInfo, "done"));
  }
  auto journal = Open();
  EXPECT_EQ(Must(journal->GetJob(id)).status, JobStatus::kSucceeded);
  EXPECT_EQ(Must(journal->GetEvents(id)).size(), 1u);
}

TEST_F(JournalTest, AsyncWritesAreCommittedByTheTimerWithoutFlush) {
  auto writer = Open({.flush_interval = std::chrono::milliseconds(5)});
  const std::string id = Must(writer->CreateJob(SampleJob(), SampleSteps()));
  auto reader = Open();  // another connection: does not flush the writer's queue
  Must(writer->RecordJobStatus(id, JobStatus::kRunning));
  // Poll (bounded) rather than sleep a guessed time: the timer commits within flush_interval.
  JobStatus seen = JobStatus::kPending;
  for (int i = 0; i < 10000 && seen != JobStatus::kRunning; ++i) {
    seen = Must(reader->GetJob(id)).status;
    if (seen != JobStatus::kRunning) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(seen, JobStatus::kRunning);
}

TEST_F(JournalTest, TwoJournalsOnOneFileSeeEachOthersCommits) {
  auto serve = Open();
  auto cli = Open();  // `gitvirt jobs` / `gitvirt cancel` beside a running serve
  const std::string id = Must(serve->CreateJob(SampleJob(), SampleSteps()));
  EXPECT_EQ(Must(cli->GetJob(id)).id, id);
  Must(cli->RequestCancel(id));
  Must(cli->Flush());
  EXPECT_TRUE(Must(serve->CancelRequested(id)));
}

// ---- formatting ----

TEST(FormatTimeTest, IsRfc3339Utc) {
  EXPECT_EQ(FormatTime(At(23, 16, 30)), "2026-11-23T16:30:00Z");
  EXPECT_EQ(FormatTime(TimePoint{}), "1970-01-01T00:00:00Z");
  EXPECT_EQ(FormatTime(At(3, 4, 5) + seconds{6}), "2026-11-03T04:05:06Z");
}

}  // namespace
}  // namespace gitvirt
