#include "gitvirt/api/server.h"

#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/sendfile.h>

#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <charconv>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "body_files.h"
#include "gitvirt/api/handler.h"

namespace gitvirt {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

class SessionBase;

// What the listener and the sessions share. Held by shared_ptr, so it outlives every session
// even when the io_context is torn down with handlers still queued.
struct Shared {
  Shared(const ApiOptions& options_in, StatusSource& source, BearerTokens tokens)
      : options(options_in),
        log(options_in.logger ? options_in.logger : spdlog::default_logger()),
        context{source, std::move(tokens), &cache, options_in.default_page_size,
                options_in.max_page_size} {}

  ApiOptions options;
  std::shared_ptr<spdlog::logger> log;
  ResponseCache cache;
  api_files::BodyFiles body_files;
  ApiContext context;
  std::optional<ssl::context> tls;

  // Guards `stopping` transitions and the session registry, so that no session can slip in
  // between Stop() asking every session to finish and the listener closing.
  std::mutex mutex;
  std::condition_variable sessions_gone;
  bool stopping = false;
  std::atomic<bool> stopping_flag{false};  // lock-free read of `stopping` for the sessions
  std::unordered_map<SessionBase*, std::weak_ptr<SessionBase>> sessions;
};

class SessionBase {
 public:
  explicit SessionBase(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}
  virtual ~SessionBase() {
    std::lock_guard lock(shared_->mutex);
    shared_->sessions.erase(this);
    if (shared_->sessions.empty()) shared_->sessions_gone.notify_all();
  }
  SessionBase(const SessionBase&) = delete;
  SessionBase& operator=(const SessionBase&) = delete;

  virtual void Run() = 0;
  // Asks the session, from any thread, to finish what it is writing and close.
  virtual void RequestShutdown() = 0;

 protected:
  std::shared_ptr<Shared> shared_;
};

// One connection: read a request, answer it through HandleRequest, repeat while keep-alive;
// or, for an event stream, poll the journal on a timer and write chunks until the job ends.
// Every handler runs on the connection's strand.
template <bool kTls>
class Session : public SessionBase, public std::enable_shared_from_this<Session<kTls>> {
 public:
  using Stream = std::conditional_t<kTls, beast::ssl_stream<beast::tcp_stream>, beast::tcp_stream>;

  Session(tcp::socket&& socket, std::shared_ptr<Shared> shared)
      : SessionBase(std::move(shared)),
        stream_(MakeStream(std::move(socket), *shared_)),
        timer_(stream_.get_executor()) {}

