// Issue 13, failures contained: an unfinished job whose journaled undo record is corrupt must
// never crash the process, never make it crash at every start, and never lead to a libvirt call
// on the strength of that record.
//
// The record is made the way a crash makes it: `gitvirt apply` of one VM on a simulated node is
// killed (GITVIRT_KILL_AT_STEP) right after its create step defined the domain and made its
// volumes, before the step was journaled finished. The test then rewrites that step's undo
// record in the state file, with the sqlite3 tool, into
//   unparsable   bytes that are not JSON;
//   wrong-typed  a JSON object whose fields have the wrong types ("volumes": 5).
// Then, for each:
//   apply   the next command that recovers jobs (`gitvirt power start` of nothing, so that the
//           recovery is all it does) exits 0, names the job, the step and what is wrong with
//           the record, marks the job failed (rollback-incomplete: what the step did may still
//           be there) and makes no mutating libvirt call (GITVIRT_FAULTS_REPORT), so the node
//           holds what it held; a second start finds nothing to recover (no crash loop).
//   serve   `gitvirt serve --once` does the same, then plans and reports the pass.
#include <gtest/gtest.h>

#include <string>

#include "crash_support.h"
#include "temp_dir.h"

namespace gitvirt::crash {
namespace {

bool Contains(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

struct Corruption {
  const char* name;
  const char* undo_json;
  const char* reason;  // what the error must say about the record
};

class CorruptUndoRecord : public ::testing::TestWithParam<std::tuple<Corruption, const char*>> {
 protected:
  void SetUp() override {
    ws_ = std::make_unique<Workspace>(dir_.path(), std::vector<NodeSpec>{{"hv1", "sim:" + (dir_.path() / "state" / "hv1.xml").string(),
                                                                          (dir_.path() / "pool").string()}});
    WriteFile(ws_->manifests() / "web-01.yaml", VmYaml("web-01", VmOptions{"hv1"}));
    // Boundaries: 1 the job journaled, 2 create journaled started, 3 create carried out.
    Output killed = (*ws_)({"apply", "--auto-approve", "--no-color"}, {"GITVIRT_KILL_AT_STEP=3"});
    ASSERT_EQ(killed.rc, 128 + 9) << killed.text;
    auto jobs = ReadJobs(ws_->state_file());
    ASSERT_EQ(jobs.size(), 1u);
    job_ = jobs[0].job.id;
    const StepRecord* create = jobs[0].Step("create/web-01");
    ASSERT_NE(create, nullptr) << jobs[0].Describe();
    ASSERT_EQ(create->status, StepStatus::kRunning) << jobs[0].Describe();
    ASSERT_TRUE(Contains(create->undo_json, "volumes")) << create->undo_json;
    const Corruption& c = std::get<0>(GetParam());
    std::string sql = "UPDATE steps SET undo_json = '";
    for (const char* p = c.undo_json; *p != '\0'; ++p) sql += *p == '\'' ? std::string("''") : std::string(1, *p);
    sql += "' WHERE job_id = '" + job_ + "' AND step_id = 'create/web-01';";
    Output updated = crash::Run({"sqlite3", ws_->state_file(), sql});
    ASSERT_EQ(updated.rc, 0) << updated.text;
    before_ = TakeInventory(ws_->NodeConfigs());
    ASSERT_EQ(before_.domains.size(), 1u) << "the killed create defined the domain";
  }

  testing::TempDir dir_{"gv-corrupt"};
  std::unique_ptr<Workspace> ws_;
  std::string job_;
  Inventory before_;
};

TEST_P(CorruptUndoRecord, FailsTheJobSaysWhyAndTouchesNothing) {
  const Corruption& c = std::get<0>(GetParam());
  const std::string command = std::get<1>(GetParam());
  const fs::path report = dir_.path() / "faults.report";
  std::vector<std::string> args = command == "serve" ? std::vector<std::string>{"serve", "--once"}
                                                     : std::vector<std::string>{"power", "start", "-l", "none=1"};
  Output first = (*ws_)(args, {"GITVIRT_FAULTS_REPORT=" + report.string()});
  EXPECT_EQ(first.rc, 0) << first.text;
  EXPECT_TRUE(Contains(first.text, "job " + job_)) << first.text;
  EXPECT_TRUE(Contains(first.text, "step create/web-01")) << first.text;
  EXPECT_TRUE(Contains(first.text, c.reason)) << first.text;
  EXPECT_EQ(ReadFaultsReport(report)["any"], 0) << "a mutating libvirt call was made:\n" << ReadFile(report);

  auto jobs = ReadJobs(ws_->state_file());
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].job.status, JobStatus::kRollbackIncomplete) << jobs[0].Describe();
  const StepRecord* create = jobs[0].Step("create/web-01");
  ASSERT_NE(create, nullptr);
  EXPECT_EQ(create->status, StepStatus::kUndoFailed) << jobs[0].Describe();
  EXPECT_TRUE(Contains(create->error, c.reason)) << create->error;
  const Inventory after = TakeInventory(ws_->NodeConfigs());
  EXPECT_TRUE(after == before_) << DiffInventories(before_, after);

  // No crash loop: the next start has nothing left to recover and goes on.
  Output second = (*ws_)(args);
  EXPECT_EQ(second.rc, 0) << second.text;
  EXPECT_FALSE(Contains(second.text, "recovering")) << second.text;
}

INSTANTIATE_TEST_SUITE_P(
    Records, CorruptUndoRecord,
    ::testing::Combine(::testing::Values(Corruption{"unparsable", R"({"volumes": ["default/web-01-root.qcow2")",
                                                    "not valid JSON"},
                                         Corruption{"wrong_typed", R"({"volumes": 5, "defined": true})",
                                                    "volumes"}),
                       ::testing::Values("apply", "serve")),
    [](const auto& info) {
      return std::string(std::get<0>(info.param).name) + "_" + std::get<1>(info.param);
    });

}  // namespace
}  // namespace gitvirt::crash
