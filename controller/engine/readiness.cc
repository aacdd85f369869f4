#include "gitvirt/engine/readiness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <future>
#include <vector>

#include "gitvirt/core/cloud_init.h"
#include "gitvirt/hypervisor/node_set.h"

namespace gitvirt {
namespace {

std::string Join(const std::vector<std::string>& parts) {
  std::string out;
  for (const std::string& p : parts) out += (out.empty() ? "" : "; ") + p;
  return out;
}

std::string StaticAddress(const VmSpec& spec) {
  if (!spec.cloud_init) return "";
  for (const IpConfig& ip : spec.cloud_init->ip_configs) {
    if (ip.v4 == IpMode::kStatic) return ip.v4_address.substr(0, ip.v4_address.find('/'));
  }
  for (const IpConfig& ip : spec.cloud_init->ip_configs) {
    if (ip.v6 == IpMode::kStatic) return ip.v6_address.substr(0, ip.v6_address.find('/'));
  }
  return "";
}

bool LinkLocal(const GuestAddress& a) {
  return a.ipv6 ? a.address.starts_with("fe80") || a.address.starts_with("FE80") : a.address.starts_with("169.254.");
}

// The address to reach the VM at: IPv4 on its first NIC, else any IPv4, else a global IPv6.
std::string PickAddress(const std::vector<GuestAddress>& addresses, const std::string& first_mac) {
  auto find = [&](auto&& accept) -> std::string {
    for (const GuestAddress& a : addresses) {
      if (!LinkLocal(a) && accept(a)) return a.address;
    }
    return "";
  };
  std::string picked;
  if (!first_mac.empty()) picked = find([&](const GuestAddress& a) { return !a.ipv6 && a.mac == first_mac; });
  if (picked.empty()) picked = find([](const GuestAddress& a) { return !a.ipv6; });
  if (picked.empty()) picked = find([](const GuestAddress&) { return true; });
  return picked;
}

bool OnLibvirtNetwork(const VmSpec& spec) {
  return std::any_of(spec.networks.begin(), spec.networks.end(), [](const Nic& n) { return !n.network.empty(); });
}

}  // namespace

std::string DescribeReadiness(const Readiness& r) {
  std::vector<std::string> parts;
  if (r.agent) parts.push_back("guest agent");
  if (r.tcp) parts.push_back("tcp " + std::to_string(*r.tcp));
  if (!r.console_marker.empty()) parts.push_back("console \"" + r.console_marker + "\"");
  std::string out;
  for (const std::string& p : parts) out += (out.empty() ? "" : ", ") + p;
  return out;
}

Result<void> TcpConnect(const std::string& address, int port, std::chrono::milliseconds timeout) {
  sockaddr_storage storage{};
  socklen_t length = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
  if (inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<std::uint16_t>(port));
    length = sizeof *v4;
  } else if (inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<std::uint16_t>(port));
    length = sizeof *v6;
  } else {
    return Fail(ErrorCode::kInvalidArgument, "\"" + address + "\" is not an IP address");
  }
  const int fd = ::socket(storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Fail(ErrorCode::kIo, std::string("socket: ") + std::strerror(errno));
  auto close_fd = [fd] { ::close(fd); };
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&storage), length);
  if (rc < 0 && errno != EINPROGRESS) {
    const int err = errno;
    close_fd();
    return Fail(ErrorCode::kUnavailable, std::strerror(err));
  }
  if (rc < 0) {
    pollfd p{fd, POLLOUT, 0};
    rc = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (rc == 0) {
      close_fd();
      return Fail(ErrorCode::kTimeout, "no answer within " + std::to_string(timeout.count()) + " ms");
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (rc < 0 || ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    if (err != 0) {
      close_fd();
      return Fail(ErrorCode::kUnavailable, std::strerror(err));
    }
  }
  close_fd();
  return {};
}

ReadinessReport CheckReadiness(Node& hv, const std::string& name, const VmSpec& spec,
                               const ReadinessOptions& options) {
  ReadinessReport report;
  const Readiness& want = spec.readiness;
  const std::string fixed = StaticAddress(spec);
  if (!hv.capabilities().guests) {
    // Nothing behind the domain answers: say so, and do not hold anything up (see the header).
    report.ready = true;
    report.checked = false;
    report.address = fixed;
    report.address_source = fixed.empty() ? "" : "static";
    if (want.Enabled()) {
      report.message = "readiness (" + DescribeReadiness(want) + ") cannot be checked on node " + hv.name() + " (" +
                       hv.capabilities().driver + " driver: no guest OS runs there); treated as Ready";
    }
    return report;
  }
  auto power = hv.power().Get(name);
  if (!power || *power != PowerState::kRunning) {
    report.running = false;
    report.message = power ? "not running (" + std::string(EnumName(*power)) + ")" : power.error().message;
    return report;
  }

  VirtualMachine vm;
  vm.meta.name = name;
  vm.spec = spec;
  const std::string first_mac = spec.networks.empty() ? "" : NicMac(vm, 0);
  bool agent_answers = false;
  std::string agent_error;
  std::string agent_address;
  if (spec.guest_agent || want.agent) {
    if (auto ping = hv.guest().Ping(name, options.agent_timeout); !ping) {
      agent_error = ping.error().message;
    } else if (auto addresses = hv.guest().Addresses(name, AddressSource::kAgent); !addresses) {
      agent_error = addresses.error().message;
    } else {
      agent_answers = true;
      agent_address = PickAddress(*addresses, first_mac);
    }
  }
  if (!agent_address.empty()) {
    report.address = agent_address;
    report.address_source = "agent";
  }
  if (report.address.empty() && OnLibvirtNetwork(spec)) {
    if (auto leases = hv.guest().Addresses(name, AddressSource::kLease)) {
      report.address = PickAddress(*leases, first_mac);
      if (!report.address.empty()) report.address_source = "lease";
    }
  }
  if (report.address.empty() && !fixed.empty()) {
    report.address = fixed;
    report.address_source = "static";
  }

  std::vector<std::string> passed, missing;
  if (want.agent) {
    if (!agent_answers) {
      missing.push_back("the guest agent does not answer (" + agent_error + ")");
    } else if (agent_address.empty()) {
      missing.push_back("the guest agent answers but reports no address yet");
    } else {
      passed.push_back("the guest agent answers and reports " + agent_address);
    }
  }
  if (want.tcp) {
    const std::string port = std::to_string(*want.tcp);
    if (report.address.empty()) {
      missing.push_back("no address to try port " + port + " on (no agent, DHCP lease or static IP)");
    } else if (auto connected = TcpConnect(report.address, *want.tcp, options.tcp_timeout); !connected) {
      missing.push_back("port " + port + " on " + report.address + ": " + connected.error().message);
    } else {
      passed.push_back("port " + port + " on " + report.address + " accepts connections");
    }
  }
  if (!want.console_marker.empty()) {
    const std::string quoted = "\"" + want.console_marker + "\"";
    if (auto log = hv.guest().ConsoleLog(name); !log) {
      missing.push_back("console log unreadable: " + log.error().ToString());
    } else if (log->find(want.console_marker) == std::string::npos) {
      missing.push_back(quoted + " has not appeared on the console yet");
    } else {
      passed.push_back(quoted + " appeared on the console");
    }
  }
  report.ready = missing.empty();
  report.message = report.ready ? Join(passed) : Join(missing);
  return report;
}

std::map<std::string, ReadinessReport> ProbeGuests(const NodeSet& nodes, const DesiredState* desired,
                                                   const ObservedState& observed) {
  struct Job {
    Node* hv;
    std::string name;
    VmSpec spec;
  };
  std::vector<Job> jobs;
  for (const ObservedNode& node : observed.nodes) {
    Node* hv = nodes.Find(node.name);
    if (hv == nullptr || !node.reachable) continue;
    for (const ObservedVm& vm : node.vms) {
      if (!vm.Owned() || vm.power != PowerState::kRunning) continue;
      const VirtualMachine* declared = desired != nullptr ? desired->FindVm(vm.name) : nullptr;
      const VmSpec& spec = declared != nullptr ? declared->spec : vm.last_applied ? *vm.last_applied : vm.actual;
      jobs.push_back(Job{hv, vm.name, spec});
    }
  }
  // A few at a time: a guest that does not answer costs a timeout, not the whole status.
  constexpr std::size_t kAtOnce = 8;
  std::map<std::string, ReadinessReport> out;
  for (std::size_t i = 0; i < jobs.size(); i += kAtOnce) {
    std::vector<std::future<ReadinessReport>> running;
    for (std::size_t j = i; j < std::min(jobs.size(), i + kAtOnce); ++j) {
      running.push_back(std::async(std::launch::async, [&job = jobs[j]] { return CheckReadiness(*job.hv, job.name, job.spec); }));
    }
    for (std::size_t j = i; j < std::min(jobs.size(), i + kAtOnce); ++j) out[jobs[j].name] = running[j - i].get();
  }
  return out;
}

}  // namespace gitvirt
