// The status API's pure request handler, without sockets: every endpoint, its filters and
// pagination, errors, authentication, the event-stream poll, the metrics text format.
#include "gitvirt/api/handler.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "fake_status.h"
#include "temp_dir.h"

namespace gitvirt {
namespace {

using nlohmann::json;
using testing::DemoSnapshot;
using testing::FakeJournal;
using testing::FakeStatusSource;

class HandlerTest : public ::testing::Test {
 protected:
  HandlerTest() : source_(DemoSnapshot(20)), context_{source_, {}, &cache_} {}

  HttpResponse Get(const std::string& target,
                   std::vector<std::pair<std::string, std::string>> headers = {}) {
    return HandleRequest(HttpRequest{"GET", target, std::move(headers)}, context_);
  }
  json GetJson(const std::string& target, int expected_status = 200) {
    const HttpResponse response = Get(target);
    EXPECT_EQ(response.status, expected_status) << target << ": " << response.text();
    EXPECT_EQ(response.content_type, "application/json") << target;
    return json::parse(response.text());
  }
  static std::vector<std::string> Names(const json& page) {
    std::vector<std::string> names;
    for (const json& item : page["items"]) names.push_back(item["name"]);
    return names;
  }
  void ExpectError(const HttpResponse& response, int status) {
    EXPECT_EQ(response.status, status) << response.text();
    const json body = json::parse(response.text());
    ASSERT_TRUE(body.contains("error")) << response.text();
    EXPECT_EQ(body["error"]["code"], status);
    EXPECT_TRUE(body["error"]["message"].is_string());
    EXPECT_FALSE(body["error"]["message"].get<std::string>().empty());
  }

  // A job half done: web-001 succeeded, web-002 running, web-003 pending.
  std::string HalfDoneJob() {
    FakeJournal& journal = source_.fake_journal();
    const std::string id =
        testing::CreateDemoJob(journal, {"web-001", "web-002", "web-003"}, "job-half");
    journal.RecordJobStatus(id, JobStatus::kRunning).value();
    journal.RecordStepStarted(id, "start/web-001", 1, "{}").value();
    journal.RecordStepFinished(id, "start/web-001", StepStatus::kSucceeded).value();
    journal.RecordStepStarted(id, "start/web-002", 1, "{}").value();
    journal.AppendEvent(id, "start/web-001", EventLevel::kInfo, "started web-001").value();
    journal.AppendEvent(id, "start/web-002", EventLevel::kInfo, "starting web-002").value();
    return id;
  }

