#pragma once
// The Hypervisor port: everything gitvirt asks of one node, in gitvirt's terms. The libvirt
// adapter (libvirt_hypervisor.h) is the implementation; the executor's pure tests use a fake.
//
// Every method is safe to call from several threads at once (libvirt connections are
// thread-safe, and the adapter serialises what is not). Names are domain names; methods on a
// domain that does not exist fail with ErrorCode::kNotFound.

#include <chrono>
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

// Everything needed to write a domain's definition.
struct DomainDefinition {
  VirtualMachine vm;  // desired; vm.spec.node is the node
  Ownership owner;    // gitvirt's mark, including the applied spec
  std::map<std::string, StorageRef> cdrom_sources;  // cdrom name -> storage
  std::optional<StorageRef> seed;                   // the cloud-init NoCloud ISO
  std::string graphics_password;  // resolved secret; only ever written into the XML
  std::string console_log;        // file the serial console is logged to ("" = none)
  // The domain's UUID, which a redefinition must carry: unset = unknown (Define looks it up),
  // "" = a new domain (libvirt assigns one; saves a round trip per create).
  std::optional<std::string> uuid;
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
  // external: disk-only, each writable disk continues on a new overlay file
  // (ExternalSnapshotOverlay), for VMs whose firmware rules internal snapshots out.
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

// Receives the bytes of a volume copied from another node (an offline migration): data and
// holes in order, then Finish, or Abort after an error.
class VolumeSink {
 public:
  virtual ~VolumeSink() = default;
  virtual Result<void> Write(const char* data, std::size_t size) = 0;
  virtual Result<void> Hole(std::uint64_t length) = 0;
  virtual Result<void> Finish() = 0;
  virtual void Abort() = 0;
};

// How a running domain moves to another node.
struct LiveMigration {
  // "pool/volume" of the disks whose contents are copied to the target while the guest runs
  // (libvirt NON_SHARED_DISK: each must exist on the target already, empty or with the same
  // backing image); empty = every disk is on shared storage.
  std::vector<std::string> copy_volumes;
  std::optional<std::uint64_t> bandwidth;  // bytes per second
  std::string address;  // where the target receives the migration; "" = libvirt's default
  // Every disk not copied is read-only and already on the target (cdroms, the cloud-init seed):
  // libvirt's shared-storage check (VIR_MIGRATE_UNSAFE) would refuse them for being local.
  bool trust_storage = false;
};

// One address a running guest has, as libvirt reports it (guest agent or DHCP lease).
struct GuestAddress {
  std::string interface;  // the guest's name for the NIC (agent), or libvirt's (lease)
  std::string mac;        // lowercase, "" when unknown
  std::string address;    // without the prefix length
  int prefix = 0;
  bool ipv6 = false;
  friend bool operator==(const GuestAddress&, const GuestAddress&) = default;
};

enum class AddressSource { kAgent, kLease };

class Hypervisor {
 public:
  virtual ~Hypervisor() = default;

  virtual const std::string& node() const = 0;
  virtual const NodeCapabilities& capabilities() const = 0;

  // ---- observation ----
  virtual Result<ObservedNode> Observe() = 0;
  virtual Result<ObservedVm> ObserveVm(const std::string& name) = 0;

  // ---- definitions ----
  // Defines the domain, or redefines it (the persistent configuration; a running domain keeps
  // its live configuration until restarted). Autostart is set as the spec says.
  virtual Result<void> Define(const DomainDefinition& definition) = 0;
  // The persistent definition, to restore later with DefineXml (undo of an update or delete).
  virtual Result<std::string> GetDefinitionXml(const std::string& name) = 0;
  virtual Result<void> DefineXml(const std::string& xml) = 0;
  // Removes the definition (and snapshot/checkpoint/NVRAM metadata). A running domain is
  // destroyed first.
  virtual Result<void> Undefine(const std::string& name) = 0;
  // Like Undefine, but the firmware's state (UEFI variables, TPM) stays on the node: a VM that
  // moves away leaves it there rather than destroying it. Where a node keeps no such state
  // (the test driver), the same as Undefine.
  virtual Result<void> UndefineKeepingFirmwareState(const std::string& name) { return Undefine(name); }
  virtual Result<void> SetOwner(const std::string& name, const std::optional<Ownership>& owner) = 0;
  virtual Result<void> SetAutostart(const std::string& name, bool autostart) = 0;

