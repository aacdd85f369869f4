#include "session.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>

#include "output.h"

namespace gitvirt::cli {

void AddSourceOptions(CLI::App* command, SourceSelection& selection) {
  command->add_option("-f,--filename", selection.dir, "Manifest directory (default: source of --config)");
  command->add_option("--repo", selection.repo, "Git repository URL or path to read manifests from");
  command->add_option("--ref", selection.ref, "Branch, tag or commit (with --repo)");
  command->add_option("--path", selection.path, "Directory inside the repository (with --repo)");
}

std::shared_ptr<spdlog::logger> MakeLogger(int verbosity) {
  auto logger = spdlog::get("gitvirt");
  if (!logger) {
    logger = spdlog::stderr_color_mt("gitvirt");
    logger->set_pattern("%Y-%m-%dT%H:%M:%S%z %^%l%$ %v");
  }
  logger->set_level(verbosity >= 2 ? spdlog::level::debug
                                   : verbosity == 1 ? spdlog::level::info : spdlog::level::warn);
  spdlog::set_default_logger(logger);
  return logger;
}

bool ParseTargetOption(const std::string& text, std::optional<ResourceRef>& target) {
  if (text.empty()) return true;
  target = ResourceRef::Parse(text);
  if (!target) {
    std::cerr << "gitvirt: --target expects Kind/name, e.g. VirtualMachine/web-01\n";
    return false;
  }
  return true;
}

void PrintError(const Error& error) { std::cerr << "gitvirt: " << error.ToString() << "\n"; }

std::unique_ptr<Session> OpenSession(const GlobalOptions& global, const std::shared_ptr<spdlog::logger>& log) {
  Session::Options options;
  options.log = log;
  options.hypervisor = HypervisorOptions::FromEnvironment();
  options.diagnostics = [](const std::vector<Diagnostic>& diagnostics, const std::string& shown_root) {
    // Files named from where the user stands: under the directory they gave, or the path inside
    // the repository.
    std::vector<Diagnostic> shown = diagnostics;
    for (Diagnostic& d : shown) {
      if (d.location.line > 0 && !shown_root.empty()) {
        d.location.file = (std::filesystem::path(shown_root) / d.location.file).string();
      }
    }
    PrintDiagnostics(std::cerr, shown);
  };
  options.notice = [](const std::string& text) { std::cerr << "gitvirt: " << text << "\n"; };
  auto session = Session::Open(global.config, std::move(options));
  if (!session) {
    // The configuration's diagnostics said what is wrong.
    return nullptr;
  }
  return std::move(*session);
}

bool StdoutIsTerminal() { return isatty(STDOUT_FILENO) == 1; }

}  // namespace gitvirt::cli
