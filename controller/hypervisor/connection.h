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

// What a change touches, for whoever keeps a copy of the node's state.
struct Touched {
  enum class Kind { kNothing, kDomain, kPool };
  Kind kind = Kind::kNothing;
  std::string name;
  bool even_if_failed = true;  // kept after a change that failed, too

  static Touched Domain(std::string name) { return Touched{Kind::kDomain, std::move(name), true}; }
  static Touched Pool(std::string name, bool even_if_failed = true) {
    return Touched{Kind::kPool, std::move(name), even_if_failed};
  }
};

// Told of every change a connection runs: before it can reach the node, and right after each
// attempt, on the same connection and under the same hold of it, so that no reconnect comes in
// between. A simulated node keeps its files so (sim_node.h).
class ChangeObserver {
 public:
  virtual ~ChangeObserver() = default;
  virtual void Changing() = 0;
  // Keeps what the change touched as it is now on `c`; an error fails a change that succeeded.
  virtual Result<void> Changed(virConnectPtr c, const Touched& touched, bool succeeded) = 0;
};

class NodeConnection {
 public:
  // Opens a new libvirt connection to the node, or says why it cannot.
  using Opener = std::function<Result<libvirt::Connection>()>;
  // virConnectOpen of `uri`.
  static Opener OpenUri(const std::string& node, const std::string& uri);

  // `observer` (may be null) outlives the connection.
  NodeConnection(std::string node, std::string uri, Opener opener, std::chrono::seconds reconnect_timeout,
                 std::shared_ptr<spdlog::logger> log, ChangeObserver* observer = nullptr);
  ~NodeConnection();
  NodeConnection(const NodeConnection&) = delete;
  NodeConnection& operator=(const NodeConnection&) = delete;

  // Opens the connection unless it is open (every call does, first).
  Result<void> Open();
  // Takes the connection for lost (`why`) and reopens it, as after a daemon restart (the fault
  // seam's lost answers, faulty_node.h; a simulated node loads its files again).
  Result<void> Reopen(const std::string& why);
  // Whether it has been opened (a simulated node's may not have been yet).
  bool opened() const { return opened_.load(); }

  // Runs `fn` on the open connection. When the connection turns out to be lost, it is reopened
  // and `fn` runs once more; an answer such as "no such domain" proves the connection works.
  // Errors are wrapped with `context`.
  template <typename T>
  Result<T> Query(const std::string& context, const std::function<Result<T>(virConnectPtr)>& fn) {
    return Run<T>(nullptr, context, fn);
  }
  // The same for a change of the node, which touches `touched` (the observer's business): run
  // again after a lost answer, a change that finds its work done was carried out the first time
  // (DoneBeforeTheAnswerWasLost).
  template <typename T>
  Result<T> Change(const std::string& context, const Touched& touched,
                   const std::function<Result<T>(virConnectPtr)>& fn) {
    return Run<T>(&touched, context, fn);
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
  // `touched` is null for a query.
  template <typename T>
  Result<T> Run(const Touched* touched, const std::string& context,
                const std::function<Result<T>(virConnectPtr)>& fn) {
    const bool changes = touched != nullptr;
    if (changes && observer_ != nullptr) observer_->Changing();
    if (auto ok = Open(); !ok) return std::unexpected(ok.error().Wrap(context));
    for (int attempt = 0;; ++attempt) {
      Result<T> result = [&]() -> Result<T> {
        std::shared_lock lock(mu_);
        Result<T> r = fn(conn_.get());
        if (!changes || observer_ == nullptr) return r;
        if (auto kept = observer_->Changed(conn_.get(), *touched, r.has_value()); !kept && r) {
          return std::unexpected(kept.error());
        }
        return r;
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
  ChangeObserver* const observer_;
  std::shared_mutex mu_;  // shared: calls on conn_; exclusive: replacing it
  libvirt::Connection conn_;
  std::atomic<bool> lost_{false};    // the close callback (or a failed call) said so
  std::atomic<bool> opened_{false};  // conn_ has been opened once
};

}  // namespace gitvirt
