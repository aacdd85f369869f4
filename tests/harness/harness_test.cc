// Integration test for the private-libvirtd harness (tests/harness/libvirtd.sh and
// tests/support/libvirtd_harness.h) and for the small test-support helpers.
// The PrivateLibvirtd tests need root, libvirtd and QEMU; they skip otherwise.
#include <gtest/gtest.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include "libvirtd_harness.h"
#include "process.h"
#include "temp_dir.h"

namespace gitvirt::testing {
namespace {

namespace fs = std::filesystem;

// ---- libvirt handles ---------------------------------------------------------------------
struct ConnClose {
  void operator()(virConnectPtr p) const { virConnectClose(p); }
};
struct DomainFree {
  void operator()(virDomainPtr p) const { virDomainFree(p); }
};
struct PoolFree {
  void operator()(virStoragePoolPtr p) const { virStoragePoolFree(p); }
};
struct VolFree {
  void operator()(virStorageVolPtr p) const { virStorageVolFree(p); }
};
using Conn = std::unique_ptr<virConnect, ConnClose>;
using Domain = std::unique_ptr<virDomain, DomainFree>;
using Pool = std::unique_ptr<virStoragePool, PoolFree>;
using Vol = std::unique_ptr<virStorageVol, VolFree>;

struct FreeString {
  void operator()(char* p) const { free(p); }
};
std::string TakeString(char* s) {
  std::unique_ptr<char, FreeString> owned(s);
  return owned ? std::string(owned.get()) : std::string();
}

std::string LastError() {
  const char* msg = virGetLastErrorMessage();
  return msg != nullptr ? msg : "(no libvirt error)";
}

void NoopErrorHandler(void*, virErrorPtr) {}

class LibvirtQuiet : public ::testing::Environment {
 public:
  void SetUp() override { virSetErrorFunc(nullptr, NoopErrorHandler); }
};
const auto* const kQuiet = ::testing::AddGlobalTestEnvironment(new LibvirtQuiet);

Conn Open(const std::string& uri) {
  return Conn(virConnectOpen(uri.c_str()));
}

int DomainState(virDomainPtr dom) {
  int state = -1;
  int reason = 0;
  if (virDomainGetState(dom, &state, &reason, 0) != 0) return -1;
  return state;
}

// ---- processes ---------------------------------------------------------------------------
// Alive and not a zombie (orphans may stay zombies for a while on some machines).
bool ProcessAlive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!stat || !std::getline(stat, text)) return false;
  size_t paren = text.rfind(')');
  if (paren == std::string::npos || paren + 2 >= text.size()) return false;
  char state = text[paren + 2];
  return state != 'Z' && state != 'X';
}

pid_t ReadPidFile(const fs::path& path) {
  std::ifstream in(path);
  long pid = 0;
  in >> pid;
  return in ? static_cast<pid_t>(pid) : 0;
}

// ---- XML ---------------------------------------------------------------------------------
std::string TestDomainXml(const std::string& name) {
  return "<domain type='test'><name>" + name +
         "</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>"
         "<os><type arch='x86_64'>hvm</type></os></domain>";
}

std::string PoolXml(const std::string& name, const std::string& path) {
  return "<pool type='dir'><name>" + name + "</name><target><path>" + path +
         "</path></target></pool>";
}

std::string Qcow2VolumeXml(const std::string& name) {
  return "<volume><name>" + name +
         "</name><capacity unit='MiB'>64</capacity>"
         "<target><format type='qcow2'/><compat>1.1</compat></target></volume>";
}

std::string QemuDomainXml(const std::string& virt_type, const std::string& name,
                          const std::string& pool, const std::string& volume) {
  return "<domain type='" + virt_type + "'><name>" + name +
         "</name>"
         "<memory unit='MiB'>128</memory><vcpu>1</vcpu>"
         "<os><type arch='x86_64' machine='q35'>hvm</type></os>"
         "<devices>"
         "<disk type='volume' device='disk'><driver name='qemu' type='qcow2'/>"
         "<source pool='" +
         pool + "' volume='" + volume +
         "'/><target dev='vda' bus='virtio'/></disk>"
         "<interface type='user'><model type='virtio'/></interface>"
         "</devices></domain>";
}

