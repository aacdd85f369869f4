#include <iostream>
#include <nlohmann/json.hpp>

#include "command.h"
#include "flags.h"
#include "gitvirt/api/views.h"
#include "gitvirt/cli/app.h"
#include "gitvirt/engine/manual.h"
#include "output.h"
#include "session.h"

namespace gitvirt::cli {
namespace {

struct JobsOptions {
  std::string id;
  std::string status;
  std::string kind;
  int limit = 20;
  std::string cancel_id;
  std::string abandon_id;
  bool dry_run = false;
  std::string output = "table";
};

std::string Time(const std::optional<TimePoint>& t) { return t ? FormatTime(*t) : "-"; }

std::vector<std::string> StatusNames() {
  std::vector<std::string> names;
  for (JobStatus s : {JobStatus::kPending, JobStatus::kRunning, JobStatus::kSucceeded, JobStatus::kFailed,
                      JobStatus::kMarkedFailed, JobStatus::kRollingBack, JobStatus::kRolledBack,
                      JobStatus::kRollbackIncomplete, JobStatus::kCancelled, JobStatus::kInterrupted}) {
    names.emplace_back(EnumName(s));
  }
  return names;
}

// A job's outcome in words: "24 succeeded, 1 failed, 3 skipped; rolled back 21".
std::string SummaryText(const std::string& summary_json) {
  const auto j = nlohmann::json::parse(summary_json, nullptr, false);
  if (!j.is_object()) return summary_json;
  auto count = [&](const char* key) { return j.contains(key) && j[key].is_number() ? j[key].get<int>() : 0; };
  std::string out = std::to_string(count("succeeded")) + " succeeded, " + std::to_string(count("failed")) +
                    " failed, " + std::to_string(count("skipped")) + " skipped";
  if (count("undone") + count("undoFailed") + count("notUndoable") > 0) {
    out += "; rolled back " + std::to_string(count("undone"));
    if (count("undoFailed") + count("notUndoable") > 0) {
      out += ", could not undo " + std::to_string(count("undoFailed") + count("notUndoable"));
    }
  }
  return out;
}

// `jobs ID -o json|yaml`: the status API's /api/v1/jobs/ID, with the job's events.
int PrintJobDocument(const JobRecord& job, const std::vector<StepRecord>& steps, const std::vector<EventRecord>& events,
                     const std::string& format) {
  api_views::Json doc = api_views::JobDetail(job, steps);
  api_views::Json list = api_views::Json::array();
  for (const EventRecord& e : events) list.push_back(api_views::Event(e));
  doc["events"] = std::move(list);
  PrintDocument(std::cout, doc, format);
  return kExitOk;
}

}  // namespace

int ShowJob(Session& session, const std::string& given, const std::string& format) {
  // `jobs -o name` prints Job/ID; take that back too.
  const std::string id = given.starts_with("Job/") ? given.substr(4) : given;
  auto job = FindJob(session, id);
  if (!job) {
    PrintError(job.error());
    return kExitError;
  }
  auto journal = session.journal();
  if (!journal) {
    PrintError(journal.error());
    return kExitError;
  }
  auto steps = (*journal)->GetSteps(id);
  auto events = (*journal)->GetEvents(id);
  if (format == "name") {
    std::cout << "Job/" << job->id << "\n";
    return kExitOk;
  }
  if (format == "json" || format == "yaml") {
    if (!steps || !events) {
      PrintError(!steps ? steps.error() : events.error());
      return kExitError;
    }
    return PrintJobDocument(*job, *steps, *events, format);
  }
  std::cout << "Job:       " << job->id << "\n"
            << "Kind:      " << job->kind << "\n"
            << "Status:    " << EnumName(job->status) << "\n"
            << "Strategy:  " << job->strategy << "\n"
            << "Revision:  " << (job->revision.empty() ? "-" : job->revision) << "\n"
            << "Source:    " << DisplaySource(job->source) << "\n"
            << "Created:   " << FormatTime(job->created_at) << "\n"
            << "Started:   " << Time(job->started_at) << "\n"
            << "Finished:  " << Time(job->finished_at) << "\n";
  if (!job->error.empty()) std::cout << "Error:     " << job->error << "\n";
  if (!job->summary_json.empty()) std::cout << "Outcome:   " << SummaryText(job->summary_json) << "\n";
  if (steps) {
    std::cout << "\nSteps:\n";
    Table table({"#", "STEP", "NODE", "STATUS", "ATTEMPT", "STARTED", "FINISHED", "ERROR"});
    for (const StepRecord& s : *steps) {
      table.Add({std::to_string(s.seq + 1), s.id, s.node.empty() ? "-" : s.node, std::string(EnumName(s.status)),
                 std::to_string(s.attempt), Time(s.started_at), Time(s.finished_at), s.error.empty() ? "-" : s.error});
    }
    table.Print(std::cout);
  }
  if (events) {
    std::cout << "\nEvents:\n";
    for (const EventRecord& e : *events) {
      std::cout << "  " << FormatTime(e.time) << "  " << EnumName(e.level) << "  "
                << (e.step_id.empty() ? "" : e.step_id + ": ") << e.message << "\n";
    }
  }
  return kExitOk;
}

namespace {

int RunJobs(const GlobalOptions& global, const JobsOptions& opts) {
  auto session = OpenSession(global);
  if (!session) return kExitError;
  if (!opts.id.empty()) return ShowJob(*session, opts.id, opts.output);
  JobFilter filter;
  filter.limit = opts.limit;
  filter.kind = opts.kind;
  if (!opts.status.empty()) filter.status = ParseEnum<JobStatus>(opts.status);
  auto listed = ListJobs(*session, filter);
  if (!listed) {
    PrintError(listed.error());
    return kExitError;
  }
  const std::vector<JobRecord>& jobs = listed->jobs;
  if (opts.output == "json" || opts.output == "yaml") {
    // As `get -o json|yaml`: a kind and the items, each as the status API's /api/v1/jobs lists it.
    api_views::Json items = api_views::Json::array();
    for (const JobRecord& j : jobs) items.push_back(api_views::JobSummary(j));
    PrintDocument(std::cout, {{"kind", "jobs"}, {"items", std::move(items)}, {"total", listed->total}}, opts.output);
    return kExitOk;
  }
  if (opts.output == "name") {
    for (const JobRecord& j : jobs) std::cout << "Job/" << j.id << "\n";
    return kExitOk;
  }
  if (jobs.empty()) {
    std::cout << (filter.status || !filter.kind.empty() ? "No jobs match.\n" : "No jobs yet.\n");
    return kExitOk;
  }
  const bool wide = opts.output == "wide";
  std::vector<std::string> header = {"ID", "KIND", "STATUS", "STRATEGY", "STEPS", "CREATED", "REVISION"};
  if (wide) header.insert(header.end(), {"STARTED", "FINISHED", "SOURCE", "ERROR"});
  Table table(header);
  for (const JobRecord& j : jobs) {
    std::vector<std::string> row = {j.id, j.kind, std::string(EnumName(j.status)), j.strategy,
                                    std::to_string(j.steps_done) + "/" + std::to_string(j.steps_total),
                                    FormatTime(j.created_at), j.revision.empty() ? "-" : j.revision.substr(0, 16)};
    if (wide) {
      row.insert(row.end(), {Time(j.started_at), Time(j.finished_at), DisplaySource(j.source),
                             j.error.empty() ? "-" : j.error});
    }
    table.Add(row);
  }
  table.Print(std::cout);
  if (listed->total > static_cast<int>(jobs.size())) {
    std::cout << "\nShowing the " << jobs.size() << " newest of " << listed->total << " jobs; --limit N shows more "
              << "(--limit 0: all).\n";
  }
  return kExitOk;
}

int RunCancel(const GlobalOptions& global, const std::string& id, bool dry_run) {
  auto session = OpenSession(global);
  if (!session) return kExitError;
  if (dry_run) {
    // The same refusal as the real run: a dry run never says yes where the run says no.
    auto job = FindUnfinishedJob(*session, id);
    if (!job) {
      PrintError(job.error());
      return kExitError;
    }
    std::cout << "Would ask job " << id << " (" << EnumName(job->status) << ") to stop; nothing was changed.\n";
    return kExitOk;
  }
  auto job = CancelJob(*session, id);
  if (!job) {
    PrintError(job.error());
    return kExitError;
  }
  std::cout << "Cancellation of job " << id << " requested: it starts no more steps and then applies its "
            << job->strategy << " strategy.\n";
  return kExitOk;
}

int RunAbandon(const GlobalOptions& global, const std::string& id, bool dry_run) {
  auto session = OpenSession(global);
  if (!session) return kExitError;
  auto job = FindUnfinishedJob(*session, id);
  if (!job) {
    PrintError(job.error());
    return kExitError;
  }
  if (dry_run) {
    std::cout << "Would mark job " << id << " (" << EnumName(job->status)
              << ") abandoned: not resumed, not rolled back; nothing was changed.\n";
    return kExitOk;
  }
  auto abandoned = AbandonJob(*session, id);
  if (!abandoned) {
    PrintError(abandoned.error());
    return kExitError;
  }
  std::cout << "Job " << id << " abandoned: it will not be resumed or rolled back. What its steps did stays on the "
            << "nodes; `gitvirt plan` shows what differs from the manifests.\n";
  return kExitOk;
}

}  // namespace

void AddJobsCommand(CLI::App& app, GlobalOptions& global, CommandResult& result) {
  auto opts = std::make_shared<JobsOptions>();
  auto* cmd = app.add_subcommand("jobs", "List jobs, show one (`jobs ID`), or cancel one (`jobs cancel ID`)");
  cmd->add_option("id", opts->id, "Show this job: every step and event (NotFound if there is none)");
  AddChoice(cmd, "--status", opts->status, StatusNames(), "Only jobs with this status");
  AddChoice(cmd, "--kind", opts->kind, {"apply", "sync", "power", "snapshot", "backup", "restore"},
            "Only jobs of this kind");
  cmd->add_option("--limit", opts->limit, "How many, newest first (default 20; 0: all)")->check(CLI::NonNegativeNumber);
  AddOutputOption(cmd, opts->output, {"table", "wide", "json", "yaml", "name"});
  SetExamples(cmd, {"gitvirt jobs", "gitvirt jobs --status failed --limit 0",
                    "gitvirt jobs 20261207-062507-f9d6  # every step and event",
                    "gitvirt jobs 20261207-062507-f9d6 -o json"});
  auto* cancel = cmd->add_subcommand("cancel", "Stop a running job: no new steps, then its rollback strategy");
  cancel->add_option("id", opts->cancel_id, "Job id")->required();
  AddDryRunFlag(cancel, opts->dry_run, "Say what would be cancelled, change nothing");
  SetExamples(cancel, {"gitvirt jobs cancel 20261207-062507-f9d6"});
  cancel->callback(
      [&global, &result, opts] { result.exit_code = RunCancel(global, opts->cancel_id, opts->dry_run); });
  auto* abandon = cmd->add_subcommand(
      "abandon", "Give up an unfinished job that cannot be resumed or rolled back (touches no node)");
  abandon->add_option("id", opts->abandon_id, "Job id")->required();
  AddDryRunFlag(abandon, opts->dry_run, "Say what would be abandoned, change nothing");
  SetExamples(abandon, {"gitvirt jobs abandon 20261207-062507-f9d6  # its records are unreadable: start clean",
                        "gitvirt jobs abandon 20261207-062507-f9d6 --dry-run"});
  abandon->callback(
      [&global, &result, opts] { result.exit_code = RunAbandon(global, opts->abandon_id, opts->dry_run); });
  cmd->callback([&global, &result, opts, cancel, abandon] {
    if (cancel->parsed() || abandon->parsed()) return;
    result.exit_code = RunJobs(global, *opts);
  });
}

}  // namespace gitvirt::cli
