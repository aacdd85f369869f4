#pragma once
// The connection to one node's libvirt. It is opened through an opener (a libvirt URI, or a
// simulated node's files: sim_node.h), at once or at the first call that needs it; a connection
// that is lost (daemon restarted, network blip) is reopened with backoff for up to
// `reconnect_timeout` and the call run once more. Remote connections use libvirt keepalive, so
// a dead peer is noticed rather than waited for.
//
// Thread-safety: every method may be called from several threads. Calls share the connection
// (libvirt connections are thread-safe); a reconnect waits until the calls on the lost one are
// done. Lifetime: outlives every call it runs; closes the connection when destroyed.

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>
#include <type_traits>

#include <spdlog/fwd.h>

#include "gitvirt/core/error.h"
#include "libvirt_util.h"
#include "retry.h"

namespace gitvirt {

class NodeConnection {
 public:
  // Opens a new libvirt connection to the node, or says why it cannot.
  using Opener = std::function<Result<libvirt::Connection>()>;
  // virConnectOpen of `uri`.
  static Opener OpenUri(const std::string& node, const std::string& uri);

  NodeConnection(std::string node, std::string uri, Opener opener, std::chrono::seconds reconnect_timeout,
                 std::shared_ptr<spdlog::logger> log);
  ~NodeConnection();
  NodeConnection(const NodeConnection&) = delete;
  NodeConnection& operator=(const NodeConnection&) = delete;

  // Opens the connection unless it is open (every call does, first).
  Result<void> Open();
  // Whether it has been opened (a simulated node's may not have been yet).
  bool opened() const { return opened_.load(); }

  // Runs `fn` on the open connection. When the connection turns out to be lost, it is reopened
  // and `fn` runs once more; an answer such as "no such domain" proves the connection works.
  // Errors are wrapped with `context`.
  template <typename T>
  Result<T> Query(const std::string& context, const std::function<Result<T>(virConnectPtr)>& fn) {
    return Run<T>(false, context, fn);
  }
  // The same for a change of the node: run again after a lost answer, a change that finds its
  // work done was carried out the first time (DoneBeforeTheAnswerWasLost).
  template <typename T>
  Result<T> Change(const std::string& context, const std::function<Result<T>(virConnectPtr)>& fn) {
    return Run<T>(true, context, fn);
  }
  // Runs `fn` on the connection as it is, without a retry: the other end of a call another
  // connection runs (a live migration's target), which that connection retries as a whole.
  template <typename T>
  Result<T> Borrow(const std::function<Result<T>(virConnectPtr)>& fn) {
    if (auto ok = Open(); !ok) return std::unexpected(ok.error());
    std::shared_lock lock(mu_);
    return fn(conn_.get());
  }

 private:
  template <typename T>
  Result<T> Run(bool changes, const std::string& context, const std::function<Result<T>(virConnectPtr)>& fn) {
    if (auto ok = Open(); !ok) return std::unexpected(ok.error().Wrap(context));
    for (int attempt = 0;; ++attempt) {
      Result<T> result = [&] {
        std::shared_lock lock(mu_);
        return fn(conn_.get());
      }();
      if constexpr (std::is_void_v<T>) {
        if (changes && attempt > 0 && !result && DoneBeforeTheAnswerWasLost(result.error())) {
          LogDoneBeforeTheLoss(context);
          return {};
        }
      }
      if (result || attempt > 0) {
        if (!result) return std::unexpected(result.error().Wrap(context));
        return result;
      }
      if (!Lost(result.error())) return std::unexpected(result.error().Wrap(context));
      if (auto ok = Reconnect(); !ok) return std::unexpected(ok.error().Wrap(context));
    }
  }

  // Whether a failed call failed because the connection is gone (logged when it is).
  bool Lost(const Error& error);
  void LogDoneBeforeTheLoss(const std::string& context);
  Result<void> OpenLocked();
  Result<void> Reconnect();
  static void OnClose(virConnectPtr, int reason, void* opaque);

  const std::string node_;
  const std::string uri_;
  const Opener opener_;
  const std::chrono::seconds reconnect_timeout_;
  const std::shared_ptr<spdlog::logger> log_;
  std::shared_mutex mu_;  // shared: calls on conn_; exclusive: replacing it
  libvirt::Connection conn_;
  std::atomic<bool> lost_{false};    // the close callback (or a failed call) said so
  std::atomic<bool> opened_{false};  // conn_ has been opened once
};

}  // namespace gitvirt
