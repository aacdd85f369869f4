#pragma once
// /metrics: the snapshot in the Prometheus text exposition format 0.0.4. Private to
// controller/api. Pure: the same snapshot always renders the same text.

#include <string>

#include "gitvirt/core/status.h"

namespace gitvirt::api_metrics {

inline constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

std::string Render(const StatusSnapshot& snapshot);

}  // namespace gitvirt::api_metrics
