#include "connection.h"

#include <spdlog/spdlog.h>

#include <thread>

#include "gitvirt/core/units.h"

namespace gitvirt {

NodeConnection::Opener NodeConnection::OpenUri(const std::string& node, const std::string& uri) {
  return [node, uri]() -> Result<libvirt::Connection> {
    libvirt::Connection c(virConnectOpen(uri.c_str()));
    if (!c) return std::unexpected(libvirt::LastError("connecting to node " + node + " (" + uri + ")"));
    return c;
  };
}

NodeConnection::NodeConnection(std::string node, std::string uri, Opener opener,
                               std::chrono::seconds reconnect_timeout, std::shared_ptr<spdlog::logger> log,
                               ChangeObserver* observer)
    : node_(std::move(node)),
      uri_(std::move(uri)),
      opener_(std::move(opener)),
      reconnect_timeout_(reconnect_timeout),
      log_(log ? std::move(log) : spdlog::default_logger()),
      observer_(observer) {}

NodeConnection::~NodeConnection() {
  std::unique_lock lock(mu_);
  if (conn_) virConnectUnregisterCloseCallback(conn_.get(), &OnClose);
}

void NodeConnection::OnClose(virConnectPtr, int reason, void* opaque) {
  auto* self = static_cast<NodeConnection*>(opaque);
  self->lost_ = true;
  self->log_->warn("node={} connection closed (reason {})", self->node_, reason);
}

Result<void> NodeConnection::Open() {
  if (opened_.load()) return {};
  std::unique_lock lock(mu_);
  if (!conn_) {
    if (auto ok = OpenLocked(); !ok) return ok;
  }
  opened_ = true;
  return {};
}

Result<void> NodeConnection::OpenLocked() {
  libvirt::EnsureEventLoop();
  auto c = opener_();
  if (!c) return std::unexpected(c.error());
  const bool remote = uri_.find("+ssh") != std::string::npos || uri_.find("+tls") != std::string::npos ||
                      uri_.find("+tcp") != std::string::npos;
  if (remote) virConnectSetKeepAlive(c->get(), 5, 3);
  virConnectRegisterCloseCallback(c->get(), &OnClose, this, nullptr);
  if (conn_) virConnectUnregisterCloseCallback(conn_.get(), &OnClose);
  conn_ = std::move(*c);
  lost_ = false;
  return {};
}

bool NodeConnection::Lost(const Error& error) {
  if (error.code == ErrorCode::kNotFound && !lost_) return false;
  bool lost = lost_ || libvirt::IsConnectionLost(error);
  {
    std::shared_lock lock(mu_);
    lost = lost || virConnectIsAlive(conn_.get()) != 1;
  }
  if (lost) log_->warn("node={} lost the connection ({}); reconnecting", node_, error.message);
  return lost;
}

Result<void> NodeConnection::Reopen(const std::string& why) {
  lost_ = true;
  log_->warn("node={} lost the connection ({}); reconnecting", node_, why);
  return Reconnect();
}

void NodeConnection::LogDoneBeforeTheLoss(const std::string& context) {
  log_->info("node={} {}: done before the connection was lost", node_, context);
}

Result<void> NodeConnection::Reconnect() {
  std::unique_lock lock(mu_);
  if (conn_ && !lost_ && virConnectIsAlive(conn_.get()) == 1) return {};  // another thread did it
  const auto deadline = std::chrono::steady_clock::now() + reconnect_timeout_;
  auto delay = std::chrono::milliseconds(200);
  Error last{ErrorCode::kUnavailable, "connection lost", ""};
  while (true) {
    auto ok = OpenLocked();
    if (ok) {
      log_->info("node={} reconnected to {}", node_, uri_);
      return {};
    }
    last = ok.error();
    if (std::chrono::steady_clock::now() + delay > deadline) break;
    std::this_thread::sleep_for(delay);
    delay = std::min(delay * 2, std::chrono::milliseconds(5000));
  }
  return Fail(ErrorCode::kUnavailable,
              "node unreachable for " + FormatDuration(reconnect_timeout_) + ": " + last.message, node_);
}

}  // namespace gitvirt
