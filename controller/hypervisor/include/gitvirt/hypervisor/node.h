#pragma once
// A hypervisor node as the engine sees it: a few narrow ports, each for one concern, speaking
// in gitvirt's values. How a node keeps its domains (libvirt's XML, the test driver's files) is
// the adapter's business and never crosses a port; what the engine must keep and give back
// unchanged (a definition to restore, snapshot metadata to carry) crosses as an opaque value.
//
//   Domains      definitions: define, save and restore, undefine, ownership, autostart, disks
//   Power        start, stop, shutdown, reboot, suspend, resume
//   LiveChanges  what changes on a running domain without a restart
//   Storage      pools and volumes, their bytes
//   Snapshots    take, list, delete, revert; carry their metadata to another node
//   Guest        the guest OS: agent, addresses, console
//   Backups      copy a running domain's disks at one instant
// Moving a running domain between two nodes needs both: NodeSet's Migrations (node_set.h).
//
// The libvirt adapter (connect.h) implements every port for any libvirt URI and for simulated
// nodes; tests use the shared fake in tests/support/fake_node.h.
//
// Every method is safe to call from several threads at once. Names are domain names; methods on
// a domain that does not exist fail with ErrorCode::kNotFound. Methods a node cannot carry out
// (a test-driver node has no guest OS and no bytes in its volumes) fail with
// ErrorCode::kUnsupported; NodeCapabilities says which in advance.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gitvirt/core/config.h"
#include "gitvirt/core/error.h"
#include "gitvirt/core/model.h"
#include "gitvirt/core/observed.h"
#include "gitvirt/core/storage.h"

