// gitvirt help [COMMAND...], gitvirt completion bash|zsh|fish, and the hidden
// `gitvirt man-pages DIR`: all three read the command table, so what they say is what the parser
// accepts. The build runs man-pages to write share/man/man1 (controller/cli/CMakeLists.txt).
#include <algorithm>
#include <filesystem>
#include <functional>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "command.h"
#include "flags.h"
#include "gitvirt/cli/app.h"
#include "gitvirt/core/suggest.h"
#include "usage.h"

namespace gitvirt::cli {
namespace {

namespace fs = std::filesystem;

// ---- the table, flattened ---------------------------------------------------------------------

struct CommandInfo {
  const CLI::App* app = nullptr;
  std::string path;  // "" for gitvirt itself, "snapshot create"
  std::vector<std::string> subcommands;
  std::vector<const CLI::Option*> options;  // its own and inherited
  std::vector<std::string> positional_choices;
};

void Collect(const CLI::App& app, const std::string& path, std::vector<CommandInfo>& out) {
  CommandInfo info;
  info.app = &app;
  info.path = path;
  for (const CLI::App* sub : VisibleSubcommands(app)) info.subcommands.push_back(sub->get_name());
  info.options = VisibleOptions(app, true);
  for (const CLI::Option* o : app.get_options()) {
    if (!o->get_positional()) continue;
    for (const std::string& c : ChoicesOf(o)) info.positional_choices.push_back(c);
  }
  out.push_back(info);
  for (const CLI::App* sub : VisibleSubcommands(app)) {
    Collect(*sub, path.empty() ? sub->get_name() : path + " " + sub->get_name(), out);
  }
}

std::vector<CommandInfo> Table(const CLI::App& root) {
  std::vector<CommandInfo> out;
  Collect(root, "", out);
  return out;
}

bool TakesValue(const CLI::Option& o) { return o.get_type_size() != 0 && o.get_expected_max() != 0; }

std::string Words(const std::vector<std::string>& words) {
  std::string out;
  for (const std::string& w : words) out += (out.empty() ? "" : " ") + w;
  return out;
}

std::vector<std::string> Flags(const CommandInfo& c, bool values_only) {
  std::vector<std::string> out;
  for (const CLI::Option* o : c.options) {
    if (values_only && !TakesValue(*o)) continue;
    for (const std::string& n : OptionNames(*o)) out.push_back(n);
  }
  return out;
}

// One shell `case` over the command paths: `"plan") echo "...";;` for each non-empty answer.
std::string CaseOverPaths(const std::string& function, const std::vector<CommandInfo>& table,
                          const std::function<std::vector<std::string>(const CommandInfo&)>& answer) {
  std::string out = function + "() {\n  case \"$1\" in\n";
  for (const CommandInfo& c : table) {
    const std::vector<std::string> words = answer(c);
    if (words.empty()) continue;
    out += "    \"" + c.path + "\") echo \"" + Words(words) + "\" ;;\n";
  }
  return out + "  esac\n}\n";
}

// `__gitvirt_choices PATH FLAG`: the values an option takes.
std::string ChoiceCases(const std::string& function, const std::vector<CommandInfo>& table) {
  std::string out = function + "() {\n  case \"$1|$2\" in\n";
  for (const CommandInfo& c : table) {
    for (const CLI::Option* o : c.options) {
      const std::vector<std::string>& choices = ChoicesOf(o);
      if (choices.empty()) continue;
      std::string patterns;
      for (const std::string& n : OptionNames(*o)) patterns += (patterns.empty() ? "" : "|") + ("\"" + c.path + "|" + n + "\"");
      out += "    " + patterns + ") echo \"" + Words(choices) + "\" ;;\n";
    }
  }
  return out + "  esac\n}\n";
}

// The shell functions bash and zsh share: what each command path offers.
std::string ShellTables(const std::vector<CommandInfo>& table) {
  std::string out;
  out += CaseOverPaths("__gitvirt_commands", table, [](const CommandInfo& c) { return c.subcommands; });
  out += CaseOverPaths("__gitvirt_flags", table, [](const CommandInfo& c) { return Flags(c, false); });
  out += CaseOverPaths("__gitvirt_value_flags", table, [](const CommandInfo& c) { return Flags(c, true); });
  out += CaseOverPaths("__gitvirt_args", table, [](const CommandInfo& c) { return c.positional_choices; });
  out += ChoiceCases("__gitvirt_choices", table);
  // The command path of the words before the cursor ($1..): subcommand names, skipping flags
  // and the values of the flags that take one.
  out += R"SH(__gitvirt_path() {
  local path="" skip=0 w
  for w in "$@"; do
    if [ "$skip" = 1 ]; then skip=0; continue; fi
    case "$w" in
      -*=*) ;;
      -*) case " $(__gitvirt_value_flags "$path") " in *" $w "*) skip=1 ;; esac ;;
      *) case " $(__gitvirt_commands "$path") " in *" $w "*) path="${path:+$path }$w" ;; esac ;;
    esac
  done
  echo "$path"
}
)SH";
  return out;
}

