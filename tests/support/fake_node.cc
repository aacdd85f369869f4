#include "fake_node.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "gitvirt/core/json.h"
#include "gitvirt/core/storage.h"

namespace gitvirt::testing {
namespace {

using State = FakeNode::State;
using nlohmann::json;

std::unexpected<Error> NoDomain(const std::string& name) { return Fail(ErrorCode::kNotFound, "no domain " + name); }

std::unexpected<Error> Unsupported(const std::string& what, const std::string& subject) {
  return Fail(ErrorCode::kUnsupported, "this node cannot " + what, subject);
}

std::string Key(const std::string& pool, const std::string& volume) { return pool + "/" + volume; }

std::string StateName(PowerState power) {
  switch (power) {
    case PowerState::kRunning: return "running";
    case PowerState::kPaused: return "paused";
    case PowerState::kStopped: break;
  }
  return "shut off";
}

// The fake's own opaque format of a saved definition.
SavedDomain SaveOf(const FakeDomain& d) {
  json j = {{"vm", ToJson(d.vm)}, {"uuid", d.uuid}, {"overlays", d.overlays}};
  if (d.owner) j["owner"] = ToJson(*d.owner);
  return SavedDomain{j.dump()};
}

Result<FakeDomain> DomainOf(const SavedDomain& saved) {
  const json j = json::parse(saved.bytes, nullptr, false);
  if (!j.is_object() || !j.contains("vm")) return Fail(ErrorCode::kInvalidArgument, "not a saved definition");
  auto vm = VirtualMachineFromJson(j["vm"]);
  if (!vm) return std::unexpected(vm.error());
  FakeDomain d;
  d.vm = std::move(*vm);
  d.uuid = j.value("uuid", "");
  d.overlays = j.value("overlays", std::map<std::string, std::vector<std::string>>{});
  if (j.contains("owner")) {
    auto owner = OwnershipFromJson(j["owner"]);
    if (!owner) return std::unexpected(owner.error());
    d.owner = std::move(*owner);
  }
  return d;
}

std::optional<VmSpec> AppliedSpec(const std::optional<Ownership>& owner) {
  if (!owner || owner->applied_spec.empty()) return std::nullopt;
  const json j = json::parse(owner->applied_spec, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  auto spec = VmSpecFromJson(j);
  if (!spec) return std::nullopt;
  return std::move(*spec);
}

ObservedVm Observed(const std::string& node, const std::string& name, const FakeDomain& d) {
  ObservedVm vm;
  vm.name = name;
  vm.uuid = d.uuid;
  vm.node = node;
  vm.power = d.power;
  vm.state_detail = StateName(d.power);
  vm.persistent = true;
  vm.autostart = d.autostart;
  vm.actual = d.vm.spec;
  vm.actual.node = node;
  vm.actual.power_state = d.power;
  vm.actual.autostart = d.autostart;
  vm.owner = d.owner;
  vm.last_applied = d.last_applied;
  vm.snapshots = d.snapshots;
  return vm;
}

// Defines (or redefines) `d` under `name`, keeping what a redefinition keeps.
void Put(State& s, const std::string& name, FakeDomain d, int& uuids) {
  auto it = s.domains.find(name);
  if (it != s.domains.end()) {
    d.uuid = it->second.uuid;
    d.power = it->second.power;
    d.snapshots = it->second.snapshots;
    d.guest = it->second.guest;
    d.power_checks = it->second.power_checks;
    if (d.overlays.empty()) d.overlays = it->second.overlays;
  } else if (d.uuid.empty()) {
    d.uuid = "fake-uuid-" + std::to_string(++uuids);
  }
  s.domains[name] = std::move(d);
}

}  // namespace

// ---- calls -----------------------------------------------------------------------------------

const FakeNode::Failure* FakeNode::FailureFor(std::string_view operation, const std::string& subject) const {
  for (const Failure& f : failures_) {
    if (f.operation == operation && (f.subject.empty() || f.subject == subject)) return &f;
  }
  return nullptr;
}

template <typename T>
Result<T> FakeNode::Call(std::string_view operation, const std::string& subject,
                         const std::function<Result<T>(State&)>& body) {
  std::function<void(std::string_view, const std::string&)> hook;
  {
    std::lock_guard lock(mu_);
    hook = hook_;
  }
  if (hook) hook(operation, subject);
  std::lock_guard lock(mu_);
  ++calls_[std::string(operation)];
  const Failure* failure = FailureFor(operation, subject);
  if (failure != nullptr && !failure->after_effect) return std::unexpected(failure->error);
  Result<T> result = body(state_);
  if (failure != nullptr) return std::unexpected(failure->error);
  if (result) ++successes_[std::string(operation)];
  return result;
}

// ---- the ports -------------------------------------------------------------------------------

struct FakeNode::Ports {
  // The domain `name`, or kNotFound.
  static Result<FakeDomain*> Find(State& s, const std::string& name) {
    auto it = s.domains.find(name);
    if (it == s.domains.end()) return NoDomain(name);
    return &it->second;
  }
  static Result<FakePool*> FindPool(State& s, const std::string& pool) {
    auto it = s.pools.find(pool);
    if (it == s.pools.end()) return Fail(ErrorCode::kNotFound, "no pool " + pool);
    return &it->second;
  }
  static Result<FakeVolume*> FindVolume(State& s, const std::string& pool, const std::string& volume) {
    auto p = FindPool(s, pool);
    if (!p) return std::unexpected(p.error());
    auto it = (*p)->volumes.find(volume);
    if (it == (*p)->volumes.end()) return Fail(ErrorCode::kNotFound, "no volume " + Key(pool, volume));
    return &it->second;
  }
  static ObservedVolume Describe(const std::string& pool, const FakePool& p, const std::string& name,
                                 const FakeVolume& v) {
    ObservedVolume out;
    out.pool = pool;
    out.name = name;
    out.path = p.path + "/" + name;
    out.capacity = v.capacity;
    out.allocation = v.bytes.size();
    out.physical = v.bytes.size();
    out.format = v.format;
    out.backing = v.backing;
    return out;
  }
  static Result<ObservedVolume> Resolve(State& s, const StorageRef& ref) {
    for (auto& [pool, p] : s.pools) {
      for (auto& [name, v] : p.volumes) {
        if (ref.IsVolume() ? (pool == ref.pool && name == ref.volume) : p.path + "/" + name == ref.path) {
          return Describe(pool, p, name, v);
        }
      }
    }
    const std::string what = ref.IsVolume() ? Key(ref.pool, ref.volume) : ref.path;
    return Fail(ErrorCode::kNotFound, "no such volume or file: " + what);
  }

