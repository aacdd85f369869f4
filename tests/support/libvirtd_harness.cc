#include "libvirtd_harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <map>
#include <string_view>
#include <utility>
#include <vector>

#include "process.h"

#ifndef GITVIRT_HARNESS_SCRIPT
#error "GITVIRT_HARNESS_SCRIPT must name tests/harness/libvirtd.sh"
#endif

namespace gitvirt::testing {
namespace {

constexpr const char* kScript = GITVIRT_HARNESS_SCRIPT;

bool FindProgram(std::string_view name) {
  std::string path = std::getenv("PATH") != nullptr ? std::getenv("PATH") : "";
  path += ":/usr/sbin:/sbin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    if (!dir.empty()) {
      std::string candidate = dir + "/" + std::string(name);
      if (::access(candidate.c_str(), X_OK) == 0) return true;
    }
    start = end + 1;
  }
  return false;
}

std::string Trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

std::string Unquote(std::string v) {
  if (v.size() >= 2 && (v.front() == '\'' || v.front() == '"') && v.back() == v.front()) {
    return v.substr(1, v.size() - 2);
  }
  return v;
}

bool KeepDirRequested() {
  const char* keep = std::getenv("GITVIRT_KEEP_LIBVIRTD_DIR");
  return keep != nullptr && *keep != '\0' && std::string_view(keep) != "0";
}

}  // namespace

bool PrivateLibvirtd::Available(std::string* reason) {
  auto fail = [&](std::string why) {
    if (reason != nullptr) *reason = std::move(why);
    return false;
  };
  if (::geteuid() != 0) return fail("private libvirtd needs root (mount namespaces)");
  if (::access(kScript, R_OK) != 0) return fail(std::string("harness script missing: ") + kScript);
  for (const char* tool : {"libvirtd", "virsh", "unshare", "setsid", "timeout", "bash"}) {
    if (!FindProgram(tool)) {
      return fail(std::string(tool) + " not found (run deploy/setup.sh)");
    }
  }
  if (reason != nullptr) reason->clear();
  return true;
}

PrivateLibvirtd::PrivateLibvirtd(TempDir dir)
    : temp_(std::move(dir)), dir_(temp_.path().string()) {}

std::expected<std::unique_ptr<PrivateLibvirtd>, std::string> PrivateLibvirtd::Start(
    std::string uuid) {
  return Launch(std::move(uuid), "");
}

std::expected<std::unique_ptr<PrivateLibvirtd>, std::string> PrivateLibvirtd::StartWithTcp(
    const std::string& address, std::string uuid) {
  // A port the kernel hands out now; the daemon binds it a moment later (a port taken in
  // between makes the start fail with the daemon's message, not hang).
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return std::unexpected(std::string("socket: ") + std::strerror(errno));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  socklen_t len = sizeof sa;
  const bool ok = ::inet_pton(AF_INET, address.c_str(), &sa.sin_addr) == 1 &&
                  ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0;
  const std::string why = std::strerror(errno);
  ::close(fd);
  if (!ok) return std::unexpected("cannot find a free TCP port on " + address + ": " + why);
  return Launch(std::move(uuid), address + ":" + std::to_string(ntohs(sa.sin_port)));
}

std::expected<std::unique_ptr<PrivateLibvirtd>, std::string> PrivateLibvirtd::Launch(
    std::string uuid, std::string tcp) {
  std::string why;
  if (!Available(&why)) return std::unexpected("private libvirtd unavailable: " + why);

  std::unique_ptr<PrivateLibvirtd> daemon;
  try {
    // Short prefix: DIR/sock/libvirt-admin-sock must fit in a sockaddr_un.
    daemon.reset(new PrivateLibvirtd(TempDir("gvlvd")));
  } catch (const std::exception& e) {
    return std::unexpected(std::string("cannot create the daemon directory: ") + e.what());
  }

  std::vector<std::string> argv = {"bash", kScript, "start", daemon->dir_};
  if (!uuid.empty()) {
    argv.push_back("--uuid");
    argv.push_back(uuid);
  }
  if (!tcp.empty()) {
    argv.push_back("--tcp");
    argv.push_back(tcp);
  }
  std::string output;
  int rc = RunCommand(argv, &output);
  if (rc != 0) {
    // The script stops a daemon that failed to come up; keep the logs if asked to.
    if (KeepDirRequested()) daemon->temp_.Keep();
    daemon->pid_ = 0;
    return std::unexpected("libvirtd.sh start " + daemon->dir_ + " failed (exit " +
                           std::to_string(rc) + "):\n" + output);
  }
  if (auto loaded = daemon->LoadEnv(); !loaded) {
    std::string err = loaded.error() + "\nscript output:\n" + output;
    (void)daemon->Stop();
    return std::unexpected(std::move(err));
  }
  return daemon;
}

