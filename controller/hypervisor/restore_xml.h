#pragma once
// The domain definition of a VM restored from a backup, made from the definition the backup
// holds (pugixml; pure, no libvirt calls).

#include <map>
#include <string>

#include "gitvirt/core/error.h"
#include "gitvirt/core/storage.h"

namespace gitvirt {

// `xml` renamed to `new_name`, with:
//  * no <uuid> (libvirt makes a new one) and no <mac> on any interface (new addresses);
//  * each disk device whose gitvirt alias ("ua-disk-NAME") is in `volumes` pointing at that
//    pool volume (no backing chain: restored volumes are whole); every other disk device removed
//    (a disk not in the backup cannot be restored), as is the cloud-init seed (ua-cidata);
//  * no NVRAM file path (libvirt creates a fresh one from the firmware template), and a serial
//    console log named after the new VM;
//  * gitvirt's owner mark kept only when `managed`, renamed, with `volumes` as the volumes it
//    created and `job` as the job; removed otherwise (the VM is then left alone by gitvirt).
Result<std::string> RewriteDomainForRestore(const std::string& xml, const std::string& new_name,
                                            const std::map<std::string, StorageRef>& volumes,
                                            bool managed, const std::string& job);

}  // namespace gitvirt