  class DomainsPort final : public Domains {
   public:
    explicit DomainsPort(FakeNode& n) : n_(n) {}
    Result<ObservedVm> ObserveVm(const std::string& name) override {
      return n_.Call<ObservedVm>("observe-vm", name, [&](State& s) -> Result<ObservedVm> {
        auto d = Find(s, name);
        if (!d) return std::unexpected(d.error());
        return Observed(n_.name_, name, **d);
      });
    }
    Result<void> Define(const DomainDefinition& def) override {
      return n_.Call<void>("define", def.vm.meta.name, [&](State& s) -> Result<void> {
        FakeDomain d;
        d.vm = def.vm;
        d.owner = def.owner;
        d.last_applied = AppliedSpec(d.owner);
        d.autostart = def.vm.spec.autostart;
        Put(s, def.vm.meta.name, std::move(d), uuids_);
        return {};
      });
    }
    Result<SavedDomain> Save(const std::string& name) override {
      return n_.Call<SavedDomain>("save", name, [&](State& s) -> Result<SavedDomain> {
        auto d = Find(s, name);
        if (!d) return std::unexpected(d.error());
        return SaveOf(**d);
      });
    }
    Result<void> Restore(const SavedDomain& saved) override {
      auto d = DomainOf(saved);
      if (!d) return std::unexpected(d.error());
      const std::string name = d->vm.meta.name;
      return n_.Call<void>("define", name, [&](State& s) -> Result<void> {
        const bool autostart = s.domains.contains(name) && s.domains.at(name).autostart;
        d->last_applied = AppliedSpec(d->owner);
        d->autostart = autostart;  // not part of a saved definition
        Put(s, name, std::move(*d), uuids_);
        return {};
      });
    }
    Result<void> DefineRestored(const RestoredDomain& r) override {
      auto d = DomainOf(r.from);
      if (!d) return std::unexpected(d.error());
      return n_.Call<void>("define", r.name, [&](State& s) -> Result<void> {
        FakeDomain out = std::move(*d);
        out.vm.meta.name = r.name;
        out.uuid.clear();
        out.overlays.clear();
        std::erase_if(out.vm.spec.disks, [&](const Disk& disk) { return !r.volumes.contains(disk.name); });
        for (Disk& disk : out.vm.spec.disks) {
          const StorageRef& ref = r.volumes.at(disk.name);
          disk.pool = ref.pool;
          disk.source = DiskSource{DiskSourceType::kVolume, ref.volume, CloneMode::kNone};
        }
        out.vm.spec.cloud_init.reset();
        for (Nic& nic : out.vm.spec.networks) nic.mac.clear();
        if (r.managed && out.owner) {
          out.owner->name = r.name;
          out.owner->job = r.job;
          out.owner->created_volumes.clear();
          for (const auto& [disk, ref] : r.volumes) out.owner->created_volumes.push_back(Key(ref.pool, ref.volume));
          out.owner->cloud_init_hash.clear();
        } else {
          out.owner.reset();
        }
        out.last_applied = AppliedSpec(out.owner);
        Put(s, r.name, std::move(out), uuids_);
        return {};
      });
    }
    Result<void> Undefine(const std::string& name) override { return Remove("undefine", name); }
    Result<void> UndefineKeepingFirmwareState(const std::string& name) override { return Remove("undefine", name); }
    Result<void> SetOwner(const std::string& name, const std::optional<Ownership>& owner) override {
      return n_.Call<void>("set-metadata", name, [&](State& s) -> Result<void> {
        auto d = Find(s, name);
        if (!d) return std::unexpected(d.error());
        (*d)->owner = owner;
        (*d)->last_applied = AppliedSpec(owner);
        return {};
      });
    }
    Result<void> SetAutostart(const std::string& name, bool autostart) override {
      return n_.Call<void>("set-autostart", name, [&](State& s) -> Result<void> {
        auto d = Find(s, name);
        if (!d) return std::unexpected(d.error());
        (*d)->autostart = autostart;
        return {};
      });
    }
    Result<std::vector<DiskLocation>> Disks(const std::string& name) override {
      return n_.Call<std::vector<DiskLocation>>("disks", name, [&](State& s) -> Result<std::vector<DiskLocation>> {
        auto d = Find(s, name);
        if (!d) return std::unexpected(d.error());
        std::vector<DiskLocation> out;
        for (const Disk& disk : (*d)->vm.spec.disks) {
          DiskLocation l{disk.name, disk.format, DiskStorage((*d)->vm, disk), {}};
          if (auto it = (*d)->overlays.find(disk.name); it != (*d)->overlays.end()) l.overlays = it->second;
          out.push_back(std::move(l));
        }
        return out;
      });
    }