namespace gitvirt {

// ---- values crossing the ports ---------------------------------------------------------------

// An opaque copy of a domain's persistent definition, as the node keeps it (with everything the
// manifests cannot express), to be given back unchanged: the undo of an update or a delete, a VM
// moving to another node, the definition a backup carries. The engine stores it (journal,
// backup manifest) and returns it; only the adapter reads it.
struct SavedDomain {
  std::string bytes;
  bool empty() const { return bytes.empty(); }
  friend bool operator==(const SavedDomain&, const SavedDomain&) = default;
};

// The same for a domain's snapshot metadata, oldest first (parents before children).
struct SavedSnapshots {
  std::vector<std::string> items;
  friend bool operator==(const SavedSnapshots&, const SavedSnapshots&) = default;
};

// Everything needed to write a domain's definition.
struct DomainDefinition {
  VirtualMachine vm;  // desired; vm.spec.node is the node
  Ownership owner;    // gitvirt's mark, including the applied spec
  std::map<std::string, StorageRef> cdrom_sources;  // cdrom name -> storage
  std::optional<StorageRef> seed;                   // the cloud-init NoCloud ISO
  std::string graphics_password;  // resolved secret; only ever written into the definition
  std::string console_log;        // file the serial console is logged to ("" = none)
  // The domain's UUID, which a redefinition must carry: unset = unknown (Define looks it up),
  // "" = a new domain (the node assigns one; saves a round trip per create).
  std::optional<std::string> uuid;
};

// Where one disk of a defined domain is, as its definition says.
struct DiskLocation {
  std::string disk;  // gitvirt's disk name
  DiskFormat format = DiskFormat::kQcow2;
  StorageRef storage;  // the volume (or file) gitvirt made or named for it
  // gitvirt's external-snapshot overlays above the storage (Snapshots::Create on firmware that
  // rules internal snapshots out), the one in use first. The disk's content is read through the
  // first; a disk with overlays is not grown (the overlays would not grow with it).
  std::vector<std::string> overlays;
  // The file a reader must open to see the disk's current content: the top overlay, or the
  // storage's path when there is none ("" for a volume: ask the pool).
  std::string TopPath() const { return !overlays.empty() ? overlays.front() : storage.path; }
  friend bool operator==(const DiskLocation&, const DiskLocation&) = default;
};

// A VM to define from the definition a backup holds (Domains::DefineRestored), renamed.
struct RestoredDomain {
  SavedDomain from;
  std::string name;  // the new domain's name
  // Disk name -> the restored volume it runs on; disks not listed are left out of the new
  // definition (a disk not in the backup cannot be restored), as is the cloud-init seed.
  std::map<std::string, StorageRef> volumes;
  // true: gitvirt's owner mark is kept (renamed; `volumes` its created volumes, `job` its job);
  // false: removed, and gitvirt leaves the new VM alone.
  bool managed = false;
  std::string job;
};

struct VolumeSpec {
  std::string pool;
  std::string name;
  std::uint64_t capacity = 0;  // bytes; 0 = the size of what it is cloned from
  std::string format = "qcow2";
  std::optional<StorageRef> backing;     // linked clone: qcow2 backing file
  std::string backing_format;
  std::optional<StorageRef> copy_from;   // full clone: copy this volume or file
};

// Receives the bytes of a volume read from a node (Storage::ReadVolume): data and holes in
// order, then Finish, or Abort after an error.
class VolumeSink {
 public:
  virtual ~VolumeSink() = default;
  virtual Result<void> Write(const char* data, std::size_t size) = 0;
  virtual Result<void> Hole(std::uint64_t length) = 0;
  virtual Result<void> Finish() = 0;
  virtual void Abort() = 0;
};

struct SnapshotRequest {
  std::string name;
  std::string description;
  std::string policy;  // recorded in the snapshot's metadata ("" = by hand)
  bool memory = false;
  bool quiesce = false;
};

// How a snapshot was taken.
struct SnapshotTaken {
  // internal: qcow2 snapshots inside the disk images (with the RAM state of a running VM);
  // external: disk-only, each writable disk continues on a new overlay file, for VMs whose
  // firmware rules internal snapshots out.
  std::string kind = "internal";
  // The guest agent froze the filesystems around it (SnapshotRequest::quiesce); when it was
  // asked for and could not be, `note` says why and the snapshot is crash-consistent.
  bool quiesced = false;
  int frozen_filesystems = 0;
  std::string note;
};

// Where a live backup writes one disk: a file on the node, in the disk's format.
struct DiskBackupFile {
  std::string file;              // absolute path on the node; must not exist yet
  std::string format = "qcow2";  // qcow2 | raw
  friend bool operator==(const DiskBackupFile&, const DiskBackupFile&) = default;
};

// How a running domain moves to another node (Migrations::MigrateLive, node_set.h).
struct LiveMigration {
  // "pool/volume" of the disks whose contents are copied to the target while the guest runs
  // (each must exist on the target already, empty or with the same backing image); empty =
  // every disk is on shared storage.
  std::vector<std::string> copy_volumes;
  std::optional<std::uint64_t> bandwidth;  // bytes per second
  std::string address;  // where the target receives the migration; "" = the node's default
  // Every disk not copied is read-only and already on the target (cdroms, the cloud-init seed):
  // a shared-storage check would refuse them for being local.
  bool trust_storage = false;
};

// One address a running guest has (from its guest agent or a DHCP lease).
struct GuestAddress {
  std::string interface;  // the guest's name for the NIC (agent), or the node's (lease)
  std::string mac;        // lowercase, "" when unknown
  std::string address;    // without the prefix length
  int prefix = 0;
  bool ipv6 = false;
  friend bool operator==(const GuestAddress&, const GuestAddress&) = default;
};

enum class AddressSource { kAgent, kLease };

// ---- the ports -----------------------------------------------------------------------------

class Domains {
 public:
  virtual ~Domains() = default;
  // One domain, observed as Node::Observe observes each.
  virtual Result<ObservedVm> ObserveVm(const std::string& name) = 0;
  // Defines the domain, or redefines it (the persistent configuration; a running domain keeps
  // its live configuration until restarted). Autostart is set as the spec says. A redefinition
  // keeps the external-snapshot overlays the disks run on.
  virtual Result<void> Define(const DomainDefinition& definition) = 0;
  // The persistent definition, to give back to Restore later. Autostart is not part of it.
  virtual Result<SavedDomain> Save(const std::string& name) = 0;
  virtual Result<void> Restore(const SavedDomain& saved) = 0;
  // Defines a VM from a backup's definition (RestoredDomain says how it differs).
  virtual Result<void> DefineRestored(const RestoredDomain& restored) = 0;
  // Removes the definition (and its snapshot, checkpoint and firmware metadata). A running
  // domain is destroyed first.
  virtual Result<void> Undefine(const std::string& name) = 0;
  // Like Undefine, but the firmware's state (UEFI variables, TPM) stays on the node: a VM that
  // moves away leaves it there rather than destroying it. The same as Undefine where a node
  // keeps no such state.
  virtual Result<void> UndefineKeepingFirmwareState(const std::string& name) = 0;
  // Writes (or, with nullopt, removes) gitvirt's owner mark, changing nothing else.
  virtual Result<void> SetOwner(const std::string& name, const std::optional<Ownership>& owner) = 0;
  virtual Result<void> SetAutostart(const std::string& name, bool autostart) = 0;
  // The disks of the persistent definition, in device order.
  virtual Result<std::vector<DiskLocation>> Disks(const std::string& name) = 0;
};

class Power {
 public:
  virtual ~Power() = default;
  virtual Result<PowerState> Get(const std::string& name) = 0;
  virtual Result<void> Start(const std::string& name) = 0;
  virtual Result<void> Destroy(const std::string& name) = 0;  // force off
  // ACPI shutdown, waiting up to `timeout`; then force off when `force_after`, else kTimeout.
  virtual Result<void> Shutdown(const std::string& name, Seconds timeout, bool force_after) = 0;
  virtual Result<void> Reboot(const std::string& name) = 0;
  virtual Result<void> Suspend(const std::string& name) = 0;
  virtual Result<void> Resume(const std::string& name) = 0;
};

// Changes to a running domain (NodeCapabilities::live_device_changes, block_resize).
class LiveChanges {
 public:
  virtual ~LiveChanges() = default;
  virtual Result<void> SetVcpus(const std::string& name, int vcpus) = 0;
  virtual Result<void> SetMemory(const std::string& name, std::uint64_t bytes) = 0;
  // Hot-plugs the device as the definition describes it; unplugs it by gitvirt's name.
  virtual Result<void> AttachDisk(const DomainDefinition& definition, const std::string& disk) = 0;
  virtual Result<void> DetachDisk(const std::string& name, const std::string& disk) = 0;
  virtual Result<void> AttachNic(const DomainDefinition& definition, std::size_t index) = 0;
  virtual Result<void> DetachNic(const std::string& name, std::size_t index) = 0;
  virtual Result<void> ResizeDisk(const std::string& name, const std::string& disk, std::uint64_t bytes) = 0;
};

class Storage {
 public:
  virtual ~Storage() = default;
  // Creates (and starts) a directory pool the configuration declares, when missing.
  virtual Result<void> EnsurePool(const PoolConfig& pool) = 0;
  virtual Result<ObservedVolume> GetVolume(const std::string& pool, const std::string& name) = 0;
  virtual Result<void> CreateVolume(const VolumeSpec& spec) = 0;
  // Deletes the volume and gitvirt's external-snapshot overlays of it.
  virtual Result<void> DeleteVolume(const std::string& pool, const std::string& name) = 0;
  virtual Result<void> ResizeVolume(const std::string& pool, const std::string& name, std::uint64_t capacity) = 0;
  // Creates (or replaces) a volume with the bytes of a file on the controller.
  virtual Result<void> UploadVolume(const std::string& pool, const std::string& name,
                                    const std::string& local_file, const std::string& format) = 0;
  // Streams the bytes of a volume's file (a qcow2 container as it is, not the guest's view),
  // holes as holes, into `sink`, and finishes it.
  virtual Result<void> ReadVolume(const std::string& pool, const std::string& name, VolumeSink& sink) = 0;
  // Creates volume spec.name in spec.pool, spec.capacity bytes long, and returns the sink that
  // fills it with the bytes of a volume file read elsewhere; after Finish the pool sees the
  // format of what was written.
  virtual Result<std::unique_ptr<VolumeSink>> WriteVolume(const VolumeSpec& spec) = 0;
  // The volume that is the node's file `path`; a pool whose directory holds the file but has not
  // listed it yet is refreshed first. kNotFound when no pool holds it.
  virtual Result<ObservedVolume> GetVolumeByPath(const std::string& path) = 0;
  // The directory of a pool on the node.
  virtual Result<std::string> GetPoolPath(const std::string& pool) = 0;
  // Re-reads a pool's directory, so files others wrote there become volumes.
  virtual Result<void> RefreshPool(const std::string& pool) = 0;
};

class Snapshots {
 public:
  virtual ~Snapshots() = default;
  virtual Result<std::vector<ObservedSnapshot>> List(const std::string& name) = 0;
  // An internal snapshot; for a domain whose firmware rules those out (UEFI pflash), an
  // external disk-only one (a stopped one is started paused for it, and stopped again).
  virtual Result<SnapshotTaken> Create(const std::string& name, const SnapshotRequest& request) = 0;
  virtual Result<void> Delete(const std::string& name, const std::string& snapshot) = 0;
  // Reverts the domain to the snapshot; later snapshots of an external chain are dropped.
  virtual Result<void> Revert(const std::string& name, const std::string& snapshot) = 0;
  // The metadata of every snapshot, to Import on a node where the domain's disks already hold
  // them (a VM that moved).
  virtual Result<SavedSnapshots> Export(const std::string& name) = 0;
  virtual Result<void> Import(const std::string& name, const SavedSnapshots& snapshots) = 0;
};

// The guest OS behind a domain (NodeCapabilities::guests).
class Guest {
 public:
  virtual ~Guest() = default;
  // The guest agent answers a ping within `timeout` (kUnavailable when it is not connected or
  // does not answer).
  virtual Result<void> Ping(const std::string& name, std::chrono::seconds timeout) = 0;
  // Addresses of a running domain, from its agent or the DHCP leases of its networks; loopback
  // addresses are left out.
  virtual Result<std::vector<GuestAddress>> Addresses(const std::string& name, AddressSource source) = 0;
  // What the running domain has written to its serial console since it started, when the
  // controller can read the log file its definition names.
  virtual Result<std::string> ConsoleLog(const std::string& name) = 0;
};

class Backups {
 public:
  virtual ~Backups() = default;
  // Copies the given disks (gitvirt disk names) of an active domain into files on the node, all
  // at one instant, while the guest runs; waits for the copy up to `timeout`, then aborts it
  // (kTimeout). A copy left over by an earlier, interrupted call is aborted first; on a node
  // the controller shares a filesystem with, a leftover file is removed first.
  // kFailedPrecondition for an inactive domain.
  virtual Result<void> CopyDisks(const std::string& name, const std::map<std::string, DiskBackupFile>& disks,
                                 std::chrono::seconds timeout) = 0;
};

// One node: what it is, what it runs, and its ports. Owns its ports; they live as long as it.
class Node {
 public:
  virtual ~Node() = default;
  virtual const std::string& name() const = 0;
  virtual const NodeCapabilities& capabilities() const = 0;
  // Everything the planner needs to know of the node, in one value.
  virtual Result<ObservedNode> Observe() = 0;

  virtual Domains& domains() = 0;
  virtual Power& power() = 0;
  virtual LiveChanges& live() = 0;
  virtual Storage& storage() = 0;
  virtual Snapshots& snapshots() = 0;
  virtual Guest& guest() = 0;
  virtual Backups& backups() = 0;
};

}  // namespace gitvirt