std::string BashScript(const std::vector<CommandInfo>& table) {
  std::string out = "# bash completion for gitvirt; generated from its command table by `gitvirt completion bash`.\n";
  out += ShellTables(table);
  out += R"SH(_gitvirt() {
  local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
  local path choices
  path="$(__gitvirt_path "${COMP_WORDS[@]:1:COMP_CWORD-1}")"
  if [[ "$prev" == -* && " $(__gitvirt_value_flags "$path") " == *" $prev "* ]]; then
    choices="$(__gitvirt_choices "$path" "$prev")"
    if [[ -n "$choices" ]]; then
      COMPREPLY=($(compgen -W "$choices" -- "$cur"))
    else
      COMPREPLY=($(compgen -f -- "$cur"))
    fi
    return 0
  fi
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$(__gitvirt_flags "$path")" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$(__gitvirt_commands "$path") $(__gitvirt_args "$path")" -- "$cur"))
  fi
  return 0
}
complete -F _gitvirt gitvirt
)SH";
  return out;
}

std::string ZshScript(const std::vector<CommandInfo>& table) {
  std::string out = "#compdef gitvirt\n# zsh completion for gitvirt; generated from its command table by `gitvirt "
                    "completion zsh`.\n";
  out += ShellTables(table);
  out += R"SH(_gitvirt() {
  local cur="${words[CURRENT]}" prev="${words[CURRENT-1]}"
  local path choices
  path="$(__gitvirt_path "${(@)words[2,CURRENT-1]}")"
  if [[ "$prev" == -* && " $(__gitvirt_value_flags "$path") " == *" $prev "* ]]; then
    choices="$(__gitvirt_choices "$path" "$prev")"
    if [[ -n "$choices" ]]; then
      compadd -- ${=choices}
    else
      _files
    fi
    return
  fi
  if [[ "$cur" == -* ]]; then
    compadd -- ${=$(__gitvirt_flags "$path")}
  else
    compadd -- ${=$(__gitvirt_commands "$path")} ${=$(__gitvirt_args "$path")}
  fi
}
if [ "$funcstack[1]" = "_gitvirt" ]; then
  _gitvirt "$@"
else
  compdef _gitvirt gitvirt
fi
)SH";
  return out;
}

std::string FishQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