  void Run() override {
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&Session::OnRun, this->shared_from_this()));
  }

  void RequestShutdown() override {
    net::post(stream_.get_executor(),
              beast::bind_front_handler(&Session::Shutdown, this->shared_from_this()));
  }

 private:
  enum class Phase { kStarting, kReading, kWriting, kStreaming, kClosing };

  static Stream MakeStream(tcp::socket&& socket, Shared& shared) {
    if constexpr (kTls) {
      return Stream(std::move(socket), *shared.tls);
    } else {
      return Stream(std::move(socket));
    }
  }

  beast::tcp_stream& Tcp() { return beast::get_lowest_layer(stream_); }
  const ApiOptions& options() const { return shared_->options; }
  bool stopping() const { return shared_->stopping_flag.load(std::memory_order_relaxed); }

  void OnRun() {
    if constexpr (kTls) {
      Tcp().expires_after(options().read_timeout);
      stream_.async_handshake(
          ssl::stream_base::server,
          beast::bind_front_handler(&Session::OnHandshake, this->shared_from_this()));
    } else {
      DoRead();
    }
  }

  void OnHandshake(beast::error_code ec) {
    if (ec) {
      shared_->log->debug("api: TLS handshake failed: {}", ec.message());
      return;  // the socket closes with the session
    }
    DoRead();
  }

  void DoRead() {
    if (stopping()) return DoClose();
    phase_ = Phase::kReading;
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(options().header_limit));
    parser_->body_limit(options().body_limit);
    Tcp().expires_after(options().read_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::OnRead, this->shared_from_this()));
  }

  void OnRead(beast::error_code ec, std::size_t) {
    if (ec == http::error::end_of_stream) return DoClose();
    if (ec == http::error::header_limit) {
      return WriteResponse(MakeErrorResponse(431, "request header fields too large"), false, false);
    }
    if (ec == http::error::body_limit) {
      return WriteResponse(MakeErrorResponse(413, "request body too large"), false, false);
    }
    if (ec) {
      // A malformed request gets an answer; a timeout, a reset or a stop just closes.
      if (ec.category() == http::make_error_code(http::error::bad_target).category()) {
        return WriteResponse(MakeErrorResponse(400, "malformed HTTP request"), false, false);
      }
      return DoClose();
    }

    const auto& message = parser_->get();
    HttpRequest request;
    request.method = std::string(message.method_string());
    request.target = std::string(message.target());
    for (const auto& field : message) {
      request.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    const bool keep_alive = message.keep_alive() && !stopping();
    const bool head = message.method() == http::verb::head;

    HttpResponse response;
    try {
      response = HandleRequest(request, shared_->context);
    } catch (const std::exception& e) {
      shared_->log->error("api: {} {}: {}", request.method, request.target, e.what());
      response = MakeErrorResponse(500, "internal error");
    }
    shared_->log->debug("api: {} {} -> {} ({} bytes)", request.method, request.target,
                        response.status, response.body->size());
    if (response.event_stream) return StartStream(response);
    WriteResponse(std::move(response), keep_alive, head);
  }

  template <typename Message>
  void SetHeaders(Message& message, const HttpResponse& response) {
    message.set(http::field::server, "gitvirt");
    message.set(http::field::content_type, response.content_type);
    message.set("X-Content-Type-Options", "nosniff");
    for (const auto& [name, value] : response.headers) message.insert(name, value);
  }

  void WriteResponse(HttpResponse response, bool keep_alive, bool head) {
    phase_ = Phase::kWriting;
    if constexpr (!kTls) {
      if (response.reusable && !head && response.status == 200) {
        if (auto file = shared_->body_files.Get(response.body)) {
          if (WriteFileResponse(response, std::move(file), keep_alive)) return;
        }
      }
    }
    // The body is shared with the cache: it is referenced, not copied, while it is written.
    body_ = std::move(response.body);
    response_.emplace(static_cast<http::status>(response.status), 11);
    SetHeaders(*response_, response);
    if (head) {
      response_->content_length(body_->size());
    } else {
      response_->body() = beast::span<const char>(body_->data(), body_->size());
      response_->prepare_payload();
    }
    response_->keep_alive(keep_alive);
    Tcp().expires_after(options().write_timeout);
    http::async_write(
        stream_, *response_,
        beast::bind_front_handler(&Session::OnWrite, this->shared_from_this(), keep_alive));
  }

  void OnWrite(bool keep_alive, beast::error_code ec, std::size_t) {
    response_.reset();
    body_.reset();
    if (ec) return;  // the peer is gone; the socket closes with the session
    if (!keep_alive || stopping()) return DoClose();
    DoRead();
  }

  // ---- a reusable body, sent from its file (plain TCP only: TLS encrypts in user space) ----

  // False when the header cannot be serialized: the caller then writes from memory.
  bool WriteFileResponse(const HttpResponse& response,
                         std::shared_ptr<const api_files::BodyFile> file, bool keep_alive) {
    // The header goes out by hand with MSG_MORE, so that it shares its packets with the start
    // of the body instead of costing a segment and a round through the reactor of its own.
    http::response<http::empty_body> header(static_cast<http::status>(response.status), 11);
    SetHeaders(header, response);
    header.content_length(file->size());
    header.keep_alive(keep_alive);
    http::response_serializer<http::empty_body> serializer(header);
    serializer.split(true);
    beast::error_code ec;
    file_head_.clear();
    while (!serializer.is_header_done() && !ec) {
      serializer.next(ec, [&](beast::error_code&, const auto& buffers) {
        file_head_ += beast::buffers_to_string(buffers);
        serializer.consume(beast::buffer_bytes(buffers));
      });
    }
    if (ec) return false;
    if (!native_non_blocking_) {
      Tcp().socket().native_non_blocking(true, ec);
      if (ec) return false;
      native_non_blocking_ = true;
    }
    file_ = std::move(file);
    file_offset_ = 0;
    file_head_sent_ = 0;
    file_timer_armed_ = false;
    Tcp().expires_never();
    SendFile(keep_alive);
    return true;
  }

  void SendFile(bool keep_alive) {
    const int socket = Tcp().socket().native_handle();
    auto wait = [&] {
      // tcp_stream's timeout covers only its own operations: a stalled send has a timer of its
      // own, armed only when the socket is full (most answers go out without waiting).
      if (!file_timer_armed_) {
        file_timer_armed_ = true;
        timer_.expires_after(options().write_timeout);
        timer_.async_wait(
            beast::bind_front_handler(&Session::OnFileTimeout, this->shared_from_this()));
      }
      Tcp().socket().async_wait(
          tcp::socket::wait_write,
          beast::bind_front_handler(&Session::OnWritable, this->shared_from_this(), keep_alive));
    };
    while (file_head_sent_ < file_head_.size()) {
      const ssize_t sent = ::send(socket, file_head_.data() + file_head_sent_,
                                  file_head_.size() - file_head_sent_, MSG_MORE | MSG_NOSIGNAL);
      if (sent > 0) {
        file_head_sent_ += static_cast<std::size_t>(sent);
        continue;
      }
      if (sent < 0 && errno == EINTR) continue;
      if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return wait();
      return FinishFile(false, keep_alive);  // the peer is gone
    }
    while (static_cast<std::size_t>(file_offset_) < file_->size()) {
      const ssize_t sent = ::sendfile(socket, file_->fd(), &file_offset_,
                                      file_->size() - static_cast<std::size_t>(file_offset_));
      if (sent > 0) continue;
      if (sent < 0 && errno == EINTR) continue;
      if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return wait();
      return FinishFile(false, keep_alive);
    }
    FinishFile(true, keep_alive);
  }

  void OnWritable(bool keep_alive, beast::error_code ec) {
    if (ec) return FinishFile(false, keep_alive);
    SendFile(keep_alive);
  }

  void OnFileTimeout(beast::error_code ec) {
    if (ec || !file_) return;
    beast::error_code ignored;
    Tcp().socket().cancel(ignored);  // the pending wait ends with operation_aborted
  }

  void FinishFile(bool ok, bool keep_alive) {
    if (file_timer_armed_) timer_.cancel();
    file_timer_armed_ = false;
    file_.reset();
    if (!ok) return;  // the socket closes with the session
    if (!keep_alive || stopping()) return DoClose();
    DoRead();
  }

  // ---- Server-Sent Events ----

  void StartStream(const HttpResponse& response) {
    phase_ = Phase::kStreaming;
    stream_state_.emplace();
    stream_state_->job_id = response.event_stream->job_id;
    stream_state_->after_seq = response.event_stream->after_seq;
    stream_header_.emplace(http::status::ok, 11);
    SetHeaders(*stream_header_, response);
    stream_header_->chunked(true);
    stream_header_->keep_alive(false);
    stream_serializer_.emplace(*stream_header_);
    last_write_ = Clock::now();
    Tcp().expires_after(options().write_timeout);
    http::async_write_header(
        stream_, *stream_serializer_,
        beast::bind_front_handler(&Session::OnStreamHeader, this->shared_from_this()));
  }

  void OnStreamHeader(beast::error_code ec, std::size_t) {
    if (ec) return;
    Poll();
  }

  void Poll() {
    if (stopping()) return EndStream();
    std::string text;
    try {
      text = PollEventStream(shared_->context.source.history(), *stream_state_);
    } catch (const std::exception& e) {
      shared_->log->error("api: event stream of job {}: {}", stream_state_->job_id, e.what());
      return EndStream();
    }
    if (text.empty() && Clock::now() - last_write_ >= options().event_keepalive) {
      text = ": keep-alive\n\n";  // also finds out, by failing, that the client has gone
    }
    if (text.empty()) return WaitForPoll();
    chunk_ = std::move(text);
    last_write_ = Clock::now();
    Tcp().expires_after(options().write_timeout);
    net::async_write(stream_, http::make_chunk(net::buffer(chunk_)),
                     beast::bind_front_handler(&Session::OnChunk, this->shared_from_this()));
  }

  void OnChunk(beast::error_code ec, std::size_t) {
    if (ec) return;
    Tcp().expires_never();
    if (stream_state_->finished || stopping()) return EndStream();
    WaitForPoll();
  }

  void WaitForPoll() {
    timer_.expires_after(options().event_poll_interval);
    timer_.async_wait(beast::bind_front_handler(&Session::OnTimer, this->shared_from_this()));
  }

  void OnTimer(beast::error_code ec) {
    if (ec || stopping()) return EndStream();
    Poll();
  }

  void EndStream() {
    phase_ = Phase::kClosing;
    Tcp().expires_after(options().write_timeout);
    net::async_write(stream_, http::make_chunk_last(),
                     beast::bind_front_handler(&Session::OnLastChunk, this->shared_from_this()));
  }

  void OnLastChunk(beast::error_code ec, std::size_t) {
    if (ec) return;
    DoClose();
  }

  // ---- closing ----

  void Shutdown() {
    switch (phase_) {
      case Phase::kStarting:
      case Phase::kReading:
        Tcp().cancel();  // the read completes with operation_aborted and the session closes
        break;
      case Phase::kStreaming:
        timer_.cancel();  // a pending wait ends the stream; a chunk being written does after
        break;
      case Phase::kWriting:  // the response completes, then the connection closes
      case Phase::kClosing:
        break;
    }
  }

  void DoClose() {
    phase_ = Phase::kClosing;
    if constexpr (kTls) {
      Tcp().expires_after(std::chrono::seconds(2));
      stream_.async_shutdown(
          beast::bind_front_handler(&Session::OnTlsShutdown, this->shared_from_this()));
    } else {
      beast::error_code ignored;
      Tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
    }
  }

  void OnTlsShutdown(beast::error_code) {}  // closed with the session, whatever happened

  Stream stream_;
  net::steady_timer timer_;
  beast::flat_buffer buffer_;
  Phase phase_ = Phase::kStarting;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<const std::string> body_;
  std::optional<http::response<http::span_body<const char>>> response_;
  std::string file_head_;  // the serialized header of a file response
  std::size_t file_head_sent_ = 0;
  std::shared_ptr<const api_files::BodyFile> file_;
  off_t file_offset_ = 0;
  bool file_timer_armed_ = false;
  bool native_non_blocking_ = false;  // set once: sendfile must not block the io thread
  std::optional<http::response<http::empty_body>> stream_header_;
  std::optional<http::response_serializer<http::empty_body>> stream_serializer_;
  std::optional<EventStreamState> stream_state_;
  std::string chunk_;
  Clock::time_point last_write_;
};

