#include "gitvirt/core/history.h"

#include <algorithm>
#include <iterator>

namespace gitvirt {

bool IsFinished(JobStatus status) {
  return std::ranges::find(kUnfinishedJobStatuses, status) == std::end(kUnfinishedJobStatuses);
}

}  // namespace gitvirt
