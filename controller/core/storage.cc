#include "gitvirt/core/storage.h"

namespace gitvirt {

StorageRef DiskStorage(const VirtualMachine& vm, const Disk& disk) {
  if (disk.source.clone == CloneMode::kNone) {
    if (disk.source.type == DiskSourceType::kPath) return StorageRef{"", "", disk.source.ref};
    if (disk.source.type == DiskSourceType::kVolume) return StorageRef{disk.pool, disk.source.ref, ""};
  }
  return StorageRef{disk.pool, DiskVolumeName(vm.meta.name, disk), ""};
}

std::string DiskVolumeName(const std::string& vm, const Disk& disk) {
  return vm + "-" + disk.name + "." + std::string(EnumName(disk.format));
}

std::string SeedVolumeName(const std::string& vm, const std::string& inputs_hash) {
  return vm + "-cidata-" + inputs_hash.substr(0, 8) + ".iso";
}

}  // namespace gitvirt