  // ---- power ----
  virtual Result<PowerState> GetPower(const std::string& name) = 0;
  virtual Result<void> Start(const std::string& name) = 0;
  virtual Result<void> Destroy(const std::string& name) = 0;
  // ACPI shutdown, waiting up to `timeout`; then force off when `force_after`, else kTimeout.
  virtual Result<void> Shutdown(const std::string& name, Seconds timeout, bool force_after) = 0;
  virtual Result<void> Reboot(const std::string& name) = 0;
  virtual Result<void> Suspend(const std::string& name) = 0;
  virtual Result<void> Resume(const std::string& name) = 0;

  // ---- live changes (running domains) ----
  virtual Result<void> SetVcpusLive(const std::string& name, int vcpus) = 0;
  virtual Result<void> SetMemoryLive(const std::string& name, std::uint64_t bytes) = 0;
  // Hot-plugs / unplugs the device as the definition describes it.
  virtual Result<void> AttachDiskLive(const DomainDefinition& definition, const std::string& disk) = 0;
  virtual Result<void> DetachDiskLive(const std::string& name, const std::string& disk) = 0;
  virtual Result<void> AttachNicLive(const DomainDefinition& definition, std::size_t index) = 0;
  virtual Result<void> DetachNicLive(const std::string& name, std::size_t index) = 0;
  virtual Result<void> ResizeDiskLive(const std::string& name, const std::string& disk,
                                      std::uint64_t bytes) = 0;

  // ---- storage ----
  virtual Result<void> EnsurePool(const PoolConfig& pool) = 0;
  virtual Result<ObservedVolume> GetVolume(const std::string& pool, const std::string& name) = 0;
  virtual Result<void> CreateVolume(const VolumeSpec& spec) = 0;
  virtual Result<void> DeleteVolume(const std::string& pool, const std::string& name) = 0;
  virtual Result<void> ResizeVolume(const std::string& pool, const std::string& name,
                                    std::uint64_t capacity) = 0;
  // Creates (or replaces) a volume with the bytes of a local file.
  virtual Result<void> UploadVolume(const std::string& pool, const std::string& name,
                                    const std::string& local_file, const std::string& format) = 0;
  // Streams the bytes of a volume's file (a qcow2 container as it is, not the guest's view),
  // holes as holes, into `sink`, and finishes it. kUnsupported where volumes hold no bytes
  // (the test driver).
  virtual Result<void> ReadVolume(const std::string& pool, const std::string& name, VolumeSink& sink) {
    (void)sink;
    return Fail(ErrorCode::kUnsupported, "this node cannot download volumes", pool + "/" + name);
  }
  // Creates volume spec.name in spec.pool, spec.capacity bytes long, and returns the sink that
  // fills it with the bytes of a volume file read elsewhere; after Finish the pool sees the
  // format of what was written. kUnsupported where volumes hold no bytes.
  virtual Result<std::unique_ptr<VolumeSink>> WriteVolume(const VolumeSpec& spec) {
    return Fail(ErrorCode::kUnsupported, "this node cannot upload volumes", spec.pool + "/" + spec.name);
  }

  // ---- snapshots ----
  virtual Result<std::vector<ObservedSnapshot>> ListSnapshots(const std::string& name) = 0;
  // QEMU: an internal snapshot; for a running VM with pflash (UEFI) firmware, where libvirt 9.0
  // refuses internal snapshots, an external disk-only one (a stopped UEFI VM cannot be
  // snapshotted: libvirt 9.0 cannot delete the external snapshots it makes of stopped VMs).
  // Deleting an external snapshot commits its overlay (libvirt does it); reverting to one is
  // not possible on libvirt 9.0.
  virtual Result<SnapshotTaken> CreateSnapshot(const std::string& name, const SnapshotRequest& request) = 0;
  virtual Result<void> DeleteSnapshot(const std::string& name, const std::string& snapshot) = 0;
  virtual Result<void> RevertSnapshot(const std::string& name, const std::string& snapshot) = 0;

