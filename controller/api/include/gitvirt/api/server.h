#pragma once
// The status API's HTTP/1.1 server: a listener and one thin session per connection around the
// pure HandleRequest (handler.h). Sessions read a request under size limits and a timeout, write
// the handler's response (keep-alive, pipelining), and turn an EventStreamRequest into a
// Server-Sent Events stream that polls the journal on a timer, so jobs run by another process
// sharing the state file stream live too. Optional TLS and bearer tokens.
//
// StatusServer runs its own io_context on `threads` threads; Start() returns once the socket is
// listening. Stop() (also run by the destructor) closes the listener, lets responses being
// written finish, ends event streams and idle keep-alive connections, and waits at most
// `stop_timeout` before cutting what is left. Every public method may be called from any
// thread except the server's own. The StatusSource must outlive the server.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "gitvirt/core/error.h"
#include "gitvirt/core/status.h"

namespace spdlog {
class logger;
}

namespace gitvirt {

struct ApiOptions {
  // host:port; "[::1]:8080" for IPv6; port 0 picks a free port (see StatusServer::port()).
  std::string listen = "127.0.0.1:8080";
  std::string tokens_file;              // one bearer token per line, `#` comments; "" = no auth
  std::string tls_cert_file;            // PEM certificate chain; with tls_key_file enables TLS
  std::string tls_key_file;             // PEM private key
  int threads = 1;                      // io threads; 2 on a 2-core host serves twice the load
  std::size_t header_limit = 8 * 1024;  // bytes of request line + headers; over it: 431
  std::size_t body_limit = 16 * 1024;   // bytes of request body; over it: 413
  std::chrono::milliseconds read_timeout{30'000};   // to receive a request; keep-alive idle time
  std::chrono::milliseconds write_timeout{30'000};  // to send a response or an event chunk
  std::chrono::milliseconds event_poll_interval{200};
  std::chrono::milliseconds event_keepalive{15'000};  // SSE comment when nothing was sent
  std::chrono::milliseconds stop_timeout{5'000};
  int max_connections = 1024;  // further connections are closed at once
  int default_page_size = 100;
  int max_page_size = 1000;
  std::shared_ptr<spdlog::logger> logger;  // null: spdlog::default_logger()
};

class StatusServer {
 public:
  // Binds, loads tokens and the TLS certificate, and starts serving. Errors: kInvalidArgument
  // (bad listen address, unreadable or empty tokens file, bad cert/key), kUnavailable (the
  // address is in use or cannot be bound).
  static Result<std::unique_ptr<StatusServer>> Start(const ApiOptions& options,
                                                     StatusSource& source);
  ~StatusServer();
  StatusServer(const StatusServer&) = delete;
  StatusServer& operator=(const StatusServer&) = delete;

  std::uint16_t port() const;
  // "http://127.0.0.1:8080" or "https://..."; IPv6 hosts in brackets.
  std::string url() const;
  // Graceful stop; idempotent.
  void Stop();

  struct Impl;

 private:
  explicit StatusServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace gitvirt
