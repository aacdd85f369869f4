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

// stderr's logger at the verbosity -v asks for; coloured by the same rules as stdout.
std::shared_ptr<spdlog::logger> MakeLogger(const GlobalOptions& global);

// The configuration's Session (GlobalOptions::ConfigFile); null after printing why not (its
// diagnostics, then the error). Diagnostics of the manifests are printed as they are found
// (files named from here); notices as "gitvirt: TEXT" on stderr.
std::unique_ptr<Session> OpenSession(const GlobalOptions& global);

// --target: "VirtualMachine/web-01" or "web-01" (empty: none). False after saying what it
// expects.
bool ParseTargetOption(const std::string& text, std::optional<ResourceRef>& target);

// "gitvirt: <error>" on stderr.
void PrintError(const Error& error);

bool StdoutIsTerminal();

}  // namespace gitvirt::cli
