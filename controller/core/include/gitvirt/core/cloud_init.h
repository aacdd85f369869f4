#pragma once
// The NoCloud seed for a VM: meta-data, user-data (#cloud-config) and network-config (v2),
// rendered from the manifest. Pure; the engine writes the ISO and resolves secrets.
//
// The instance-id carries a fingerprint of the inputs, so any change to them makes cloud-init
// run its per-instance modules again. NICs are matched by MAC address: a NIC without a MAC in
// the manifest gets a stable one derived from the VM name and its position (DerivedMac), which
// the domain definition uses too.

#include <map>
#include <string>
#include <vector>

#include "gitvirt/core/model.h"

namespace gitvirt {

struct SeedFiles {
  std::string meta_data;
  std::string user_data;
  std::string network_config;
  std::string inputs_hash;  // fingerprint of everything above but the instance-id
};

// `password_hashes`: user name -> crypt(3) hash for users whose password comes from a secret
// (hashed by the engine; never the secret itself).
SeedFiles RenderSeed(const VirtualMachine& vm, const std::map<std::string, std::string>& password_hashes);

// The MAC each NIC will have: the manifest's, or 52:54:00 plus three bytes from the VM name and
// the NIC's position.
std::string NicMac(const VirtualMachine& vm, std::size_t index);

}  // namespace gitvirt
