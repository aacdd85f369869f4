#pragma once
// The dashboard page served at `/`: dashboard.html, embedded into the binary at build time by
// embed_dashboard.cmake (one self-contained page: inline CSS and JS, no external assets).

#include <string_view>

namespace gitvirt {

std::string_view DashboardHtml();

}  // namespace gitvirt