  FakeStatusSource source_;
  ResponseCache cache_;
  ApiContext context_;
};

const std::vector<std::string> kEveryPath = {
    "/",
    "/index.html",
    "/healthz",
    "/readyz",
    "/metrics",
    "/api/v1/status",
    "/api/v1/resources",
    "/api/v1/resources?kind=VirtualMachine&limit=5",
    "/api/v1/resources/VirtualMachine/web-001",
    "/api/v1/nodes",
    "/api/v1/nodes/hv1",
    "/api/v1/clusters",
    "/api/v1/clusters/pg",
    "/api/v1/jobs",
    "/api/v1/jobs/job-half",
    "/api/v1/jobs/job-half/events",
    "/api/v1/plans/latest",
    "/api/v1/snapshots",
    "/api/v1/backups",
    "/no/such/path",
    "/api/v2/status",
};

// ---- methods, unknown paths ----

TEST_F(HandlerTest, EveryMethodButGetAndHeadAnswers405WithAllowOnEveryPath) {
  HalfDoneJob();
  for (const std::string& path : kEveryPath) {
    for (const char* method : {"POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "BREW"}) {
      const HttpResponse response = HandleRequest(HttpRequest{method, path, {}}, context_);
      SCOPED_TRACE(std::string(method) + " " + path);
      ExpectError(response, 405);
      EXPECT_EQ(response.Header("Allow"), "GET, HEAD");
      EXPECT_FALSE(response.event_stream);
    }
  }
}

TEST_F(HandlerTest, MethodIsCheckedBeforeAuthentication) {
  context_.tokens = BearerTokens::FromList({"secret"});
  ExpectError(HandleRequest(HttpRequest{"DELETE", "/api/v1/status", {}}, context_), 405);
}

TEST_F(HandlerTest, UnknownPathsAnswer404WithAJsonError) {
  for (const char* path : {"/nope", "/api", "/api/v1", "/api/v1/nothing", "/api/v2/status",
                           "/api/v1/resources/VirtualMachine", "/api/v1/jobs/x/events/more",
                           "/api/v1/plans", "/healthz/deep"}) {
    SCOPED_TRACE(path);
    ExpectError(Get(path), 404);
  }
}

TEST_F(HandlerTest, HeadAnswersLikeGet) {
  const HttpResponse get = Get("/api/v1/nodes");
  const HttpResponse head = HandleRequest(HttpRequest{"HEAD", "/api/v1/nodes", {}}, context_);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.content_type, get.content_type);
  EXPECT_EQ(head.text(), get.text());  // the session sends only the length
}

TEST_F(HandlerTest, MalformedTargetsAnswer400) {
  ExpectError(Get("/api/v1/resources?name=%zz"), 400);
  ExpectError(Get("/api/v1/resources/%4"), 400);
  ExpectError(Get("http://example.com/api/v1/status"), 400);
}

TEST_F(HandlerTest, TrailingSlashesAndEncodedSegmentsAreUnderstood) {
  EXPECT_EQ(Get("/api/v1/nodes/").status, 200);
  EXPECT_EQ(GetJson("/api/v1/resources/VirtualMachine/web%2D001")["name"], "web-001");
}

// ---- health ----

TEST_F(HandlerTest, HealthzAnswersOk) {
  EXPECT_EQ(GetJson("/healthz"), (json{{"status", "ok"}}));
}

TEST_F(HandlerTest, ReadyzIs503UntilTheFirstReconcilePass) {
  source_.Update([](StatusSnapshot& s) { s.ready = false; });
  const HttpResponse not_ready = Get("/readyz");
  ExpectError(not_ready, 503);
  EXPECT_EQ(json::parse(not_ready.text())["ready"], false);
  source_.Update([](StatusSnapshot& s) { s.ready = true; });
  const json ready = GetJson("/readyz");
  EXPECT_EQ(ready["ready"], true);
  EXPECT_EQ(ready["generation"], 3);
}

// ---- status ----

TEST_F(HandlerTest, StatusSummarisesRepositoryRevisionSyncCountsPoliciesAndJob) {
  const std::string job = HalfDoneJob();
  source_.Update([&](StatusSnapshot& s) { s.current_job = job; });
  const json status = GetJson("/api/v1/status");
  EXPECT_EQ(status["repo"], "https://git.example.com/infra/vms.git");
  EXPECT_EQ(status["ref"], "main");
  EXPECT_EQ(status["revision"], "4f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39");
  EXPECT_EQ(status["lastSyncResult"], "out-of-sync");
  EXPECT_TRUE(status["lastSync"].get<std::string>().ends_with("Z"));
  EXPECT_EQ(status["ready"], true);
  EXPECT_EQ(status["newestRefused"], false);

  const json& counts = status["counts"];
  EXPECT_EQ(counts["resources"], 21);
  EXPECT_EQ(counts["sync"]["Synced"], 19);
  EXPECT_EQ(counts["sync"]["OutOfSync"], 1);
  EXPECT_EQ(counts["sync"]["Missing"], 1);
  EXPECT_EQ(counts["sync"]["Orphaned"], 0);
  EXPECT_EQ(counts["sync"]["Failed"], 0);
  EXPECT_EQ(counts["health"]["Degraded"], 1);
  EXPECT_EQ(counts["health"]["Unknown"], 1);
  EXPECT_EQ(counts["kinds"]["VirtualMachine"], 20);
  EXPECT_EQ(counts["nodes"], 2);
  EXPECT_EQ(counts["clustersReady"], 1);

  ASSERT_EQ(status["policies"].size(), 2u);
  EXPECT_EQ(status["policies"][0]["name"], "nightly");
  EXPECT_TRUE(status["policies"][0]["lastRun"].is_string());
  EXPECT_TRUE(status["policies"][0]["nextRun"].is_string());
  EXPECT_TRUE(status["policies"][1]["lastRun"].is_null());

  EXPECT_EQ(status["currentJob"]["id"], job);
  EXPECT_EQ(status["currentJob"]["status"], "running");
  EXPECT_EQ(status["currentJob"]["stepsDone"], 1);
  EXPECT_EQ(status["currentJob"]["stepsTotal"], 3);
  EXPECT_DOUBLE_EQ(status["currentJob"]["progress"].get<double>(), 33.3);
}

TEST_F(HandlerTest, StatusShowsAJobRunByAnotherProcess) {
  // Not the controller's job (snapshot.current_job is empty): a CLI apply sharing the state.
  const std::string job = HalfDoneJob();
  EXPECT_EQ(GetJson("/api/v1/status")["currentJob"]["id"], job);
  source_.fake_journal().RecordJobStatus(job, JobStatus::kInterrupted).value();
  EXPECT_TRUE(GetJson("/api/v1/status")["currentJob"].is_null()) << "waiting for a restart";
  source_.fake_journal().RecordJobStatus(job, JobStatus::kSucceeded).value();
  EXPECT_TRUE(GetJson("/api/v1/status")["currentJob"].is_null());
}

TEST_F(HandlerTest, StatusExplainsARefusedCommitWithFileAndLine) {
  source_.Publish(DemoSnapshot(20, /*refused=*/true));
  const json status = GetJson("/api/v1/status");
  EXPECT_EQ(status["newestRefused"], true);
  EXPECT_EQ(status["lastSyncResult"], "invalid");
  ASSERT_EQ(status["diagnostics"].size(), 1u);
  const json& d = status["diagnostics"][0];
  EXPECT_EQ(d["file"], "vms/web.yaml");
  EXPECT_EQ(d["line"], 14);
  EXPECT_EQ(d["column"], 11);
  EXPECT_EQ(d["severity"], "error");
  EXPECT_EQ(d["text"],
            "vms/web.yaml:14:11: error: spec.memory: expected a size like 4GiB, got 'lots'");
}

// ---- resources ----

TEST_F(HandlerTest, ResourcesArePaginatedWithTotal) {
  const json first = GetJson("/api/v1/resources?limit=5");
  EXPECT_EQ(first["total"], 21);
  EXPECT_EQ(first["limit"], 5);
  EXPECT_EQ(first["offset"], 0);
  ASSERT_EQ(first["items"].size(), 5u);
  const json second = GetJson("/api/v1/resources?limit=5&offset=5");
  EXPECT_EQ(second["items"][0]["name"], GetJson("/api/v1/resources")["items"][5]["name"]);
  const json paged = GetJson("/api/v1/resources?page=2&per_page=5");
  EXPECT_EQ(paged["items"], second["items"]);
  EXPECT_EQ(paged["offset"], 5);
  EXPECT_EQ(GetJson("/api/v1/resources?offset=100")["items"].size(), 0u);
  EXPECT_EQ(GetJson("/api/v1/resources?limit=0")["items"].size(), 0u);
  EXPECT_EQ(GetJson("/api/v1/resources")["limit"], 100);
  EXPECT_EQ(GetJson("/api/v1/resources?limit=999999")["limit"], 1000);
}

TEST_F(HandlerTest, AHugePageIsEmptyNotTheFirst) {
  // (page - 1) * per_page overflowed into a negative offset, read as page 1.
  for (const char* target : {"/api/v1/resources?page=99999999999999999", "/api/v1/jobs?page=99999999999999999",
                             "/api/v1/resources?page=9223372036854775807&per_page=1000",
                             "/api/v1/resources?offset=9223372036854775807"}) {
    SCOPED_TRACE(target);
    const json page = GetJson(target);
    EXPECT_EQ(page["items"].size(), 0u);
    EXPECT_GT(page["offset"].get<long long>(), 0);
  }
  ExpectError(Get("/api/v1/resources?page=99999999999999999999999"), 400);  // not a long long
}

TEST_F(HandlerTest, BadPaginationAnswers400) {
  for (const char* target :
       {"/api/v1/resources?limit=-1", "/api/v1/resources?limit=ten", "/api/v1/resources?offset=1.5",
        "/api/v1/resources?page=0", "/api/v1/jobs?limit=x", "/api/v1/backups?offset=-3"}) {
    SCOPED_TRACE(target);
    ExpectError(Get(target), 400);
  }
}

TEST_F(HandlerTest, ResourcesFilterByKindStatusHealthNodeAndName) {
  EXPECT_EQ(GetJson("/api/v1/resources?kind=SnapshotPolicy")["total"], 1);
  EXPECT_EQ(GetJson("/api/v1/resources?kind=virtualmachine")["total"], 20);
  EXPECT_EQ(Names(GetJson("/api/v1/resources?status=OutOfSync")),
            std::vector<std::string>{"web-002"});
  EXPECT_EQ(Names(GetJson("/api/v1/resources?status=OutOfSync,Missing")),
            (std::vector<std::string>{"web-002", "web-003"}));
  EXPECT_EQ(Names(GetJson("/api/v1/resources?health=Degraded")),
            std::vector<std::string>{"web-005"});
  EXPECT_EQ(GetJson("/api/v1/resources?node=hv1")["total"], 10);
  EXPECT_EQ(Names(GetJson("/api/v1/resources?name=db-*&limit=2")),
            (std::vector<std::string>{"db-004", "db-008"}));
  EXPECT_EQ(GetJson("/api/v1/resources?name=db-*")["total"], 5);
  ExpectError(Get("/api/v1/resources?status=Fine"), 400);
  ExpectError(Get("/api/v1/resources?health=Happy"), 400);
  ExpectError(Get("/api/v1/resources?kind=Pod"), 400);
}

TEST_F(HandlerTest, ResourcesFilterByKubernetesLabelSelector) {
  // tier=db: every 4th VM (5) plus the cluster members web-018 and web-019.
  const json db = GetJson("/api/v1/resources?selector=tier%3Ddb");
  EXPECT_EQ(db["total"], 7);
  const json db_prod = GetJson("/api/v1/resources?selector=tier=db,env!=dev");
  EXPECT_EQ(db_prod["total"], 6);  // db-016 is in env=dev
  const json in_set = GetJson("/api/v1/resources?selector=env+in+(dev)");
  EXPECT_EQ(in_set["total"], 4);
  EXPECT_EQ(GetJson("/api/v1/resources?selector=!tier")["total"], 1);  // the policy
  const HttpResponse bad = Get("/api/v1/resources?selector=tier%20in%20(a");
  ExpectError(bad, 400);
  EXPECT_NE(json::parse(bad.text())["error"]["message"].get<std::string>().find("selector"),
            std::string::npos);
}

TEST_F(HandlerTest, ResourceSummaryShape) {
  const json item = GetJson("/api/v1/resources?status=OutOfSync")["items"][0];
  for (const char* key :
       {"kind", "name", "node", "labels", "tags", "sync", "health", "ready", "revision", "power",
        "address", "addressSource", "cluster", "group", "driftCount", "lastJob"}) {
    EXPECT_TRUE(item.contains(key)) << key;
  }
  EXPECT_EQ(item["kind"], "VirtualMachine");
  EXPECT_EQ(item["sync"], "OutOfSync");
  EXPECT_EQ(item["driftCount"], 1);
  EXPECT_EQ(item["labels"]["tier"], "web");
  EXPECT_EQ(item["ready"], true);
}

TEST_F(HandlerTest, ResourceDetailHasDesiredObservedDriftAndConditions) {
  const json vm = GetJson("/api/v1/resources/VirtualMachine/web-002");
  EXPECT_EQ(vm["desired"]["memory"], "8GiB");
  EXPECT_EQ(vm["observed"]["memory"], "4GiB");
  ASSERT_EQ(vm["drift"].size(), 1u);
  EXPECT_EQ(vm["drift"][0], (json{{"path", "memory"},
                                  {"desired", "8GiB"},
                                  {"observed", "4GiB"},
                                  {"changeClass", "restart"}}));
  ASSERT_EQ(vm["conditions"].size(), 1u);
  EXPECT_EQ(vm["conditions"][0]["type"], "Ready");
  EXPECT_EQ(vm["conditions"][0]["status"], true);
  EXPECT_TRUE(vm["conditions"][0]["since"].is_string());

  const json missing = GetJson("/api/v1/resources/virtualmachine/web-003");
  EXPECT_TRUE(missing["observed"].is_null());
  EXPECT_EQ(missing["sync"], "Missing");

  ExpectError(Get("/api/v1/resources/VirtualMachine/nope"), 404);
  ExpectError(Get("/api/v1/resources/Pod/web-001"), 404);
}

// ---- nodes, clusters ----

TEST_F(HandlerTest, NodesShowCapacityAndAllocation) {
  const json nodes = GetJson("/api/v1/nodes");
  EXPECT_EQ(nodes["total"], 2);
  const json& hv1 = nodes["items"][0];
  EXPECT_EQ(hv1["name"], "hv1");
  EXPECT_EQ(hv1["reachable"], true);
  EXPECT_EQ(hv1["capacity"], (json{{"vcpus", 64}, {"memory", 256ULL << 30}}));
  EXPECT_EQ(hv1["allocated"]["vcpus"], 20);
  EXPECT_EQ(hv1["vms"], 10);
  EXPECT_EQ(hv1["vmsManaged"], 10);
  EXPECT_EQ(GetJson("/api/v1/nodes/hv2")["name"], "hv2");
  ExpectError(Get("/api/v1/nodes/hv9"), 404);
}

TEST_F(HandlerTest, ClustersShowReadyAndDesiredPerGroupWithMembers) {
  const json clusters = GetJson("/api/v1/clusters");
  ASSERT_EQ(clusters["total"], 1);
  const json pg = GetJson("/api/v1/clusters/pg");
  EXPECT_EQ(pg, clusters["items"][0]);
  EXPECT_EQ(pg["desired"], 3);
  EXPECT_EQ(pg["ready"], 3);
  ASSERT_EQ(pg["groups"].size(), 2u);
  EXPECT_EQ(pg["groups"][1]["name"], "replica");
  EXPECT_EQ(pg["groups"][1]["desired"], 2);
  EXPECT_EQ(pg["groups"][1]["ready"], 2);
  ASSERT_EQ(pg["groups"][1]["members"].size(), 2u);
  EXPECT_EQ(pg["groups"][1]["members"][0],
            (json{{"name", "web-019"}, {"node", "hv1"}, {"power", "Running"}, {"ready", true}}));
  ExpectError(Get("/api/v1/clusters/nope"), 404);
}

// ---- jobs ----

TEST_F(HandlerTest, JobsArePaginatedFilteredAndCarryProgress) {
  FakeJournal& journal = source_.fake_journal();
  for (int i = 0; i < 5; ++i) {
    JobRecord job;
    job.id = "job-" + std::to_string(i);
    job.kind = i % 2 == 0 ? "apply" : "backup";
    job.created_at = testing::NowSeconds() - std::chrono::minutes(10 - i);
    journal.CreateJob(job, {}).value();
    journal.RecordJobStatus(job.id, i == 3 ? JobStatus::kFailed : JobStatus::kSucceeded).value();
  }
  HalfDoneJob();
  const json all = GetJson("/api/v1/jobs?limit=2");
  EXPECT_EQ(all["total"], 6);
  ASSERT_EQ(all["items"].size(), 2u);
  EXPECT_EQ(all["items"][0]["id"], "job-half");  // newest first
  EXPECT_DOUBLE_EQ(all["items"][0]["progress"].get<double>(), 33.3);
  EXPECT_EQ(all["items"][1]["id"], "job-4");
  EXPECT_DOUBLE_EQ(all["items"][1]["progress"].get<double>(), 100.0);  // no steps, finished
  EXPECT_EQ(GetJson("/api/v1/jobs?limit=2&offset=2")["items"][0]["id"], "job-3");

  const json failed = GetJson("/api/v1/jobs?status=failed");
  EXPECT_EQ(failed["total"], 1);
  EXPECT_EQ(failed["items"][0]["id"], "job-3");
  EXPECT_EQ(GetJson("/api/v1/jobs?kind=backup")["total"], 2);
  EXPECT_EQ(GetJson("/api/v1/jobs?kind=backup&status=succeeded")["total"], 1);
  ExpectError(Get("/api/v1/jobs?status=exploded"), 400);
}

TEST_F(HandlerTest, JobDetailShowsStepsCurrentStepsPerTargetStateAndErrors) {
  const std::string id = HalfDoneJob();
  const json job = GetJson("/api/v1/jobs/" + id);
  EXPECT_EQ(job["status"], "running");
  EXPECT_EQ(job["finished"], false);
  EXPECT_EQ(job["stepsTotal"], 3);
  EXPECT_EQ(job["stepsDone"], 1);
  EXPECT_DOUBLE_EQ(job["progress"].get<double>(), 33.3);
  ASSERT_EQ(job["steps"].size(), 3u);
  EXPECT_EQ(job["steps"][0]["status"], "succeeded");
  EXPECT_TRUE(job["steps"][0]["startedAt"].is_string());
  EXPECT_TRUE(job["steps"][0]["finishedAt"].is_string());
  EXPECT_EQ(job["steps"][0]["action"]["type"], "start");
  EXPECT_EQ(job["steps"][1]["status"], "running");
  EXPECT_TRUE(job["steps"][2]["startedAt"].is_null());
  EXPECT_EQ(job["currentSteps"], json::array({"start/web-002"}));
  ASSERT_EQ(job["targets"].size(), 3u);
  EXPECT_EQ(job["targets"][0]["target"], "VirtualMachine/web-001");
  EXPECT_EQ(job["targets"][0]["name"], "web-001");
  EXPECT_EQ(job["targets"][0]["status"], "succeeded");
  EXPECT_EQ(job["targets"][1]["status"], "running");
  EXPECT_EQ(job["targets"][2]["status"], "pending");
  EXPECT_EQ(job["rollback"]["outcome"], "none");
  EXPECT_EQ(job["rollback"]["attempted"], false);
  EXPECT_EQ(job["planUrl"], "/api/v1/plans/" + id);
  EXPECT_EQ(job["eventsUrl"], "/api/v1/jobs/" + id + "/events");
  ExpectError(Get("/api/v1/jobs/no-such-job"), 404);
}

TEST_F(HandlerTest, JobDetailReportsTheRollbackOutcome) {
  FakeJournal& journal = source_.fake_journal();
  const std::string id = testing::CreateDemoJob(journal, {"a", "b", "c"}, "job-rb");
  journal.RecordJobStatus(id, JobStatus::kRunning).value();
  journal.RecordStepFinished(id, "start/a", StepStatus::kSucceeded).value();
  journal.RecordStepFinished(id, "start/b", StepStatus::kFailed, "domain b: no space").value();
  journal.RecordStepStatus(id, "start/c", StepStatus::kSkipped).value();
  journal.RecordStepStatus(id, "start/a", StepStatus::kUndone).value();
  journal
      .RecordJobStatus(
          id, JobStatus::kRolledBack, "step start/b failed",
          R"({"succeeded":1,"failed":1,"rollback":{"outcome":"rolled-back","undone":["start/a"]}})")
      .value();
  const json job = GetJson("/api/v1/jobs/" + id);
  EXPECT_EQ(job["status"], "rolled-back");
  EXPECT_EQ(job["finished"], true);
  EXPECT_EQ(job["error"], "step start/b failed");
  EXPECT_EQ(job["rollback"]["outcome"], "rolled-back");
  EXPECT_EQ(job["rollback"]["attempted"], true);
  EXPECT_EQ(job["rollback"]["undone"], 1);
  EXPECT_EQ(job["rollback"]["details"]["undone"], json::array({"start/a"}));
  EXPECT_EQ(job["summary"]["failed"], 1);
  ASSERT_EQ(job["errors"].size(), 1u);
  EXPECT_EQ(job["errors"][0]["step"], "start/b");
  EXPECT_EQ(job["targets"][0]["status"], "undone");
  EXPECT_EQ(job["targets"][1]["error"], "domain b: no space");
  EXPECT_EQ(job["currentSteps"], json::array());
  EXPECT_DOUBLE_EQ(job["progress"].get<double>(), 100.0);
}

TEST_F(HandlerTest, RollbackOutcomeIsDerivedWithoutASummary) {
  FakeJournal& journal = source_.fake_journal();
  const std::string id = testing::CreateDemoJob(journal, {"a", "b"}, "job-rbi");
  journal.RecordStepStatus(id, "start/a", StepStatus::kUndoFailed, "cannot undefine").value();
  journal.RecordStepStatus(id, "start/b", StepStatus::kNotUndoable).value();
  journal.RecordJobStatus(id, JobStatus::kRollbackIncomplete).value();
  const json rollback = GetJson("/api/v1/jobs/" + id)["rollback"];
  EXPECT_EQ(rollback["outcome"], "incomplete");
  EXPECT_EQ(rollback["undoFailed"], 1);
  EXPECT_EQ(rollback["notUndoable"], 1);
  EXPECT_EQ(rollback["strategy"], "FULL");
}

// ---- events ----

TEST_F(HandlerTest, JobEventsAnswerWithAnEventStreamMarker) {
  const std::string id = HalfDoneJob();
  const HttpResponse stream = Get("/api/v1/jobs/" + id + "/events");
  EXPECT_EQ(stream.status, 200);
  EXPECT_EQ(stream.content_type, "text/event-stream");
  EXPECT_EQ(stream.Header("Cache-Control"), "no-cache");
  ASSERT_TRUE(stream.event_stream);
  EXPECT_EQ(*stream.event_stream, (EventStreamRequest{id, 0}));

  EXPECT_EQ(Get("/api/v1/jobs/" + id + "/events?after=7").event_stream->after_seq, 7);
  // Last-Event-ID (an EventSource reconnecting) wins over the query.
  EXPECT_EQ(Get("/api/v1/jobs/" + id + "/events?after=7", {{"last-event-id", "9"}})
                .event_stream->after_seq,
            9);
  ExpectError(Get("/api/v1/jobs/" + id + "/events?after=x"), 400);
  ExpectError(Get("/api/v1/jobs/nope/events"), 404);
  const HttpResponse head =
      HandleRequest(HttpRequest{"HEAD", "/api/v1/jobs/" + id + "/events", {}}, context_);
  EXPECT_EQ(head.status, 200);
  EXPECT_FALSE(head.event_stream);
}

TEST_F(HandlerTest, JobEventsAsJsonForClientsThatAcceptOnlyJson) {
  const std::string id = HalfDoneJob();
  const HttpResponse response =
      Get("/api/v1/jobs/" + id + "/events?after=1", {{"Accept", "application/json"}});
  EXPECT_FALSE(response.event_stream);
  const json body = json::parse(response.text());
  ASSERT_EQ(body["items"].size(), 1u);
  EXPECT_EQ(body["items"][0]["seq"], 2);
  EXPECT_EQ(body["items"][0]["message"], "starting web-002");
  EXPECT_EQ(body["items"][0]["stepId"], "start/web-002");
  EXPECT_EQ(body["items"][0]["level"], "info");
  EXPECT_EQ(body["finished"], false);
}

// Splits SSE text into messages: each a map of field -> value.
std::vector<std::map<std::string, std::string>> ParseSse(const std::string& text) {
  std::vector<std::map<std::string, std::string>> messages;
  std::map<std::string, std::string> current;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) {
      if (!current.empty()) messages.push_back(std::move(current));
      current.clear();
      continue;
    }
    const auto colon = line.find(':');
    if (colon == 0) continue;  // a comment
    std::string value = line.substr(colon + 1);
    if (!value.empty() && value[0] == ' ') value.erase(0, 1);
    current[line.substr(0, colon)] = value;
  }
  return messages;
}

