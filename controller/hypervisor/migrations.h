#pragma once
// A live migration between two libvirt adapters (NodeSet's Migrations, which finds them): the
// source's connection drives libvirt's managed migration into the target's connection.

#include <string>

#include "gitvirt/core/error.h"
#include "gitvirt/hypervisor/node.h"

namespace gitvirt {

class LibvirtNode;

// Moves the running (or paused) domain `vm` from `source` to `target` while it runs (LIVE |
// PERSIST_DEST | UNDEFINE_SOURCE, plus NON_SHARED_DISK for copy_volumes). kUnsupported unless
// both are QEMU nodes.
Result<void> MigrateLive(LibvirtNode& source, LibvirtNode& target, const std::string& vm,
                         const LiveMigration& options);

}  // namespace gitvirt
