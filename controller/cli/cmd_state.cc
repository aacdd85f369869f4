#include <iostream>

#include "command.h"
#include "flags.h"
#include "gitvirt/cli/app.h"
#include "gitvirt/engine/session.h"
#include "gitvirt/store/journal.h"
#include "output.h"
#include "session.h"

namespace gitvirt::cli {
namespace {

// `gitvirt state check`: the full integrity check of the state file, read only.
int RunStateCheck(const GlobalOptions& global, const std::string& output) {
  auto session = OpenSession(global);
  if (!session) return kExitError;
  const std::string& path = session->config().state;
  auto report = Journal::Check(path);
  if (!report) {
    PrintError(report.error());
    return kExitError;
  }
  const bool ok = report->problems.empty();
  if (output == "json" || output == "yaml") {
    PrintDocument(std::cout,
                  {{"kind", "StateCheck"},
                   {"file", path},
                   {"ok", ok},
                   {"problems", report->problems},
                   {"schemaVersion", report->schema_version},
                   {"jobs", report->jobs},
                   {"unfinishedJobs", report->unfinished}},
                  output);
    return ok ? kExitOk : kExitError;
  }
  if (!ok) {
    std::cout << "The state file " << path << " is damaged (SQLite integrity_check):\n";
    for (const std::string& p : report->problems) std::cout << "  " << p << "\n";
    std::cout << "gitvirt will not use it. Restore it from a backup, or, to start over without the history "
                 "(jobs, undo records), move it aside.\n";
    return kExitError;
  }
  std::cout << "The state file " << path << " is sound (SQLite integrity_check: ok): schema version "
            << report->schema_version << ", " << report->jobs << " job(s), " << report->unfinished
            << " unfinished.\n";
  if (report->unfinished > 0) {
    std::cout << "The next apply (or serve) resumes or rolls back the unfinished ones; `gitvirt jobs abandon ID` "
                 "gives one up without touching a node.\n";
  }
  return kExitOk;
}

}  // namespace

void AddStateCommand(CLI::App& app, GlobalOptions& global, CommandResult& result) {
  auto* cmd = app.add_subcommand("state", "The state file (the journal): check it");
  cmd->require_subcommand(1);
  SetExamples(cmd, {"gitvirt state check"});
  auto output = std::make_shared<std::string>();
  auto* check = cmd->add_subcommand("check", "SQLite's full integrity check of the state file, read only");
  AddOutputOption(check, *output, {"table", "json", "yaml"});
  SetExamples(check, {"gitvirt state check", "gitvirt state check -o json  # exit 1 when damaged"});
  check->callback([&global, &result, output] { result.exit_code = RunStateCheck(global, *output); });
}

}  // namespace gitvirt::cli