std::string FishScript(const std::vector<CommandInfo>& table) {
  std::string out = "# fish completion for gitvirt; generated from its command table by `gitvirt completion fish`.\n";
  // What a path offers, as fish switch statements.
  auto function = [&](const std::string& name, const std::function<std::vector<std::string>(const CommandInfo&)>& answer) {
    out += "function " + name + "\n    switch \"$argv[1]\"\n";
    for (const CommandInfo& c : table) {
      const std::vector<std::string> words = answer(c);
      if (words.empty()) continue;
      out += "        case " + FishQuote(c.path) + "\n            echo " + FishQuote(Words(words)) + "\n";
    }
    out += "    end\nend\n";
  };
  function("__gitvirt_commands", [](const CommandInfo& c) { return c.subcommands; });
  function("__gitvirt_value_flags", [](const CommandInfo& c) { return Flags(c, true); });
  out += R"SH(function __gitvirt_path
    set -l path ''
    set -l skip 0
    for w in (commandline -opc)[2..-1]
        if test $skip = 1
            set skip 0
            continue
        end
        switch $w
            case '-*=*'
            case '-*'
                if contains -- $w (string split ' ' -- (__gitvirt_value_flags "$path"))
                    set skip 1
                end
            case '*'
                if contains -- $w (string split ' ' -- (__gitvirt_commands "$path"))
                    set path (string trim -- "$path $w")
                end
        end
    end
    echo "at:$path"
end
complete -c gitvirt -f
)SH";
  for (const CommandInfo& c : table) {
    const std::string when = "-n " + FishQuote("test (__gitvirt_path) = " + FishQuote("at:" + c.path));
    for (const CLI::App* sub : VisibleSubcommands(*c.app)) {
      out += "complete -c gitvirt " + when + " -a " + FishQuote(sub->get_name()) + " -d " +
             FishQuote(sub->get_description()) + "\n";
    }
    for (const std::string& choice : c.positional_choices) {
      out += "complete -c gitvirt " + when + " -a " + FishQuote(choice) + "\n";
    }
    for (const CLI::Option* o : c.options) {
      std::string line = "complete -c gitvirt " + when;
      for (const std::string& s : o->get_snames()) line += " -s " + s;
      for (const std::string& l : o->get_lnames()) line += " -l " + l;
      if (TakesValue(*o)) line += ChoicesOf(o).empty() ? " -r -F" : " -x -a " + FishQuote(Words(ChoicesOf(o)));
      line += " -d " + FishQuote(o->get_description());
      out += line + "\n";
    }
  }
  return out;
}

// ---- man pages --------------------------------------------------------------------------------

// roff text: backslashes and hyphens escaped, no line starting with a control character.
std::string Roff(const std::string& text) {
  std::string out;
  bool line_start = true;
  for (char c : text) {
    if (line_start && (c == '.' || c == '\'')) out += "\\&";
    if (c == '\\') {
      out += "\\e";
    } else if (c == '-') {
      out += "\\-";
    } else {
      out += c;
    }
    line_start = c == '\n';
  }
  return out;
}

// gitvirt, gitvirt-plan, gitvirt-snapshot-create (git's convention).
std::string PageName(const CommandInfo& c) {
  std::string name = "gitvirt";
  if (!c.path.empty()) name += "-" + c.path;
  std::replace(name.begin(), name.end(), ' ', '-');
  return name;
}

std::string ManPage(const CommandInfo& c, const std::string& version) {
  std::string upper;
  for (char ch : PageName(c)) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  std::ostringstream out;
  out << ".TH " << Roff(upper) << " 1 \"\" \"gitvirt " << Roff(version) << "\" \"gitvirt manual\"\n";
  out << ".SH NAME\n" << Roff(PageName(c)) << " \\- " << Roff(c.app->get_description().substr(0, c.app->get_description().find('\n'))) << "\n";
  out << ".SH SYNOPSIS\n.B " << Roff("gitvirt" + (c.path.empty() ? "" : " " + c.path)) << "\n";
  if (!c.subcommands.empty()) out << "\\fICOMMAND\\fR ";
  for (const CLI::Option* o : c.app->get_options()) {
    if (o->get_positional()) out << (o->get_required() ? "\\fI" : "[\\fI") << Roff(o->get_name()) << (o->get_required() ? "\\fR " : "\\fR] ");
  }
  out << "[\\fIOPTIONS\\fR]\n";
  out << ".SH DESCRIPTION\n" << Roff(c.app->get_description()) << "\n";
  if (!c.subcommands.empty()) {
    out << ".SH COMMANDS\n";
    for (const CLI::App* sub : VisibleSubcommands(*c.app)) {
      out << ".TP\n.B " << Roff(sub->get_name()) << "\n" << Roff(sub->get_description()) << "\n";
    }
  }
  out << ".SH OPTIONS\n";
  for (const CLI::Option* o : c.options) {
    std::string names;
    for (const std::string& n : OptionNames(*o)) names += (names.empty() ? "" : ", ") + n;
    out << ".TP\n.B " << Roff(names);
    if (TakesValue(*o)) {
      const auto& choices = ChoicesOf(o);
      out << " \\fI" << Roff(choices.empty() ? "VALUE" : Words(choices)) << "\\fR";
    }
    out << "\n" << Roff(o->get_description()) << "\n";
  }
  const std::string footer = c.app->get_footer();
  if (const auto at = footer.find("Examples:\n"); at != std::string::npos) {
    out << ".SH EXAMPLES\n.nf\n" << Roff(footer.substr(at + 10)) << ".fi\n";
  }
  out << ".SH SEE ALSO\n";
  if (c.path.empty()) {
    out << "gitvirt\\-validate(1), gitvirt\\-plan(1), gitvirt\\-apply(1); docs/cli.md\n";
  } else {
    out << "gitvirt(1)\n";
  }
  return out.str();
}

}  // namespace

