#pragma once
// A simulated node (sim:PATH): libvirt's test driver, with its state in files (sim_store.h), as
// a decorator around the libvirt adapter. It
//   * gives the adapter its connection: the test driver loading the node's files, under the
//     store's shared lock, at the first call that needs libvirt (not when the node is opened);
//   * saves the domain or pool a change touched into the node's files after each change, so
//     `plan`, `apply` and `get` in separate processes see one host;
//   * answers Observe() from the node's observation snapshot while this process has neither
//     connected nor changed anything and the snapshot is of the files as they are, and keeps
//     such a snapshot after an observation that saw exactly the files of one generation
//     (DEVELOPERS.md, "Simulated nodes");
//   * says what a simulated node can do: the test driver's capabilities, persistent, and volume
//     growth emulated (a simulated volume is only metadata, recreated at the new size).
//
// Thread-safety: as Node. Lifetime: owns the adapter.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "gitvirt/core/config.h"
#include "gitvirt/hypervisor/connect.h"
#include "gitvirt/hypervisor/node.h"
#include "libvirt_node.h"
#include "sim_store.h"

namespace gitvirt {

class SimNode;

// The ports whose changes are saved: each forwards to the adapter's, then saves.
class SimDomains final : public Domains {
 public:
  explicit SimDomains(SimNode& node) : node_(node) {}
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
  SimNode& node_;
};

class SimPower final : public Power {
 public:
  explicit SimPower(SimNode& node) : node_(node) {}
  Result<PowerState> Get(const std::string& name) override;
  Result<void> Start(const std::string& name) override;
  Result<void> Destroy(const std::string& name) override;
  Result<void> Shutdown(const std::string& name, Seconds timeout, bool force_after) override;
  Result<void> Reboot(const std::string& name) override;
  Result<void> Suspend(const std::string& name) override;
  Result<void> Resume(const std::string& name) override;

 private:
  SimNode& node_;
};

class SimLiveChanges final : public LiveChanges {
 public:
  explicit SimLiveChanges(SimNode& node) : node_(node) {}
  Result<void> SetVcpus(const std::string& name, int vcpus) override;
  Result<void> SetMemory(const std::string& name, std::uint64_t bytes) override;
  Result<void> AttachDisk(const DomainDefinition& definition, const std::string& disk) override;
  Result<void> DetachDisk(const std::string& name, const std::string& disk) override;
  Result<void> AttachNic(const DomainDefinition& definition, std::size_t index) override;
  Result<void> DetachNic(const std::string& name, std::size_t index) override;
  Result<void> ResizeDisk(const std::string& name, const std::string& disk, std::uint64_t bytes) override;

 private:
  SimNode& node_;
};

class SimStorage final : public Storage {
 public:
  explicit SimStorage(SimNode& node) : node_(node) {}
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
  // A simulated volume is metadata: grown by recreating it at the new size.
  Result<void> RecreateVolume(const std::string& pool, const std::string& name, std::uint64_t capacity);
  SimNode& node_;
};

class SimSnapshots final : public Snapshots {
 public:
  explicit SimSnapshots(SimNode& node) : node_(node) {}
  Result<std::vector<ObservedSnapshot>> List(const std::string& name) override;
  Result<SnapshotTaken> Create(const std::string& name, const SnapshotRequest& request) override;
  Result<void> Delete(const std::string& name, const std::string& snapshot) override;
  Result<void> Revert(const std::string& name, const std::string& snapshot) override;
  Result<SavedSnapshots> Export(const std::string& name) override;
  Result<void> Import(const std::string& name, const SavedSnapshots& snapshots) override;

 private:
  SimNode& node_;
};

class SimNode final : public Node {
 public:
  // sim:PATH of `config`, its files created when missing; nothing is loaded yet.
  static Result<std::unique_ptr<SimNode>> Open(const NodeConfig& config, const HypervisorOptions& options);

  const std::string& name() const override { return adapter_->name(); }
  const NodeCapabilities& capabilities() const override { return caps_; }
  Result<ObservedNode> Observe() override;
  Domains& domains() override { return domains_; }
  Power& power() override { return power_; }
  LiveChanges& live() override { return live_; }
  Storage& storage() override { return storage_; }
  Snapshots& snapshots() override { return snapshots_; }
  // The test driver has neither guests nor backups: the adapter's refusals, as they are.
  Guest& guest() override { return adapter_->guest(); }
  Backups& backups() override { return adapter_->backups(); }

  LibvirtNode& adapter() { return *adapter_; }

  // For the ports: a change is about to reach the test driver (no snapshot is kept from now
  // on), and the files it changed are saved after it, whatever its result; a failed save fails
  // a change that succeeded.
  void Changing() { changed_ = true; }
  Result<void> SaveDomain(const std::string& domain, Result<void> result);
  Result<void> SavePool(const std::string& pool, Result<void> result);

 private:
  SimNode(const NodeConfig& config, const HypervisorOptions& options);
  // The adapter's opener: the test driver loads the files, under the store's shared lock.
  Result<libvirt::Connection> Load();
  std::string SnapshotKey() const;
  bool SnapshotsUsable() const;
  std::optional<ObservedNode> FromSnapshot();
  void KeepSnapshot(const ObservedNode& node);

  libvirt::SimStore store_;
  const bool snapshots_enabled_;
  std::unique_ptr<LibvirtNode> adapter_;
  NodeCapabilities caps_;
  std::atomic<bool> changed_{false};  // a change has started in this process
  std::mutex mu_;
  std::optional<std::uint64_t> loaded_generation_;  // of the files the connection loaded
  std::optional<std::uint64_t> snapshot_written_;
  SimDomains domains_{*this};
  SimPower power_{*this};
  SimLiveChanges live_{*this};
  SimStorage storage_{*this};
  SimSnapshots snapshots_{*this};
};

}  // namespace gitvirt
