#pragma once
// Where a piece of a VM's storage lives on a node, by gitvirt's naming rules. Pure values.

#include <string>

#include "gitvirt/core/model.h"

namespace gitvirt {

// A pool volume, or a plain path on the node.
struct StorageRef {
  std::string pool;
  std::string volume;
  std::string path;
  bool IsVolume() const { return !volume.empty(); }
  std::string ToString() const { return IsVolume() ? pool + "/" + volume : path; }
  friend bool operator==(const StorageRef&, const StorageRef&) = default;
};

// The volume gitvirt makes for a disk ("<vm>-<disk>.<format>" in the disk's pool), or the
// existing volume or path the disk names.
StorageRef DiskStorage(const VirtualMachine& vm, const Disk& disk);

// "<vm>-<disk>.<format>".
std::string DiskVolumeName(const std::string& vm, const Disk& disk);
// The cloud-init seed's volume: "<vm>-cidata-<first 8 of the inputs hash>.iso" (a new seed
// never overwrites the one an undo may go back to).
std::string SeedVolumeName(const std::string& vm, const std::string& inputs_hash);

}  // namespace gitvirt