PrivateLibvirtd::~PrivateLibvirtd() {
  // Always run stop, even after a failed start: it also kills stray guests.
  std::vector<std::string> argv = {"bash", kScript, "stop", dir_};
  std::string output;
  int rc = RunCommand(argv, &output);
  if (rc != 0) {
    std::fprintf(stderr, "PrivateLibvirtd: stop %s failed (exit %d):\n%s\n", dir_.c_str(), rc,
                 output.c_str());
  }
  if (KeepDirRequested()) {
    temp_.Keep();
    std::fprintf(stderr, "PrivateLibvirtd: keeping %s (GITVIRT_KEEP_LIBVIRTD_DIR)\n", dir_.c_str());
  }
}

std::expected<void, std::string> PrivateLibvirtd::LoadEnv() {
  const std::string env_path = dir_ + "/env";
  std::ifstream in(env_path);
  if (!in) return std::unexpected("cannot read " + env_path);
  std::map<std::string, std::string, std::less<>> vars;
  std::string line;
  while (std::getline(in, line)) {
    std::string t = Trim(line);
    if (t.empty() || t.front() == '#') continue;
    size_t eq = t.find('=');
    if (eq == std::string::npos || eq == 0) continue;
    vars[t.substr(0, eq)] = Unquote(t.substr(eq + 1));
  }
  auto need = [&](std::string_view key, std::string& into) -> bool {
    auto it = vars.find(key);
    if (it == vars.end() || it->second.empty()) return false;
    into = it->second;
    return true;
  };
  std::string pid_text;
  if (!need("LIBVIRTD_PID", pid_text) || !need("QEMU_URI", qemu_uri_) ||
      !need("TEST_URI", test_uri_) || !need("POOL_DIR", pool_dir_) ||
      !need("VIRT_TYPE", virt_type_)) {
    return std::unexpected(env_path +
                           " lacks LIBVIRTD_PID, QEMU_URI, TEST_URI, POOL_DIR or VIRT_TYPE");
  }
  need("HOST_UUID", host_uuid_);
  need("TCP_URI", tcp_uri_);
  char* end = nullptr;
  long pid = std::strtol(pid_text.c_str(), &end, 10);
  if (end == pid_text.c_str() || *end != '\0' || pid <= 0) {
    return std::unexpected(env_path + ": bad LIBVIRTD_PID '" + pid_text + "'");
  }
  pid_ = static_cast<pid_t>(pid);
  return {};
}

std::expected<void, std::string> PrivateLibvirtd::Restart() {
  std::string output;
  int rc = RunCommand({"bash", kScript, "restart", dir_}, &output);
  if (rc != 0) {
    pid_ = 0;
    return std::unexpected("libvirtd.sh restart " + dir_ + " failed (exit " + std::to_string(rc) +
                           "):\n" + output);
  }
  return LoadEnv();
}

std::expected<void, std::string> PrivateLibvirtd::Stop() {
  std::string output;
  int rc = RunCommand({"bash", kScript, "stop", dir_}, &output);
  pid_ = 0;
  if (rc != 0) {
    return std::unexpected("libvirtd.sh stop " + dir_ + " failed (exit " + std::to_string(rc) +
                           "):\n" + output);
  }
  return {};
}

}  // namespace gitvirt::testing
