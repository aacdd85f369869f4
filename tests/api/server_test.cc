// The status server over real sockets on 127.0.0.1: keep-alive and pipelining, limits and
// timeouts, 405/401, TLS with a throwaway certificate, Server-Sent Events that arrive while the
// job runs, and a graceful stop.
#include "gitvirt/api/server.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "fake_status.h"
#include "gitvirt/api/handler.h"
#include "process.h"
#include "temp_dir.h"

namespace gitvirt {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// A blocking HTTP/1.1 client on one connection, with a receive timeout so a bug cannot hang
// the test.
class Client {
 public:
  explicit Client(std::uint16_t port) : socket_(ioc_) {
    socket_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    timeval timeout{10, 0};
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  }

  void Send(const std::string& raw) { net::write(socket_, net::buffer(raw)); }

  http::response<http::string_body> Read(bool head = false) {
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 << 20);
    parser.skip(head);
    http::read(socket_, buffer_, parser);
    return parser.release();
  }

  http::response<http::string_body> Get(const std::string& target,
                                        const std::string& extra_headers = "") {
    Send("GET " + target + " HTTP/1.1\r\nHost: test\r\n" + extra_headers + "\r\n");
    return Read();
  }

  // Reads whatever arrives next (raw bytes); "" at end of stream.
  std::string ReadSome() {
    if (buffer_.size() > 0) {
      std::string pending = beast::buffers_to_string(buffer_.data());
      buffer_.consume(buffer_.size());
      return pending;
    }
    char data[4096];
    beast::error_code ec;
    const std::size_t n = socket_.read_some(net::buffer(data), ec);
    if (ec) return {};
    return std::string(data, n);
  }

  // True when the server closed the connection (EOF) within the receive timeout.
  bool ClosedByServer() { return ReadSome().empty(); }

 private:
  net::io_context ioc_;
  tcp::socket socket_;
  beast::flat_buffer buffer_;
};

class ServerTest : public ::testing::Test {
 protected:
  ServerTest() : source_(testing::DemoSnapshot(20)), dir_("gv-api") {
    options_.listen = "127.0.0.1:0";
    options_.logger = std::make_shared<spdlog::logger>(
        "api-test", std::make_shared<spdlog::sinks::null_sink_mt>());
  }

  StatusServer& Start() {
    auto server = StatusServer::Start(options_, source_);
    EXPECT_TRUE(server) << server.error().ToString();
    if (!server) std::abort();
    server_ = std::move(*server);
    return *server_;
  }
  std::uint16_t port() const { return server_->port(); }

  std::string WriteFile(const std::string& name, const std::string& content) {
    const std::string path = (dir_.path() / name).string();
    std::ofstream(path) << content;
    return path;
  }

  testing::FakeStatusSource source_;
  testing::TempDir dir_;
  ApiOptions options_;
  std::unique_ptr<StatusServer> server_;
};

TEST_F(ServerTest, PortZeroPicksAFreePortAndTheUrlSaysIt) {
  Start();
  EXPECT_NE(port(), 0);
  EXPECT_EQ(server_->url(), "http://127.0.0.1:" + std::to_string(port()));
}

