// The Guest port of the libvirt adapter: the QEMU guest agent, DHCP leases, the serial console's
// log file. Drivers without a guest OS behind their domains (the test driver) refuse every call
// (NodeCapabilities::guests).
#include <libvirt/libvirt-qemu.h>

#include <pugixml.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "libvirt_node.h"
#include "lookup.h"

namespace gitvirt {
namespace {

using namespace libvirt;

// A guest-agent failure: "not connected" and "not responding" mean the guest is not (yet)
// answering, which is kUnavailable for readiness but must not look like a lost connection.
Error AgentError() {
  Error e = LastError("");
  const int code = LastErrorCode();
  if (code == VIR_ERR_AGENT_UNRESPONSIVE || code == VIR_ERR_AGENT_UNSYNCED || code == VIR_ERR_OPERATION_TIMEOUT) {
    e.code = ErrorCode::kTimeout;
  } else if (code == VIR_ERR_OPERATION_INVALID || code == VIR_ERR_ARGUMENT_UNSUPPORTED) {
    e.code = ErrorCode::kFailedPrecondition;  // no agent channel, or the domain is not running
  }
  return e;
}

}  // namespace

Result<void> LibvirtGuest::Ping(const std::string& name, std::chrono::seconds timeout) {
  if (!node_.capabilities().guests) {
    return Fail(ErrorCode::kUnsupported, "this node cannot reach a guest agent", name);
  }
  return node_.connection().Query<void>("asking the guest agent of " + name, [&](virConnectPtr c) -> Result<void> {
    auto dom = LookupDomain(c, name);
    if (!dom) return std::unexpected(dom.error());
    char* reply = virDomainQemuAgentCommand(dom->get(), R"({"execute":"guest-ping"})",
                                            static_cast<int>(timeout.count()), 0);
    if (reply == nullptr) return std::unexpected(AgentError());
    free(reply);
    return {};
  });
}

Result<std::vector<GuestAddress>> LibvirtGuest::Addresses(const std::string& name, AddressSource source) {
  if (!node_.capabilities().guests) {
    return Fail(ErrorCode::kUnsupported, "this node cannot report guest addresses", name);
  }
  const bool agent = source == AddressSource::kAgent;
  return node_.connection().Query<std::vector<GuestAddress>>(
      std::string("reading the addresses of ") + name + (agent ? " from its agent" : " from DHCP leases"),
      [&](virConnectPtr c) -> Result<std::vector<GuestAddress>> {
        auto dom = LookupDomain(c, name);
        if (!dom) return std::unexpected(dom.error());
        virDomainInterfacePtr* ifaces = nullptr;
        const int n = virDomainInterfaceAddresses(
            dom->get(), &ifaces,
            agent ? VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT : VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, 0);
        if (n < 0) return std::unexpected(agent ? AgentError() : LastError(""));
        std::vector<GuestAddress> out;
        for (int i = 0; i < n; ++i) {
          const virDomainInterfacePtr iface = ifaces[i];
          std::string mac = iface->hwaddr != nullptr ? iface->hwaddr : "";
          std::transform(mac.begin(), mac.end(), mac.begin(), [](unsigned char ch) { return std::tolower(ch); });
          for (unsigned j = 0; j < iface->naddrs; ++j) {
            GuestAddress a;
            a.interface = iface->name != nullptr ? iface->name : "";
            a.mac = mac;
            a.address = iface->addrs[j].addr != nullptr ? iface->addrs[j].addr : "";
            a.prefix = static_cast<int>(iface->addrs[j].prefix);
            a.ipv6 = iface->addrs[j].type == VIR_IP_ADDR_TYPE_IPV6;
            if (a.address.empty() || a.address.starts_with("127.") || a.address == "::1") continue;
            out.push_back(std::move(a));
          }
          virDomainInterfaceFree(iface);
        }
        free(ifaces);
        return out;
      });
}

// The log file of the first serial port (<serial><log file=...>), read when the controller
// shares the node's filesystem. It is truncated at every start (append='off').
Result<std::string> LibvirtGuest::ConsoleLog(const std::string& name) {
  if (!node_.capabilities().guests) {
    return Fail(ErrorCode::kUnsupported, "this node cannot show a console log", name);
  }
  auto file = node_.connection().Query<std::string>(
      "reading the console log of " + name, [&](virConnectPtr c) -> Result<std::string> {
        auto dom = LookupDomain(c, name);
        if (!dom) return std::unexpected(dom.error());
        pugi::xml_document doc;
        doc.load_string(TakeString(virDomainGetXMLDesc(dom->get(), 0)).c_str());
        pugi::xml_node serial = doc.child("domain").child("devices").child("serial");
        std::string path = serial.child("log").attribute("file").as_string();
        if (path.empty() && std::string_view(serial.attribute("type").as_string()) == "file") {
          path = serial.child("source").attribute("path").as_string();
        }
        return path;
      });
  if (!file) return std::unexpected(file.error());
  if (file->empty()) {
    return Fail(ErrorCode::kFailedPrecondition, "its serial console is not logged to a file", "console of " + name);
  }
  if (!node_.config().IsLocal()) {
    return Fail(ErrorCode::kUnsupported,
                "the console log " + *file + " is on node " + node_.name() +
                    ", whose files the controller cannot read (it reads console logs on local nodes only)",
                "console of " + name);
  }
  std::ifstream in(*file, std::ios::binary);
  if (!in) return Fail(ErrorCode::kNotFound, "cannot open " + *file, "console of " + name);
  // A chatty guest can log a lot; the marker is looked for in the first 64 MiB.
  std::error_code ec;
  const std::size_t size = std::min<std::uintmax_t>(std::filesystem::file_size(*file, ec), 64u << 20);
  std::string text(ec ? 0 : size, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  return text;
}

}  // namespace gitvirt
