#pragma once
// The fault seam of test builds (GITVIRT_FAULT_INJECTION), as a decorator around a node: every
// call that changes the node passes FaultSeam under its kind (define, undefine, set-metadata,
// set-autostart, start, destroy, shutdown, reboot, suspend, resume, set-vcpus, set-memory,
// attach, detach, resize-disk, ensure-pool, create-volume, delete-volume, resize-volume,
// upload-volume, snapshot-create, snapshot-delete, snapshot-revert, backup; NodeSet's live
// migration: migrate). What fails, when, and what is counted is fault_injection.h's business.
// It wraps the whole stack (fault(sim(libvirt))): an injected failure reaches nothing, not even a
// simulated node's files. Release builds have no seam and build none of this.
//
// Thread-safety: as Node. Lifetime: owns the node it wraps.

#ifdef GITVIRT_FAULT_INJECTION

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <spdlog/fwd.h>

#include "gitvirt/hypervisor/node.h"

namespace gitvirt {

// What an answer lost with the connection costs the node: the connection, taken for lost (why)
// and reopened (NodeConnection::Reopen).
using Reconnect = std::function<Result<void>(const std::string& why)>;

// One change of node `node` through the seam: an injected failure instead of the call; the
// process killed right after it ("kill:N"); its answer lost ("lost:N"), and so the connection
// reopened and the call asked again, as after a daemon restart (DoneBeforeTheAnswerWasLost).
Result<void> FaultSeam(spdlog::logger& log, const std::string& node, const Reconnect& reconnect, std::string_view kind,
                       const std::string& subject, const std::function<Result<void>()>& call);

class FaultyNode final : public Node {
 public:
  FaultyNode(std::unique_ptr<Node> inner, Reconnect reconnect, std::shared_ptr<spdlog::logger> log);
  ~FaultyNode() override;

  const std::string& name() const override { return inner_->name(); }
  const NodeCapabilities& capabilities() const override { return inner_->capabilities(); }
  Result<ObservedNode> Observe() override { return inner_->Observe(); }
  Domains& domains() override;
  Power& power() override;
  LiveChanges& live() override;
  Storage& storage() override;
  Snapshots& snapshots() override;
  Guest& guest() override { return inner_->guest(); }  // changes nothing
  Backups& backups() override;

 private:
  struct Ports;
  std::unique_ptr<Node> inner_;
  Reconnect reconnect_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<Ports> ports_;
};

}  // namespace gitvirt

#endif