void AddHelpCommands(CLI::App& app, GlobalOptions& /*global*/, CommandResult& result) {
  auto words = std::make_shared<std::vector<std::string>>();
  auto* help = app.add_subcommand("help", "Help about any command: gitvirt help [COMMAND...]");
  help->add_option("command", *words, "The command (and its subcommands)");
  SetExamples(help, {"gitvirt help plan", "gitvirt help snapshot create"});
  help->callback([&app, &result, words] {
    const CLI::App* at = &app;
    for (const std::string& w : *words) {
      const CLI::App* next = nullptr;
      std::vector<std::string> names;
      for (const CLI::App* sub : VisibleSubcommands(*at)) {
        if (sub->get_name() == w) next = sub;
        names.push_back(sub->get_name());
      }
      if (next == nullptr) {
        std::cerr << "gitvirt: unknown command \"" << w << "\" for \"" << CommandPath(*at) << "\""
                  << DidYouMean(TypoMatches(w, names)) << "\nRun '" << CommandPath(*at) << " --help' for usage.\n";
        result.exit_code = kExitError;
        return;
      }
      at = next;
    }
    // The formatter, not App::help(): that one shows the help of the subcommand parsed, `help`.
    std::cout << at->get_formatter()->make_help(at, CommandPath(*at), CLI::AppFormatMode::Normal);
    result.exit_code = kExitOk;
  });

  auto shell = std::make_shared<std::string>();
  auto* completion = app.add_subcommand("completion", "Print a shell completion script: bash, zsh or fish");
  AddChoice(completion, "shell", *shell, {"bash", "zsh", "fish"}, "The shell")->required();
  SetExamples(completion, {"source <(gitvirt completion bash)  # in this bash",
                           "gitvirt completion zsh > \"${fpath[1]}/_gitvirt\"",
                           "gitvirt completion fish > ~/.config/fish/completions/gitvirt.fish"});
  completion->callback([&app, &result, shell] {
    const std::vector<CommandInfo> table = Table(app);
    std::cout << (*shell == "bash" ? BashScript(table) : *shell == "zsh" ? ZshScript(table) : FishScript(table));
    result.exit_code = kExitOk;
  });

  auto dir = std::make_shared<std::string>();
  auto* man = app.add_subcommand("man-pages", "Write the man pages (gitvirt.1, gitvirt-COMMAND.1) into DIR");
  man->group("");  // hidden: the build runs it
  man->add_option("dir", *dir, "Directory")->required();
  SetExamples(man, {"gitvirt man-pages build/man"});
  man->callback([&app, &result, dir] {
    std::error_code ec;
    fs::create_directories(*dir, ec);
    for (const CommandInfo& c : Table(app)) {
      std::ofstream out(fs::path(*dir) / (PageName(c) + ".1"));
      out << ManPage(c, Version());
      if (!out) {
        std::cerr << "gitvirt: cannot write " << (fs::path(*dir) / (PageName(c) + ".1")).string() << "\n";
        result.exit_code = kExitError;
        return;
      }
    }
    result.exit_code = kExitOk;
  });
}

}  // namespace gitvirt::cli
