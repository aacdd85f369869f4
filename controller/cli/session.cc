#include "session.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>

#include "gitvirt/core/json.h"
#include "gitvirt/manifest/config_loader.h"
#include "gitvirt/manifest/loader.h"
#include "gitvirt/source/git_source.h"
#include "output.h"

namespace gitvirt::cli {

void AddSourceOptions(CLI::App* command, SourceOptions& options) {
  command->add_option("-f,--filename", options.dir, "Manifest directory (default: source of --config)");
  command->add_option("--repo", options.repo, "Git repository URL or path to read manifests from");
  command->add_option("--ref", options.ref, "Branch, tag or commit (with --repo)");
  command->add_option("--path", options.path, "Directory inside the repository (with --repo)");
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

std::optional<ControllerConfig> LoadConfig(const GlobalOptions& global) {
  ConfigLoadResult loaded = LoadControllerConfig(global.config);
  PrintDiagnostics(std::cerr, loaded.diagnostics);
  if (!loaded.ok()) return std::nullopt;
  return loaded.config;
}

std::optional<Desired> LoadDesired(const ControllerConfig& config, const SourceOptions& source,
                                   const std::shared_ptr<spdlog::logger>& log) {
  Desired desired;
  LoadResult loaded;
  std::string shown_dir;
  GitSourceOptions git;
  git.url = !source.repo.empty() ? source.repo : (source.dir.empty() ? config.source.repo : "");
  if (!git.url.empty()) {
    git.ref = !source.ref.empty() ? source.ref : config.source.ref;
    git.sub_path = !source.path.empty() ? source.path : config.source.sub_path;
    git.token_file = config.source.token_file;
    git.ssh_key_file = config.source.ssh_key_file;
    git.ca_file = config.source.ca_file;
    git.cache_dir = (std::filesystem::path(CacheDir(config)) / "git").string();
    auto snapshot = FetchSnapshot(git, log);
    if (!snapshot) {
      std::cerr << "gitvirt: " << snapshot.error().ToString() << "\n";
      return std::nullopt;
    }
    loaded = LoadManifests(snapshot->files, LoadOptions{snapshot->root_dir});
    desired.revision = snapshot->commit;
    desired.author = snapshot->author;
    desired.message = snapshot->message;
    // Never a password from the URL: this string goes into plans, the journal and the API.
    desired.source = "git:" + RedactUrl(git.url) + "@" + git.ref + (git.sub_path.empty() ? "" : ":" + git.sub_path);
    shown_dir = git.sub_path;
  } else {
    const std::string dir = !source.dir.empty() ? source.dir : config.source.path;
    if (dir.empty()) {
      std::cerr << "gitvirt: give the manifests with -f DIR or --repo URL (or set source in "
                << DisplayPath(config.file) << ")\n";
      return std::nullopt;
    }
    auto files = ReadManifestDirectory(dir);
    if (!files) {
      std::cerr << "gitvirt: " << files.error().ToString() << "\n";
      return std::nullopt;
    }
    loaded = LoadManifests(*files, LoadOptions{std::filesystem::absolute(dir).lexically_normal().string()});
    // A directory has no commit: its revision is a fingerprint of its manifests.
    std::string all;
    for (const ManifestFile& f : *files) all += f.path + '\0' + f.content + '\0';
    desired.revision = "dir-" + Fingerprint(all);
    desired.source = "dir:" + std::filesystem::absolute(dir).lexically_normal().string();
    shown_dir = dir;
  }
  for (Diagnostic& d : loaded.diagnostics) {
    if (d.location.line > 0 && !shown_dir.empty()) {
      d.location.file = (std::filesystem::path(shown_dir) / d.location.file).string();
    }
  }
  PrintDiagnostics(std::cerr, loaded.diagnostics);
  if (!loaded.ok()) {
    std::cerr << "gitvirt: the manifests have errors; nothing was planned or changed\n";
    return std::nullopt;
  }
  desired.state = std::move(loaded.desired);
  return desired;
}

std::unique_ptr<NodeSet> ConnectNodes(const ControllerConfig& config,
                                      const std::shared_ptr<spdlog::logger>& log) {
  HypervisorOptions options = HypervisorOptions::FromEnvironment();
  options.logger = log;
  return NodeSet::Connect(config.nodes, options);
}

std::unique_ptr<Journal> OpenJournal(const ControllerConfig& config) {
  auto journal = Journal::Open(config.state);
  if (!journal) {
    std::cerr << "gitvirt: " << journal.error().ToString() << "\n";
    return nullptr;
  }
  return std::move(*journal);
}

std::string CacheDir(const ControllerConfig& config) { return config.state + ".cache"; }

bool StdoutIsTerminal() { return isatty(STDOUT_FILENO) == 1; }

}  // namespace gitvirt::cli
