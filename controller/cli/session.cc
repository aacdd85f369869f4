#include "session.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "output.h"

namespace gitvirt::cli {

std::string GlobalOptions::ConfigFile() const {
  if (config_option != nullptr && config_option->count() > 0) return config;
  if (const char* env = std::getenv("GITVIRT_CONFIG"); env != nullptr && *env != '\0') return env;
  return "gitvirt.yaml";
}

bool GlobalOptions::ConfigGiven() const {
  if (config_option != nullptr && config_option->count() > 0) return true;
  const char* env = std::getenv("GITVIRT_CONFIG");
  return env != nullptr && *env != '\0';
}

std::shared_ptr<spdlog::logger> MakeLogger(const GlobalOptions& global) {
  auto logger = spdlog::get("gitvirt");
  if (!logger) {
    const bool color = !global.no_color && std::getenv("NO_COLOR") == nullptr &&
                       (std::getenv("TERM") == nullptr || std::string(std::getenv("TERM")) != "dumb");
    logger = spdlog::stderr_color_mt("gitvirt", color ? spdlog::color_mode::automatic : spdlog::color_mode::never);
    logger->set_pattern("%Y-%m-%dT%H:%M:%S%z %^%l%$ %v");
  }
  logger->set_level(global.verbosity >= 2   ? spdlog::level::debug
                    : global.verbosity == 1 ? spdlog::level::info
                                            : spdlog::level::warn);
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

std::unique_ptr<Session> OpenSession(const GlobalOptions& global) {
  Session::Options options;
  options.log = MakeLogger(global);
  options.ignore_unreachable = global.ignore_unreachable;
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
  const std::string file = global.ConfigFile();
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) {
    // --config is checked by the parser; the environment and the default are not.
    std::cerr << "gitvirt: no controller configuration: " << file << " does not exist (give one with --config FILE "
              << "or GITVIRT_CONFIG)\n";
    return nullptr;
  }
  auto session = Session::Open(file, std::move(options));
  if (!session) {
    // The configuration's diagnostics said what is wrong.
    return nullptr;
  }
  return std::move(*session);
}

bool StdoutIsTerminal() { return isatty(STDOUT_FILENO) == 1; }

}  // namespace gitvirt::cli
