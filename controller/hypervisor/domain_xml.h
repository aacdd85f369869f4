#pragma once
// Domain XML, both ways, with pugixml (never by string concatenation: a name with `<` or `'`
// must not change the document). Pure functions: no libvirt calls, so they are tested without
// a hypervisor and the same XML serves the test driver and QEMU. Private to the hypervisor
// folder: the ports speak in values (node.h), and the XML stays behind them.
//
// Devices carry user aliases ("ua-disk-root", "ua-net-0", "ua-cdrom-install", "ua-cidata") so a
// definition read back maps onto the manifest's names whatever addresses libvirt assigned.

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "gitvirt/core/error.h"
#include "gitvirt/core/model.h"
#include "gitvirt/core/observed.h"
#include "gitvirt/hypervisor/node.h"

namespace gitvirt {

inline constexpr std::string_view kOwnerNamespace = "https://gitvirt.dev/xmlns/owner/1";
inline constexpr std::string_view kOwnerPrefix = "gitvirt";
// Where simulated nodes keep what the test driver forgets (autostart, state): sim_store.cc. Not
// the VM's own: never reported as something a manifest cannot express.
inline constexpr const char* kSimNamespace = "https://gitvirt.dev/xmlns/sim/1";

// The overlay file of an external (disk-only) snapshot gitvirt takes of a disk whose storage is
// the file `base` (the VMs whose firmware makes internal snapshots impossible): "<base>" +
// kOverlayInfix + the snapshot name, with characters other than [A-Za-z0-9._-] replaced by '_'.
// The infix is how a definition read back tells gitvirt's overlays from a disk's real source.
inline constexpr std::string_view kOverlayInfix = ".gvsnap-";
std::string ExternalSnapshotOverlay(const std::string& base, const std::string& snapshot);

// `virt_type` is the <domain type>: "kvm" where KVM works, else "qemu" (the test driver takes
// either).
std::string RenderDomainXml(const DomainDefinition& definition, std::string_view virt_type);
// One device, for live attach/detach.
Result<std::string> RenderDiskXml(const DomainDefinition& definition, const std::string& disk);
Result<std::string> RenderNicXml(const DomainDefinition& definition, std::size_t index);

std::string RenderOwnerXml(const Ownership& owner);
Result<Ownership> ParseOwnerXml(std::string_view xml);

// A definition read back: the spec as far as libvirt can tell, and where each device's storage is.
struct ParsedDomain {
  std::string name;
  std::string uuid;
  VmSpec spec;
  std::optional<Ownership> owner;
  std::map<std::string, StorageRef> disk_storage;   // disk name -> storage
  std::map<std::string, StorageRef> cdrom_storage;  // cdrom name -> storage
  std::optional<StorageRef> seed;                   // the cloud-init ISO, when attached
  std::vector<std::string> mdev_uuids;              // in device order
  // Disks running on gitvirt's external-snapshot overlays (ExternalSnapshotOverlay): disk name
  // -> the overlay files above its storage, the one in use first. disk_storage stays the
  // volume (or file) underneath, so an external snapshot is not a change of the disk.
  std::map<std::string, std::vector<std::string>> disk_overlays;
  // What the definition holds that `spec` cannot express (ObservedVm::unexpressed), by XML path.
  std::vector<std::string> unexpressed;
};

Result<ParsedDomain> ParseDomainXml(std::string_view xml);

// Where each disk of a definition read back is (Domains::Disks), in device order.
std::vector<DiskLocation> DiskLocations(const ParsedDomain& parsed);

// The name of the domain a saved definition defines ("" when it is not a domain's XML).
std::string DefinitionName(const SavedDomain& saved);

// The observed spec, ready to compare with the desired one: what the XML cannot say (clone
// sources, cloud-init contents, policies) is taken from the spec gitvirt last applied when the
// observed storage is what that spec would have produced; libvirt's expansions of what we set
// (machine "q35" -> "pc-q35-7.2") are folded back; disk sizes come from `capacity_of`.
using CapacityLookup = std::function<std::optional<std::uint64_t>(const StorageRef&)>;
VmSpec NormalizeObserved(const ParsedDomain& parsed, const std::optional<VmSpec>& last_applied,
                         const CapacityLookup& capacity_of);

// What the definition holds that the observed spec cannot express: the parse's, and a cloud-init
// seed no applied spec accounts for (a released VM's, whose inputs are gone with its mark).
std::vector<std::string> UnexpressedElements(const ParsedDomain& parsed, const std::optional<VmSpec>& last_applied);

}  // namespace gitvirt
