#ifdef GITVIRT_FAULT_INJECTION

#include "faulty_node.h"

#include <spdlog/spdlog.h>

#include <type_traits>

#include "domain_xml.h"
#include "fault_injection.h"
#include "retry.h"

namespace gitvirt {
namespace {

// FaultSeam for a call with an answer. A repeat after a lost answer that finds the work done
// answers with what the first call said.
template <typename T>
Result<T> Seam(spdlog::logger& log, const std::string& node, const Reconnect& reconnect, std::string_view kind,
               const std::string& subject, const std::function<Result<T>()>& call) {
  const std::string context = std::string(kind) + " " + subject + " on " + node;
  if (auto fault = InjectedFault(kind)) return std::unexpected(fault->Wrap(context));
  Result<T> result = call();
  InjectedKill(kind);
  if (!result || !InjectedConnectionLoss(kind)) return result;
  if (auto ok = reconnect("connection lost before the answer (GITVIRT_FAULTS lost)"); !ok) {
    return std::unexpected(ok.error().Wrap(context));
  }
  Result<T> repeat = call();
  if (!repeat && DoneBeforeTheAnswerWasLost(repeat.error())) {
    log.info("node={} {}: done before the connection was lost", node, context);
    return result;
  }
  return repeat;
}

// The ports: a change goes through the seam; a read, or a call the node refuses by what it is
// (NodeCapabilities, an import of nothing), goes straight to the node, as it changes nothing.
struct Seamed {
  Node& inner;
  const Reconnect& reconnect;
  spdlog::logger& log;
  template <typename T = void>
  Result<T> Change(std::string_view kind, const std::string& subject,
                   const std::type_identity_t<std::function<Result<T>()>>& call) {
    return Seam<T>(log, inner.name(), reconnect, kind, subject, call);
  }
};

class FaultyDomains final : public Domains, Seamed {
 public:
  explicit FaultyDomains(Seamed s) : Seamed(s) {}
  Domains& in() { return inner.domains(); }
  Result<ObservedVm> ObserveVm(const std::string& name) override { return in().ObserveVm(name); }
  Result<void> Define(const DomainDefinition& d) override {
    return Change("define", d.vm.meta.name, [&] { return in().Define(d); });
  }
  Result<SavedDomain> Save(const std::string& name) override { return in().Save(name); }
  Result<void> Restore(const SavedDomain& saved) override {
    return Change("define", DefinitionName(saved), [&] { return in().Restore(saved); });
  }
  Result<void> DefineRestored(const RestoredDomain& r) override {
    return Change("define", r.name, [&] { return in().DefineRestored(r); });
  }
  Result<void> Undefine(const std::string& name) override {
    return Change("undefine", name, [&] { return in().Undefine(name); });
  }
  Result<void> UndefineKeepingFirmwareState(const std::string& name) override {
    return Change("undefine", name, [&] { return in().UndefineKeepingFirmwareState(name); });
  }
  Result<void> SetOwner(const std::string& name, const std::optional<Ownership>& owner) override {
    return Change("set-metadata", name, [&] { return in().SetOwner(name, owner); });
  }
  Result<void> SetAutostart(const std::string& name, bool autostart) override {
    return Change("set-autostart", name, [&] { return in().SetAutostart(name, autostart); });
  }
  Result<std::vector<DiskLocation>> Disks(const std::string& name) override { return in().Disks(name); }
};

class FaultyPower final : public Power, Seamed {
 public:
  explicit FaultyPower(Seamed s) : Seamed(s) {}
  Power& in() { return inner.power(); }
  Result<PowerState> Get(const std::string& name) override { return in().Get(name); }
  Result<void> Start(const std::string& name) override {
    return Change("start", name, [&] { return in().Start(name); });
  }
  Result<void> Destroy(const std::string& name) override {
    return Change("destroy", name, [&] { return in().Destroy(name); });
  }
  // A shutdown forced after its timeout destroys the domain through the node's outermost Power
  // (libvirt_node.h): that destroy passes the seam as a call of its own.
  Result<void> Shutdown(const std::string& name, Seconds timeout, bool force_after) override {
    return Change("shutdown", name, [&] { return in().Shutdown(name, timeout, force_after); });
  }
  Result<void> Reboot(const std::string& name) override {
    return Change("reboot", name, [&] { return in().Reboot(name); });
  }
  Result<void> Suspend(const std::string& name) override {
    return Change("suspend", name, [&] { return in().Suspend(name); });
  }
  Result<void> Resume(const std::string& name) override {
    return Change("resume", name, [&] { return in().Resume(name); });
  }
};

class FaultyLiveChanges final : public LiveChanges, Seamed {
 public:
  explicit FaultyLiveChanges(Seamed s) : Seamed(s) {}
  LiveChanges& in() { return inner.live(); }
  Result<void> SetVcpus(const std::string& name, int vcpus) override {
    return Change("set-vcpus", name, [&] { return in().SetVcpus(name, vcpus); });
  }
  Result<void> SetMemory(const std::string& name, std::uint64_t bytes) override {
    return Change("set-memory", name, [&] { return in().SetMemory(name, bytes); });
  }
  Result<void> AttachDisk(const DomainDefinition& d, const std::string& disk) override {
    return Change("attach", d.vm.meta.name, [&] { return in().AttachDisk(d, disk); });
  }
  Result<void> DetachDisk(const std::string& name, const std::string& disk) override {
    return Change("detach", name, [&] { return in().DetachDisk(name, disk); });
  }
  Result<void> AttachNic(const DomainDefinition& d, std::size_t index) override {
    return Change("attach", d.vm.meta.name, [&] { return in().AttachNic(d, index); });
  }
  Result<void> DetachNic(const std::string& name, std::size_t index) override {
    return Change("detach", name, [&] { return in().DetachNic(name, index); });
  }
  Result<void> ResizeDisk(const std::string& name, const std::string& disk, std::uint64_t bytes) override {
    return Change("resize-disk", name, [&] { return in().ResizeDisk(name, disk, bytes); });
  }
};

class FaultyStorage final : public Storage, Seamed {
 public:
  explicit FaultyStorage(Seamed s) : Seamed(s) {}
  Storage& in() { return inner.storage(); }
  Result<void> EnsurePool(const PoolConfig& pool) override {
    return Change("ensure-pool", pool.name, [&] { return in().EnsurePool(pool); });
  }
  Result<ObservedVolume> GetVolume(const std::string& pool, const std::string& name) override {
    return in().GetVolume(pool, name);
  }
  Result<void> CreateVolume(const VolumeSpec& spec) override {
    return Change("create-volume", spec.pool + "/" + spec.name, [&] { return in().CreateVolume(spec); });
  }
  Result<void> DeleteVolume(const std::string& pool, const std::string& name) override {
    return Change("delete-volume", pool + "/" + name, [&] { return in().DeleteVolume(pool, name); });
  }
  Result<void> ResizeVolume(const std::string& pool, const std::string& name, std::uint64_t capacity) override {
    return Change("resize-volume", pool + "/" + name, [&] { return in().ResizeVolume(pool, name, capacity); });
  }
  Result<void> UploadVolume(const std::string& pool, const std::string& name, const std::string& local_file,
                            const std::string& format) override {
    return Change("upload-volume", pool + "/" + name,
                  [&] { return in().UploadVolume(pool, name, local_file, format); });
  }
  Result<void> ReadVolume(const std::string& pool, const std::string& name, VolumeSink& sink) override {
    return in().ReadVolume(pool, name, sink);
  }
  Result<std::unique_ptr<VolumeSink>> WriteVolume(const VolumeSpec& spec) override {
    if (!inner.capabilities().volume_upload) return in().WriteVolume(spec);
    return Change<std::unique_ptr<VolumeSink>>("upload-volume", spec.pool + "/" + spec.name,
                                               [&] { return in().WriteVolume(spec); });
  }
  Result<ObservedVolume> GetVolumeByPath(const std::string& path) override { return in().GetVolumeByPath(path); }
  Result<std::string> GetPoolPath(const std::string& pool) override { return in().GetPoolPath(pool); }
  Result<void> RefreshPool(const std::string& pool) override { return in().RefreshPool(pool); }
};

class FaultySnapshots final : public Snapshots, Seamed {
 public:
  explicit FaultySnapshots(Seamed s) : Seamed(s) {}
  Snapshots& in() { return inner.snapshots(); }
  Result<std::vector<ObservedSnapshot>> List(const std::string& name) override { return in().List(name); }
  Result<SnapshotTaken> Create(const std::string& name, const SnapshotRequest& request) override {
    return Change<SnapshotTaken>("snapshot-create", name, [&] { return in().Create(name, request); });
  }
  Result<void> Delete(const std::string& name, const std::string& snapshot) override {
    return Change("snapshot-delete", name, [&] { return in().Delete(name, snapshot); });
  }
  Result<void> Revert(const std::string& name, const std::string& snapshot) override {
    return Change("snapshot-revert", name, [&] { return in().Revert(name, snapshot); });
  }
  Result<SavedSnapshots> Export(const std::string& name) override { return in().Export(name); }
  Result<void> Import(const std::string& name, const SavedSnapshots& snapshots) override {
    if (snapshots.items.empty()) return in().Import(name, snapshots);
    return Change("snapshot-create", name, [&] { return in().Import(name, snapshots); });
  }
};

class FaultyBackups final : public Backups, Seamed {
 public:
  explicit FaultyBackups(Seamed s) : Seamed(s) {}
  Backups& in() { return inner.backups(); }
  Result<void> CopyDisks(const std::string& name, const std::map<std::string, DiskBackupFile>& disks,
                         std::chrono::seconds timeout) override {
    if (!inner.capabilities().backup) return in().CopyDisks(name, disks, timeout);
    return Change("backup", name, [&] { return in().CopyDisks(name, disks, timeout); });
  }
};

}  // namespace

Result<void> FaultSeam(spdlog::logger& log, const std::string& node, const Reconnect& reconnect, std::string_view kind,
                       const std::string& subject, const std::function<Result<void>()>& call) {
  return Seam<void>(log, node, reconnect, kind, subject, call);
}

struct FaultyNode::Ports {
  FaultyDomains domains;
  FaultyPower power;
  FaultyLiveChanges live;
  FaultyStorage storage;
  FaultySnapshots snapshots;
  FaultyBackups backups;
};

FaultyNode::FaultyNode(std::unique_ptr<Node> inner, Reconnect reconnect, std::shared_ptr<spdlog::logger> log)
    : inner_(std::move(inner)),
      reconnect_(std::move(reconnect)),
      log_(log ? std::move(log) : spdlog::default_logger()) {
  const Seamed s{*inner_, reconnect_, *log_};
  ports_.reset(new Ports{FaultyDomains(s), FaultyPower(s), FaultyLiveChanges(s), FaultyStorage(s), FaultySnapshots(s),
                         FaultyBackups(s)});
}

FaultyNode::~FaultyNode() = default;

Domains& FaultyNode::domains() { return ports_->domains; }
Power& FaultyNode::power() { return ports_->power; }
LiveChanges& FaultyNode::live() { return ports_->live; }
Storage& FaultyNode::storage() { return ports_->storage; }
Snapshots& FaultyNode::snapshots() { return ports_->snapshots; }
Backups& FaultyNode::backups() { return ports_->backups; }

}  // namespace gitvirt

#endif
