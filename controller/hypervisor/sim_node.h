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

// The adapter's storage, but for growing a volume: the test driver cannot, and a simulated
// volume is only metadata, so it is recreated at the new size.
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
  Storage& in();  // the adapter's
  Result<void> RecreateVolume(const std::string& pool, const std::string& name, std::uint64_t capacity);
  SimNode& node_;
};

// The ports are the adapter's (storage but for growth): the node keeps its files as the
// adapter's connection's ChangeObserver, which saves what each change touched right after it,
// on the same connection (a reconnect in between would load the files without the change).
class SimNode final : public Node, private ChangeObserver {
 public:
  // sim:PATH of `config`, its files created when missing; nothing is loaded yet.
  static Result<std::unique_ptr<SimNode>> Open(const NodeConfig& config, const HypervisorOptions& options);

  const std::string& name() const override { return adapter_->name(); }
  const NodeCapabilities& capabilities() const override { return caps_; }
  Result<ObservedNode> Observe() override;
  Domains& domains() override { return adapter_->domains(); }
  Power& power() override { return adapter_->power(); }
  LiveChanges& live() override { return adapter_->live(); }
  Storage& storage() override { return storage_; }
  Snapshots& snapshots() override { return adapter_->snapshots(); }
  Guest& guest() override { return adapter_->guest(); }      // refused: no guest OS
  Backups& backups() override { return adapter_->backups(); }  // refused: no disk bytes

  LibvirtNode& adapter() { return *adapter_; }

 private:
  SimNode(const NodeConfig& config, const HypervisorOptions& options);
  // The adapter's opener: the test driver loads the files, under the store's shared lock.
  Result<libvirt::Connection> Load();
  // ChangeObserver: no snapshot is kept once a change has started in this process; the domain
  // or pool a change touched is saved into the files.
  void Changing() override { changed_ = true; }
  Result<void> Changed(virConnectPtr c, const Touched& touched, bool succeeded) override;
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
  SimStorage storage_{*this};
};

}  // namespace gitvirt
