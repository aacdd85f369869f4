#pragma once
// What `get`, `describe` and `diff` show: the observed state, and, when the manifests can be
// read, the desired state and the plan between them, reduced to resource statuses. Read-only:
// no lock, no journal writes.

#include <optional>

#include "gitvirt/core/status.h"
#include "session.h"

namespace gitvirt::cli {

struct View {
  ControllerConfig config;
  std::optional<Desired> desired;
  ObservedState observed;
  std::optional<Plan> plan;
  std::vector<ResourceStatus> resources;
  std::vector<NodeStatus> nodes;
  std::vector<ClusterStatus> clusters;
};

// `quiet_manifests`: a broken repository is reported in one line, not every diagnostic.
std::optional<View> GatherView(const GlobalOptions& global, const SourceOptions& source,
                               const std::shared_ptr<spdlog::logger>& log);

}  // namespace gitvirt::cli
