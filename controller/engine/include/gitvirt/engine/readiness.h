#pragma once
// Readiness: when a running VM counts as Ready, and the address it is reached at.
//
// A VM's `readiness` block lists checks, all of which must pass:
//   agent: true         the guest agent answers guest-ping and reports an address;
//   tcp: PORT           PORT on the VM's address accepts a TCP connection from the controller;
//   consoleMarker: TXT  TXT appears in the serial console log of the current boot.
// The VM's address is, in this order: what its guest agent reports (when it has one), a DHCP
// lease of a libvirt network it is on, the first static address of its cloud-init ipConfigs.
//
// Nodes without a guest OS behind their domains (libvirt's test driver, `sim:` nodes) cannot
// check anything. There a running VM is reported Ready with `checked = false` and a message
// saying so, rather than never Ready: plans, cluster ordering and dependsOn keep working on
// simulated hosts, and the journal and status say the check was skipped. docs/manifests.md
// documents this decision.
//
// Thread-safety: the functions are reentrant; the node is thread-safe.

#include <chrono>
#include <map>
#include <string>

#include "gitvirt/core/error.h"
#include "gitvirt/core/model.h"
#include "gitvirt/core/observed.h"
#include "gitvirt/hypervisor/node.h"

namespace gitvirt {

class NodeSet;

struct ReadinessReport {
  bool ready = false;
  bool checked = true;         // false: the node cannot check (test driver); ready regardless
  bool running = true;         // false: the domain is not running (never ready)
  std::string address;         // the VM's address, "" when unknown
  std::string address_source;  // agent | lease | static | ""
  std::string message;         // what passed, or what is still missing
  friend bool operator==(const ReadinessReport&, const ReadinessReport&) = default;
};

struct ReadinessOptions {
  std::chrono::seconds agent_timeout{2};
  std::chrono::milliseconds tcp_timeout{1500};
};

// Looks once, now. `spec` is the VM's spec (desired, or the one last applied). A VM without a
// readiness block is Ready when it runs; the report still carries its address.
ReadinessReport CheckReadiness(Node& hv, const std::string& name, const VmSpec& spec,
                               const ReadinessOptions& options = {});

// Every running VM gitvirt owns, by name: its address and whether it is Ready. The spec used is
// the desired one when the VM is declared, else the one last applied.
std::map<std::string, ReadinessReport> ProbeGuests(const NodeSet& nodes, const DesiredState* desired,
                                                   const ObservedState& observed);

// What the readiness block asks for, in words: "guest agent, tcp 22, console \"login:\"".
std::string DescribeReadiness(const Readiness& readiness);

// Connects to address:port (numeric IPv4 or IPv6) within `timeout`, then closes.
Result<void> TcpConnect(const std::string& address, int port, std::chrono::milliseconds timeout);

}  // namespace gitvirt