// Creates and starts a dir pool at daemon.pool_dir() with one qcow2 (compat 1.1) volume.
void CreatePoolWithVolume(virConnectPtr conn, const PrivateLibvirtd& daemon, const char* pool_name,
                          const char* vol_name) {
  Pool pool(virStoragePoolDefineXML(conn, PoolXml(pool_name, daemon.pool_dir()).c_str(), 0));
  ASSERT_TRUE(pool) << LastError();
  ASSERT_EQ(virStoragePoolBuild(pool.get(), 0), 0) << LastError();
  ASSERT_EQ(virStoragePoolCreate(pool.get(), 0), 0) << LastError();
  Vol vol(virStorageVolCreateXML(pool.get(), Qcow2VolumeXml(vol_name).c_str(), 0));
  ASSERT_TRUE(vol) << LastError();
  std::string path = TakeString(virStorageVolGetPath(vol.get()));
  EXPECT_EQ(path, daemon.pool_dir() + "/" + vol_name);
  EXPECT_TRUE(fs::exists(path));
  std::string vol_xml = TakeString(virStorageVolGetXMLDesc(vol.get(), 0));
  EXPECT_NE(vol_xml.find("<compat>1.1</compat>"), std::string::npos) << vol_xml;
}

template <typename Pred>
bool WaitFor(Pred pred, std::chrono::seconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return true;
}

#define REQUIRE_PRIVATE_LIBVIRTD()                                         \
  do {                                                                     \
    std::string why_unavailable;                                           \
    if (!PrivateLibvirtd::Available(&why_unavailable)) {                   \
      GTEST_SKIP() << "private libvirtd unavailable: " << why_unavailable; \
    }                                                                      \
  } while (0)

// ---- support helpers ---------------------------------------------------------------------
TEST(TempDirTest, CreatesUniqueDirectoryAndRemovesItRecursively) {
  fs::path kept;
  {
    TempDir a("gv-tmptest");
    TempDir b("gv-tmptest");
    ASSERT_TRUE(fs::is_directory(a.path()));
    EXPECT_NE(a.path(), b.path());
    EXPECT_EQ(a.path().parent_path(), fs::path("/tmp"));
    fs::create_directories(a.path() / "x" / "y");
    std::ofstream(a.path() / "x" / "y" / "f") << "data";
    kept = a.path();
  }
  EXPECT_FALSE(fs::exists(kept));
}

TEST(TempDirTest, MoveTransfersOwnership) {
  fs::path path;
  {
    TempDir a("gv-tmptest");
    path = a.path();
    TempDir b(std::move(a));
    EXPECT_EQ(b.path(), path);
    EXPECT_TRUE(a.path().empty());  // NOLINT(bugprone-use-after-move)
    EXPECT_TRUE(fs::exists(path));
  }
  EXPECT_FALSE(fs::exists(path));
}

TEST(RunCommandTest, CapturesStdoutAndStderrAndExitStatus) {
  std::string out;
  EXPECT_EQ(RunCommand({"sh", "-c", "echo out; echo err >&2; exit 3"}, &out), 3);
  EXPECT_NE(out.find("out\n"), std::string::npos) << out;
  EXPECT_NE(out.find("err\n"), std::string::npos) << out;
  EXPECT_EQ(RunCommand({"true"}, nullptr), 0);
}

TEST(RunCommandTest, ReportsSignalsAndExecFailures) {
  std::string out;
  EXPECT_EQ(RunCommand({"sh", "-c", "kill -TERM $$"}, &out), 128 + SIGTERM);
  EXPECT_EQ(RunCommand({"/nonexistent/gitvirt-no-such-program"}, &out), 127);
  EXPECT_NE(out.find("cannot execute /nonexistent/gitvirt-no-such-program"), std::string::npos)
      << out;
  EXPECT_EQ(RunCommand({}, &out), -1);
}