   private:
    Result<void> Remove(std::string_view operation, const std::string& name) {
      return n_.Call<void>(operation, name, [&](State& s) -> Result<void> {
        if (s.domains.erase(name) == 0) return NoDomain(name);
        return {};
      });
    }
    FakeNode& n_;
    int uuids_ = 0;
  };

  class PowerPort final : public Power {
   public:
    explicit PowerPort(FakeNode& n) : n_(n) {}
    Result<PowerState> Get(const std::string& name) override {
      return n_.Call<PowerState>("get-power", name, [&](State& s) -> Result<PowerState> {
        auto d = Find(s, name);
        if (!d) return std::unexpected(d.error());
        FakeDomain& dom = **d;
        ++dom.power_checks;
        if (dom.guest.agent_answers_after >= 0 && dom.power_checks > dom.guest.agent_answers_after) {
          dom.guest.agent_answers = true;
        }
        if (dom.guest.stops_after >= 0 && dom.power_checks > dom.guest.stops_after) dom.power = PowerState::kStopped;
        return dom.power;
      });
    }
    Result<void> Start(const std::string& name) override {
      return Set("start", name, [](PowerState p) { return p == PowerState::kStopped ? PowerState::kRunning : p; });
    }
    Result<void> Destroy(const std::string& name) override {
      return Set("destroy", name, [](PowerState) { return PowerState::kStopped; });
    }
    Result<void> Shutdown(const std::string& name, Seconds, bool) override {
      return Set("shutdown", name, [](PowerState) { return PowerState::kStopped; });
    }
    Result<void> Reboot(const std::string& name) override {
      return Set("reboot", name, [](PowerState p) { return p; });
    }
    Result<void> Suspend(const std::string& name) override {
      return Set("suspend", name, [](PowerState p) { return p == PowerState::kRunning ? PowerState::kPaused : p; });
    }
    Result<void> Resume(const std::string& name) override {
      return Set("resume", name, [](PowerState p) { return p == PowerState::kPaused ? PowerState::kRunning : p; });
    }

   private:
    Result<void> Set(std::string_view operation, const std::string& name, PowerState (*next)(PowerState)) {
      return n_.Call<void>(operation, name, [&](State& s) -> Result<void> {
        auto d = Find(s, name);
        if (!d) return std::unexpected(d.error());
        (*d)->power = next((*d)->power);
        return {};
      });
    }
    FakeNode& n_;
  };