  // Snapshot metadata, oldest first (parents before children), to carry it with a domain that
  // moves; RedefineSnapshots recreates it on a node where the domain's disks already hold the
  // snapshots (libvirt's REDEFINE).
  virtual Result<std::vector<std::string>> GetSnapshotXmls(const std::string& name) {
    return Fail(ErrorCode::kUnsupported, "this node cannot export snapshot metadata", name);
  }
  virtual Result<void> RedefineSnapshots(const std::string& name, const std::vector<std::string>& xmls) {
    if (xmls.empty()) return {};
    return Fail(ErrorCode::kUnsupported, "this node cannot redefine snapshots", name);
  }

  // ---- migration ----
  // Moves a running (or paused) domain to `target` while it runs, persistently, undefining it
  // here (libvirt LIVE | PERSIST_DEST | UNDEFINE_SOURCE, plus NON_SHARED_DISK for copy_volumes).
  // kUnsupported unless both nodes are QEMU nodes of this adapter.
  virtual Result<void> MigrateLive(const std::string& name, Hypervisor& target, const LiveMigration& options) {
    (void)target;
    (void)options;
    return Fail(ErrorCode::kUnsupported, "this node cannot migrate live", name);
  }

  // ---- the guest (readiness, addresses) ----
  // Defaults: kUnsupported, for drivers without a guest OS behind their domains (the test
  // driver); NodeCapabilities::guests says whether a node has them.
  //
  // The guest agent answers guest-ping within `timeout` (kUnavailable when it is not connected
  // or does not answer).
  virtual Result<void> GuestPing(const std::string& name, std::chrono::seconds timeout) {
    (void)timeout;
    return Fail(ErrorCode::kUnsupported, "this node cannot reach a guest agent", name);
  }
  // Addresses of a running domain: from its guest agent, or from the DHCP leases of the libvirt
  // networks it is on. Loopback addresses are left out.
  virtual Result<std::vector<GuestAddress>> InterfaceAddresses(const std::string& name, AddressSource source) {
    (void)source;
    return Fail(ErrorCode::kUnsupported, "this node cannot report guest addresses", name);
  }
  // What the running domain has written to its serial console since it started (the log file
  // the definition names), when the controller can read it.
  virtual Result<std::string> ReadConsoleLog(const std::string& name) {
    return Fail(ErrorCode::kUnsupported, "this node cannot show a console log", name);
  }

  // ---- backups ----
  // Copies the given disks (gitvirt disk names) of an active domain into files on the node (on a
  // node the controller shares a filesystem with, a leftover file is removed first), all
  // at one instant, while the guest runs (libvirt's push-mode backup, virDomainBackupBegin);
  // waits for the job up to `timeout`, then aborts it (kTimeout). A backup job left over by an
  // earlier, interrupted call is aborted first. kUnsupported on drivers without backups (the
  // test driver), kFailedPrecondition for an inactive domain.
  virtual Result<void> BackupDisks(const std::string& name,
                                   const std::map<std::string, DiskBackupFile>& disks,
                                   std::chrono::seconds timeout) {
    (void)disks;
    (void)timeout;
    return Fail(ErrorCode::kUnsupported, "this node cannot take live backups", name);
  }
  // What a backup of a node whose files the controller cannot read (a remote node) needs to
  // find and fetch disks through libvirt alone:
  //
  // The volume that is the node's file `path` (pool, name, format, backing file); a pool whose
  // directory holds the file but has not listed it yet is refreshed first. kNotFound when no
  // pool of the node holds it.
  virtual Result<ObservedVolume> GetVolumeByPath(const std::string& path) {
    return Fail(ErrorCode::kUnsupported, "this node cannot look volumes up by path", path);
  }
  // The directory of a pool on the node (its <target><path>).
  virtual Result<std::string> GetPoolPath(const std::string& pool) {
    return Fail(ErrorCode::kUnsupported, "this node cannot describe pools", pool);
  }
  // Re-reads a pool's directory, so files others wrote there (a backup job's target) become
  // volumes.
  virtual Result<void> RefreshPool(const std::string& pool) {
    return Fail(ErrorCode::kUnsupported, "this node cannot refresh pools", pool);
  }
};

}  // namespace gitvirt