TEST_F(HandlerTest, EventStreamPollReplaysSendsProgressAndEndsOnePollAfterTheJobFinished) {
  const std::string id = HalfDoneJob();
  FakeJournal& journal = source_.fake_journal();
  EventStreamState state{id, 1};

  auto first = ParseSse(PollEventStream(journal, state));
  ASSERT_EQ(first.size(), 3u);
  EXPECT_EQ(first[0].at("retry"), "2000");
  EXPECT_EQ(first[1].at("id"), "2");  // replay after Last-Event-ID 1
  EXPECT_EQ(json::parse(first[1].at("data"))["message"], "starting web-002");
  EXPECT_EQ(first[2].at("event"), "progress");
  EXPECT_DOUBLE_EQ(json::parse(first[2].at("data"))["progress"].get<double>(), 33.3);
  EXPECT_EQ(state.after_seq, 2);

  EXPECT_EQ(PollEventStream(journal, state), "");  // nothing new, progress unchanged

  journal.RecordStepFinished(id, "start/web-002", StepStatus::kSucceeded).value();
  journal.AppendEvent(id, "start/web-002", EventLevel::kInfo, "started web-002").value();
  auto second = ParseSse(PollEventStream(journal, state));
  ASSERT_EQ(second.size(), 2u);
  EXPECT_EQ(second[0].at("id"), "3");
  EXPECT_DOUBLE_EQ(json::parse(second[1].at("data"))["progress"].get<double>(), 66.7);

  journal.RecordStepFinished(id, "start/web-003", StepStatus::kSucceeded).value();
  journal.RecordJobStatus(id, JobStatus::kSucceeded).value();
  auto third = ParseSse(PollEventStream(journal, state));
  ASSERT_EQ(third.size(), 1u);
  EXPECT_EQ(third[0].at("event"), "progress");
  EXPECT_FALSE(state.finished);
  // An event appended just after the final status still goes out before the end.
  journal.AppendEvent(id, "", EventLevel::kInfo, "job succeeded").value();
  auto last = ParseSse(PollEventStream(journal, state));
  ASSERT_EQ(last.size(), 2u);
  EXPECT_EQ(last[0].at("id"), "4");
  EXPECT_EQ(last[1].at("event"), "end");
  const json end = json::parse(last[1].at("data"));
  EXPECT_EQ(end["status"], "succeeded");
  EXPECT_DOUBLE_EQ(end["progress"].get<double>(), 100.0);
  EXPECT_TRUE(state.finished);
}