TEST(RunCommandTest, ChildSeesEmptyStdinAndNoExtraFds) {
  std::string out;
  ASSERT_EQ(RunCommand({"sh", "-c", "cat; ls /proc/self/fd | wc -l"}, &out), 0) << out;
  // 0, 1, 2 and the fd ls uses to read the directory.
  EXPECT_EQ(out, "4\n");
}

// ---- private libvirtd --------------------------------------------------------------------
TEST(PrivateLibvirtdTest, EnvDescribesARunningDaemon) {
  REQUIRE_PRIVATE_LIBVIRTD();
  auto started = PrivateLibvirtd::Start();
  ASSERT_TRUE(started) << started.error();
  auto& d = **started;

  EXPECT_TRUE(ProcessAlive(d.pid()));
  EXPECT_EQ(d.qemu_uri(), "qemu+unix:///system?socket=" + d.dir() + "/sock/libvirt-sock");
  EXPECT_EQ(d.test_uri(), "test+unix:///default?socket=" + d.dir() + "/sock/libvirt-sock");
  EXPECT_EQ(d.pool_dir(), d.dir() + "/pool");
  EXPECT_TRUE(fs::is_directory(d.pool_dir()));
  EXPECT_TRUE(d.virt_type() == "kvm" || d.virt_type() == "qemu") << d.virt_type();
  EXPECT_FALSE(d.host_uuid().empty());
  EXPECT_TRUE(fs::exists(d.dir() + "/etc/qemu.conf"));
}

TEST(PrivateLibvirtdTest, TestDriverDomainLifecycle) {
  REQUIRE_PRIVATE_LIBVIRTD();
  auto started = PrivateLibvirtd::Start();
  ASSERT_TRUE(started) << started.error();
  auto& d = **started;

  Conn conn = Open(d.test_uri());
  ASSERT_TRUE(conn) << LastError();
  EXPECT_STREQ(virConnectGetType(conn.get()), "TEST");

  Domain dom(virDomainDefineXML(conn.get(), TestDomainXml("harness-t1").c_str()));
  ASSERT_TRUE(dom) << LastError();
  ASSERT_EQ(virDomainCreate(dom.get()), 0) << LastError();
  EXPECT_EQ(DomainState(dom.get()), VIR_DOMAIN_RUNNING);
  ASSERT_EQ(virDomainDestroy(dom.get()), 0) << LastError();
  EXPECT_EQ(DomainState(dom.get()), VIR_DOMAIN_SHUTOFF);
  ASSERT_EQ(virDomainUndefine(dom.get()), 0) << LastError();
  Domain gone(virDomainLookupByName(conn.get(), "harness-t1"));
  EXPECT_FALSE(gone);
  EXPECT_EQ(virGetLastErrorCode(), VIR_ERR_NO_DOMAIN);
}

