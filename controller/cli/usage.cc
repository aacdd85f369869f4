#include "usage.h"

#include <algorithm>
#include <iostream>
#include <sstream>

#include "gitvirt/cli/exit_code.h"
#include "gitvirt/core/suggest.h"

namespace gitvirt::cli {
namespace {

// The command the line got as far as: the deepest subcommand that was parsed.
const CLI::App* Deepest(const CLI::App& app) {
  const CLI::App* at = &app;
  for (bool descended = true; descended;) {
    descended = false;
    for (const CLI::App* sub : at->get_subcommands([](const CLI::App*) { return true; })) {
      if (sub->parsed()) {
        at = sub;
        descended = true;
        break;
      }
    }
  }
  return at;
}

// The words CLI11 could not place: "The following arguments were not expected: a b".
std::vector<std::string> Extras(const std::string& message) {
  std::vector<std::string> words;
  const auto colon = message.find(": ");
  if (colon == std::string::npos) return words;
  std::istringstream in(message.substr(colon + 2));
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

std::string Quoted(const std::string& s) { return "\"" + s + "\""; }

std::string Explain(const CLI::App& command, const CLI::ParseError& error) {
  const std::string path = CommandPath(command);
  if (dynamic_cast<const CLI::ExtrasError*>(&error) != nullptr) {
    // An unknown flag explains the words after it ("-o json": CLI11 may list "json" first).
    std::vector<std::string> words = Extras(error.what());
    std::stable_partition(words.begin(), words.end(),
                          [](const std::string& w) { return w.size() > 1 && w[0] == '-'; });
    for (const std::string& word : words) {
      if (word.size() > 1 && word[0] == '-') {
        std::vector<std::string> flags;
        for (const CLI::Option* o : VisibleOptions(command, true)) {
          for (const std::string& n : OptionNames(*o)) flags.push_back(n);
        }
        const std::string name = word.substr(0, word.find('='));
        return "unknown flag " + Quoted(name) + " for " + Quoted(path) + DidYouMean(TypoMatches(name, flags));
      }
      std::vector<std::string> commands;
      for (const CLI::App* sub : VisibleSubcommands(command)) commands.push_back(sub->get_name());
      if (!commands.empty()) {
        return "unknown command " + Quoted(word) + " for " + Quoted(path) + DidYouMean(TypoMatches(word, commands));
      }
      return "unexpected argument " + Quoted(word) + " for " + Quoted(path);
    }
  }
  if (dynamic_cast<const CLI::RequiredError*>(&error) != nullptr && !VisibleSubcommands(command).empty() &&
      std::string(error.what()).find("subcommand") != std::string::npos) {
    // A word where a command belongs that names none: CLI11 reports the missing command first.
    // (The words CLI11 could not place end up with the command or, falling through, a parent.)
    std::vector<std::string> rest;
    for (const CLI::App* at = &command; at != nullptr && rest.empty(); at = at->get_parent()) rest = at->remaining();
    if (!rest.empty() && rest.front()[0] != '-') {
      std::vector<std::string> commands;
      for (const CLI::App* sub : VisibleSubcommands(command)) commands.push_back(sub->get_name());
      return "unknown command " + Quoted(rest.front()) + " for " + Quoted(path) +
             DidYouMean(TypoMatches(rest.front(), commands));
    }
    std::string names;
    for (const CLI::App* sub : VisibleSubcommands(command)) names += (names.empty() ? "" : ", ") + sub->get_name();
    return path + " needs a command: " + names;
  }
  // "jobs: --status: ..." (the "gitvirt: " before it names the program once).
  return (path.starts_with("gitvirt ") ? path.substr(8) : path) + ": " + error.what();
}

}  // namespace

std::string CommandPath(const CLI::App& command) {
  std::string path;
  for (const CLI::App* at = &command; at != nullptr; at = at->get_parent()) {
    path = at->get_name() + (path.empty() ? "" : " " + path);
  }
  return path;
}

std::vector<const CLI::App*> VisibleSubcommands(const CLI::App& command) {
  return command.get_subcommands([](const CLI::App* sub) { return !sub->get_group().empty(); });
}

std::vector<std::string> OptionNames(const CLI::Option& option) {
  std::vector<std::string> names;
  for (const std::string& s : option.get_snames()) names.push_back("-" + s);
  for (const std::string& l : option.get_lnames()) names.push_back("--" + l);
  return names;
}

std::vector<const CLI::Option*> VisibleOptions(const CLI::App& command, bool inherited) {
  std::vector<const CLI::Option*> out;
  for (const CLI::App* at = &command; at != nullptr; at = inherited ? at->get_parent() : nullptr) {
    for (const CLI::Option* o : at->get_options()) {
      if (o->get_positional() || o->get_group().empty()) continue;
      out.push_back(o);
    }
  }
  return out;
}

int ReportParseError(CLI::App& app, const CLI::ParseError& error) {
  if (error.get_exit_code() == 0) {  // --help, --help-all, --version
    app.exit(error);
    return kExitOk;
  }
  const CLI::App* command = Deepest(app);
  std::cerr << "gitvirt: " << Explain(*command, error) << "\nRun '" << CommandPath(*command)
            << " --help' for usage.\n";
  // diff's 1 means "differences": a mistyped diff must not look like one.
  for (const CLI::App* at = command; at != nullptr; at = at->get_parent()) {
    if (at->get_name() == "diff" && at->get_parent() == &app) return kDiffError;
  }
  return kExitError;
}

}  // namespace gitvirt::cli
