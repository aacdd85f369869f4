// The one file that knows the version (GITVIRT_VERSION, set by controller/cli/CMakeLists.txt for
// this file alone): changing it rebuilds this file and relinks, nothing more.
#include "gitvirt/cli/app.h"

namespace gitvirt::cli {

const char* Version() { return GITVIRT_VERSION; }

}  // namespace gitvirt::cli