TEST(PrivateLibvirtdTest, QemuDomainLifecycleWithQcow2Volume) {
  REQUIRE_PRIVATE_LIBVIRTD();
  auto started = PrivateLibvirtd::Start();
  ASSERT_TRUE(started) << started.error();
  auto& d = **started;

  Conn conn = Open(d.qemu_uri());
  ASSERT_TRUE(conn) << LastError();
  EXPECT_STREQ(virConnectGetType(conn.get()), "QEMU");

  ASSERT_NO_FATAL_FAILURE(CreatePoolWithVolume(conn.get(), d, "harness", "disk0.qcow2"));
  Domain dom(virDomainDefineXML(
      conn.get(), QemuDomainXml(d.virt_type(), "harness-q1", "harness", "disk0.qcow2").c_str()));
  ASSERT_TRUE(dom) << LastError();
  ASSERT_EQ(virDomainCreate(dom.get()), 0) << LastError();
  EXPECT_EQ(DomainState(dom.get()), VIR_DOMAIN_RUNNING);
  pid_t qemu = ReadPidFile(d.dir() + "/run/qemu/harness-q1.pid");
  EXPECT_TRUE(qemu > 0 && ProcessAlive(qemu));

  ASSERT_EQ(virDomainDestroy(dom.get()), 0) << LastError();
  EXPECT_EQ(DomainState(dom.get()), VIR_DOMAIN_SHUTOFF);
  EXPECT_TRUE(WaitFor([&] { return !ProcessAlive(qemu); }, std::chrono::seconds(10)));
  ASSERT_EQ(virDomainUndefine(dom.get()), 0) << LastError();

  Pool pool(virStoragePoolLookupByName(conn.get(), "harness"));
  ASSERT_TRUE(pool) << LastError();
  Vol vol(virStorageVolLookupByName(pool.get(), "disk0.qcow2"));
  ASSERT_TRUE(vol) << LastError();
  EXPECT_EQ(virStorageVolDelete(vol.get(), 0), 0) << LastError();
  EXPECT_EQ(virStoragePoolDestroy(pool.get()), 0) << LastError();
  EXPECT_EQ(virStoragePoolUndefine(pool.get()), 0) << LastError();
}

TEST(PrivateLibvirtdTest, RestartKeepsDefinitionsAndRunningGuests) {
  REQUIRE_PRIVATE_LIBVIRTD();
  auto started = PrivateLibvirtd::Start();
  ASSERT_TRUE(started) << started.error();
  auto& d = **started;
  const std::string uuid = d.host_uuid();

  pid_t qemu = 0;
  {
    Conn conn = Open(d.qemu_uri());
    ASSERT_TRUE(conn) << LastError();
    ASSERT_NO_FATAL_FAILURE(CreatePoolWithVolume(conn.get(), d, "harness", "disk0.qcow2"));
    Domain running(virDomainDefineXML(
        conn.get(), QemuDomainXml(d.virt_type(), "harness-run", "harness", "disk0.qcow2").c_str()));
    ASSERT_TRUE(running) << LastError();
    Domain idle(virDomainDefineXML(
        conn.get(),
        QemuDomainXml(d.virt_type(), "harness-idle", "harness", "disk0.qcow2").c_str()));
    ASSERT_TRUE(idle) << LastError();
    ASSERT_EQ(virDomainCreate(running.get()), 0) << LastError();
    qemu = ReadPidFile(d.dir() + "/run/qemu/harness-run.pid");
    ASSERT_GT(qemu, 0);
  }

  const pid_t old_pid = d.pid();
  auto restarted = d.Restart();
  ASSERT_TRUE(restarted) << restarted.error();
  EXPECT_NE(d.pid(), old_pid);
  EXPECT_TRUE(ProcessAlive(d.pid()));
  EXPECT_FALSE(ProcessAlive(old_pid));
  EXPECT_EQ(d.host_uuid(), uuid);
  EXPECT_TRUE(ProcessAlive(qemu)) << "restart must not kill guests";

  Conn conn = Open(d.qemu_uri());
  ASSERT_TRUE(conn) << LastError();
  Pool pool(virStoragePoolLookupByName(conn.get(), "harness"));
  ASSERT_TRUE(pool) << LastError();
  EXPECT_EQ(virStoragePoolIsActive(pool.get()), 1);
  Vol vol(virStorageVolLookupByName(pool.get(), "disk0.qcow2"));
  EXPECT_TRUE(vol) << LastError();

  Domain idle(virDomainLookupByName(conn.get(), "harness-idle"));
  ASSERT_TRUE(idle) << LastError();
  EXPECT_EQ(DomainState(idle.get()), VIR_DOMAIN_SHUTOFF);
  EXPECT_EQ(virDomainIsPersistent(idle.get()), 1);

  Domain running(virDomainLookupByName(conn.get(), "harness-run"));
  ASSERT_TRUE(running) << LastError();
  EXPECT_TRUE(WaitFor([&] { return DomainState(running.get()) == VIR_DOMAIN_RUNNING; },
                      std::chrono::seconds(10)));
  // The reconnected daemon can still control the guest.
  ASSERT_EQ(virDomainDestroy(running.get()), 0) << LastError();
  EXPECT_TRUE(WaitFor([&] { return !ProcessAlive(qemu); }, std::chrono::seconds(10)));
  EXPECT_EQ(virDomainUndefine(running.get()), 0) << LastError();
  EXPECT_EQ(virDomainUndefine(idle.get()), 0) << LastError();
}

