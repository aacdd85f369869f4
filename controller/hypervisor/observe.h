#pragma once
// Observation: a node, or one of its domains, read from libvirt into gitvirt's values (the
// definition parsed, libvirt's expansions normalised, disk sizes from the pools, snapshots).

#include "gitvirt/core/error.h"
#include "gitvirt/core/observed.h"
#include "libvirt_util.h"

namespace gitvirt {

class LibvirtNode;

// One domain as a node-wide observation sees it, asking the domain itself (cheaper than
// listing a large node).
ObservedVm ObserveDomain(const LibvirtNode& node, virConnectPtr c, virDomainPtr dom);

}  // namespace gitvirt
