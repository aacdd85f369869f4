#pragma once
// What `get`, `describe` and `diff` format: the engine's FleetView, with the session it was
// gathered through (for the backup catalog and the journal). Internal to the cli folder.

#include <memory>
#include <optional>

#include "gitvirt/engine/fleet_view.h"
#include "session.h"

namespace gitvirt::cli {

struct View : FleetView {
  std::unique_ptr<Session> session;
};

// nullopt after printing why (the configuration).
std::optional<View> GatherView(const GlobalOptions& global, const SourceSelection& source);

// get and describe show what they can see: one line on stderr per node they could not reach
// (libvirt's reason in full there, shortened in the tables), so a missing VM is not a mystery.
void WarnUnreachable(const View& view);

}  // namespace gitvirt::cli
