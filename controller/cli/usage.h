#pragma once
// Reading the command table itself (internal to the cli folder): usage errors with "did you
// mean", and the walk that `help`, `completion` and the man pages share.

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace gitvirt::cli {

// After CLI11 refused the command line: --help and --version print to stdout and give 0; any
// other error says what is wrong on stderr ("gitvirt: unknown command "aply" for "gitvirt" (did
// you mean "apply"?)"), points at the command's --help, and gives 1 (2 for diff, kubectl's
// convention).
int ReportParseError(CLI::App& app, const CLI::ParseError& error);

// The commands people use, in table order: hidden ones (an empty group) and the automatic help
// are left out.
std::vector<const CLI::App*> VisibleSubcommands(const CLI::App& command);
// The flags of a command a person may type: its options and those it inherits from its parents
// (global options anywhere on the line), without positionals and hidden ones; every name
// ("-o", "--output").
std::vector<const CLI::Option*> VisibleOptions(const CLI::App& command, bool inherited);
std::vector<std::string> OptionNames(const CLI::Option& option);
// "gitvirt snapshot create"
std::string CommandPath(const CLI::App& command);

}  // namespace gitvirt::cli