TEST_F(HandlerTest, EventStreamOfAVanishedJobEnds) {
  EventStreamState state{"gone", 0};
  auto messages = ParseSse(PollEventStream(source_.fake_journal(), state));
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(messages[1].at("event"), "end");
  EXPECT_TRUE(state.finished);
}

// ---- plans ----

TEST_F(HandlerTest, PlansByJobIdOrLatest) {
  const std::string id = HalfDoneJob();
  const json latest = GetJson("/api/v1/plans/latest");
  EXPECT_EQ(latest["formatVersion"], 1);
  EXPECT_EQ(GetJson("/api/v1/plans/plan-latest"), latest);
  const json plan = GetJson("/api/v1/plans/" + id);
  ASSERT_EQ(plan["actions"].size(), 3u);
  EXPECT_EQ(plan["actions"][0]["target"], "VirtualMachine/web-001");
  ExpectError(Get("/api/v1/plans/nope"), 404);

  JobRecord no_plan;
  no_plan.id = "job-noplan";
  source_.fake_journal().CreateJob(no_plan, {}).value();
  ExpectError(Get("/api/v1/plans/job-noplan"), 404);
  source_.Update([](StatusSnapshot& s) { s.latest_plan_json.clear(); });
  ExpectError(Get("/api/v1/plans/latest"), 404);
}