  class LivePort final : public LiveChanges {
   public:
    explicit LivePort(FakeNode& n) : n_(n) {}
    Result<void> SetVcpus(const std::string& name, int vcpus) override {
      return Change("set-vcpus", name, [&](FakeDomain& d) { d.vm.spec.vcpus = vcpus; });
    }
    Result<void> SetMemory(const std::string& name, std::uint64_t bytes) override {
      return Change("set-memory", name, [&](FakeDomain& d) { d.vm.spec.memory = bytes; });
    }
    Result<void> AttachDisk(const DomainDefinition& def, const std::string&) override {
      return Change("attach", def.vm.meta.name, [](FakeDomain&) {});
    }
    Result<void> DetachDisk(const std::string& name, const std::string&) override {
      return Change("detach", name, [](FakeDomain&) {});
    }
    Result<void> AttachNic(const DomainDefinition& def, std::size_t) override {
      return Change("attach", def.vm.meta.name, [](FakeDomain&) {});
    }
    Result<void> DetachNic(const std::string& name, std::size_t) override {
      return Change("detach", name, [](FakeDomain&) {});
    }
    Result<void> ResizeDisk(const std::string& name, const std::string& disk, std::uint64_t bytes) override {
      if (!n_.caps_.block_resize) return Unsupported("grow a running domain's disk", name);
      return Change("resize-disk", name, [&](FakeDomain& d) {
        for (Disk& x : d.vm.spec.disks) {
          if (x.name == disk) x.size = bytes;
        }
      });
    }

   private:
    Result<void> Change(std::string_view operation, const std::string& name,
                        const std::function<void(FakeDomain&)>& fn) {
      if (!n_.caps_.live_device_changes) return Unsupported("change a running domain", name);
      return n_.Call<void>(operation, name, [&](State& s) -> Result<void> {
        auto d = Find(s, name);
        if (!d) return std::unexpected(d.error());
        if ((*d)->power == PowerState::kStopped) return Fail(ErrorCode::kFailedPrecondition, name + " is not running");
        fn(**d);
        return {};
      });
    }
    FakeNode& n_;
  };

