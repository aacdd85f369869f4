#include "view.h"

namespace gitvirt::cli {

std::optional<View> GatherView(const GlobalOptions& global, const SourceSelection& source,
                               const std::shared_ptr<spdlog::logger>& log) {
  View view;
  view.session = OpenSession(global, log);
  if (!view.session) return std::nullopt;
  static_cast<FleetView&>(view) = GatherFleetView(*view.session, source);
  return view;
}

}  // namespace gitvirt::cli