TEST_F(ServerTest, ServesTheEndpointsOverTcp) {
  Start();
  Client client(port());
  auto health = client.Get("/healthz");
  EXPECT_EQ(health.result_int(), 200);
  EXPECT_EQ(health[http::field::server], "gitvirt");
  EXPECT_EQ(health[http::field::content_type], "application/json");
  EXPECT_EQ(health["X-Content-Type-Options"], "nosniff");

  auto status = client.Get("/api/v1/status");
  EXPECT_EQ(status.result_int(), 200);
  EXPECT_EQ(json::parse(status.body())["counts"]["resources"], 21);

  auto resources = client.Get("/api/v1/resources?limit=1000");
  EXPECT_EQ(json::parse(resources.body())["items"].size(), 21u);
  EXPECT_EQ(resources[http::field::content_length], std::to_string(resources.body().size()));

  auto metrics = client.Get("/metrics");
  EXPECT_EQ(metrics[http::field::content_type], "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(metrics.body().find("# TYPE gitvirt_reconciles_total counter"), std::string::npos);

  auto page = client.Get("/");
  EXPECT_EQ(page[http::field::content_type], "text/html; charset=utf-8");
  EXPECT_NE(page.body().find("id=\"job-progress\""), std::string::npos);

  auto missing = client.Get("/api/v1/nope");
  EXPECT_EQ(missing.result_int(), 404);
  EXPECT_EQ(json::parse(missing.body())["error"]["code"], 404);
}

TEST_F(ServerTest, KeepAliveAndPipelinedRequestsShareOneConnection) {
  Start();
  Client client(port());
  for (int i = 0; i < 3; ++i) {
    auto response = client.Get("/api/v1/nodes");
    EXPECT_EQ(response.result_int(), 200);
    EXPECT_TRUE(response.keep_alive());
  }
  client.Send(
      "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
      "GET /api/v1/clusters/pg HTTP/1.1\r\nHost: t\r\n\r\n"
      "GET /readyz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(json::parse(client.Read().body())["status"], "ok");
  EXPECT_EQ(json::parse(client.Read().body())["name"], "pg");
  auto last = client.Read();
  EXPECT_EQ(last.result_int(), 200);
  EXPECT_FALSE(last.keep_alive());
  EXPECT_TRUE(client.ClosedByServer());
}

TEST_F(ServerTest, HeadSendsTheLengthWithoutTheBody) {
  Start();
  Client client(port());
  const std::size_t length = client.Get("/api/v1/resources").body().size();
  client.Send("HEAD /api/v1/resources HTTP/1.1\r\nHost: t\r\n\r\n");
  auto head = client.Read(/*head=*/true);
  EXPECT_EQ(head.result_int(), 200);
  EXPECT_EQ(head[http::field::content_length], std::to_string(length));
  // The connection is still in step: the next answer is the next request's.
  EXPECT_EQ(client.Get("/healthz").body(), R"({"status":"ok"})");
}

TEST_F(ServerTest, WritesAnswer405WithAllow) {
  Start();
  Client client(port());
  client.Send("POST /api/v1/status HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}");
  auto post = client.Read();
  EXPECT_EQ(post.result_int(), 405);
  EXPECT_EQ(post[http::field::allow], "GET, HEAD");
  EXPECT_EQ(json::parse(post.body())["error"]["code"], 405);
  client.Send("DELETE /no/such/thing HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(client.Read().result_int(), 405);
}

TEST_F(ServerTest, OversizedHeadersAnswer431AndClose) {
  options_.header_limit = 4096;
  Start();
  Client client(port());
  client.Send("GET /api/v1/status HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(10000, 'a') +
              "\r\n\r\n");
  auto response = client.Read();
  EXPECT_EQ(response.result_int(), 431);
  EXPECT_EQ(json::parse(response.body())["error"]["code"], 431);
  EXPECT_FALSE(response.keep_alive());
  EXPECT_TRUE(client.ClosedByServer());
}

TEST_F(ServerTest, OversizedBodiesAnswer413) {
  options_.body_limit = 1024;
  Start();
  Client client(port());
  client.Send("GET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n" +
              std::string(2048, 'x'));
  EXPECT_EQ(client.Read().result_int(), 413);
}

TEST_F(ServerTest, MalformedRequestsAnswer400) {
  Start();
  Client client(port());
  client.Send("THIS IS NOT HTTP\r\n\r\n");
  EXPECT_EQ(client.Read().result_int(), 400);
}

TEST_F(ServerTest, IdleConnectionsAreClosedAfterTheReadTimeout) {
  options_.read_timeout = 300ms;
  Start();
  Client client(port());
  EXPECT_EQ(client.Get("/healthz").result_int(), 200);
  const auto start = Clock::now();
  EXPECT_TRUE(client.ClosedByServer());
  const auto waited = Clock::now() - start;
  EXPECT_GE(waited, 200ms);
  EXPECT_LT(waited, 3s);
}

TEST_F(ServerTest, BearerTokensFromAFile) {
  options_.tokens_file = WriteFile("tokens", "# ops\nops-token-1\n");
  Start();
  Client client(port());
  auto missing = client.Get("/api/v1/status");
  EXPECT_EQ(missing.result_int(), 401);
  EXPECT_EQ(missing[http::field::www_authenticate], R"(Bearer realm="gitvirt")");
  EXPECT_EQ(client.Get("/api/v1/status", "Authorization: Bearer wrong\r\n").result_int(), 401);
  EXPECT_EQ(client.Get("/api/v1/status", "Authorization: Bearer ops-token-1\r\n").result_int(),
            200);
  EXPECT_EQ(client.Get("/healthz").result_int(), 200);
}

TEST_F(ServerTest, ServesTlsWithACertificateFromFiles) {
  const std::string cert = (dir_.path() / "cert.pem").string();
  const std::string key = (dir_.path() / "key.pem").string();
  std::string output;
  ASSERT_EQ(
      testing::RunCommand({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                           key, "-out", cert, "-days", "1", "-subj", "/CN=localhost", "-addext",
                           "subjectAltName=IP:127.0.0.1,DNS:localhost"},
                          &output),
      0)
      << output;
  options_.tls_cert_file = cert;
  options_.tls_key_file = key;
  Start();
  EXPECT_EQ(server_->url(), "https://127.0.0.1:" + std::to_string(port()));

  ASSERT_EQ(testing::RunCommand({"curl", "-sS", "--max-time", "10", "--cacert", cert, "-w",
                                 "\n%{http_code}", server_->url() + "/api/v1/clusters/pg"},
                                &output),
            0)
      << output;
  const auto newline = output.rfind('\n');
  EXPECT_EQ(output.substr(newline + 1), "200");
  EXPECT_EQ(json::parse(output.substr(0, newline))["name"], "pg");

  // Keep-alive over TLS: curl reuses the connection for a second URL.
  ASSERT_EQ(testing::RunCommand({"curl", "-sS", "--max-time", "10", "--cacert", cert, "-o",
                                 "/dev/null", "-o", "/dev/null", "-w", "%{num_connects} ",
                                 server_->url() + "/healthz", server_->url() + "/readyz"},
                                &output),
            0)
      << output;
  EXPECT_EQ(output, "1 0 ");

  // Plain HTTP to the TLS port gets no answer.
  EXPECT_NE(testing::RunCommand({"curl", "-sS", "--max-time", "5",
                                 "http://127.0.0.1:" + std::to_string(port()) + "/healthz"},
                                &output),
            0);
}

// Collects an event stream's bytes with the time each piece arrived.
struct Arrival {
  Clock::time_point at;
  std::string text;
};

TEST_F(ServerTest, EventStreamDeliversEventsLiveThenEndsAndCloses) {
  options_.event_poll_interval = 100ms;
  Start();
  testing::FakeJournal& journal = source_.fake_journal();
  const std::string id = testing::CreateDemoJob(journal, {"a", "b", "c", "d", "e"}, "job-live");
  journal.RecordJobStatus(id, JobStatus::kRunning).value();

  Client client(port());
  client.Send("GET /api/v1/jobs/" + id +
              "/events HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n");

  Clock::time_point job_finished;
  std::thread runner([&] {
    for (const char* vm : {"a", "b", "c", "d", "e"}) {
      std::this_thread::sleep_for(150ms);
      const std::string step = std::string("start/") + vm;
      journal.RecordStepFinished(id, step, StepStatus::kSucceeded).value();
      journal.AppendEvent(id, step, EventLevel::kInfo, std::string("started ") + vm).value();
    }
    journal.RecordJobStatus(id, JobStatus::kSucceeded).value();
    job_finished = Clock::now();
  });

  std::vector<Arrival> arrivals;
  std::string all;
  for (std::string piece; !(piece = client.ReadSome()).empty();) {
    arrivals.push_back({Clock::now(), piece});
    all += piece;
  }
  runner.join();

  EXPECT_NE(all.find("HTTP/1.1 200 OK"), std::string::npos);
  EXPECT_NE(all.find("Content-Type: text/event-stream"), std::string::npos);
  EXPECT_NE(all.find("Transfer-Encoding: chunked"), std::string::npos);
  for (int seq = 1; seq <= 5; ++seq) {
    EXPECT_NE(all.find("id: " + std::to_string(seq) + "\n"), std::string::npos) << seq;
  }
  EXPECT_NE(all.find("event: progress\n"), std::string::npos);
  const auto end = all.find("event: end\n");
  ASSERT_NE(end, std::string::npos);
  EXPECT_GT(end, all.find("id: 5\n"));
  EXPECT_NE(all.find(R"("status":"succeeded")", end), std::string::npos);
  EXPECT_TRUE(all.ends_with("0\r\n\r\n")) << "the last chunk closes the body";

  // Live: the first event arrived while the job was still running, well before it finished.
  Clock::time_point first_event{};
  for (const Arrival& a : arrivals) {
    if (a.text.find("id: 1\n") != std::string::npos) first_event = a.at;
  }
  ASSERT_NE(first_event, Clock::time_point{});
  EXPECT_LT(first_event, job_finished - 300ms);
  EXPECT_GE(arrivals.size(), 4u) << "events came in several pieces, not all at the end";
}

TEST_F(ServerTest, EventStreamResumesAfterLastEventId) {
  Start();
  testing::FakeJournal& journal = source_.fake_journal();
  const std::string id = testing::CreateDemoJob(journal, {"a"}, "job-done");
  for (int i = 1; i <= 5; ++i) {
    journal.AppendEvent(id, "", EventLevel::kInfo, "event " + std::to_string(i)).value();
  }
  journal.RecordJobStatus(id, JobStatus::kSucceeded).value();

  Client client(port());
  client.Send("GET /api/v1/jobs/" + id + "/events HTTP/1.1\r\nHost: t\r\nLast-Event-ID: 3\r\n\r\n");
  std::string all;
  for (std::string piece; !(piece = client.ReadSome()).empty();) all += piece;
  EXPECT_EQ(all.find("id: 3\n"), std::string::npos);
  EXPECT_NE(all.find("id: 4\n"), std::string::npos);
  EXPECT_NE(all.find("id: 5\n"), std::string::npos);
  EXPECT_NE(all.find("event: end\n"), std::string::npos);
}

TEST_F(ServerTest, StopEndsStreamsAndIdleConnectionsPromptly) {
  options_.read_timeout = 60s;
  Start();
  testing::FakeJournal& journal = source_.fake_journal();
  const std::string id = testing::CreateDemoJob(journal, {"a"}, "job-forever");
  journal.RecordJobStatus(id, JobStatus::kRunning).value();

  Client idle(port());
  EXPECT_EQ(idle.Get("/healthz").result_int(), 200);
  Client stream(port());
  stream.Send("GET /api/v1/jobs/" + id + "/events HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_NE(stream.ReadSome().find("200 OK"), std::string::npos);

  const auto start = Clock::now();
  server_->Stop();
  EXPECT_LT(Clock::now() - start, 2s);
  std::string rest;
  for (std::string piece; !(piece = stream.ReadSome()).empty();) rest += piece;
  EXPECT_EQ(rest.find("event: end"), std::string::npos) << "a client reconnects after a stop";
  EXPECT_TRUE(idle.ClosedByServer());
  server_->Stop();  // idempotent
  EXPECT_THROW(Client{port()}, boost::system::system_error);
}

TEST_F(ServerTest, TwoThreadsServeManyClientsAtOnce) {
  options_.threads = 2;
  Start();
  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 8; ++c) {
    clients.emplace_back([&] {
      Client client(port());
      for (int i = 0; i < 50; ++i) {
        if (client.Get("/api/v1/resources?limit=1000").result_int() == 200) ++ok;
      }
    });
  }
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(ok, 400);
}

// Large, cached answers (a 1,000-VM resource list) leave through sendfile from a sealed
// in-memory file: the bytes must be exactly the handler's, on keep-alive and pipelined requests.
TEST_F(ServerTest, LargeCachedAnswersArriveIntactFromTheirFile) {
  source_.Publish(testing::DemoSnapshot(1000));
  Start();
  const std::string target = "/api/v1/resources?limit=1000";
  ResponseCache cache;
  const std::string expected(
      HandleRequest(HttpRequest{"GET", target, {}}, ApiContext{source_, {}, &cache}).text());
  ASSERT_GT(expected.size(), 200'000u);

  Client client(port());
  for (int i = 0; i < 3; ++i) {
    auto response = client.Get(target);
    EXPECT_EQ(response.result_int(), 200);
    EXPECT_EQ(response[http::field::content_type], "application/json");
    EXPECT_EQ(response[http::field::content_length], std::to_string(expected.size()));
    EXPECT_TRUE(response.body() == expected) << "request " << i;
  }
  std::string pipelined;
  for (int i = 0; i < 4; ++i) pipelined += "GET " + target + " HTTP/1.1\r\nHost: t\r\n\r\n";
  pipelined += "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
  client.Send(pipelined);
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(client.Read().body() == expected) << "pipelined " << i;
  EXPECT_EQ(client.Read().body(), R"({"status":"ok"})");
  // HEAD of the same answer: the length, no body, and the connection stays in step.
  client.Send("HEAD " + target + " HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(client.Read(/*head=*/true)[http::field::content_length],
            std::to_string(expected.size()));
  EXPECT_EQ(client.Get("/healthz").result_int(), 200);
}

TEST_F(ServerTest, ClientsHangingUpMidBodyDoNotHurtTheServer) {
  source_.Publish(testing::DemoSnapshot(1000));
  options_.threads = 2;
  Start();
  for (int i = 0; i < 20; ++i) {
    Client client(port());
    client.Send(
        "GET /api/v1/resources?limit=1000 HTTP/1.1\r\nHost: t\r\n\r\n"
        "GET /api/v1/resources?limit=1000 HTTP/1.1\r\nHost: t\r\n\r\n");
    EXPECT_FALSE(client.ReadSome().empty());
  }  // each closes with most of the answer unread: the server's next write fails (EPIPE)
  Client client(port());
  EXPECT_EQ(client.Get("/api/v1/resources?limit=1000").result_int(), 200);
}

TEST_F(ServerTest, AClientThatStopsReadingIsCutOffAfterTheWriteTimeout) {
  source_.Publish(testing::DemoSnapshot(1000));
  options_.write_timeout = 300ms;
  Start();
  Client client(port());
  const std::string request = "GET /api/v1/resources?limit=1000 HTTP/1.1\r\nHost: t\r\n\r\n";
  std::string requests;
  for (int i = 0; i < 200; ++i) requests += request;  // ~64 MB of answers: more than buffers hold
  client.Send(requests);
  std::this_thread::sleep_for(1500ms);  // not reading: the server's writes stall, then time out
  std::size_t received = 0;
  for (std::string piece; !(piece = client.ReadSome()).empty();) received += piece.size();
  EXPECT_GT(received, 0u);
  EXPECT_LT(received, 200u * 300'000u) << "the server gave up on the stalled connection";
}

TEST_F(ServerTest, StartRefusesBadConfigurations) {
  ApiOptions bad = options_;
  bad.listen = "no-port-here";
  EXPECT_EQ(StatusServer::Start(bad, source_).error().code, ErrorCode::kInvalidArgument);
  bad.listen = "127.0.0.1:99999";
  EXPECT_EQ(StatusServer::Start(bad, source_).error().code, ErrorCode::kInvalidArgument);

  Start();
  bad = options_;
  bad.listen = "127.0.0.1:" + std::to_string(port());
  auto busy = StatusServer::Start(bad, source_);
  ASSERT_FALSE(busy);
  EXPECT_EQ(busy.error().code, ErrorCode::kUnavailable);

  bad = options_;
  bad.tokens_file = (dir_.path() / "absent").string();
  EXPECT_EQ(StatusServer::Start(bad, source_).error().code, ErrorCode::kInvalidArgument);
  bad.tokens_file = WriteFile("empty-tokens", "# none\n");
  EXPECT_EQ(StatusServer::Start(bad, source_).error().code, ErrorCode::kInvalidArgument);

  bad = options_;
  bad.tls_cert_file = WriteFile("cert.pem", "not a certificate");
  bad.tls_key_file = WriteFile("key.pem", "not a key");
  EXPECT_EQ(StatusServer::Start(bad, source_).error().code, ErrorCode::kInvalidArgument);
  bad.tls_key_file.clear();
  EXPECT_EQ(StatusServer::Start(bad, source_).error().code, ErrorCode::kInvalidArgument);
}

TEST_F(ServerTest, ListensOnIpv6Loopback) {
  options_.listen = "[::1]:0";
  auto server = StatusServer::Start(options_, source_);
  if (!server) GTEST_SKIP() << "no IPv6 loopback here: " << server.error().ToString();
  EXPECT_EQ((*server)->url(), "http://[::1]:" + std::to_string((*server)->port()));
  std::string output;
  EXPECT_EQ(testing::RunCommand({"curl", "-sS", "--max-time", "5", (*server)->url() + "/healthz"},
                                &output),
            0)
      << output;
  EXPECT_EQ(output, R"({"status":"ok"})");
}

}  // namespace
}  // namespace gitvirt