  class StoragePort final : public Storage {
   public:
    explicit StoragePort(FakeNode& n) : n_(n) {}
    Result<void> EnsurePool(const PoolConfig& pool) override {
      return n_.Call<void>("ensure-pool", pool.name, [&](State& s) -> Result<void> {
        s.pools.try_emplace(pool.name, FakePool{pool.path, {}});
        return {};
      });
    }
    Result<ObservedVolume> GetVolume(const std::string& pool, const std::string& name) override {
      return n_.Call<ObservedVolume>("get-volume", Key(pool, name), [&](State& s) -> Result<ObservedVolume> {
        auto v = FindVolume(s, pool, name);
        if (!v) return std::unexpected(v.error());
        return Describe(pool, s.pools.at(pool), name, **v);
      });
    }
    Result<void> CreateVolume(const VolumeSpec& spec) override {
      return n_.Call<void>("create-volume", Key(spec.pool, spec.name), [&](State& s) -> Result<void> {
        auto p = FindPool(s, spec.pool);
        if (!p) return std::unexpected(p.error());
        if ((*p)->volumes.contains(spec.name)) {
          return Fail(ErrorCode::kAlreadyExists, "volume " + Key(spec.pool, spec.name) + " exists already");
        }
        FakeVolume v;
        v.capacity = spec.capacity;
        v.format = spec.format;
        if (spec.backing) {
          auto base = Resolve(s, *spec.backing);
          if (!base) return std::unexpected(base.error());
          v.backing = base->path;
          if (v.capacity == 0) v.capacity = base->capacity;
        }
        if (spec.copy_from) {
          auto from = Resolve(s, *spec.copy_from);
          if (!from) return std::unexpected(from.error());
          if (v.capacity == 0) v.capacity = from->capacity;
          v.bytes = s.pools.at(from->pool).volumes.at(from->name).bytes;
        }
        (*p)->volumes[spec.name] = std::move(v);
        return {};
      });
    }
    Result<void> DeleteVolume(const std::string& pool, const std::string& name) override {
      return n_.Call<void>("delete-volume", Key(pool, name), [&](State& s) -> Result<void> {
        if (auto v = FindVolume(s, pool, name); !v) return std::unexpected(v.error());
        s.pools.at(pool).volumes.erase(name);
        return {};
      });
    }
    Result<void> ResizeVolume(const std::string& pool, const std::string& name, std::uint64_t capacity) override {
      if (!n_.caps_.volume_resize) return Unsupported("grow volumes", Key(pool, name));
      return n_.Call<void>("resize-volume", Key(pool, name), [&](State& s) -> Result<void> {
        auto v = FindVolume(s, pool, name);
        if (!v) return std::unexpected(v.error());
        (*v)->capacity = capacity;
        return {};
      });
    }
    Result<void> UploadVolume(const std::string& pool, const std::string& name, const std::string& local_file,
                              const std::string& format) override {
      std::ifstream in(local_file, std::ios::binary);
      if (!in) return Fail(ErrorCode::kIo, "cannot read", local_file);
      std::string bytes((std::istreambuf_iterator<char>(in)), {});
      return n_.Call<void>("upload-volume", Key(pool, name), [&](State& s) -> Result<void> {
        auto p = FindPool(s, pool);
        if (!p) return std::unexpected(p.error());
        FakeVolume v;
        v.capacity = bytes.size();
        v.format = format;
        if (n_.caps_.volume_upload) v.bytes = std::move(bytes);
        (*p)->volumes[name] = std::move(v);
        return {};
      });
    }
    // The bytes in 4 KiB blocks; a block of zeros goes as a hole.
    Result<void> ReadVolume(const std::string& pool, const std::string& name, VolumeSink& sink) override {
      if (!n_.caps_.volume_upload) return Unsupported("download volumes", Key(pool, name));
      auto bytes = n_.Call<std::string>("read-volume", Key(pool, name), [&](State& s) -> Result<std::string> {
        auto v = FindVolume(s, pool, name);
        if (!v) return std::unexpected(v.error());
        return (*v)->bytes;
      });
      if (!bytes) return std::unexpected(bytes.error());
      constexpr std::size_t kBlock = 4096;
      for (std::size_t at = 0; at < bytes->size(); at += kBlock) {
        const std::string_view block = std::string_view(*bytes).substr(at, kBlock);
        const bool zeros = block.find_first_not_of('\0') == std::string_view::npos;
        auto passed = zeros ? sink.Hole(block.size()) : sink.Write(block.data(), block.size());
        if (!passed) {
          sink.Abort();
          return passed;
        }
      }
      return sink.Finish();
    }
    Result<std::unique_ptr<VolumeSink>> WriteVolume(const VolumeSpec& spec) override {
      if (!n_.caps_.volume_upload) return Unsupported("upload volumes", Key(spec.pool, spec.name));
      auto made = n_.Call<void>("upload-volume", Key(spec.pool, spec.name), [&](State& s) -> Result<void> {
        auto p = FindPool(s, spec.pool);
        if (!p) return std::unexpected(p.error());
        if ((*p)->volumes.contains(spec.name)) {
          return Fail(ErrorCode::kAlreadyExists, "volume " + Key(spec.pool, spec.name) + " exists already");
        }
        (*p)->volumes[spec.name] = FakeVolume{spec.capacity, "raw", "", ""};
        return {};
      });
      if (!made) return std::unexpected(made.error());
      return std::unique_ptr<VolumeSink>(std::make_unique<Sink>(n_, spec.pool, spec.name));
    }
    Result<ObservedVolume> GetVolumeByPath(const std::string& path) override {
      return n_.Call<ObservedVolume>("get-volume-by-path", path, [&](State& s) -> Result<ObservedVolume> {
        auto found = Resolve(s, StorageRef{"", "", path});
        if (!found) return Fail(ErrorCode::kNotFound, "no pool of node " + n_.name_ + " holds " + path);
        return found;
      });
    }
    Result<std::string> GetPoolPath(const std::string& pool) override {
      return n_.Call<std::string>("get-pool-path", pool, [&](State& s) -> Result<std::string> {
        auto p = FindPool(s, pool);
        if (!p) return std::unexpected(p.error());
        return (*p)->path;
      });
    }
    Result<void> RefreshPool(const std::string& pool) override {
      return n_.Call<void>("refresh-pool", pool, [&](State& s) -> Result<void> {
        if (auto p = FindPool(s, pool); !p) return std::unexpected(p.error());
        return {};
      });
    }

   private:
    // Fills a volume WriteVolume made: holes as zeros; the format is what arrived (a qcow2
    // header says qcow2).
    class Sink final : public VolumeSink {
     public:
      Sink(FakeNode& n, std::string pool, std::string name) : n_(n), pool_(std::move(pool)), name_(std::move(name)) {}
      Result<void> Write(const char* data, std::size_t size) override {
        bytes_.append(data, size);
        return {};
      }
      Result<void> Hole(std::uint64_t length) override {
        bytes_.append(length, '\0');
        return {};
      }
      Result<void> Finish() override {
        std::lock_guard lock(n_.mu_);
        auto v = FindVolume(n_.state_, pool_, name_);
        if (!v) return std::unexpected(v.error());
        (*v)->format = bytes_.starts_with("QFI\xfb") ? "qcow2" : "raw";
        (*v)->bytes = std::move(bytes_);
        return {};
      }
      void Abort() override { bytes_.clear(); }

