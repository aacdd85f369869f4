#pragma once
// The libvirt adapter: the ports of one node (node.h) over one NodeConnection, for any libvirt
// URI. This header is the adapter's shape; each port is carried out in a file of its own
// (domains.cc, power.cc, live_changes.cc, storage.cc, snapshots.cc, guest.cc, backups.cc),
// observation in observe.cc, and the node itself (what its driver can do) in libvirt_node.cc.
// What is not libvirt's business lives in decorators around it: a simulated node's files and
// observation snapshot (sim_node.h, which also gives the adapter its connection's opener and
// is told of each change: ChangeObserver), and the fault seam of test builds (faulty_node.h);
// node_stack.cc assembles them. Moving a running domain needs two adapters (migrations.h).
//
// Thread-safety: as Node. Lifetime: the ports live as long as the node; `outermost()` as long
// as the decorator stack that owns the node.

#include <memory>
#include <string>

#include <spdlog/fwd.h>

#include "connection.h"
#include "gitvirt/core/config.h"
#include "gitvirt/hypervisor/connect.h"
#include "gitvirt/hypervisor/node.h"

namespace gitvirt {

class LibvirtNode;

class LibvirtDomains final : public Domains {
 public:
  explicit LibvirtDomains(LibvirtNode& node) : node_(node) {}
  Result<ObservedVm> ObserveVm(const std::string& name) override;
  Result<void> Define(const DomainDefinition& definition) override;
  Result<SavedDomain> Save(const std::string& name) override;
  Result<void> Restore(const SavedDomain& saved) override;
  Result<void> DefineRestored(const RestoredDomain& restored) override;
  Result<void> Undefine(const std::string& name) override;
  Result<void> UndefineKeepingFirmwareState(const std::string& name) override;
  Result<void> SetOwner(const std::string& name, const std::optional<Ownership>& owner) override;
  Result<void> SetAutostart(const std::string& name, bool autostart) override;
  Result<std::vector<DiskLocation>> Disks(const std::string& name) override;

 private:
  Result<void> DefineXml(const std::string& name, const std::string& xml);
  Result<void> UndefineDomain(const std::string& name, bool keep_firmware_state);
  LibvirtNode& node_;
};

class LibvirtPower final : public Power {
 public:
  explicit LibvirtPower(LibvirtNode& node) : node_(node) {}
  Result<PowerState> Get(const std::string& name) override;
  Result<void> Start(const std::string& name) override;
  Result<void> Destroy(const std::string& name) override;
  Result<void> Shutdown(const std::string& name, Seconds timeout, bool force_after) override;
  Result<void> Reboot(const std::string& name) override;
  Result<void> Suspend(const std::string& name) override;
  Result<void> Resume(const std::string& name) override;

 private:
  LibvirtNode& node_;
};

class LibvirtLiveChanges final : public LiveChanges {
 public:
  explicit LibvirtLiveChanges(LibvirtNode& node) : node_(node) {}
  Result<void> SetVcpus(const std::string& name, int vcpus) override;
  Result<void> SetMemory(const std::string& name, std::uint64_t bytes) override;
  Result<void> AttachDisk(const DomainDefinition& definition, const std::string& disk) override;
  Result<void> DetachDisk(const std::string& name, const std::string& disk) override;
  Result<void> AttachNic(const DomainDefinition& definition, std::size_t index) override;
  Result<void> DetachNic(const std::string& name, std::size_t index) override;
  Result<void> ResizeDisk(const std::string& name, const std::string& disk, std::uint64_t bytes) override;

 private:
  LibvirtNode& node_;
};

class LibvirtStorage final : public Storage {
 public:
  explicit LibvirtStorage(LibvirtNode& node) : node_(node) {}
  Result<void> EnsurePool(const PoolConfig& pool) override;
  Result<ObservedVolume> GetVolume(const std::string& pool, const std::string& name) override;
  Result<void> CreateVolume(const VolumeSpec& spec) override;
  Result<void> DeleteVolume(const std::string& pool, const std::string& name) override;
  Result<void> ResizeVolume(const std::string& pool, const std::string& name, std::uint64_t capacity) override;
  Result<void> UploadVolume(const std::string& pool, const std::string& name, const std::string& local_file,
                            const std::string& format) override;
  Result<void> ReadVolume(const std::string& pool, const std::string& name, VolumeSink& sink) override;
  Result<std::unique_ptr<VolumeSink>> WriteVolume(const VolumeSpec& spec) override;
  Result<ObservedVolume> GetVolumeByPath(const std::string& path) override;
  Result<std::string> GetPoolPath(const std::string& pool) override;
  Result<void> RefreshPool(const std::string& pool) override;

