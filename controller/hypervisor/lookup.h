#pragma once
// Finding libvirt objects by gitvirt's names and describing them as gitvirt's values: shared by
// the adapter's ports and its observation. Each function reads the calling thread's libvirt
// error right after a failing call (libvirt_util.h).

#include <string>
#include <string_view>
#include <vector>

#include "gitvirt/core/error.h"
#include "gitvirt/core/model.h"
#include "gitvirt/core/observed.h"
#include "libvirt_util.h"

namespace gitvirt {

// The mark a SnapshotPolicy's snapshots carry at the start of their description.
inline constexpr std::string_view kPolicyPrefix = "[gitvirt policy=";

PowerState ToPower(int state);
// libvirt's name of a domain state ("shut off").
std::string StateName(int state);

Result<libvirt::Domain> LookupDomain(virConnectPtr c, const std::string& name);
Result<libvirt::Volume> LookupVolume(virConnectPtr c, const std::string& pool, const std::string& name);

// `with_xml`: also the format, the backing file and the physical size (a volume's XML costs a
// round trip, which a node-wide observation saves).
ObservedVolume DescribeVolume(virStorageVolPtr v, const std::string& pool, bool with_xml);
// A pool's directory on its node, from its XML ("" if it has none).
std::string PoolTargetPath(virStoragePoolPtr p);

// A domain's snapshots, oldest first; the policy that made each is parsed out of its
// description ("[gitvirt policy=NAME] ...").
Result<std::vector<ObservedSnapshot>> ReadSnapshots(virDomainPtr dom);

}  // namespace gitvirt
