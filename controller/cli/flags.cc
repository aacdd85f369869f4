#include "flags.h"

#include <unistd.h>

#include <cstdlib>
#include <algorithm>
#include <map>

#include "gitvirt/core/suggest.h"

namespace gitvirt::cli {
namespace {

std::map<const CLI::Option*, std::vector<std::string>>& Registry() {
  static std::map<const CLI::Option*, std::vector<std::string>> choices;
  return choices;
}

std::string Joined(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (const std::string& i : items) out += (out.empty() ? "" : sep) + i;
  return out;
}

// A usage error for a value outside `choices`: the closest choice, and every choice.
CLI::Validator ChoiceValidator(std::vector<std::string> choices, std::string hint) {
  const std::string description = "{" + Joined(choices, ",") + "}";
  return CLI::Validator(
      [choices, hint](std::string& value) -> std::string {
        for (const std::string& c : choices) {
          if (c == value) return "";
        }
        std::vector<std::string> closest = ClosestNames(value, choices);
        // `-o text` was the human form before it was called table everywhere.
        if (value == "text" && std::find(choices.begin(), choices.end(), "table") != choices.end()) {
          closest = {"table"};
        }
        std::string message = "\"" + value + "\" is not one of " + Joined(choices, ", ") + DidYouMean(closest);
        if (!hint.empty()) message += "; " + hint;
        return message;
      },
      description);
}

CLI::Option* AddChoiceWithHint(CLI::App* command, const std::string& name, std::string& value,
                               const std::vector<std::string>& choices, const std::string& help,
                               const std::string& hint) {
  CLI::Option* option = command->add_option(name, value, help)->check(ChoiceValidator(choices, hint));
  Registry()[option] = choices;
  return option;
}

}  // namespace

const std::vector<std::string>& ChoicesOf(const CLI::Option* option) {
  static const std::vector<std::string> kNone;
  auto it = Registry().find(option);
  return it == Registry().end() ? kNone : it->second;
}

CLI::Option* AddChoice(CLI::App* command, const std::string& name, std::string& value,
                       const std::vector<std::string>& choices, const std::string& help) {
  return AddChoiceWithHint(command, name, value, choices, help, "");
}

void AddOutputOption(CLI::App* command, std::string& output, const std::vector<std::string>& formats) {
  output = formats.front();
  // A file name where a format belongs: `plan -o plan.json` saved a file before -o meant the
  // format everywhere.
  const bool plan = command->get_name() == "plan";
  AddChoiceWithHint(command, "-o,--output", output, formats, "Output format: " + Joined(formats, " | "),
                    plan ? "a saved plan is --out FILE" : "");
}

void AddSourceOptions(CLI::App* command, SourceSelection& selection) {
  command->add_option("-f,--filename", selection.dir,
                      "Manifests: a directory, a file, or - for standard input (default: source of --config)");
  command->add_option("--repo", selection.repo, "Git repository URL or path to read manifests from");
  command->add_option("--ref", selection.ref, "Branch, tag or commit (with --repo)");
  command->add_option("--path", selection.path, "Directory inside the repository (with --repo)");
}

void AddYesFlag(CLI::App* command, bool& yes) {
  command->add_flag("-y,--yes,--auto-approve", yes, "Do not ask for confirmation");
}

void AddDryRunFlag(CLI::App* command, bool& dry_run, const std::string& help) {
  command->add_flag("--dry-run", dry_run, help);
}

void AddPruneFlags(CLI::App* command, bool& prune) {
  command->add_flag("--prune,!--no-prune", prune,
                    "Delete gitvirt's VMs that left the manifests (never without --prune; sync.prune is for serve)");
}

CLI::Option* AddParallelOption(CLI::App* command, int& parallel, const std::string& help) {
  return command->add_option("--parallel", parallel, help)->check(CLI::Range(1, 1024));
}

void AddIgnoreUnreachableFlag(CLI::App* command, GlobalOptions& global) {
  command->add_flag("--ignore-unreachable", global.ignore_unreachable,
                    "Plan around nodes that cannot be reached instead of failing (the plan lists them)");
}

void AddTargetOption(CLI::App* command, std::string& target) {
  command->add_option("--target", target, "Only this resource (Kind/name, or a VM's name) and what it needs");
}

void SetExamples(CLI::App* command, const std::vector<std::string>& examples) {
  std::string text = "\nExamples:\n";
  for (const std::string& e : examples) {
    const auto comment = e.find("  # ");
    if (comment == std::string::npos) {
      text += "  $ " + e + "\n";
    } else {
      text += "  # " + e.substr(comment + 4) + "\n  $ " + e.substr(0, comment) + "\n";
    }
  }
  command->footer(text);
}

bool UseColor(const GlobalOptions& global) {
  if (global.no_color || std::getenv("NO_COLOR") != nullptr) return false;
  if (const char* term = std::getenv("TERM"); term != nullptr && std::string(term) == "dumb") return false;
  return isatty(STDOUT_FILENO) == 1;
}

}  // namespace gitvirt::cli
