// A private libvirtd for integration tests, started by tests/harness/libvirtd.sh in its
// own mount namespace with all state in a fresh directory under /tmp. It serves both the
// QEMU driver (real guests) and the test driver over one unix socket. See
// tests/harness/README.md.
//
//   if (std::string why; !PrivateLibvirtd::Available(&why)) GTEST_SKIP() << why;
//   auto daemon = PrivateLibvirtd::Start();
//   ASSERT_TRUE(daemon) << daemon.error();
//   virConnectPtr c = virConnectOpen((*daemon)->qemu_uri().c_str());
//
// Standard library and POSIX only: no libvirt headers, no other gitvirt code.
#pragma once

#include <sys/types.h>

#include <expected>
#include <memory>
#include <string>

#include "temp_dir.h"

namespace gitvirt::testing {

class PrivateLibvirtd {
 public:
  // Whether a daemon can be started here: root, and libvirtd, virsh, unshare and the
  // harness script present. If not and `reason` is given, says what is missing.
  static bool Available(std::string* reason = nullptr);

  // Starts a daemon in a new directory /tmp/gvlvd-XXXXXX. `uuid` becomes its host_uuid
  // (give two daemons distinct ones to migrate between them); empty = random.
  // Takes well under a second when the shared QEMU capabilities cache is warm, a few
  // seconds otherwise. The error carries the script's output (with the daemon log tail).
  static std::expected<std::unique_ptr<PrivateLibvirtd>, std::string> Start(std::string uuid = {});

  // Like Start, and the daemon also listens on TCP at `address` (a loopback IPv4 address, on a
  // free port picked here) with no authentication: tcp_uri() then reaches its QEMU driver
  // through libvirt's remote driver over the network, as a node on another host would be.
  static std::expected<std::unique_ptr<PrivateLibvirtd>, std::string> StartWithTcp(
      const std::string& address, std::string uuid = {});

  // Stops the daemon (destroying its guests) and removes its directory. Set
  // GITVIRT_KEEP_LIBVIRTD_DIR=1 to keep the directory for a post-mortem.
  ~PrivateLibvirtd();

  PrivateLibvirtd(const PrivateLibvirtd&) = delete;
  PrivateLibvirtd& operator=(const PrivateLibvirtd&) = delete;

  // qemu+unix:///system?socket=DIR/sock/libvirt-sock
  const std::string& qemu_uri() const { return qemu_uri_; }
  // test+unix:///default?socket=DIR/sock/libvirt-sock (state lives while a connection is open)
  const std::string& test_uri() const { return test_uri_; }
  // qemu+tcp://ADDRESS:PORT/system when started with StartWithTcp, else "".
  const std::string& tcp_uri() const { return tcp_uri_; }
  // An empty directory for a dir storage pool.
  const std::string& pool_dir() const { return pool_dir_; }
  // The daemon's state directory (etc/, run/, lib/, log/qemu/NAME.log, libvirtd.log, ...).
  const std::string& dir() const { return dir_; }
  // "kvm" if KVM guests work with this daemon, else "qemu" (TCG): use as <domain type=...>.
  const std::string& virt_type() const { return virt_type_; }
  const std::string& host_uuid() const { return host_uuid_; }
  std::string log_path() const { return dir_ + "/libvirtd.log"; }
  // PID of libvirtd (changes on Restart); 0 once stopped.
  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }

  // Restarts libvirtd like a host's service manager would: same host_uuid and
  // configuration, domain/pool definitions kept, running guests keep running and the
  // new daemon reconnects to them. Existing connections see EOF; reopen them.
  std::expected<void, std::string> Restart();

  // Destroys the guests and stops the daemon. Safe to call more than once.
  std::expected<void, std::string> Stop();

 private:
  explicit PrivateLibvirtd(TempDir dir);
  static std::expected<std::unique_ptr<PrivateLibvirtd>, std::string> Launch(std::string uuid,
                                                                             std::string tcp);
  std::expected<void, std::string> LoadEnv();

  TempDir temp_;
  std::string dir_;
  std::string qemu_uri_;
  std::string test_uri_;
  std::string tcp_uri_;
  std::string pool_dir_;
  std::string virt_type_;
  std::string host_uuid_;
  pid_t pid_ = 0;
};

}  // namespace gitvirt::testing
