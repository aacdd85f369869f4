#include <csignal>
#include <iostream>

#include "command.h"
#include "gitvirt/api/server.h"
#include "gitvirt/cli/app.h"
#include "gitvirt/engine/controller.h"
#include "output.h"
#include "session.h"

namespace gitvirt::cli {
namespace {

std::atomic<bool> g_stop{false};
std::atomic<bool> g_refresh{false};

extern "C" void OnStop(int) { g_stop.store(true); }
extern "C" void OnHangup(int) { g_refresh.store(true); }

struct ServeOptions {
  std::string listen;
  bool once = false;
};

int RunServe(const GlobalOptions& global, const ServeOptions& opts) {
  // serve logs what it does (info) unless asked for more.
  GlobalOptions logged = global;
  logged.verbosity = std::max(global.verbosity, 1);
  auto log = MakeLogger(logged);
  auto session = OpenSession(logged);
  if (!session) return kExitError;
  const ControllerConfig config = session->config();
  auto controller = Controller::Start(std::move(session));
  if (!controller) {
    std::cerr << "gitvirt serve: " << controller.error().ToString() << "\n";
    return kExitError;
  }
  if (opts.once) {
    (*controller)->ReconcileOnce(g_stop);
    auto s = (*controller)->Snapshot();
    std::cout << "revision " << s->revision << ": " << s->last_sync_result
              << (s->last_error.empty() ? "" : " (" + s->last_error + ")") << "\n";
    return s->last_sync_result == "failed" || s->last_sync_result == "invalid" ? kExitError : kExitOk;
  }
  ApiOptions api;
  api.listen = opts.listen.empty() ? config.api.listen : opts.listen;
  api.tokens_file = config.api.tokens_file;
  api.tls_cert_file = config.api.tls_cert;
  api.tls_key_file = config.api.tls_key;
  api.threads = 2;  // one core each on a two-core host: twice the throughput of one
  api.logger = log;
  auto server = StatusServer::Start(api, **controller);
  if (!server) {
    std::cerr << "gitvirt serve: status API: " << server.error().ToString() << "\n";
    return kExitError;
  }
  std::signal(SIGTERM, OnStop);
  std::signal(SIGINT, OnStop);
  std::signal(SIGHUP, OnHangup);
  std::cout << "gitvirt serve: reconciling " << (config.source.IsGit() ? config.source.repo : DisplayPath(config.source.path))
            << " every " << FormatDuration(config.source.interval) << " (SIGHUP: now)\n"
            << "Dashboard:  " << (*server)->url() << "/\n"
            << "Status API: " << (*server)->url() << "/api/v1/status\n"
            << std::flush;
  // SIGHUP arrives as a flag; a small thread turns it into a refresh request.
  std::thread hup([&] {
    while (!g_stop) {
      if (g_refresh.exchange(false)) (*controller)->RequestRefresh();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  (*controller)->Run(g_stop);
  hup.join();
  (*server)->Stop();
  log->info("stopped");
  return kExitOk;
}

}  // namespace

void AddServeCommand(CLI::App& app, GlobalOptions& global, CommandResult& result) {
  auto opts = std::make_shared<ServeOptions>();
  auto* cmd = app.add_subcommand(
      "serve", "Run the controller: reconcile the source on an interval, serve the status API and dashboard");
  cmd->add_option("--listen", opts->listen, "Status API address (default api.listen, 127.0.0.1:8080)");
  cmd->add_flag("--once", opts->once, "One reconcile pass, then exit (no API)");
  cmd->callback([&global, &result, opts] { result.exit_code = RunServe(global, *opts); });
}

}  // namespace gitvirt::cli