TEST(PrivateLibvirtdTest, TwoDaemonsSideBySide) {
  REQUIRE_PRIVATE_LIBVIRTD();
  const std::string uuid_a = "6f0c1b2a-3d4e-4f50-8a61-72839405a6b1";
  const std::string uuid_b = "6f0c1b2a-3d4e-4f50-8a61-72839405a6b2";
  auto a = PrivateLibvirtd::Start(uuid_a);
  ASSERT_TRUE(a) << a.error();
  auto b = PrivateLibvirtd::Start(uuid_b);
  ASSERT_TRUE(b) << b.error();
  EXPECT_NE((*a)->dir(), (*b)->dir());
  EXPECT_NE((*a)->pid(), (*b)->pid());
  EXPECT_EQ((*a)->host_uuid(), uuid_a);
  EXPECT_EQ((*b)->host_uuid(), uuid_b);

  Conn ca = Open((*a)->qemu_uri());
  Conn cb = Open((*b)->qemu_uri());
  ASSERT_TRUE(ca) << LastError();
  ASSERT_TRUE(cb) << LastError();
  std::string caps_a = TakeString(virConnectGetCapabilities(ca.get()));
  std::string caps_b = TakeString(virConnectGetCapabilities(cb.get()));
  EXPECT_NE(caps_a.find("<uuid>" + uuid_a + "</uuid>"), std::string::npos);
  EXPECT_NE(caps_b.find("<uuid>" + uuid_b + "</uuid>"), std::string::npos);

  // Definitions are per daemon.
  Domain dom(virDomainDefineXML(
      ca.get(), QemuDomainXml((*a)->virt_type(), "only-on-a", "none", "none").c_str()));
  ASSERT_TRUE(dom) << LastError();
  Domain missing(virDomainLookupByName(cb.get(), "only-on-a"));
  EXPECT_FALSE(missing);
  EXPECT_EQ(virDomainUndefine(dom.get()), 0) << LastError();
}

TEST(PrivateLibvirtdTest, ListensOnTcpForARemoteClient) {
  REQUIRE_PRIVATE_LIBVIRTD();
  // 127.0.0.2: a loopback address that is not "this host" by its URI (NodeConfig::IsLocal).
  auto started = PrivateLibvirtd::StartWithTcp("127.0.0.2");
  ASSERT_TRUE(started) << started.error();
  auto& d = **started;
  EXPECT_TRUE(d.tcp_uri().starts_with("qemu+tcp://127.0.0.2:")) << d.tcp_uri();
  EXPECT_TRUE(d.tcp_uri().ends_with("/system")) << d.tcp_uri();

  {
    // One daemon behind both URIs: what is defined over the socket is seen over TCP.
    Conn unix_conn = Open(d.qemu_uri());
    Conn tcp_conn = Open(d.tcp_uri());
    ASSERT_TRUE(unix_conn) << LastError();
    ASSERT_TRUE(tcp_conn) << LastError();
    EXPECT_EQ(TakeString(virConnectGetURI(tcp_conn.get())), d.tcp_uri());
    Domain dom(virDomainDefineXML(unix_conn.get(), QemuDomainXml(d.virt_type(), "over-tcp", "none", "none").c_str()));
    ASSERT_TRUE(dom) << LastError();
    Domain seen(virDomainLookupByName(tcp_conn.get(), "over-tcp"));
    EXPECT_TRUE(seen) << LastError();
  }  // closed before the restart: closing a TCP connection the daemon dropped raises SIGPIPE

  // A restart keeps listening on the same address and port.
  const std::string uri = d.tcp_uri();
  ASSERT_TRUE(d.Restart());
  EXPECT_EQ(d.tcp_uri(), uri);
  Conn again = Open(d.tcp_uri());
  ASSERT_TRUE(again) << LastError();
  Domain still(virDomainLookupByName(again.get(), "over-tcp"));
  ASSERT_TRUE(still) << LastError();
  EXPECT_EQ(virDomainUndefine(still.get()), 0) << LastError();
}

