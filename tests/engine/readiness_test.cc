// Readiness: how the checks combine, which address a VM is reached at, and how the start step
// waits. The guest's answers come from the shared fake node's scripted guest, TCP
// checks use real sockets on the loopback, and the test-driver decision is checked through the
// real adapter on a sim: node. Real guests are tested end to end in tests/e2e/guest_test.py.
//
//   NoGuestNodeIsReadyUnchecked    test driver: Ready, checked=false, says why, static address
//   AgentMustAnswerAndReportAnAddress / AgentAddressPrefersTheFirstNic / LeaseThenStatic
//   TcpUsesTheAddressAndARealSocket  a listening socket passes, a closed port does not
//   ConsoleMarker                  seen or not in the log; an unreadable log says why
//   AllChecksMustPass, NotRunning
//   StartWaitsUntilReady           the start step polls until Ready and journals progress
//   StartTimesOut / StartFailsWhenTheVmStops / StartWithoutReadinessDoesNotWait
#include "gitvirt/engine/readiness.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>

#include "fake_node.h"
#include "gitvirt/core/cloud_init.h"
#include "gitvirt/engine/step_runner.h"
#include "gitvirt/hypervisor/connect.h"
#include "gitvirt/hypervisor/node_set.h"
#include "temp_dir.h"

