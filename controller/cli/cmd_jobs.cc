#include <iostream>
#include <nlohmann/json.hpp>

#include "command.h"
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
  std::string output;
};

std::string Time(const std::optional<TimePoint>& t) { return t ? FormatTime(*t) : "-"; }

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

int ShowJob(JobHistory& journal, const std::string& id, const std::string& format) {
  auto job = journal.GetJob(id);
  if (!job) {
    std::cerr << "gitvirt: " << job.error().ToString() << "\n";
    return kExitError;
  }
  auto steps = journal.GetSteps(id);
  auto events = journal.GetEvents(id);
  if (format != "table") {
    if (!steps || !events) {
      std::cerr << "gitvirt: " << (!steps ? steps.error() : events.error()).ToString() << "\n";
      return kExitError;
    }
    return PrintJobDocument(*job, *steps, *events, format);
  }
  std::cout << "Job:       " << job->id << "\n"
            << "Kind:      " << job->kind << "\n"
            << "Status:    " << EnumName(job->status) << "\n"
            << "Strategy:  " << job->strategy << "\n"
            << "Revision:  " << job->revision << "\n"
            << "Source:    " << DisplaySource(job->source) << "\n"
            << "Created:   " << FormatTime(job->created_at) << "\n"
            << "Started:   " << Time(job->started_at) << "\n"
            << "Finished:  " << Time(job->finished_at) << "\n";
  if (!job->error.empty()) std::cout << "Error:     " << job->error << "\n";
  if (!job->summary_json.empty()) std::cout << "Summary:   " << job->summary_json << "\n";
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

int RunJobs(const GlobalOptions& global, const JobsOptions& opts) {
  auto session = OpenSession(global, MakeLogger(global.verbosity));
  if (!session) return kExitError;
  auto opened = session->journal();
  if (!opened) {
    PrintError(opened.error());
    return kExitError;
  }
  JobHistory& journal = **opened;
  if (!opts.id.empty()) return ShowJob(journal, opts.id, opts.output);
  JobFilter filter;
  filter.limit = opts.limit;
  filter.kind = opts.kind;
  if (!opts.status.empty()) filter.status = ParseEnum<JobStatus>(opts.status);
  auto jobs = journal.ListJobs(filter);
  if (!jobs) {
    std::cerr << "gitvirt: " << jobs.error().ToString() << "\n";
    return kExitError;
  }
  if (opts.output != "table") {
    // As `get -o json|yaml`: a kind and the items, each as the status API's /api/v1/jobs lists it.
    api_views::Json items = api_views::Json::array();
    for (const JobRecord& j : *jobs) items.push_back(api_views::JobSummary(j));
    PrintDocument(std::cout, {{"kind", "jobs"}, {"items", std::move(items)}}, opts.output);
    return kExitOk;
  }
  if (jobs->empty()) {
    std::cout << "No jobs yet.\n";
    return kExitOk;
  }
  Table table({"ID", "KIND", "STATUS", "STRATEGY", "STEPS", "CREATED", "REVISION"});
  for (const JobRecord& j : *jobs) {
    table.Add({j.id, j.kind, std::string(EnumName(j.status)), j.strategy,
               std::to_string(j.steps_done) + "/" + std::to_string(j.steps_total), FormatTime(j.created_at),
               j.revision.substr(0, 16)});
  }
  table.Print(std::cout);
  return kExitOk;
}

int RunCancel(const GlobalOptions& global, const std::string& id) {
  auto session = OpenSession(global, MakeLogger(global.verbosity));
  if (!session) return kExitError;
  auto job = CancelJob(*session, id);
  if (!job) {
    PrintError(job.error());
    return kExitError;
  }
  std::cout << "Cancellation of job " << id << " requested: it starts no more steps and then applies its "
            << job->strategy << " strategy.\n";
  return kExitOk;
}

}  // namespace

void AddJobsCommand(CLI::App& app, GlobalOptions& global, CommandResult& result) {
  auto opts = std::make_shared<JobsOptions>();
  auto* cmd = app.add_subcommand("jobs", "List jobs, show one (`jobs ID`), or cancel one (`jobs cancel ID`)");
  cmd->add_option("id", opts->id, "Show this job: every step and event");
  cmd->add_option("--status", opts->status, "Only jobs with this status");
  cmd->add_option("--kind", opts->kind, "Only jobs of this kind (apply, power, snapshot, backup...)");
  cmd->add_option("--limit", opts->limit, "How many (newest first)");
  AddOutputOption(cmd, opts->output, {"table", "json", "yaml"});
  auto* cancel = cmd->add_subcommand("cancel", "Stop a running job: no new steps, then its rollback strategy");
  cancel->add_option("id", opts->cancel_id, "Job id")->required();
  cancel->callback([&global, &result, opts] { result.exit_code = RunCancel(global, opts->cancel_id); });
  cmd->callback([&global, &result, opts, cancel] {
    if (cancel->parsed()) return;
    result.exit_code = RunJobs(global, *opts);
  });
}

}  // namespace gitvirt::cli