TEST(PrivateLibvirtdTest, StopDestroysGuestsAndIsIdempotent) {
  REQUIRE_PRIVATE_LIBVIRTD();
  auto started = PrivateLibvirtd::Start();
  ASSERT_TRUE(started) << started.error();
  auto& d = **started;

  pid_t qemu = 0;
  {
    Conn conn = Open(d.qemu_uri());
    ASSERT_TRUE(conn) << LastError();
    ASSERT_NO_FATAL_FAILURE(CreatePoolWithVolume(conn.get(), d, "harness", "disk0.qcow2"));
    Domain dom(virDomainDefineXML(
        conn.get(),
        QemuDomainXml(d.virt_type(), "harness-left", "harness", "disk0.qcow2").c_str()));
    ASSERT_TRUE(dom) << LastError();
    ASSERT_EQ(virDomainCreate(dom.get()), 0) << LastError();
    qemu = ReadPidFile(d.dir() + "/run/qemu/harness-left.pid");
    ASSERT_GT(qemu, 0);
  }
  const pid_t daemon_pid = d.pid();
  auto stopped = d.Stop();
  ASSERT_TRUE(stopped) << stopped.error();
  EXPECT_FALSE(d.running());
  EXPECT_FALSE(ProcessAlive(daemon_pid));
  EXPECT_FALSE(ProcessAlive(qemu));
  auto again = d.Stop();
  EXPECT_TRUE(again) << again.error();
}

TEST(PrivateLibvirtdTest, StopKillsGuestsOfADaemonThatDied) {
  REQUIRE_PRIVATE_LIBVIRTD();
  auto started = PrivateLibvirtd::Start();
  ASSERT_TRUE(started) << started.error();
  auto& d = **started;

  pid_t qemu = 0;
  {
    Conn conn = Open(d.qemu_uri());
    ASSERT_TRUE(conn) << LastError();
    ASSERT_NO_FATAL_FAILURE(CreatePoolWithVolume(conn.get(), d, "harness", "disk0.qcow2"));
    Domain dom(virDomainDefineXML(
        conn.get(),
        QemuDomainXml(d.virt_type(), "harness-orphan", "harness", "disk0.qcow2").c_str()));
    ASSERT_TRUE(dom) << LastError();
    ASSERT_EQ(virDomainCreate(dom.get()), 0) << LastError();
    qemu = ReadPidFile(d.dir() + "/run/qemu/harness-orphan.pid");
    ASSERT_GT(qemu, 0);
  }
  // Simulate a crashed daemon: the guest outlives it.
  ASSERT_EQ(::kill(d.pid(), SIGKILL), 0);
  ASSERT_TRUE(WaitFor([&] { return !ProcessAlive(d.pid()); }, std::chrono::seconds(10)));
  EXPECT_TRUE(ProcessAlive(qemu));

  auto stopped = d.Stop();
  ASSERT_TRUE(stopped) << stopped.error();
  EXPECT_FALSE(ProcessAlive(qemu));
}

}  // namespace
}  // namespace gitvirt::testing
