#include "view.h"

#include <iostream>

#include "gitvirt/core/planner.h"
#include "gitvirt/engine/readiness.h"
#include "gitvirt/engine/status_builder.h"

namespace gitvirt::cli {

std::optional<View> GatherView(const GlobalOptions& global, const SourceOptions& source,
                               const std::shared_ptr<spdlog::logger>& log) {
  View view;
  auto config = LoadConfig(global);
  if (!config) return std::nullopt;
  view.config = std::move(*config);
  if (!source.dir.empty() || !source.repo.empty() || !view.config.source.path.empty() ||
      !view.config.source.repo.empty()) {
    view.desired = LoadDesired(view.config, source, log);
    if (!view.desired) std::cerr << "gitvirt: showing what the nodes run, without the manifests\n";
  }
  auto nodes = ConnectNodes(view.config, log);
  view.observed = nodes->ObserveAll();
  if (view.desired) {
    PlanOptions options;
    options.prune = view.config.sync.prune;
    options.revision = view.desired->revision;
    auto plan = Planner(view.config).MakePlan(view.desired->state, view.observed, options);
    if (plan) {
      view.plan = std::move(*plan);
    } else {
      std::cerr << "gitvirt: " << plan.error().ToString() << "\n";
    }
  }
  StatusInputs inputs;
  inputs.desired = view.desired ? &view.desired->state : nullptr;
  inputs.observed = &view.observed;
  inputs.plan = view.plan ? &*view.plan : nullptr;
  // Addresses and readiness of the running VMs, asked of their guests now.
  inputs.guests = ProbeGuests(*nodes, inputs.desired, view.observed);
  view.resources = BuildResourceStatuses(inputs);
  view.nodes = BuildNodeStatuses(view.config, view.observed);
  if (view.desired) view.clusters = BuildClusterStatuses(view.desired->state, view.resources);
  return view;
}

}  // namespace gitvirt::cli
