// The one place the hypervisor layer reads the environment. (The decorator stack ConnectNode
// builds is node_stack.cc's.)
#include "gitvirt/hypervisor/connect.h"

#include <cstdlib>
#include <string_view>

namespace gitvirt {

HypervisorOptions HypervisorOptions::FromEnvironment() {
  HypervisorOptions options;
  if (const char* v = std::getenv("GITVIRT_SIM_SNAPSHOTS")) {
    options.sim_snapshots = std::string_view(v) != "0" && std::string_view(v) != "off";
  }
  if (const char* v = std::getenv("GITVIRT_VIRT_TYPE"); v != nullptr && *v) options.virt_type = v;
  return options;
}

}  // namespace gitvirt