// Accepts connections, each on its own strand, until closed.
class Listener : public std::enable_shared_from_this<Listener> {
 public:
  Listener(net::io_context& ioc, std::shared_ptr<Shared> shared)
      : ioc_(ioc), acceptor_(net::make_strand(ioc)), shared_(std::move(shared)) {}

  Result<void> Bind(const tcp::endpoint& endpoint) {
    beast::error_code ec;
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      return Fail(
          ErrorCode::kUnavailable, ec.message(),
          "listening on " + endpoint.address().to_string() + ":" + std::to_string(endpoint.port()));
    }
    return {};
  }

  tcp::endpoint local_endpoint() const {
    beast::error_code ec;
    return acceptor_.local_endpoint(ec);
  }

  void Accept() {
    acceptor_.async_accept(net::make_strand(ioc_),
                           beast::bind_front_handler(&Listener::OnAccept, shared_from_this()));
  }

  void Close() {
    net::post(acceptor_.get_executor(), [self = shared_from_this()] {
      beast::error_code ignored;
      self->acceptor_.close(ignored);
    });
  }

 private:
  void OnAccept(beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;
    if (ec) {
      shared_->log->warn("api: accept failed: {}", ec.message());
      return Accept();
    }
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);  // answers leave at once, not after an ACK
    std::shared_ptr<SessionBase> session;
    {
      std::lock_guard lock(shared_->mutex);
      if (shared_->stopping) return;
      if (static_cast<int>(shared_->sessions.size()) >= shared_->options.max_connections) {
        shared_->log->warn("api: {} connections open; refusing one more", shared_->sessions.size());
      } else {
        if (shared_->tls) {
          session = std::make_shared<Session<true>>(std::move(socket), shared_);
        } else {
          session = std::make_shared<Session<false>>(std::move(socket), shared_);
        }
        shared_->sessions.emplace(session.get(), session);
      }
    }
    if (session) session->Run();
    Accept();
  }

  net::io_context& ioc_;
  tcp::acceptor acceptor_;
  std::shared_ptr<Shared> shared_;
};