     private:
      FakeNode& n_;
      std::string pool_, name_, bytes_;
    };
    FakeNode& n_;
  };

  class SnapshotsPort final : public Snapshots {
   public:
    explicit SnapshotsPort(FakeNode& n) : n_(n) {}
    Result<std::vector<ObservedSnapshot>> List(const std::string& name) override {
      return n_.Call<std::vector<ObservedSnapshot>>("list-snapshots", name,
                                                    [&](State& s) -> Result<std::vector<ObservedSnapshot>> {
                                                      auto d = Find(s, name);
                                                      if (!d) return std::unexpected(d.error());
                                                      return (*d)->snapshots;
                                                    });
    }
    Result<SnapshotTaken> Create(const std::string& name, const SnapshotRequest& request) override {
      std::function<TimePoint()> clock;
      {
        std::lock_guard lock(n_.mu_);
        clock = n_.now_;
      }
      const TimePoint now =
          clock ? clock() : std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
      return n_.Call<SnapshotTaken>("snapshot-create", name, [&](State& s) -> Result<SnapshotTaken> {
        auto d = Find(s, name);
        if (!d) return std::unexpected(d.error());
        for (const ObservedSnapshot& x : (*d)->snapshots) {
          if (x.name == request.name) return Fail(ErrorCode::kAlreadyExists, "snapshot " + request.name + " exists");
        }
        for (ObservedSnapshot& x : (*d)->snapshots) x.current = false;
        ObservedSnapshot snap;
        snap.name = request.name;
        snap.created = now;
        snap.state = StateName((*d)->power);
        snap.description = request.description;
        snap.policy = request.policy;
        snap.current = true;
        (*d)->snapshots.push_back(std::move(snap));
        SnapshotTaken taken;
        if (request.quiesce) taken.note = "a fake node: no guest agent";
        return taken;
      });
    }
    Result<void> Delete(const std::string& name, const std::string& snapshot) override {
      return n_.Call<void>("snapshot-delete", name, [&](State& s) -> Result<void> {
        auto d = Find(s, name);
        if (!d) return std::unexpected(d.error());
        if (std::erase_if((*d)->snapshots, [&](const ObservedSnapshot& x) { return x.name == snapshot; }) == 0) {
          return Fail(ErrorCode::kNotFound, "no snapshot " + snapshot);
        }
        return {};
      });
    }
    Result<void> Revert(const std::string& name, const std::string& snapshot) override {
      return n_.Call<void>("snapshot-revert", name, [&](State& s) -> Result<void> {
        auto d = Find(s, name);
        if (!d) return std::unexpected(d.error());
        bool found = false;
        for (ObservedSnapshot& x : (*d)->snapshots) {
          x.current = x.name == snapshot;
          found = found || x.current;
        }
        if (!found) return Fail(ErrorCode::kNotFound, "no snapshot " + snapshot);
        return {};
      });
    }
    Result<SavedSnapshots> Export(const std::string& name) override {
      return n_.Call<SavedSnapshots>("export-snapshots", name, [&](State& s) -> Result<SavedSnapshots> {
        auto d = Find(s, name);
        if (!d) return std::unexpected(d.error());
        SavedSnapshots out;
        for (const ObservedSnapshot& x : (*d)->snapshots) {
          out.items.push_back(json{{"name", x.name},
                                   {"created", x.created.time_since_epoch().count()},
                                   {"state", x.state},
                                   {"description", x.description},
                                   {"policy", x.policy},
                                   {"current", x.current}}
                                  .dump());
        }
        return out;
      });
    }
    Result<void> Import(const std::string& name, const SavedSnapshots& snapshots) override {
      if (snapshots.items.empty()) return {};
      return n_.Call<void>("snapshot-create", name, [&](State& s) -> Result<void> {
        auto d = Find(s, name);
        if (!d) return std::unexpected(d.error());
        for (const std::string& item : snapshots.items) {
          const json j = json::parse(item);
          ObservedSnapshot snap;
          snap.name = j.at("name").get<std::string>();
          snap.created = TimePoint(std::chrono::seconds(j.at("created").get<long long>()));
          snap.state = j.at("state").get<std::string>();
          snap.description = j.at("description").get<std::string>();
          snap.policy = j.at("policy").get<std::string>();
          snap.current = j.at("current").get<bool>();
          (*d)->snapshots.push_back(std::move(snap));
        }
        return {};
      });
    }