// ---- snapshots, backups ----

TEST_F(HandlerTest, SnapshotsAndBackupsAreFilteredAndPaginated) {
  const json snapshots = GetJson("/api/v1/snapshots");
  EXPECT_EQ(snapshots["total"], 3);
  EXPECT_EQ(snapshots["items"][0]["vm"], "web-001");
  EXPECT_EQ(snapshots["items"][0]["policy"], "nightly");
  EXPECT_TRUE(snapshots["items"][0]["created"].is_string());
  EXPECT_EQ(GetJson("/api/v1/snapshots?vm=web-002")["total"], 1);
  EXPECT_EQ(GetJson("/api/v1/snapshots?node=hv1")["total"], 2);

  const json backups = GetJson("/api/v1/backups?limit=1&offset=1");
  EXPECT_EQ(backups["total"], 3);
  ASSERT_EQ(backups["items"].size(), 1u);
  EXPECT_EQ(backups["items"][0], (json{{"id", "bk-1"},
                                       {"vm", "web-002"},
                                       {"node", "hv2"},
                                       {"policy", "weekly"},
                                       {"location", "/backups/web-002"},
                                       {"mode", "snapshot"},
                                       {"compression", "zstd"},
                                       {"bytes", 2000000},
                                       {"verified", true},
                                       {"protected", false},
                                       {"status", "complete"},
                                       {"created", backups["items"][0]["created"]}}));
  EXPECT_EQ(GetJson("/api/v1/backups?status=failed")["total"], 1);
  EXPECT_EQ(GetJson("/api/v1/backups?policy=weekly&vm=web-003")["total"], 1);
  EXPECT_EQ(GetJson("/api/v1/backups?policy=daily")["total"], 0);
}