// "127.0.0.1:8080", "[::1]:8080", "localhost:0".
Result<tcp::endpoint> ResolveListen(const std::string& listen) {
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return Fail(ErrorCode::kInvalidArgument, "expected host:port",
                "listen address '" + listen + "'");
  }
  std::string host = listen.substr(0, colon);
  const std::string port_text = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  unsigned port = 0;
  const auto [ptr, errc] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (errc != std::errc() || ptr != port_text.data() + port_text.size() || port > 65535) {
    return Fail(ErrorCode::kInvalidArgument, "bad port '" + port_text + "'",
                "listen address '" + listen + "'");
  }
  beast::error_code ec;
  const auto address = net::ip::make_address(host, ec);
  if (!ec) return tcp::endpoint(address, static_cast<std::uint16_t>(port));
  net::io_context ioc;
  tcp::resolver resolver(ioc);
  const auto results = resolver.resolve(host, port_text, tcp::resolver::passive, ec);
  if (ec || results.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "cannot resolve host '" + host + "'",
                "listen address '" + listen + "'");
  }
  return results.begin()->endpoint();
}

Result<void> LoadTls(ssl::context& context, const ApiOptions& options) {
  beast::error_code ec;
  context.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                          ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                          ssl::context::no_tlsv1_1 | ssl::context::single_dh_use,
                      ec);
  if (!ec) context.use_certificate_chain_file(options.tls_cert_file, ec);
  if (ec) {
    return Fail(ErrorCode::kInvalidArgument, "cannot load the TLS certificate: " + ec.message(),
                options.tls_cert_file);
  }
  context.use_private_key_file(options.tls_key_file, ssl::context::pem, ec);
  if (ec) {
    return Fail(ErrorCode::kInvalidArgument, "cannot load the TLS private key: " + ec.message(),
                options.tls_key_file);
  }
  return {};
}

}  // namespace

