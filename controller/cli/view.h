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
std::optional<View> GatherView(const GlobalOptions& global, const SourceSelection& source,
                               const std::shared_ptr<spdlog::logger>& log);

}  // namespace gitvirt::cli