 private:
  LibvirtNode& node_;
};

class LibvirtSnapshots final : public Snapshots {
 public:
  explicit LibvirtSnapshots(LibvirtNode& node) : node_(node) {}
  Result<std::vector<ObservedSnapshot>> List(const std::string& name) override;
  Result<SnapshotTaken> Create(const std::string& name, const SnapshotRequest& request) override;
  Result<void> Delete(const std::string& name, const std::string& snapshot) override;
  Result<void> Revert(const std::string& name, const std::string& snapshot) override;
  Result<SavedSnapshots> Export(const std::string& name) override;
  Result<void> Import(const std::string& name, const SavedSnapshots& snapshots) override;

 private:
  LibvirtNode& node_;
};

class LibvirtGuest final : public Guest {
 public:
  explicit LibvirtGuest(LibvirtNode& node) : node_(node) {}
  Result<void> Ping(const std::string& name, std::chrono::seconds timeout) override;
  Result<std::vector<GuestAddress>> Addresses(const std::string& name, AddressSource source) override;
  Result<std::string> ConsoleLog(const std::string& name) override;

 private:
  LibvirtNode& node_;
};

class LibvirtBackups final : public Backups {
 public:
  explicit LibvirtBackups(LibvirtNode& node) : node_(node) {}
  Result<void> CopyDisks(const std::string& name, const std::map<std::string, DiskBackupFile>& disks,
                         std::chrono::seconds timeout) override;

 private:
  LibvirtNode& node_;
};

class LibvirtNode final : public Node {
 public:
  // A node whose connection opens now: its driver says what it can do (QEMU: everything the
  // capabilities name; the test driver: definitions, power, storage metadata, snapshots).
  static Result<std::unique_ptr<LibvirtNode>> Connect(const NodeConfig& config, const HypervisorOptions& options);
  // A node of libvirt's test driver whose connection opens at its first call that needs one,
  // through `opener` (a simulated node's files, named by `uri`); `observer` is told of every
  // change (and outlives the node).
  static std::unique_ptr<LibvirtNode> TestDriver(const NodeConfig& config, std::string uri,
                                                 NodeConnection::Opener opener, ChangeObserver& observer,
                                                 const HypervisorOptions& options);

  const std::string& name() const override { return config_.name; }
  const NodeCapabilities& capabilities() const override { return caps_; }
  Result<ObservedNode> Observe() override;  // observe.cc
  Domains& domains() override { return domains_; }
  Power& power() override { return power_; }
  LiveChanges& live() override { return live_; }
  Storage& storage() override { return storage_; }
  Snapshots& snapshots() override { return snapshots_; }
  Guest& guest() override { return guest_; }
  Backups& backups() override { return backups_; }

  // For the ports, the decorators and the migration.
  NodeConnection& connection() { return connection_; }
  const NodeConfig& config() const { return config_; }
  const std::string& uri() const { return uri_; }
  // The <domain type> definitions are written with: kvm, or qemu where KVM is not offered.
  const std::string& virt_type() const { return virt_type_; }
  spdlog::logger& log() const { return *log_; }
  // The node as its callers see it, decorators included. A composite operation calls its parts
  // through it (a shutdown forced after its timeout destroys the domain through
  // outermost().power()), so the decorators see each part as the call of its own it is.
  Node& outermost() const { return *outermost_; }
  void SetOutermost(Node& node) { outermost_ = &node; }

 private:
  LibvirtNode(const NodeConfig& config, std::string uri, NodeConnection::Opener opener,
              const HypervisorOptions& options, ChangeObserver* observer);
  Result<void> LearnCapabilities(const HypervisorOptions& options);

  const NodeConfig config_;
  const std::string uri_;
  const std::shared_ptr<spdlog::logger> log_;
  NodeConnection connection_;
  NodeCapabilities caps_;
  std::string virt_type_ = "kvm";
  Node* outermost_ = this;
  LibvirtDomains domains_{*this};
  LibvirtPower power_{*this};
  LibvirtLiveChanges live_{*this};
  LibvirtStorage storage_{*this};
  LibvirtSnapshots snapshots_{*this};
  LibvirtGuest guest_{*this};
  LibvirtBackups backups_{*this};
};

}  // namespace gitvirt
