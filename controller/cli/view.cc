#include "view.h"

#include <iostream>

namespace gitvirt::cli {

std::optional<View> GatherView(const GlobalOptions& global, const SourceSelection& source) {
  View view;
  view.session = OpenSession(global);
  if (!view.session) return std::nullopt;
  auto gathered = GatherFleetView(*view.session, source);
  if (!gathered) {
    PrintError(gathered.error());
    return std::nullopt;
  }
  static_cast<FleetView&>(view) = std::move(*gathered);
  return view;
}

void WarnUnreachable(const View& view) {
  for (const ObservedNode& n : view.observed.nodes) {
    if (n.reachable) continue;
    std::cerr << "gitvirt: warning: node " << n.name << " is unreachable (" << n.error
              << "); what runs there is not shown\n";
  }
}

}  // namespace gitvirt::cli
