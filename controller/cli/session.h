#pragma once
// How commands reach the engine: a Session on the configuration (engine/session.h) whose
// diagnostics and notices are printed here, and the flags every source-reading command shares.
// Internal to the cli folder.

#include <CLI/CLI.hpp>
#include <spdlog/logger.h>

#include <memory>
#include <string>

#include "command.h"
#include "gitvirt/core/error.h"
#include "gitvirt/engine/session.h"

namespace gitvirt::cli {

// -f DIR | --repo URL --ref REF --path P
void AddSourceOptions(CLI::App* command, SourceSelection& selection);

std::shared_ptr<spdlog::logger> MakeLogger(int verbosity);

// The configuration's Session; null after printing why not (its diagnostics, then the error).
// Diagnostics of the manifests are printed as they are found (files named from here); notices
// as "gitvirt: TEXT" on stderr.
std::unique_ptr<Session> OpenSession(const GlobalOptions& global, const std::shared_ptr<spdlog::logger>& log);

// --target: "VirtualMachine/web-01" or "web-01" (empty: none). False after saying what it
// expects.
bool ParseTargetOption(const std::string& text, std::optional<ResourceRef>& target);

// "gitvirt: <error>" on stderr.
void PrintError(const Error& error);

bool StdoutIsTerminal();

}  // namespace gitvirt::cli
