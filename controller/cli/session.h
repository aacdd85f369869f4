#pragma once
// What most commands share: loading the configuration and the desired state (printing
// diagnostics), connecting the nodes, and the journal. Internal to the cli folder.

#include <CLI/CLI.hpp>
#include <spdlog/logger.h>

#include <memory>
#include <string>

#include "command.h"
#include "gitvirt/core/config.h"
#include "gitvirt/core/model.h"
#include "gitvirt/hypervisor/node_set.h"
#include "gitvirt/store/journal.h"

namespace gitvirt::cli {

struct SourceOptions {
  std::string dir;   // -f DIR
  std::string repo;  // --repo URL
  std::string ref;   // --ref REF
  std::string path;  // --path P (inside the repository)
};

void AddSourceOptions(CLI::App* command, SourceOptions& options);

struct Desired {
  DesiredState state;
  std::string revision;  // commit, or a fingerprint of the directory's manifests
  std::string source;    // "dir:/abs" or "git:URL@REF"
  std::string author;
  std::string message;
};

std::shared_ptr<spdlog::logger> MakeLogger(int verbosity);

// nullopt after printing what is wrong.
std::optional<ControllerConfig> LoadConfig(const GlobalOptions& global);
std::optional<Desired> LoadDesired(const ControllerConfig& config, const SourceOptions& source,
                                   const std::shared_ptr<spdlog::logger>& log);

std::unique_ptr<NodeSet> ConnectNodes(const ControllerConfig& config,
                                      const std::shared_ptr<spdlog::logger>& log);
std::unique_ptr<Journal> OpenJournal(const ControllerConfig& config);

// The directory gitvirt keeps downloads and seeds in: next to the state file.
std::string CacheDir(const ControllerConfig& config);

bool StdoutIsTerminal();

}  // namespace gitvirt::cli