// ---- metrics ----

TEST_F(HandlerTest, MetricsAreValidPrometheusText) {
  const HttpResponse response = Get("/metrics");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.content_type, "text/plain; version=0.0.4; charset=utf-8");
  const std::string text(response.text());
  ASSERT_TRUE(text.ends_with("\n"));

  const std::regex help(R"(# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) \S.*)");
  const std::regex type(
      R"(# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|summary|histogram|untyped))");
  const std::regex sample(
      R"(([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*",?)*\})? (-?[0-9.e+-]+|NaN|[+-]Inf))");
  std::set<std::string> helped, typed;
  std::map<std::string, std::string> types;
  std::istringstream in(text);
  std::string line;
  int samples = 0;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, help)) {
      EXPECT_TRUE(helped.insert(m[1]).second) << "HELP twice: " << line;
    } else if (std::regex_match(line, m, type)) {
      EXPECT_TRUE(helped.contains(m[1])) << "TYPE before HELP: " << line;
      EXPECT_TRUE(typed.insert(m[1]).second) << "TYPE twice: " << line;
      types[m[1]] = m[2];
    } else if (std::regex_match(line, m, sample)) {
      std::string family = m[1];
      if (!typed.contains(family)) {
        for (const char* suffix : {"_sum", "_count"}) {
          if (family.ends_with(suffix)) family.resize(family.size() - std::strlen(suffix));
        }
      }
      EXPECT_TRUE(typed.contains(family)) << "sample without TYPE: " << line;
      ++samples;
    } else {
      ADD_FAILURE() << "not a Prometheus line: '" << line << "'";
    }
  }
  EXPECT_GT(samples, 200);
  EXPECT_EQ(types["gitvirt_reconciles_total"], "counter");
  EXPECT_EQ(types["gitvirt_step_duration_seconds"], "summary");

  for (const char* expected : {
           "gitvirt_ready 1\n",
           "gitvirt_resource_sync_status{kind=\"VirtualMachine\",name=\"web-002\",status="
           "\"OutOfSync\"} 1\n",
           "gitvirt_resource_sync_status{kind=\"VirtualMachine\",name=\"web-002\",status="
           "\"Synced\"} 0\n",
           "gitvirt_resource_health{kind=\"VirtualMachine\",name=\"web-005\",health=\"Degraded\"} "
           "1\n",
           "gitvirt_resources_by_sync_status{status=\"Synced\"} 19\n",
           "gitvirt_reconciles_total 42\n",
           "gitvirt_source_fetches_total 40\n",
           "gitvirt_source_loads_total 4\n",
           "gitvirt_reconcile_duration_seconds 0.25\n",
           "gitvirt_jobs_total 3\n",
           "gitvirt_jobs_failed_total 1\n",
           "gitvirt_steps_total 30\n",
           "gitvirt_step_duration_seconds_sum 61.5\n",
           "gitvirt_step_duration_seconds_count 30\n",
           "gitvirt_backup_bytes_total 3000000\n",
           "gitvirt_backup_duration_seconds_sum 12.5\n",
           "gitvirt_backups_failed_total 1\n",
           "gitvirt_backups{status=\"failed\"} 1\n",
           "gitvirt_vm_last_backup_bytes{vm=\"web-002\"} 2000000\n",
           "gitvirt_node_vms{node=\"hv1\"} 10\n",
           "gitvirt_node_memory_bytes{node=\"hv1\"} 274877906944\n",
           "gitvirt_cluster_members_ready{cluster=\"pg\"} 3\n",
           "gitvirt_policy_last_run_failed{kind=\"BackupPolicy\",name=\"weekly\"} 1\n",
       }) {
    EXPECT_NE(text.find(expected), std::string::npos) << "missing: " << expected;
  }
}