struct StatusServer::Impl {
  std::shared_ptr<Shared> shared;
  net::io_context ioc;
  // Keeps the threads running until Stop() has waited for the sessions: without it, run() could
  // return as the last connection closes and the shutdown requests Stop() posts would never run.
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  std::shared_ptr<Listener> listener;
  std::vector<std::thread> threads;
  tcp::endpoint endpoint;
  std::once_flag stopped;

  Impl(std::shared_ptr<Shared> shared_in, int thread_count)
      : shared(std::move(shared_in)), ioc(thread_count), work(net::make_work_guard(ioc)) {}
};

StatusServer::StatusServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

StatusServer::~StatusServer() {
  Stop();
}

Result<std::unique_ptr<StatusServer>> StatusServer::Start(const ApiOptions& options,
                                                          StatusSource& source) {
  if (options.threads < 1 || options.threads > 64) {
    return Fail(ErrorCode::kInvalidArgument, "threads must be between 1 and 64");
  }
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "TLS needs both a certificate and a key file");
  }
  BearerTokens tokens;
  if (!options.tokens_file.empty()) {
    auto loaded = BearerTokens::Load(options.tokens_file);
    if (!loaded) return std::unexpected(loaded.error().Wrap("status API"));
    tokens = std::move(*loaded);
  }
  auto endpoint = ResolveListen(options.listen);
  if (!endpoint) return std::unexpected(endpoint.error().Wrap("status API"));

  auto shared = std::make_shared<Shared>(options, source, std::move(tokens));
  if (!options.tls_cert_file.empty()) {
    shared->tls.emplace(ssl::context::tls_server);
    if (auto loaded = LoadTls(*shared->tls, options); !loaded) {
      return std::unexpected(loaded.error().Wrap("status API"));
    }
  }

  auto impl = std::make_unique<Impl>(shared, options.threads);
  impl->listener = std::make_shared<Listener>(impl->ioc, shared);
  if (auto bound = impl->listener->Bind(*endpoint); !bound) {
    return std::unexpected(bound.error().Wrap("status API"));
  }
  impl->endpoint = impl->listener->local_endpoint();
  impl->listener->Accept();
  for (int i = 0; i < options.threads; ++i) {
    impl->threads.emplace_back([ioc = &impl->ioc, log = shared->log] {
      // sendfile(2) cannot be told MSG_NOSIGNAL: a client that hangs up mid-body must cost an
      // EPIPE, not the process. Blocked in the server's own threads only.
      sigset_t pipe;
      sigemptyset(&pipe);
      sigaddset(&pipe, SIGPIPE);
      pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
      for (;;) {
        try {
          ioc->run();
          return;
        } catch (const std::exception& e) {
          log->error("api: unexpected exception in the server loop: {}", e.what());
        }
      }
    });
  }
  auto server = std::unique_ptr<StatusServer>(new StatusServer(std::move(impl)));
  shared->log->info("status API listening on {} (tls={}, auth={}, threads={})", server->url(),
                    shared->tls.has_value(), shared->context.tokens.enabled(), options.threads);
  return server;
}