namespace gitvirt {
namespace {

using ::testing::HasSubstr;
using testing::FakeGuest;
using testing::FakeNode;

// A QEMU node on which web-01 runs; each test scripts its guest.
struct GuestNode {
  GuestNode() { node.AddDomain("web-01", PowerState::kRunning); }
  void Script(const std::function<void(FakeGuest&)>& script) { node.ScriptGuest("web-01", script); }
  FakeNode node{"hv1", FakeNode::Qemu()};
};

GuestAddress Addr(std::string address, std::string mac, bool ipv6 = false) {
  return GuestAddress{"eth", std::move(mac), std::move(address), ipv6 ? 64 : 24, ipv6};
}

VmSpec SpecWith(Readiness readiness) {
  VmSpec spec;
  spec.readiness = std::move(readiness);
  spec.guest_agent = spec.readiness.agent;
  spec.networks = {Nic{.network = "lan"}, Nic{.network = "backend"}};
  return spec;
}

std::string FirstMac(const VmSpec& spec) {
  VirtualMachine vm;
  vm.meta.name = "web-01";
  vm.spec = spec;
  return NicMac(vm, 0);
}

// A TCP listener on 127.0.0.1, on a port the kernel picks.
class Listener {
 public:
  Listener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(fd_, 4), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~Listener() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// A port nobody listens on: bound, then closed again.
int ClosedPort() {
  Listener l;
  return l.port();
}

TEST(ReadinessTest, AgentMustAnswerAndReportAnAddress) {
  GuestNode hv;
  const VmSpec spec = SpecWith(Readiness{.agent = true});
  ReadinessReport r = CheckReadiness(hv.node, "web-01", spec);
  EXPECT_FALSE(r.ready);
  EXPECT_TRUE(r.checked);
  EXPECT_THAT(r.message, HasSubstr("the guest agent does not answer (QEMU guest agent is not connected)"));

  hv.Script([&](FakeGuest& g) {
    g.agent_answers = true;
    g.agent_addresses = {Addr("fe80::1", FirstMac(spec), true), Addr("169.254.3.3", FirstMac(spec))};
  });
  r = CheckReadiness(hv.node, "web-01", spec);
  EXPECT_FALSE(r.ready) << "link-local addresses are not an address to reach the VM at";
  EXPECT_THAT(r.message, HasSubstr("reports no address yet"));

  hv.Script([&](FakeGuest& g) { g.agent_addresses.push_back(Addr("10.0.0.7", FirstMac(spec))); });
  r = CheckReadiness(hv.node, "web-01", spec);
  EXPECT_TRUE(r.ready) << r.message;
  EXPECT_EQ(r.address, "10.0.0.7");
  EXPECT_EQ(r.address_source, "agent");
  EXPECT_THAT(r.message, HasSubstr("the guest agent answers and reports 10.0.0.7"));
}

TEST(ReadinessTest, AgentAddressPrefersTheFirstNic) {
  GuestNode hv;
  const VmSpec spec = SpecWith(Readiness{.agent = true});
  hv.Script([&](FakeGuest& g) {
    g.agent_answers = true;
    g.agent_addresses = {Addr("2001:db8::5", FirstMac(spec), true), Addr("192.168.50.9", "52:54:00:00:00:99"),
                         Addr("10.0.0.7", FirstMac(spec))};
  });
  EXPECT_EQ(CheckReadiness(hv.node, "web-01", spec).address, "10.0.0.7");
  hv.Script([&](FakeGuest& g) {
    g.agent_addresses = {Addr("2001:db8::5", FirstMac(spec), true), Addr("192.168.50.9", "52:54:00:00:00:99")};
  });
  EXPECT_EQ(CheckReadiness(hv.node, "web-01", spec).address, "192.168.50.9") << "IPv4 before IPv6";
  hv.Script([&](FakeGuest& g) { g.agent_addresses = {Addr("2001:db8::5", FirstMac(spec), true)}; });
  EXPECT_EQ(CheckReadiness(hv.node, "web-01", spec).address, "2001:db8::5");
}

TEST(ReadinessTest, LeaseThenStatic) {
  GuestNode hv;
  VmSpec spec = SpecWith(Readiness{.tcp = 22});
  spec.cloud_init = CloudInit{};
  spec.cloud_init->ip_configs = {IpConfig{.v4 = IpMode::kStatic, .v4_address = "10.1.1.5/24"}};
  hv.Script([&](FakeGuest& g) { g.leases = {Addr("192.168.122.40", FirstMac(spec))}; });
  ReadinessReport r = CheckReadiness(hv.node, "web-01", spec);
  EXPECT_EQ(r.address, "192.168.122.40");
  EXPECT_EQ(r.address_source, "lease");
  hv.Script([](FakeGuest& g) { g.leases.clear(); });
  r = CheckReadiness(hv.node, "web-01", spec);
  EXPECT_EQ(r.address, "10.1.1.5");
  EXPECT_EQ(r.address_source, "static");
  spec.cloud_init.reset();
  r = CheckReadiness(hv.node, "web-01", spec);
  EXPECT_EQ(r.address, "");
  EXPECT_FALSE(r.ready);
  EXPECT_THAT(r.message, HasSubstr("no address to try port 22 on"));
}

TEST(ReadinessTest, TcpUsesTheAddressAndARealSocket) {
  GuestNode hv;
  Listener listener;
  VmSpec spec = SpecWith(Readiness{.tcp = listener.port()});
  spec.cloud_init = CloudInit{};
  spec.cloud_init->ip_configs = {IpConfig{.v4 = IpMode::kStatic, .v4_address = "127.0.0.1/8"}};
  ReadinessReport r = CheckReadiness(hv.node, "web-01", spec);
  EXPECT_TRUE(r.ready) << r.message;
  EXPECT_THAT(r.message, HasSubstr("port " + std::to_string(listener.port()) + " on 127.0.0.1 accepts connections"));

  spec.readiness.tcp = ClosedPort();
  r = CheckReadiness(hv.node, "web-01", spec);
  EXPECT_FALSE(r.ready);
  EXPECT_THAT(r.message, HasSubstr("Connection refused"));
}

TEST(ReadinessTest, ConsoleMarker) {
  GuestNode hv;
  const VmSpec spec = SpecWith(Readiness{.console_marker = "GITVIRT-READY"});
  hv.Script([](FakeGuest& g) { g.console = std::string("[    0.000000] Linux version 6.1\r\nbooting\r\n"); });
  ReadinessReport r = CheckReadiness(hv.node, "web-01", spec);
  EXPECT_FALSE(r.ready);
  EXPECT_THAT(r.message, HasSubstr("\"GITVIRT-READY\" has not appeared on the console yet"));
  hv.Script([](FakeGuest& g) { g.console = *g.console + "GITVIRT-READY\r\n"; });
  r = CheckReadiness(hv.node, "web-01", spec);
  EXPECT_TRUE(r.ready) << r.message;
  hv.Script([](FakeGuest& g) {
    g.console = Fail(ErrorCode::kUnsupported, "the console log is on node hv1, whose files the controller cannot read");
  });
  r = CheckReadiness(hv.node, "web-01", spec);
  EXPECT_FALSE(r.ready);
  EXPECT_THAT(r.message, HasSubstr("console log unreadable: the console log is on node hv1"));
}

TEST(ReadinessTest, AllChecksMustPass) {
  GuestNode hv;
  Listener listener;
  const VmSpec spec = SpecWith(Readiness{.agent = true, .tcp = listener.port(), .console_marker = "login:"});
  hv.Script([&](FakeGuest& g) {
    g.agent_answers = true;
    g.agent_addresses = {Addr("127.0.0.1", FirstMac(spec))};
    g.console = std::string("web-01 login: ");
  });
  ReadinessReport r = CheckReadiness(hv.node, "web-01", spec);
  EXPECT_TRUE(r.ready) << r.message;
  EXPECT_EQ(r.message, "the guest agent answers and reports 127.0.0.1; port " + std::to_string(listener.port()) +
                           " on 127.0.0.1 accepts connections; \"login:\" appeared on the console");
  hv.Script([](FakeGuest& g) { g.console = std::string("booting"); });
  r = CheckReadiness(hv.node, "web-01", spec);
  EXPECT_FALSE(r.ready);
  EXPECT_EQ(r.message, "\"login:\" has not appeared on the console yet") << "only what is missing";
}

TEST(ReadinessTest, NotRunning) {
  GuestNode hv;
  hv.node.SetPower("web-01", PowerState::kStopped);
  const ReadinessReport r = CheckReadiness(hv.node, "web-01", SpecWith(Readiness{.agent = true}));
  EXPECT_FALSE(r.ready);
  EXPECT_FALSE(r.running);
  EXPECT_EQ(r.message, "not running (Stopped)");
}

TEST(ReadinessTest, WithoutReadinessARunningVmIsReadyAndHasItsAddress) {
  GuestNode hv;
  VmSpec spec = SpecWith(Readiness{});
  spec.guest_agent = true;
  hv.Script([&](FakeGuest& g) {
    g.agent_answers = true;
    g.agent_addresses = {Addr("10.0.0.9", FirstMac(spec))};
  });
  const ReadinessReport r = CheckReadiness(hv.node, "web-01", spec);
  EXPECT_TRUE(r.ready);
  EXPECT_EQ(r.address, "10.0.0.9");
  EXPECT_EQ(r.message, "");
}

// The decision for nodes without a guest, through the real adapter on a simulated node.
TEST(ReadinessTest, NoGuestNodeIsReadyUnchecked) {
  testing::TempDir dir("gvready");
  NodeConfig node;
  node.name = "hv1";
  node.uri = "sim:" + (dir.path() / "hv1.xml").string();
  auto hv = ConnectNode(node, {});
  ASSERT_TRUE(hv) << hv.error().ToString();
  EXPECT_FALSE((*hv)->capabilities().guests);
  VmSpec spec = SpecWith(Readiness{.agent = true, .tcp = 22});
  spec.cloud_init = CloudInit{};
  spec.cloud_init->ip_configs = {IpConfig{.v4 = IpMode::kStatic, .v4_address = "10.1.1.5/24"}};
  const ReadinessReport r = CheckReadiness(**hv, "web-01", spec);
  EXPECT_TRUE(r.ready);
  EXPECT_FALSE(r.checked);
  EXPECT_EQ(r.address, "10.1.1.5");
  EXPECT_EQ(r.message,
            "readiness (guest agent, tcp 22) cannot be checked on node hv1 (TEST driver: no guest OS runs there); "
            "treated as Ready");
  // And the adapter refuses the guest calls rather than inventing answers.
  EXPECT_EQ((*hv)->guest().Ping("web-01", std::chrono::seconds(1)).error().code, ErrorCode::kUnsupported);
  EXPECT_EQ((*hv)->guest().Addresses("web-01", AddressSource::kLease).error().code, ErrorCode::kUnsupported);
}

// ---- the start step ----------------------------------------------------------------------

class RecordingContext final : public StepContext {
 public:
  std::vector<std::string> events;
  std::atomic<bool> cancel{false};
  const std::string& job_id() const override { return job_; }
  const std::string& step_id() const override { return job_; }
  Result<void> RecordUndo(const std::string&) override { return {}; }
  std::string undo_json() const override { return "{}"; }
  void Event(EventLevel, const std::string& message) override { events.push_back(message); }
  bool Cancelled() const override { return cancel.load(); }
  std::chrono::steady_clock::time_point deadline() const override {
    return std::chrono::steady_clock::now() + std::chrono::hours(1);
  }

