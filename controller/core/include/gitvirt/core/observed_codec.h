#pragma once
// A compact binary form of an observed node, for the observation snapshots of simulated nodes
// (sim_store.h). Written and read by the same build only (the snapshot's key names the build),
// so it has no version of its own: every field of the model, in declaration-table order (the
// JSON tables in json.cc), fixed-width numbers, length-prefixed strings. Decoding 10,000 VMs
// takes milliseconds where JSON took most of a second.

#include <string>
#include <string_view>

#include "gitvirt/core/error.h"
#include "gitvirt/core/observed.h"

namespace gitvirt {

std::string EncodeObservedNode(const ObservedNode& node);
// kInvalidArgument for bytes that are not a whole encoded node.
Result<ObservedNode> DecodeObservedNode(std::string_view bytes);

}  // namespace gitvirt
