#pragma once
// The flag grammar every command shares (internal to the cli folder; written down in
// docs/cli.md). A command declares its flags through these helpers, never by hand, so that the
// same flag means the same thing everywhere and the completion scripts and man pages, which
// walk the command table, know every value a flag takes.

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "command.h"
#include "gitvirt/engine/desired_source.h"

namespace gitvirt::cli {

// The values an option takes (enum flags, -o, enum positionals), as declared: what completion
// offers. Empty for a free-form option.
const std::vector<std::string>& ChoicesOf(const CLI::Option* option);

// An option taking one of `choices` (case-sensitive as written). Anything else is a usage error
// naming the flag, the closest choice and every choice.
CLI::Option* AddChoice(CLI::App* command, const std::string& name, std::string& value,
                       const std::vector<std::string>& choices, const std::string& help);

// -o, --output: `formats` (the first is the default). The human form is always called "table"
// (the plan and describe texts too); json and yaml are documents; wide adds columns; name prints
// Kind/name per line.
void AddOutputOption(CLI::App* command, std::string& output, const std::vector<std::string>& formats);

// -f, --filename PATH (a directory, a file or "-" for standard input) | --repo URL --ref REF
// --path P.
void AddSourceOptions(CLI::App* command, SourceSelection& selection);

// -y, --yes, --auto-approve: do not ask.
void AddYesFlag(CLI::App* command, bool& yes);

// --dry-run: show what would change, change nothing.
void AddDryRunFlag(CLI::App* command, bool& dry_run, const std::string& help = "Show what would change, change nothing");

// --prune / --no-prune (the command line never deletes without --prune).
void AddPruneFlags(CLI::App* command, bool& prune);

// --parallel N: steps at once.
CLI::Option* AddParallelOption(CLI::App* command, int& parallel, const std::string& help);

// --ignore-unreachable: plan around nodes that cannot be reached instead of failing.
void AddIgnoreUnreachableFlag(CLI::App* command, GlobalOptions& global);

// --target Kind/name (resources of the plan).
void AddTargetOption(CLI::App* command, std::string& target);

// The command's help ends with an Examples section: each entry a command line (shown after
// "$ ") and, optionally after "  # ", what it does.
void SetExamples(CLI::App* command, const std::vector<std::string>& examples);

// Colour on stdout: not with --no-color, NO_COLOR (any value), TERM=dumb, or when stdout is not
// a terminal.
bool UseColor(const GlobalOptions& global);

}  // namespace gitvirt::cli