std::uint16_t StatusServer::port() const {
  return impl_->endpoint.port();
}

std::string StatusServer::url() const {
  const auto address = impl_->endpoint.address();
  std::string host = address.to_string();
  if (address.is_v6()) host = "[" + host + "]";
  return (impl_->shared->tls ? "https://" : "http://") + host + ":" + std::to_string(port());
}

void StatusServer::Stop() {
  std::call_once(impl_->stopped, [this] {
    Shared& shared = *impl_->shared;
    std::vector<std::shared_ptr<SessionBase>> sessions;
    {
      std::lock_guard lock(shared.mutex);
      shared.stopping = true;
      shared.stopping_flag = true;
      for (const auto& [key, weak] : shared.sessions) {
        if (auto session = weak.lock()) sessions.push_back(std::move(session));
      }
    }
    impl_->listener->Close();
    for (const auto& session : sessions) session->RequestShutdown();
    sessions.clear();  // a session must be able to finish while we wait
    {
      std::unique_lock lock(shared.mutex);
      const bool drained = shared.sessions_gone.wait_for(lock, shared.options.stop_timeout,
                                                         [&] { return shared.sessions.empty(); });
      if (!drained) {
        shared.log->warn("status API: {} connections still open after {} ms; closing them",
                         shared.sessions.size(), shared.options.stop_timeout.count());
      }
    }
    impl_->work.reset();
    impl_->ioc.stop();
    for (std::thread& thread : impl_->threads) {
      if (thread.joinable()) thread.join();
    }
    shared.log->info("status API stopped");
  });
}

}  // namespace gitvirt