   private:
    FakeNode& n_;
  };

  class GuestPort final : public Guest {
   public:
    explicit GuestPort(FakeNode& n) : n_(n) {}
    Result<void> Ping(const std::string& name, std::chrono::seconds) override {
      if (!n_.caps_.guests) return Unsupported("reach a guest agent", name);
      return n_.Call<void>("ping", name, [&](State& s) -> Result<void> {
        auto d = Find(s, name);
        if (!d) return std::unexpected(d.error());
        if (!(*d)->guest.agent_answers) return Fail(ErrorCode::kTimeout, "QEMU guest agent is not connected");
        return {};
      });
    }
    Result<std::vector<GuestAddress>> Addresses(const std::string& name, AddressSource source) override {
      if (!n_.caps_.guests) return Unsupported("report guest addresses", name);
      return n_.Call<std::vector<GuestAddress>>("addresses", name, [&](State& s) -> Result<std::vector<GuestAddress>> {
        auto d = Find(s, name);
        if (!d) return std::unexpected(d.error());
        const FakeGuest& g = (*d)->guest;
        if (source == AddressSource::kLease) return g.leases;
        if (!g.agent_answers) return Fail(ErrorCode::kTimeout, "QEMU guest agent is not connected");
        return g.agent_addresses;
      });
    }
    Result<std::string> ConsoleLog(const std::string& name) override {
      if (!n_.caps_.guests) return Unsupported("show a console log", name);
      return n_.Call<std::string>("console-log", name, [&](State& s) -> Result<std::string> {
        auto d = Find(s, name);
        if (!d) return std::unexpected(d.error());
        return (*d)->guest.console;
      });
    }

   private:
    FakeNode& n_;
  };

  class BackupsPort final : public Backups {
   public:
    explicit BackupsPort(FakeNode& n) : n_(n) {}
    // Each disk's bytes into a volume at the file's place (a pool whose directory holds it).
    Result<void> CopyDisks(const std::string& name, const std::map<std::string, DiskBackupFile>& disks,
                           std::chrono::seconds) override {
      if (!n_.caps_.backup) return Unsupported("take live backups", name);
      return n_.Call<void>("backup", name, [&](State& s) -> Result<void> {
        auto d = Find(s, name);
        if (!d) return std::unexpected(d.error());
        if ((*d)->power == PowerState::kStopped) {
          return Fail(ErrorCode::kFailedPrecondition, "a live backup needs a running (or paused) domain");
        }
        FakeCopy copy{name, disks, {}};
        for (const auto& [disk, file] : disks) {
          const Disk* found = nullptr;
          for (const Disk& x : (*d)->vm.spec.disks) {
            if (x.name == disk) found = &x;
          }
          if (found == nullptr) return Fail(ErrorCode::kNotFound, "the running domain has no disk " + disk);
          auto from = Resolve(s, DiskStorage((*d)->vm, *found));
          if (!from) return std::unexpected(from.error());
          const std::filesystem::path target(file.file);
          FakePool* into = nullptr;
          for (auto& [pool, p] : s.pools) {
            if (p.path == target.parent_path().string()) into = &p;
          }
          if (into == nullptr) return Fail(ErrorCode::kNotFound, "no pool holds " + file.file);
          const std::string volume = target.filename().string();
          if (into->volumes.contains(volume)) copy.existing.push_back(volume);
          into->volumes[volume] = FakeVolume{from->capacity, file.format, "",
                                             s.pools.at(from->pool).volumes.at(from->name).bytes};
        }
        s.last_copy = std::move(copy);
        return {};
      });
    }

   private:
    FakeNode& n_;
  };