TEST_F(HandlerTest, MetricLabelValuesAreEscaped) {
  source_.Update([](StatusSnapshot& s) { s.resources[0].name = "we\"ird\\na\nme"; });
  const std::string text(Get("/metrics").text());
  EXPECT_NE(text.find(R"(name="we\"ird\\na\nme")"), std::string::npos);
}

// ---- authentication ----

TEST_F(HandlerTest, TokensAreRequiredWhenConfigured) {
  context_.tokens = BearerTokens::FromList({"first-token", "second-token"});
  const HttpResponse missing = Get("/api/v1/status");
  ExpectError(missing, 401);
  EXPECT_EQ(missing.Header("WWW-Authenticate"), R"(Bearer realm="gitvirt")");

  const HttpResponse wrong = Get("/api/v1/status", {{"Authorization", "Bearer nope"}});
  ExpectError(wrong, 401);
  EXPECT_EQ(wrong.Header("WWW-Authenticate"), R"(Bearer realm="gitvirt", error="invalid_token")");
  ExpectError(Get("/metrics", {{"Authorization", "Basic Zmlyc3QtdG9rZW4="}}), 401);
  ExpectError(Get("/api/v1/status", {{"Authorization", "Bearer first-token-and-more"}}), 401);
  ExpectError(Get("/api/v1/status", {{"Authorization", "Bearer first"}}), 401);

  EXPECT_EQ(Get("/api/v1/status", {{"Authorization", "Bearer first-token"}}).status, 200);
  EXPECT_EQ(Get("/metrics", {{"authorization", "bearer second-token"}}).status, 200);
  EXPECT_EQ(Get("/api/v1/resources", {{"Authorization", "Bearer  second-token "}}).status, 200);
  // Open without a token: liveness and the (data-free) dashboard page.
  EXPECT_EQ(Get("/healthz").status, 200);
  EXPECT_EQ(Get("/").status, 200);
  for (const std::string& path : kEveryPath) {
    if (path == "/" || path == "/index.html" || path == "/healthz") continue;
    SCOPED_TRACE(path);
    EXPECT_EQ(Get(path).status, 401);
  }
}

TEST(BearerTokensTest, LoadsOneTokenPerLineSkippingCommentsAndBlanks) {
  testing::TempDir dir("gv-api");
  const std::string path = (dir.path() / "tokens").string();
  std::ofstream(path) << "# dashboard\n  alpha-123  \n\n#beta-456\r\ngamma-789\r\n";
  auto tokens = BearerTokens::Load(path);
  ASSERT_TRUE(tokens) << tokens.error().ToString();
  EXPECT_EQ(tokens->size(), 2u);
  EXPECT_TRUE(tokens->Accepts("alpha-123"));
  EXPECT_TRUE(tokens->Accepts("gamma-789"));
  EXPECT_FALSE(tokens->Accepts("beta-456"));
  EXPECT_FALSE(tokens->Accepts("# dashboard"));
  EXPECT_FALSE(tokens->Accepts(""));
  EXPECT_FALSE(tokens->Accepts("alpha-12"));
}

TEST(BearerTokensTest, RefusesMissingOrEmptyFiles) {
  testing::TempDir dir("gv-api");
  const std::string path = (dir.path() / "tokens").string();
  EXPECT_EQ(BearerTokens::Load(path).error().code, ErrorCode::kInvalidArgument);
  std::ofstream(path) << "# nothing here\n\n";
  auto empty = BearerTokens::Load(path);
  ASSERT_FALSE(empty);
  EXPECT_NE(empty.error().message.find("no token"), std::string::npos);
  EXPECT_FALSE(BearerTokens().enabled());
  EXPECT_FALSE(BearerTokens().Accepts("anything"));
}

// ---- caching, robustness, dashboard ----

TEST_F(HandlerTest, SnapshotResponsesAreSerialisedOncePerSnapshot) {
  const HttpResponse first = Get("/api/v1/resources?limit=1000");
  const HttpResponse again = Get("/api/v1/resources?limit=1000");
  EXPECT_EQ(first.body, again.body);  // the same shared buffer
  source_.Update([](StatusSnapshot& s) { s.resources.pop_back(); });
  const HttpResponse after = Get("/api/v1/resources?limit=1000");
  EXPECT_NE(after.body, first.body);
  EXPECT_EQ(json::parse(after.text())["total"], 20);
  // Journal-backed answers are never cached.
  const std::string id = HalfDoneJob();
  const json before = GetJson("/api/v1/jobs/" + id);
  source_.fake_journal().RecordJobStatus(id, JobStatus::kCancelled).value();
  EXPECT_NE(GetJson("/api/v1/jobs/" + id)["status"], before["status"]);
}

TEST_F(HandlerTest, InvalidUtf8InDataDoesNotBreakTheAnswer) {
  source_.Update([](StatusSnapshot& s) { s.last_error = "libvirt: \xff\xfe bad bytes"; });
  const json status = GetJson("/api/v1/status");
  EXPECT_NE(status["lastError"].get<std::string>().find("bad bytes"), std::string::npos);
}

TEST_F(HandlerTest, WithoutAPublishedSnapshotTheApiAnswers503) {
  class EmptySource : public StatusSource {
   public:
    std::shared_ptr<const StatusSnapshot> Snapshot() const override { return nullptr; }
    JobHistory& history() const override { return journal_; }
    mutable FakeJournal journal_;
  } empty;
  ApiContext context{empty, {}, nullptr};
  EXPECT_EQ(HandleRequest(HttpRequest{"GET", "/healthz", {}}, context).status, 200);
  ExpectError(HandleRequest(HttpRequest{"GET", "/readyz", {}}, context), 503);
  ExpectError(HandleRequest(HttpRequest{"GET", "/api/v1/status", {}}, context), 503);
}

TEST_F(HandlerTest, DashboardIsOneSelfContainedPage) {
  const HttpResponse page = Get("/");
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(page.content_type, "text/html; charset=utf-8");
  EXPECT_NE(page.Header("Content-Security-Policy").find("default-src 'none'"), std::string::npos);
  const std::string html(page.text());
  for (const char* id :
       {"id=\"resources\"", "id=\"job-progress\"", "id=\"jobs\"", "id=\"nodes\"", "id=\"clusters\"",
        "id=\"sync-state\"", "id=\"revision\"", "EventSource", "/api/v1/status"}) {
    EXPECT_NE(html.find(id), std::string::npos) << id;
  }
  // No external assets: nothing is loaded from another origin.
  for (const char* external : {"src=\"http", "href=\"http", "@import", "<link"}) {
    EXPECT_EQ(html.find(external), std::string::npos) << external;
  }
  EXPECT_EQ(Get("/index.html").body, page.body);
}

}  // namespace
}  // namespace gitvirt
