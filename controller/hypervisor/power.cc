// The Power port of the libvirt adapter. Power operations are idempotent: asking for the state
// a domain is in succeeds at once, so a step retried after a crash does not fail on its own
// earlier success.
#include <spdlog/spdlog.h>

#include <functional>
#include <thread>

#include "gitvirt/core/units.h"
#include "libvirt_node.h"
#include "lookup.h"

namespace gitvirt {
namespace {

using namespace libvirt;

// One change of a domain's power, given its state.
Result<void> PowerOp(LibvirtNode& node, std::string_view kind, const std::string& name,
                     const std::function<int(virDomainPtr, int)>& fn) {
  return node.connection().Change<void>(std::string(kind) + " " + name + " on " + node.name(), Touched::Domain(name),
                                        [&](virConnectPtr c) -> Result<void> {
                                          auto dom = LookupDomain(c, name);
                                          if (!dom) return std::unexpected(dom.error());
                                          int state = 0, reason = 0;
                                          if (virDomainGetState(dom->get(), &state, &reason, 0) < 0) {
                                            return std::unexpected(LastError(""));
                                          }
                                          if (fn(dom->get(), state) < 0) return std::unexpected(LastError(""));
                                          return {};
                                        });
}

}  // namespace

Result<PowerState> LibvirtPower::Get(const std::string& name) {
  return node_.connection().Query<PowerState>("reading the state of " + name,
                                              [&](virConnectPtr c) -> Result<PowerState> {
                                                auto dom = LookupDomain(c, name);
                                                if (!dom) return std::unexpected(dom.error());
                                                int state = 0, reason = 0;
                                                if (virDomainGetState(dom->get(), &state, &reason, 0) < 0) {
                                                  return std::unexpected(LastError(""));
                                                }
                                                return ToPower(state);
                                              });
}

Result<void> LibvirtPower::Start(const std::string& name) {
  return node_.connection().Change<void>("start " + name + " on " + node_.name(), Touched::Domain(name),
                                         [&](virConnectPtr c) -> Result<void> {
    auto dom = LookupDomain(c, name);
    if (!dom) return std::unexpected(dom.error());
    int state = 0, reason = 0;
    // Start first, ask after: a domain that already runs refuses, and is then fine as it is.
    if (virDomainCreate(dom->get()) < 0) {
      Error refused = LastError("");
      if (virDomainGetState(dom->get(), &state, &reason, 0) < 0) return std::unexpected(LastError(""));
      if (ToPower(state) != PowerState::kStopped) return {};
      return std::unexpected(std::move(refused));
    }
    // A guest that stops itself at once (firmware emulation failure, I/O error) starts
    // "successfully" and sits paused: that is a failed start, not a running VM.
    if (virDomainGetState(dom->get(), &state, &reason, 0) < 0) return std::unexpected(LastError(""));
    if (state == VIR_DOMAIN_PAUSED && reason != VIR_DOMAIN_PAUSED_USER) {
      return Fail(ErrorCode::kFailedPrecondition,
                  "the domain paused itself right after starting (libvirt paused reason " + std::to_string(reason) +
                      "); see the node's QEMU log for " + name);
    }
    if (state == VIR_DOMAIN_SHUTOFF || state == VIR_DOMAIN_CRASHED) {
      return Fail(ErrorCode::kFailedPrecondition, "the domain stopped right after starting (" + StateName(state) + ")");
    }
    return {};
  });
}

Result<void> LibvirtPower::Destroy(const std::string& name) {
  return PowerOp(node_, "destroy", name, [](virDomainPtr d, int) {
    if (virDomainIsActive(d) != 1) return 0;
    return virDomainDestroy(d);
  });
}

Result<void> LibvirtPower::Suspend(const std::string& name) {
  return PowerOp(node_, "suspend", name, [](virDomainPtr d, int state) {
    if (ToPower(state) == PowerState::kPaused) return 0;
    return virDomainSuspend(d);
  });
}

Result<void> LibvirtPower::Resume(const std::string& name) {
  return PowerOp(node_, "resume", name, [](virDomainPtr d, int state) {
    if (ToPower(state) != PowerState::kPaused) return 0;
    return virDomainResume(d);
  });
}

Result<void> LibvirtPower::Reboot(const std::string& name) {
  return PowerOp(node_, "reboot", name, [](virDomainPtr d, int) { return virDomainReboot(d, 0); });
}

Result<void> LibvirtPower::Shutdown(const std::string& name, Seconds timeout, bool force_after) {
  auto asked = PowerOp(node_, "shutdown", name, [](virDomainPtr d, int) {
    if (virDomainIsActive(d) != 1) return 0;
    return virDomainShutdown(d);
  });
  if (!asked) return asked;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto power = Get(name);
    if (!power) return std::unexpected(power.error());
    if (*power == PowerState::kStopped) return {};
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!force_after) {
    return Fail(ErrorCode::kTimeout,
                "the guest did not shut down within " + FormatDuration(timeout) +
                    " (set updatePolicy.forceOff: true to power it off after the timeout)",
                "shutting down " + name);
  }
  node_.log().warn("node={} vm={} graceful shutdown timed out after {}; forcing off", node_.name(), name,
                   FormatDuration(timeout));
  return node_.outermost().power().Destroy(name);
}

}  // namespace gitvirt