 private:
  std::string job_ = "job-1";
};

class StartStepTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ControllerConfig config;
    config.state = (dir_.path() / "gitvirt.db").string();
    NodeConfig node;
    node.name = "hv1";
    node.uri = "fake://";
    config.nodes = {node};
    nodes_ = std::make_unique<NodeSet>(config.nodes);
    auto hv = std::make_unique<FakeNode>("hv1", FakeNode::Qemu());
    hv->AddDomain("web-01", PowerState::kRunning);
    hv_ = hv.get();
    nodes_->Put("hv1", std::move(hv));
    runner_ = std::make_unique<LibvirtStepRunner>(*nodes_, plan_, plan_.images, StepRunnerOptionsFor(config), nullptr);
  }

  Action StartOf(std::optional<VmSpec> spec) {
    Action a;
    a.id = "start/web-01";
    a.type = ActionType::kStart;
    a.node = "hv1";
    a.target = ResourceRef{Kind::kVirtualMachine, "web-01"};
    if (spec) {
      a.vm = VirtualMachine{};
      a.vm->meta.name = "web-01";
      a.vm->spec = *spec;
    }
    return a;
  }

  testing::TempDir dir_{"gvstart"};
  Plan plan_;
  std::unique_ptr<NodeSet> nodes_;
  FakeNode* hv_ = nullptr;
  std::unique_ptr<LibvirtStepRunner> runner_;
};

TEST_F(StartStepTest, StartWaitsUntilReady) {
  VmSpec spec = SpecWith(Readiness{.agent = true});
  hv_->SetPower("web-01", PowerState::kStopped);
  hv_->ScriptGuest("web-01", [&](FakeGuest& g) {
    g.agent_addresses = {Addr("10.0.0.7", FirstMac(spec))};
    g.agent_answers_after = 2;  // the third look finds the agent answering
  });
  RecordingContext ctx;
  auto result = runner_->Run(StartOf(spec), ctx);
  ASSERT_TRUE(result) << result.error().ToString();
  EXPECT_EQ(hv_->Calls("start"), 1);
  EXPECT_EQ(hv_->Calls("get-power"), 3);
  EXPECT_THAT(*result, HasSubstr("\"address\":\"10.0.0.7\""));
  EXPECT_THAT(*result, HasSubstr("\"ready\":true"));
  ASSERT_GE(ctx.events.size(), 3u);
  EXPECT_EQ(ctx.events.front(), "waiting up to 5m for web-01 to be Ready (guest agent)");
  EXPECT_THAT(ctx.events[1], HasSubstr("not Ready yet after"));
  EXPECT_THAT(ctx.events[1], HasSubstr("the guest agent does not answer"));
  EXPECT_THAT(ctx.events.back(), HasSubstr("web-01 is Ready after"));
  EXPECT_THAT(ctx.events.back(), HasSubstr("the guest agent answers and reports 10.0.0.7"));
}

TEST_F(StartStepTest, PowerOnlyStartUsesTheSpecLastApplied) {
  hv_->SetLastApplied("web-01", SpecWith(Readiness{.console_marker = "login:"}));
  hv_->ScriptGuest("web-01", [](FakeGuest& g) { g.console = std::string("web-01 login: "); });
  RecordingContext ctx;
  auto result = runner_->Run(StartOf(std::nullopt), ctx);
  ASSERT_TRUE(result) << result.error().ToString();
  EXPECT_THAT(*result, HasSubstr("\"ready\":true"));
  EXPECT_THAT(ctx.events.back(), HasSubstr("\"login:\" appeared on the console"));
}

TEST_F(StartStepTest, StartAfterCreateUsesThePlansSpecWithoutAskingTheNode) {
  Action create = StartOf(SpecWith(Readiness{.console_marker = "login:"}));
  create.id = "create/web-01";
  create.type = ActionType::kCreate;
  plan_.actions = {create, StartOf(std::nullopt)};
  plan_.actions[1].depends_on = {"create/web-01"};
  hv_->ScriptGuest("web-01", [](FakeGuest& g) { g.console = std::string("web-01 login: "); });
  RecordingContext ctx;
  auto result = runner_->Run(plan_.actions[1], ctx);
  ASSERT_TRUE(result) << result.error().ToString();
  EXPECT_THAT(ctx.events.back(), HasSubstr("\"login:\" appeared on the console"));
  EXPECT_EQ(hv_->Calls("observe-vm"), 0);
}

TEST_F(StartStepTest, StartTimesOut) {
  Readiness r{.agent = true};
  r.timeout = Seconds(1);
  RecordingContext ctx;
  auto result = runner_->Run(StartOf(SpecWith(r)), ctx);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, ErrorCode::kTimeout);
  EXPECT_THAT(result.error().message, HasSubstr("web-01 was not Ready within"));
  EXPECT_THAT(result.error().message, HasSubstr("the guest agent does not answer"));
}