  explicit Ports(FakeNode& n) : domains(n), power(n), live(n), storage(n), snapshots(n), guest(n), backups(n) {}
  DomainsPort domains;
  PowerPort power;
  LivePort live;
  StoragePort storage;
  SnapshotsPort snapshots;
  GuestPort guest;
  BackupsPort backups;
};

// ---- the node --------------------------------------------------------------------------------

NodeCapabilities FakeNode::Simulated() {
  NodeCapabilities c;
  c.driver = "TEST";
  c.volume_resize = true;
  c.persistent_simulation = true;
  return c;
}

NodeCapabilities FakeNode::Qemu() {
  NodeCapabilities c;
  c.driver = "QEMU";
  c.live_device_changes = c.block_resize = c.volume_resize = c.backup = c.migration = c.volume_upload = c.guests = true;
  return c;
}

FakeNode::FakeNode(std::string name, NodeCapabilities capabilities)
    : name_(std::move(name)), caps_(std::move(capabilities)), ports_(std::make_unique<Ports>(*this)) {}

FakeNode::~FakeNode() = default;

void FakeNode::SetClock(std::function<TimePoint()> now) {
  std::lock_guard lock(mu_);
  now_ = std::move(now);
}

void FakeNode::AddDomain(const std::string& name, PowerState power, std::optional<Ownership> owner) {
  std::lock_guard lock(mu_);
  FakeDomain& d = state_.domains[name];
  d.vm.meta.name = name;
  d.uuid = "fake-uuid-" + name;
  d.owner = std::move(owner);
  d.power = power;
}

void FakeNode::SetPower(const std::string& domain, PowerState power) {
  std::lock_guard lock(mu_);
  state_.domains.at(domain).power = power;
}

void FakeNode::SetLastApplied(const std::string& domain, std::optional<VmSpec> spec) {
  std::lock_guard lock(mu_);
  state_.domains.at(domain).last_applied = std::move(spec);
}

void FakeNode::ScriptGuest(const std::string& domain, const std::function<void(FakeGuest&)>& script) {
  std::lock_guard lock(mu_);
  script(state_.domains.at(domain).guest);
}

void FakeNode::AddPool(const std::string& name, const std::string& path) {
  std::lock_guard lock(mu_);
  state_.pools[name].path = path;
}

void FakeNode::SetVolumeBytes(const std::string& pool, const std::string& volume, std::string bytes) {
  std::lock_guard lock(mu_);
  state_.pools.at(pool).volumes.at(volume).bytes = std::move(bytes);
}

void FakeNode::Edit(const std::function<void(State&)>& edit) {
  std::lock_guard lock(mu_);
  edit(state_);
}

void FakeNode::FailCalls(std::string operation, std::string subject, Error error, bool after_effect) {
  std::lock_guard lock(mu_);
  failures_.push_back(Failure{std::move(operation), std::move(subject), std::move(error), after_effect});
}

void FakeNode::StopFailing() {
  std::lock_guard lock(mu_);
  failures_.clear();
}

void FakeNode::SetHook(std::function<void(std::string_view, const std::string&)> hook) {
  std::lock_guard lock(mu_);
  hook_ = std::move(hook);
}

int FakeNode::Calls(std::string_view operation) const {
  std::lock_guard lock(mu_);
  auto it = calls_.find(operation);
  return it == calls_.end() ? 0 : it->second;
}

int FakeNode::Successes(std::string_view operation) const {
  std::lock_guard lock(mu_);
  auto it = successes_.find(operation);
  return it == successes_.end() ? 0 : it->second;
}

std::vector<std::string> FakeNode::SnapshotNames(const std::string& domain) const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const ObservedSnapshot& s : state_.domains.at(domain).snapshots) out.push_back(s.name);
  return out;
}

std::optional<FakeVolume> FakeNode::Volume(const std::string& pool, const std::string& volume) const {
  std::lock_guard lock(mu_);
  auto p = state_.pools.find(pool);
  if (p == state_.pools.end()) return std::nullopt;
  auto v = p->second.volumes.find(volume);
  if (v == p->second.volumes.end()) return std::nullopt;
  return v->second;
}

std::optional<FakeCopy> FakeNode::LastCopy() const {
  std::lock_guard lock(mu_);
  return state_.last_copy;
}

FakeNode::State FakeNode::Snapshot() const {
  std::lock_guard lock(mu_);
  return state_;
}

Result<ObservedNode> FakeNode::Observe() {
  return Call<ObservedNode>("observe", name_, [&](State& s) -> Result<ObservedNode> {
    ObservedNode n;
    n.name = name_;
    n.reachable = true;
    n.cpus = s.cpus;
    n.memory = s.memory;
    n.capabilities = caps_;
    for (const auto& [name, d] : s.domains) n.vms.push_back(Observed(name_, name, d));
    for (const auto& [pool, p] : s.pools) {
      ObservedPool op{pool, p.path, true, {}};
      for (const auto& [name, v] : p.volumes) op.volumes.push_back(Ports::Describe(pool, p, name, v));
      n.pools.push_back(std::move(op));
    }
    n.networks = s.networks;
    return n;
  });
}

Domains& FakeNode::domains() { return ports_->domains; }
Power& FakeNode::power() { return ports_->power; }
LiveChanges& FakeNode::live() { return ports_->live; }
Storage& FakeNode::storage() { return ports_->storage; }
Snapshots& FakeNode::snapshots() { return ports_->snapshots; }
Guest& FakeNode::guest() { return ports_->guest; }
Backups& FakeNode::backups() { return ports_->backups; }

}  // namespace gitvirt::testing
