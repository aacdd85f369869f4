#pragma once
// The one rule for a change asked again because the answer to the first request was lost (the
// connection dropped in the middle of the call, or GITVIRT_FAULTS=lost said so): the first
// request may have been carried out before the answer went missing, so a repeat that finds what
// it was to create already there has succeeded. Used by the connection's own retry
// (connection.h) and by the fault seam's (faulty_node.h).

#include "gitvirt/core/error.h"

namespace gitvirt {

inline bool DoneBeforeTheAnswerWasLost(const Error& repeat) { return repeat.code == ErrorCode::kAlreadyExists; }

}  // namespace gitvirt