TEST_F(StartStepTest, StartFailsWhenTheVmStops) {
  hv_->ScriptGuest("web-01", [](FakeGuest& g) { g.stops_after = 1; });
  RecordingContext ctx;
  auto result = runner_->Run(StartOf(SpecWith(Readiness{.agent = true})), ctx);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_THAT(result.error().message, HasSubstr("web-01 stopped while waiting for it to be Ready: not running (Stopped)"));
}

TEST_F(StartStepTest, StartCanBeCancelled) {
  RecordingContext ctx;
  ctx.cancel = true;
  auto result = runner_->Run(StartOf(SpecWith(Readiness{.agent = true})), ctx);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, ErrorCode::kCancelled);
}

TEST_F(StartStepTest, StartWithoutReadinessOrNotRunningDoesNotWait) {
  RecordingContext ctx;
  ASSERT_TRUE(runner_->Run(StartOf(SpecWith(Readiness{})), ctx));
  EXPECT_EQ(hv_->Calls("get-power"), 0);
  VmSpec paused = SpecWith(Readiness{.agent = true});
  paused.power_state = PowerState::kPaused;  // started, then suspended by the next step
  ASSERT_TRUE(runner_->Run(StartOf(paused), ctx));
  EXPECT_EQ(hv_->Calls("get-power"), 0);
  EXPECT_TRUE(ctx.events.empty());
}

}  // namespace
}  // namespace gitvirt
