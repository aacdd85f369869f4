#include "gitvirt/engine/step_runner.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <mutex>
#include <set>
#include <thread>

#include "gitvirt/core/cloud_init.h"
#include "gitvirt/core/json.h"
#include "gitvirt/core/diff.h"
#include "gitvirt/core/planner.h"
#include "gitvirt/core/storage.h"
#include "gitvirt/engine/artifacts.h"
#include "gitvirt/engine/backup.h"
#include "gitvirt/engine/migration.h"
#include "gitvirt/engine/readiness.h"
#include "gitvirt/engine/step_records.h"

namespace gitvirt {

using nlohmann::json;

namespace {

std::pair<std::string, std::string> SplitVolume(const std::string& pool_slash_name) {
  const auto slash = pool_slash_name.find('/');
  return {pool_slash_name.substr(0, slash), pool_slash_name.substr(slash + 1)};
}

}  // namespace

struct LibvirtStepRunner::Impl {
  NodeSet& nodes;
  const Plan& plan;
  const std::vector<Image>& images;
  StepRunnerOptions options;
  SecretResolver secrets;
  std::shared_ptr<spdlog::logger> log;

  // Whether `action` depends on a create (or replace) of its own target in this plan.
  bool FollowsCreateOf(const Action& action) const {
    for (const std::string& id : action.depends_on) {
      for (const Action& a : plan.actions) {
        if (a.id == id && a.target == action.target && a.node == action.node &&
            (a.type == ActionType::kCreate || a.type == ActionType::kReplace)) {
          return true;
        }
      }
    }
    return false;
  }

  Result<gitvirt::Node*> Node(const std::string& name) {
    gitvirt::Node* hv = nodes.Find(name);
    if (hv == nullptr) {
      const std::string& why = nodes.ConnectError(name);
      return Fail(ErrorCode::kUnavailable, "node " + name + " is not connected" + (why.empty() ? "" : ": " + why));
    }
    return hv;
  }

  const Image* FindImage(const std::string& name) const {
    for (const Image& i : images) {
      if (i.meta.name == name) return &i;
    }
    return nullptr;
  }

  // Pools the configuration declares for this node are created when missing.
  Result<void> EnsurePools(gitvirt::Node& hv, const std::set<std::string>& pools) {
    const NodeConfig* node = nodes.FindConfig(hv.name());
    if (node == nullptr) return {};
    for (const PoolConfig& p : node->pools) {
      if (!pools.contains(p.name)) continue;
      if (auto ok = hv.storage().EnsurePool(p); !ok) return ok;
    }
    return {};
  }

  std::set<std::string> PoolsOf(const VirtualMachine& vm) const {
    std::set<std::string> pools;
    for (const Disk& d : vm.spec.disks) {
      if (d.source.type != DiskSourceType::kPath) pools.insert(d.pool);
    }
    pools.insert(SeedPool(vm));
    return pools;
  }

  static std::string SeedPool(const VirtualMachine& vm) {
    for (const Disk& d : vm.spec.disks) {
      if (d.source.type != DiskSourceType::kPath) return d.pool;
    }
    return "default";
  }

  Result<VolumeSpec> VolumeFor(const VirtualMachine& vm, const Disk& disk) const {
    VolumeSpec v;
    const StorageRef ref = DiskStorage(vm, disk);
    v.pool = ref.pool;
    v.name = ref.volume;
    v.format = std::string(EnumName(disk.format));
    v.capacity = disk.size.value_or(0);
    std::optional<StorageRef> base;
    std::string base_format = v.format;
    switch (disk.source.type) {
      case DiskSourceType::kNew: break;
      case DiskSourceType::kImage: {
        const Image* image = FindImage(disk.source.ref);
        if (image == nullptr) return Fail(ErrorCode::kNotFound, "Image " + disk.source.ref + " is not in the plan");
        base = StorageRef{image->spec.pool, image->VolumeName(), ""};
        base_format = std::string(EnumName(image->spec.format));
        break;
      }
      case DiskSourceType::kVolume: base = StorageRef{disk.pool, disk.source.ref, ""}; break;
      case DiskSourceType::kPath: base = StorageRef{"", "", disk.source.ref}; break;
    }
    if (base) {
      if (disk.source.clone == CloneMode::kLinked) {
        v.backing = base;
        v.backing_format = base_format;
      } else {
        v.copy_from = base;
      }
    }
    return v;
  }

  // Creates each volume the VM's disks need that does not exist yet, recording it for undo
  // before creating it. A volume that exists but that this step did not create is refused:
  // gitvirt never takes over storage it does not know.
  Result<void> EnsureDiskVolumes(gitvirt::Node& hv, const VirtualMachine& vm, StepContext& ctx,
                                 const std::vector<std::string>& owned_before) {
    for (const Disk& disk : vm.spec.disks) {
      if (disk.source.type != DiskSourceType::kNew && disk.source.clone == CloneMode::kNone) continue;
      auto spec = VolumeFor(vm, disk);
      if (!spec) return std::unexpected(spec.error());
      auto undo = UndoSoFar<DefinitionUndo>(ctx);
      if (!undo) return std::unexpected(undo.error());
      std::vector<std::string>& volumes = undo->volumes;
      const std::string key = spec->pool + "/" + spec->name;
      if (auto existing = hv.storage().GetVolume(spec->pool, spec->name)) {
        const bool ours = std::find(volumes.begin(), volumes.end(), key) != volumes.end() ||
                          std::find(owned_before.begin(), owned_before.end(), key) != owned_before.end();
        if (ours) continue;
        return Fail(ErrorCode::kAlreadyExists,
                    "volume " + key + " exists and gitvirt did not create it; remove it, or use it "
                    "with `source: {volume: " + spec->name + "}`",
                    "disk " + disk.name + " of " + vm.meta.name);
      }
      volumes.push_back(key);
      if (auto ok = RecordUndo(ctx, *undo); !ok) return ok;
      if (auto ok = hv.storage().CreateVolume(*spec); !ok) return ok;
      ctx.Event(EventLevel::kInfo, "created volume " + key + " (" + DescribeDisk(disk) + ")");
    }
    return {};
  }

  struct Seed {
    StorageRef ref;
    std::string hash;
  };

  // Renders, writes and uploads the VM's NoCloud seed unless a volume with the same inputs is
  // there already.
  Result<std::optional<Seed>> EnsureSeed(gitvirt::Node& hv, const VirtualMachine& vm, StepContext& ctx) {
    if (!vm.spec.cloud_init) return std::optional<Seed>{};
    std::map<std::string, std::string> hashes;
    for (const CloudInitUser& u : vm.spec.cloud_init->users) {
      if (!u.password_from) continue;
      auto secret = secrets.Resolve(*u.password_from);
      if (!secret) return std::unexpected(secret.error().Wrap("cloud-init user " + u.name + " of " + vm.meta.name));
      auto hash = HashPassword(*secret, vm.meta.name + "/" + u.name);
      if (!hash) return std::unexpected(hash.error());
      hashes[u.name] = *hash;
    }
    const SeedFiles files = RenderSeed(vm, hashes);
    Seed seed{StorageRef{SeedPool(vm), SeedVolumeName(vm.meta.name, files.inputs_hash), ""}, files.inputs_hash};
    if (hv.storage().GetVolume(seed.ref.pool, seed.ref.volume)) return std::optional<Seed>{seed};
    const std::string iso = (std::filesystem::path(options.paths.seeds) / seed.ref.volume).string();
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(iso).parent_path(), ec);
    if (auto ok = WriteSeedIso(files, iso); !ok) return std::unexpected(ok.error());
    auto undo = UndoSoFar<DefinitionUndo>(ctx);
    if (!undo) return std::unexpected(undo.error());
    undo->volumes.push_back(seed.ref.pool + "/" + seed.ref.volume);
    if (auto ok = RecordUndo(ctx, *undo); !ok) return std::unexpected(ok.error());
    auto uploaded = hv.storage().UploadVolume(seed.ref.pool, seed.ref.volume, iso, "raw");
    std::filesystem::remove(iso, ec);
    if (!uploaded) return std::unexpected(uploaded.error());
    ctx.Event(EventLevel::kInfo, "cloud-init seed " + seed.ref.volume + " written");
    return std::optional<Seed>{seed};
  }

  // gitvirt's mark for `vm` as this job applies it (created volumes and seed aside).
  Ownership OwnerMark(const VirtualMachine& vm, const StepContext& ctx) const {
    Ownership o;
    o.kind = Kind::kVirtualMachine;
    o.name = vm.meta.name;
    if (vm.cluster) {
      o.cluster = vm.cluster->cluster;
      o.group = vm.cluster->group;
    }
    o.spec_hash = SpecHash(vm.spec);
    o.revision = plan.revision;
    o.job = ctx.job_id();
    o.labels = vm.meta.labels;
    o.tags = vm.meta.tags;
    o.applied_spec = ToJson(vm.spec).dump();
    return o;
  }

  Result<DomainDefinition> Definition(gitvirt::Node& hv, const VirtualMachine& vm, StepContext& ctx,
                                      const std::vector<std::string>& owned_before,
                                      const std::optional<Seed>& seed) {
    DomainDefinition def;
    def.vm = vm;
    def.owner = OwnerMark(vm, ctx);
    Ownership& o = def.owner;
    std::set<std::string> created(owned_before.begin(), owned_before.end());
    auto undo = UndoSoFar<DefinitionUndo>(ctx);
    if (!undo) return std::unexpected(undo.error());
    created.insert(undo->volumes.begin(), undo->volumes.end());
    o.created_volumes.assign(created.begin(), created.end());
    if (seed) {
      def.seed = seed->ref;
      o.cloud_init_hash = seed->hash;
    }
    for (const Cdrom& c : vm.spec.cdroms) {
      if (c.image.empty()) continue;
      const Image* image = FindImage(c.image);
      if (image == nullptr) return Fail(ErrorCode::kNotFound, "Image " + c.image + " is not in the plan");
      def.cdrom_sources[c.name] = StorageRef{image->spec.pool, image->VolumeName(), ""};
    }
    if (vm.spec.graphics.password_from) {
      auto password = secrets.Resolve(*vm.spec.graphics.password_from);
      if (!password) return std::unexpected(password.error().Wrap("graphics password of " + vm.meta.name));
      def.graphics_password = *password;
    }
    if (auto dir = ConsoleDir(hv); !dir.empty()) def.console_log = (std::filesystem::path(dir) / (vm.meta.name + ".log")).string();
    return def;
  }

  // Where the node logs serial consoles: the node's consoleDir, else (on a node with guests
  // whose files the controller can read) the runner's console_dir, created here. Remote nodes
  // without consoleDir log nothing: gitvirt cannot create a directory there.
  std::string ConsoleDir(gitvirt::Node& hv) {
    const NodeConfig* node = nodes.FindConfig(hv.name());
    if (node != nullptr && !node->console_dir.empty()) {
      if (node->IsLocal()) {
        std::error_code ec;
        std::filesystem::create_directories(node->console_dir, ec);
      }
      return node->console_dir;
    }
    if (!hv.capabilities().guests || node == nullptr || !node->IsLocal() || options.paths.console.empty()) return "";
    std::error_code ec;
    std::filesystem::create_directories(options.paths.console, ec);
    if (ec) {
      log->warn("node={} cannot create the console log directory {}: {}", hv.name(), options.paths.console, ec.message());
      return "";
    }
    return options.paths.console;
  }

  // ---- actions ---------------------------------------------------------------------------

  Result<std::string> Create(gitvirt::Node& hv, const VirtualMachine& vm, StepContext& ctx) {
    // A first attempt trusts the plan, which saw no such domain moments ago: Define itself
    // refuses a name that appeared since (without a UUID libvirt will not redefine it), so only a
    // resumed attempt, which may have defined it already, looks first. Saves a round trip.
    auto earlier = UndoSoFar<DefinitionUndo>(ctx);
    if (!earlier) return std::unexpected(earlier.error());
    const bool first_attempt = *earlier == DefinitionUndo{};
    std::optional<std::string> uuid;  // what Define needs to know; unset: let it look
    Result<ObservedVm> existing = Fail(ErrorCode::kNotFound, "not looked up");
    if (first_attempt) {
      uuid = "";
    } else {
      existing = hv.domains().ObserveVm(vm.meta.name);
      if (!existing && existing.error().code == ErrorCode::kNotFound) uuid = "";
    }
    if (existing) {
      uuid = existing->uuid;
      if (!existing->Owned()) {
        return Fail(ErrorCode::kAlreadyExists,
                    "a domain named " + vm.meta.name + " exists on " + hv.name() + " and is not gitvirt's");
      }
      if (existing->owner->spec_hash == SpecHash(vm.spec)) {
        ctx.Event(EventLevel::kInfo, vm.meta.name + " is already defined as planned");
        return json{{"alreadyDone", true}}.dump();
      }
    }
    if (auto ok = EnsurePools(hv, PoolsOf(vm)); !ok) return std::unexpected(ok.error());
    if (auto ok = EnsureDiskVolumes(hv, vm, ctx, {}); !ok) return std::unexpected(ok.error());
    auto seed = EnsureSeed(hv, vm, ctx);
    if (!seed) return std::unexpected(seed.error());
    auto def = Definition(hv, vm, ctx, {}, *seed);
    if (!def) return std::unexpected(def.error());
    def->uuid = uuid;
    {
      auto undo = UndoSoFar<DefinitionUndo>(ctx);
      if (!undo) return std::unexpected(undo.error());
      undo->defined = true;
      if (auto ok = RecordUndo(ctx, *undo); !ok) return std::unexpected(ok.error());
    }
    if (auto ok = hv.domains().Define(*def); !ok) {
      // Say why in plain words when the name was taken since the plan.
      if (auto now = hv.domains().ObserveVm(vm.meta.name); first_attempt && now && !now->Owned()) {
        return Fail(ErrorCode::kAlreadyExists, "a domain named " + vm.meta.name + " appeared on " + hv.name() +
                                                   " since the plan and is not gitvirt's");
      }
      return std::unexpected(ok.error());
    }
    return json{{"volumes", def->owner.created_volumes}}.dump();
  }

  // Takes over a domain gitvirt does not own: writes the owner mark (the manifest's spec as the
  // applied one, no volume as gitvirt's) and nothing else; no redefinition, no power change.
  // Converges: a domain already carrying this spec's mark is done; one carrying another mark
  // (taken since the plan) is not touched.
  Result<std::string> Adopt(gitvirt::Node& hv, const VirtualMachine& vm, StepContext& ctx) {
    auto current = hv.domains().ObserveVm(vm.meta.name);
    if (!current) return std::unexpected(current.error());
    if (current->Owned()) {
      if (current->owner->spec_hash == SpecHash(vm.spec) && current->owner->name == vm.meta.name) {
        ctx.Event(EventLevel::kInfo, vm.meta.name + " is already adopted");
        return json{{"alreadyDone", true}}.dump();
      }
      return Fail(ErrorCode::kAlreadyExists,
                  "the domain " + vm.meta.name + " on " + hv.name() + " was taken over by another job since the plan");
    }
    if (auto ok = RecordUndo(ctx, AdoptUndo{true}); !ok) return std::unexpected(ok.error());
    if (auto ok = hv.domains().SetOwner(vm.meta.name, OwnerMark(vm, ctx)); !ok) return std::unexpected(ok.error());
    ctx.Event(EventLevel::kInfo, vm.meta.name + " adopted as it runs (owner metadata only)");
    return json{{"adopted", true}}.dump();
  }

  // The external-snapshot overlays a disk of the domain runs on (none when unreadable).
  static std::vector<std::string> DiskOverlays(gitvirt::Node& hv, const std::string& vm, const std::string& disk) {
    auto disks = hv.domains().Disks(vm);
    if (!disks) return {};
    for (const DiskLocation& d : *disks) {
      if (d.disk == disk) return d.overlays;
    }
    return {};
  }

  Result<std::string> Update(gitvirt::Node& hv, const Action& action, StepContext& ctx) {
    const VirtualMachine& vm = *action.vm;
    auto current = hv.domains().ObserveVm(vm.meta.name);
    if (!current) return std::unexpected(current.error());
    if (!current->Owned()) return Fail(ErrorCode::kFailedPrecondition, vm.meta.name + " is not gitvirt's");
    const std::vector<std::string> owned_before = current->owner->created_volumes;
    const VmSpec& was = current->actual;
    const bool running = current->power != PowerState::kStopped;
    const bool live = running && action.type == ActionType::kUpdateLive;
    if (auto ok = EnsurePools(hv, PoolsOf(vm)); !ok) return std::unexpected(ok.error());
    if (auto ok = EnsureDiskVolumes(hv, vm, ctx, owned_before); !ok) return std::unexpected(ok.error());

    auto find_disk = [](const VmSpec& spec, const std::string& name) -> const Disk* {
      for (const Disk& d : spec.disks) {
        if (d.name == name) return &d;
      }
      return nullptr;
    };
    // What an earlier attempt of this step grew stays recorded: a disk cannot shrink back.
    auto undo = UndoSoFar<DefinitionUndo>(ctx);
    if (!undo) return std::unexpected(undo.error());
    std::vector<std::string> grown;
    for (const Disk& disk : vm.spec.disks) {
      const Disk* old = find_disk(was, disk.name);
      if (old == nullptr || !disk.size || !old->size || *disk.size <= *old->size) continue;
      const StorageRef ref = DiskStorage(vm, disk);
      if (auto overlays = DiskOverlays(hv, vm.meta.name, disk.name); !overlays.empty()) {
        // Growing the volume would not grow the overlays above it (and a live resize only the
        // top one): the guest would see a size the volume does not have.
        return Fail(ErrorCode::kFailedPrecondition,
                    "disk " + disk.name + " of " + vm.meta.name + " runs on " + std::to_string(overlays.size()) +
                        " external snapshot overlay(s); delete those snapshots before growing it");
      }
      grown.push_back(disk.name);
      if (std::find(undo->grown.begin(), undo->grown.end(), disk.name) == undo->grown.end()) {
        undo->grown.push_back(disk.name);
      }
      if (auto ok = RecordUndo(ctx, *undo); !ok) return std::unexpected(ok.error());
      Result<void> resized = live && hv.capabilities().block_resize
                                 ? hv.live().ResizeDisk(vm.meta.name, disk.name, *disk.size)
                                 : hv.storage().ResizeVolume(ref.pool, ref.volume, *disk.size);
      if (!resized) return std::unexpected(resized.error());
      ctx.Event(EventLevel::kInfo, "disk " + disk.name + " grown to " + FormatSize(*disk.size));
    }
    auto seed = EnsureSeed(hv, vm, ctx);
    if (!seed) return std::unexpected(seed.error());
    auto def = Definition(hv, vm, ctx, owned_before, *seed);
    if (!def) return std::unexpected(def.error());
    def->uuid = current->uuid;
    if (auto ok = hv.domains().Define(*def); !ok) return std::unexpected(ok.error());

    if (live) {
      // The persistent definition is new; bring the running VM in line without a restart.
      if (vm.spec.vcpus != was.vcpus) {
        if (auto ok = hv.live().SetVcpus(vm.meta.name, vm.spec.vcpus); !ok) return std::unexpected(ok.error());
      }
      if (vm.spec.memory != was.memory) {
        if (auto ok = hv.live().SetMemory(vm.meta.name, vm.spec.memory); !ok) return std::unexpected(ok.error());
      }
      for (const Disk& disk : vm.spec.disks) {
        if (find_disk(was, disk.name) != nullptr) continue;
        if (std::find(undo->attached.begin(), undo->attached.end(), disk.name) == undo->attached.end()) {
          undo->attached.push_back(disk.name);
        }
        if (auto ok = RecordUndo(ctx, *undo); !ok) return std::unexpected(ok.error());
        if (auto ok = hv.live().AttachDisk(*def, disk.name); !ok) return std::unexpected(ok.error());
      }
      for (const Disk& disk : was.disks) {
        if (find_disk(vm.spec, disk.name) != nullptr) continue;
        if (auto ok = hv.live().DetachDisk(vm.meta.name, disk.name); !ok) return std::unexpected(ok.error());
      }
      for (std::size_t i = was.networks.size(); i < vm.spec.networks.size(); ++i) {
        if (auto ok = hv.live().AttachNic(*def, i); !ok) return std::unexpected(ok.error());
      }
      for (std::size_t i = was.networks.size(); i > vm.spec.networks.size(); --i) {
        if (auto ok = hv.live().DetachNic(vm.meta.name, i - 1); !ok) return std::unexpected(ok.error());
      }
    }
    return json{{"grown", grown}}.dump();
  }

  Result<std::string> Replace(gitvirt::Node& hv, const VirtualMachine& vm, StepContext& ctx) {
    if (auto current = hv.domains().ObserveVm(vm.meta.name)) {
      if (current->Owned() && current->owner->spec_hash != SpecHash(vm.spec)) {
        if (auto ok = hv.domains().Undefine(vm.meta.name); !ok) return std::unexpected(ok.error());
        for (const std::string& v : current->owner->created_volumes) {
          const auto [pool, name] = SplitVolume(v);
          auto deleted = hv.storage().DeleteVolume(pool, name);
          if (!deleted && deleted.error().code != ErrorCode::kNotFound) return std::unexpected(deleted.error());
        }
        ctx.Event(EventLevel::kWarning, "replaced " + vm.meta.name + ": its old disks were deleted");
      }
    }
    return Create(hv, vm, ctx);
  }

  // Starts the VM and, when its spec has a readiness block and wants it Running, waits until
  // it is Ready: what comes after it in the plan (dependsOn, the next cluster group) starts
  // only then. The spec is the one this plan writes (its create, update or replace), else the
  // one last applied (a power-only start; only then is the node asked).
  Result<std::string> Start(gitvirt::Node& hv, const Action& action, StepContext& ctx) {
    const std::string& name = action.target.name;
    if (auto ok = hv.power().Start(name); !ok) return std::unexpected(ok.error());
    std::optional<VmSpec> spec;
    if (action.vm) spec = action.vm->spec;
    for (const Action& a : plan.actions) {
      if (!spec && a.vm && a.target == action.target && a.node == action.node) spec = a.vm->spec;
    }
    if (!spec) {
      if (auto current = hv.domains().ObserveVm(name); current && current->last_applied) spec = current->last_applied;
    }
    if (!spec || !spec->readiness.Enabled() || spec->power_state != PowerState::kRunning) return std::string("{}");
    return WaitReady(hv, name, *spec, ctx);
  }

  Result<std::string> WaitReady(gitvirt::Node& hv, const std::string& name, const VmSpec& spec, StepContext& ctx) {
    using Clock = std::chrono::steady_clock;
    const Readiness& want = spec.readiness;
    const auto started = Clock::now();
    const auto deadline = std::min(started + want.timeout, ctx.deadline());
    const bool step_bound = ctx.deadline() < started + want.timeout;
    auto elapsed = [&] { return std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - started); };
    ctx.Event(EventLevel::kInfo, "waiting up to " + FormatDuration(want.timeout) + " for " + name + " to be Ready (" +
                                     DescribeReadiness(want) + ")");
    std::string last_message;
    auto last_event = Clock::now();
    while (true) {
      const ReadinessReport report = CheckReadiness(hv, name, spec);
      json result = {{"ready", report.ready}, {"checked", report.checked}, {"seconds", elapsed().count()}};
      if (!report.address.empty()) {
        result["address"] = report.address;
        result["addressSource"] = report.address_source;
      }
      if (!report.checked) {
        ctx.Event(EventLevel::kWarning, report.message);
        return result.dump();
      }
      if (report.ready) {
        ctx.Event(EventLevel::kInfo, name + " is Ready after " + FormatDuration(elapsed()) + ": " + report.message);
        return result.dump();
      }
      if (!report.running) {
        return Fail(ErrorCode::kFailedPrecondition,
                    name + " stopped while waiting for it to be Ready: " + report.message);
      }
      if (ctx.Cancelled()) return Fail(ErrorCode::kCancelled, "cancelled while waiting for " + name + " to be Ready");
      if (Clock::now() >= deadline) {
        return Fail(ErrorCode::kTimeout,
                    name + " was not Ready within " + FormatDuration(elapsed()) +
                        (step_bound ? " (the step timeout, apply.stepTimeout, ran out first)" : "") + ": " +
                        report.message);
      }
      // Progress in the journal: when what is missing changes, and at least every minute.
      if (report.message != last_message || Clock::now() - last_event >= std::chrono::seconds(60)) {
        ctx.Event(EventLevel::kInfo, "not Ready yet after " + FormatDuration(elapsed()) + ": " + report.message);
        last_message = report.message;
        last_event = Clock::now();
      }
      for (int i = 0; i < 8 && !ctx.Cancelled() && Clock::now() < deadline; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
      }
    }
  }

  Result<std::string> Shutdown(gitvirt::Node& hv, const Action& action) {
    UpdatePolicy policy;
    if (action.vm) {
      policy = action.vm->spec.update_policy;
    } else if (auto current = hv.domains().ObserveVm(action.target.name); current && current->last_applied) {
      policy = current->last_applied->update_policy;
    }
    // `gitvirt power shutdown --force`: power off after the timeout whatever the VM says.
    if (const auto* p = std::get_if<ShutdownParams>(&action.params)) policy.force_off = p->force_off;
    if (auto ok = hv.power().Shutdown(action.target.name, policy.shutdown_timeout, policy.force_off); !ok) {
      return std::unexpected(ok.error());
    }
    return std::string("{}");
  }

  Result<std::string> ImageImport(gitvirt::Node& hv, const Image& image, StepContext& ctx) {
    if (auto ok = EnsurePools(hv, {image.spec.pool}); !ok) return std::unexpected(ok.error());
    if (hv.storage().GetVolume(image.spec.pool, image.VolumeName())) return json{{"imported", false}}.dump();
    auto file = FetchImage(image, options.paths.images);
    if (!file) return std::unexpected(file.error());
    if (auto ok = RecordUndo(ctx, ImageImportUndo{{image.spec.pool + "/" + image.VolumeName()}}); !ok) {
      return std::unexpected(ok.error());
    }
    if (auto ok = hv.storage().UploadVolume(image.spec.pool, image.VolumeName(), *file,
                                            std::string(EnumName(image.spec.format)));
        !ok) {
      return std::unexpected(ok.error());
    }
    ctx.Event(EventLevel::kInfo, "imported " + image.meta.name + " (sha256 verified) into " + image.spec.pool);
    return json{{"imported", true}}.dump();
  }

  Result<void> DeleteVolumes(Storage& hv, const std::vector<std::string>& volumes) {
    for (const std::string& v : volumes) {
      const auto [pool, name] = SplitVolume(v);
      auto deleted = hv.DeleteVolume(pool, name);
      if (!deleted && deleted.error().code != ErrorCode::kNotFound) return deleted;
    }
    return {};
  }

  // ---- snapshots, backups, restores (issue 7) ----------------------------------------------

  // The backup catalog in the configuration's state file, opened on first use.
  struct CatalogSlot {
    std::mutex mu;
    std::unique_ptr<BackupCatalog> catalog;
  };
  std::shared_ptr<CatalogSlot> catalog_slot = std::make_shared<CatalogSlot>();

  Result<BackupCatalog*> Catalog() {
    std::lock_guard lock(catalog_slot->mu);
    if (!catalog_slot->catalog) {
      const std::string& state = options.paths.state;
      if (state.empty()) return Fail(ErrorCode::kFailedPrecondition, "no state file configured for the backup catalog");
      auto opened = BackupCatalog::Open(state);
      if (!opened) return std::unexpected(opened.error());
      catalog_slot->catalog = std::move(*opened);
    }
    return catalog_slot->catalog.get();
  }

  // Whether the controller can read the node's files (qemu:///..., qemu+unix://, sim:).
  bool LocalNode(const std::string& node) const {
    const NodeConfig* config = nodes.FindConfig(node);
    return config != nullptr && config->IsLocal();
  }

  Result<std::string> Snapshot(gitvirt::Node& hv, const Action& action, StepContext& ctx) {
    const std::string& vm = action.target.name;
    auto existing = hv.snapshots().List(vm);
    if (!existing) return std::unexpected(existing.error());
    // An earlier attempt of this step (before a crash) may have made it: only then is a
    // snapshot of that name this step's.
    auto earlier = UndoSoFar<SnapshotUndo>(ctx);
    if (!earlier) return std::unexpected(earlier.error());
    const bool attempted = earlier->snapshot == action.snapshot;
    for (const ObservedSnapshot& s : *existing) {
      if (s.name != action.snapshot) continue;
      if (attempted && s.policy == action.policy) {
        ctx.Event(EventLevel::kInfo, "snapshot " + s.name + " of " + vm + " exists already");
        return json{{"snapshot", s.name}, {"alreadyDone", true}}.dump();
      }
      return Fail(ErrorCode::kAlreadyExists, vm + " has a snapshot named " + s.name + " already" +
                                                 (s.policy.empty() ? " (made by hand)" : " (of policy " + s.policy + ")"));
    }
    SnapshotRequest request;
    request.name = action.snapshot;
    const SnapshotParams& params = action.Params<SnapshotParams>();
    request.description = params.description;
    request.policy = action.policy;
    request.memory = params.memory;
    request.quiesce = params.quiesce;
    if (auto ok = RecordUndo(ctx, SnapshotUndo{action.snapshot}); !ok) return std::unexpected(ok.error());
    auto taken = hv.snapshots().Create(vm, request);
    if (!taken) return std::unexpected(taken.error());
    if (request.quiesce && !taken->quiesced) ctx.Event(EventLevel::kWarning, "not quiesced: " + taken->note);
    ctx.Event(EventLevel::kInfo, taken->kind + " snapshot " + action.snapshot + " of " + vm + " created" +
                                     (taken->quiesced ? ", " + std::to_string(taken->frozen_filesystems) +
                                                            " filesystem(s) frozen by the guest agent"
                                                      : "") +
                                     (action.policy.empty() ? "" : " (policy " + action.policy + ")"));
    json result = {{"snapshot", action.snapshot}, {"kind", taken->kind}, {"quiesced", taken->quiesced}};
    if (taken->quiesced) result["frozenFilesystems"] = taken->frozen_filesystems;
    if (!taken->note.empty()) result["note"] = taken->note;
    return result.dump();
  }

  Result<std::string> SnapshotDelete(gitvirt::Node& hv, const Action& action, StepContext& ctx) {
    const std::string& vm = action.target.name;
    auto existing = hv.snapshots().List(vm);
    if (!existing) {
      if (existing.error().code == ErrorCode::kNotFound) return json{{"gone", true}}.dump();
      return std::unexpected(existing.error());
    }
    for (const ObservedSnapshot& s : *existing) {
      if (s.name != action.snapshot) continue;
      // Retention deletes only its own policy's snapshots: checked again here, at the last moment.
      if (!action.policy.empty() && s.policy != action.policy) {
        return Fail(ErrorCode::kFailedPrecondition,
                    "snapshot " + s.name + " of " + vm + " was not made by policy " + action.policy + "; not deleting it");
      }
      if (auto ok = hv.snapshots().Delete(vm, s.name); !ok) return std::unexpected(ok.error());
      ctx.Event(EventLevel::kInfo, "snapshot " + s.name + " of " + vm + " deleted");
      return json{{"deleted", s.name}}.dump();
    }
    return json{{"gone", true}}.dump();
  }

  BackupRequest BackupRequestOf(const Action& action, const std::string& job_id) const {
    const BackupParams& params = action.Params<BackupParams>();
    BackupRequest req;
    req.id = params.id;
    req.directory = params.directory;
    req.vm = action.target.name;
    req.policy = action.policy;
    req.revision = plan.revision;
    req.description = params.description;
    req.job_id = job_id;
    req.mode = params.mode;
    req.compression = params.compression;
    req.level = params.level;
    req.verify = params.verify;
    req.is_protected = params.protect;
    req.created = TimePoint{std::chrono::seconds{params.created}};
    if (req.created == TimePoint{}) req.created = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
    if (action.vm) {
      req.update_policy = action.vm->spec.update_policy;
      for (const Disk& d : action.vm->spec.disks) {
        if (!d.backup) req.skip_disks.push_back(d.name);
      }
    }
    req.local_node = LocalNode(action.node);
    return req;
  }

  Result<std::string> Backup(gitvirt::Node& hv, const Action& action, StepContext& ctx) {
    const BackupRequest req = BackupRequestOf(action, ctx.job_id());
    if (req.id.empty() || req.directory.empty()) {
      return Fail(ErrorCode::kInvalidArgument, "the backup step has no id or directory");
    }
    auto catalog = Catalog();
    if (!catalog) return std::unexpected(catalog.error());
    auto manifest = TakeBackup(hv, req, ctx);
    if (!manifest) {
      RecordFailedBackup(**catalog, req, hv.name(), manifest.error());
      std::error_code ec;
      std::filesystem::remove_all(req.directory + ".partial", ec);  // half-written disks
      return std::unexpected(manifest.error());
    }
    BackupRecord record = RecordOf(*manifest, req.directory);
    if (auto ok = (*catalog)->Put(record); !ok) return std::unexpected(ok.error());
    if (auto ok = (*catalog)->RecordRun(manifest->id, false, manifest->Bytes(), manifest->seconds); !ok) {
      return std::unexpected(ok.error());
    }
    std::uint64_t raw = 0;
    for (const BackupFile& f : manifest->files) raw += f.raw_size;
    ctx.Event(EventLevel::kInfo, "backup " + manifest->id + " of " + req.vm + ": " + FormatSize(manifest->Bytes()) +
                                     " stored (" + manifest->compression + ") in " + req.directory);
    return json{{"id", manifest->id},          {"location", record.location}, {"bytes", manifest->Bytes()},
                {"rawBytes", raw},              {"seconds", manifest->seconds}, {"verified", manifest->verified},
                {"mode", manifest->mode},       {"simulated", manifest->simulated}}
        .dump();
  }

  // A failed attempt goes into the catalog (status failed, with its error; no directory holds
  // it) and into the run totals, so `backup list`, /api/v1/backups and /metrics show it
  // whichever process ran it. What could not be recorded is logged: the step's own error is
  // what matters to the job.
  void RecordFailedBackup(const Action& action, const std::string& job_id, const Error& error) {
    if (action.type != ActionType::kBackup) return;
    const BackupRequest req = BackupRequestOf(action, job_id);
    if (req.id.empty()) return;
    auto catalog = Catalog();
    if (!catalog) {
      log->warn("vm={} backup={} the failure could not be recorded: {}", req.vm, req.id, catalog.error().ToString());
      return;
    }
    RecordFailedBackup(**catalog, req, action.node, error);
  }
  void RecordFailedBackup(BackupCatalog& catalog, const BackupRequest& req, const std::string& node, const Error& error) {
    if (auto known = catalog.Get(req.id); known && known->status == "complete") return;  // not this attempt's
    BackupRecord r;
    r.id = req.id;
    r.vm = req.vm;
    r.node = node;
    r.policy = req.policy;
    r.location = std::filesystem::absolute(req.directory).lexically_normal().string();
    r.mode = std::string(EnumName(req.mode));
    r.compression = std::string(EnumName(req.compression));
    r.is_protected = req.is_protected;
    r.status = "failed";
    r.error = error.ToString();
    r.revision = req.revision;
    r.job_id = req.job_id;
    r.created = req.created;
    auto put = catalog.Put(r);
    auto counted = put ? catalog.RecordRun(req.id, true, 0, 0) : put;
    if (!counted) log->warn("vm={} backup={} the failure could not be recorded in the catalog: {}", req.vm, req.id,
                            counted.error().ToString());
  }

  Result<UndoOutcome> UndoBackup(gitvirt::Node& hv, const Action& action, const BackupUndo& undo) {
    const BackupParams& params = action.Params<BackupParams>();
    const std::string& dir = params.directory;
    std::error_code ec;
    if (!dir.empty()) {
      if (auto ok = DeleteBackupDirectory(dir, /*force=*/true); !ok) return std::unexpected(ok.error());
      std::filesystem::remove_all(dir + ".partial", ec);
    }
    if (auto catalog = Catalog()) {
      // The record of a failed attempt stays: it is history, not something this step made.
      auto known = (*catalog)->Get(params.id);
      if (known && known->status != "failed") (void)(*catalog)->Remove(params.id);
    }
    if (auto ok = DeleteBackupScratch(hv.storage(), undo.scratch); !ok) return std::unexpected(ok.error());
    if (undo.power_before) {
      auto now = hv.power().Get(action.target.name);
      if (now && *now != *undo.power_before) {
        if (auto ok = RestorePower(hv.power(), action.target.name, *undo.power_before); !ok) return std::unexpected(ok.error());
      }
    }
    return UndoOutcome::kUndone;
  }

  Result<std::string> BackupDelete(const Action& action, StepContext& ctx) {
    const BackupDeleteParams& params = action.Params<BackupDeleteParams>();
    const std::string& dir = params.directory;
    const std::string& id = params.id;
    if (dir.empty()) return Fail(ErrorCode::kInvalidArgument, "the backup-delete step has no directory");
    auto manifest = ReadManifest(dir);
    if (manifest) {
      if (!action.policy.empty() && manifest->policy != action.policy) {
        return Fail(ErrorCode::kFailedPrecondition,
                    "backup " + manifest->id + " was not made by policy " + action.policy + "; not deleting it");
      }
      const bool force = params.force;
      if (manifest->is_protected && !force) {
        return Fail(ErrorCode::kFailedPrecondition, "backup " + manifest->id + " is protected; not deleting it");
      }
      if (auto ok = DeleteBackupDirectory(dir, force); !ok) return std::unexpected(ok.error());
      ctx.Event(EventLevel::kInfo, "backup " + manifest->id + " deleted (" + dir + ")");
    } else if (manifest.error().code != ErrorCode::kNotFound) {
      return std::unexpected(manifest.error());
    }
    if (auto catalog = Catalog()) {
      if (auto ok = (*catalog)->Remove(id); !ok) return std::unexpected(ok.error());
    }
    return json{{"deleted", id}}.dump();
  }

  Result<std::string> BackupRestore(gitvirt::Node& hv, const Action& action, StepContext& ctx) {
    RestoreRequest req;
    const BackupRestoreParams& params = action.Params<BackupRestoreParams>();
    req.directory = params.directory;
    req.new_name = action.target.name;
    req.managed = params.managed;
    req.cache_dir = options.paths.restore;
    req.job_id = ctx.job_id();
    req.revision = plan.revision;
    auto manifest = ReadManifest(req.directory);
    if (!manifest) return std::unexpected(manifest.error());
    std::set<std::string> pools;
    for (const BackupFile& f : manifest->files) {
      if (!f.disk.empty()) pools.insert(f.pool.empty() ? "default" : f.pool);
    }
    if (auto ok = EnsurePools(hv, pools); !ok) return std::unexpected(ok.error());
    auto volumes = RestoreBackup(hv, req, ctx);
    if (!volumes) return std::unexpected(volumes.error());
    return json{{"vm", req.new_name}, {"volumes", *volumes}, {"backup", manifest->id}}.dump();
  }

  // ---- migration (issue 6) -----------------------------------------------------------------

  Result<MigrationRequest> Migration(const Action& action) {
    auto source = Node(action.source_node);
    if (!source) return std::unexpected(source.error());
    auto target = Node(action.node);
    if (!target) return std::unexpected(target.error());
    MigrationRequest r;
    r.source = *source;
    r.target = *target;
    r.migrations = &nodes.migrations();
    r.vm = action.target.name;
    const MigrateParams& params = action.Params<MigrateParams>();
    r.mode = params.mode;
    r.allow_offline = params.allow_offline;
    r.volumes = action.volumes;
    r.bandwidth = params.bandwidth;
    if (const NodeConfig* n = nodes.FindConfig(action.node)) r.target_address = n->migration_address;
    if (const NodeConfig* n = nodes.FindConfig(action.source_node)) r.source_address = n->migration_address;
    if (action.vm) r.update_policy = action.vm->spec.update_policy;
    r.ensure_pools = [this](gitvirt::Node& hv, const std::set<std::string>& pools) { return EnsurePools(hv, pools); };
    r.volume_for = [this](const VirtualMachine& vm, const Disk& disk) { return VolumeFor(vm, disk); };
    return r;
  }

  Result<void> RestorePower(Power& hv, const std::string& name, PowerState want) {
    switch (want) {
      case PowerState::kStopped: return hv.Destroy(name);
      case PowerState::kRunning: {
        auto now = hv.Get(name);
        if (now && *now == PowerState::kPaused) return hv.Resume(name);
        return hv.Start(name);
      }
      case PowerState::kPaused: {
        if (auto ok = hv.Start(name); !ok) return ok;
        return hv.Suspend(name);
      }
    }
    return {};
  }
};

StepRunnerOptions StepRunnerOptionsFor(const ControllerConfig& config) {
  return StepRunnerOptions{StatePaths::For(config), config.secrets_dir};
}

LibvirtStepRunner::LibvirtStepRunner(NodeSet& nodes, const Plan& plan, const std::vector<Image>& images,
                                     StepRunnerOptions options, std::shared_ptr<spdlog::logger> logger)
    : impl_(std::make_shared<Impl>(Impl{nodes, plan, images, options, SecretResolver(options.secrets_dir),
                                        logger ? logger : spdlog::default_logger()})) {}

Result<std::string> LibvirtStepRunner::Prepare(const Action& action, StepContext& ctx) {
  if (action.type == ActionType::kBackupDelete) return std::string("{}");  // a directory here, no node
  if (action.type == ActionType::kMigrate) {
    auto request = impl_->Migration(action);
    if (!request) return std::unexpected(request.error());
    return PrepareMigration(*request);
  }
  auto hv = impl_->Node(action.node);
  if (!hv) {
    impl_->RecordFailedBackup(action, ctx.job_id(), hv.error());  // a backup that could not start failed too
    return std::unexpected(hv.error());
  }
  const std::string& name = action.target.name;
  switch (action.type) {
    case ActionType::kUpdateLive:
    case ActionType::kUpdateRestart:
    case ActionType::kReplace:
    case ActionType::kDelete: {
      auto current = (*hv)->domains().ObserveVm(name);
      if (!current) return std::unexpected(current.error());
      auto saved = (*hv)->domains().Save(name);
      if (!saved) return std::unexpected(saved.error());
      DefinitionUndo undo;
      undo.previous_definition = saved->bytes;
      undo.previous_power = current->power;
      undo.previous_vcpus = current->actual.vcpus;
      undo.previous_memory = current->actual.memory;
      undo.previous_autostart = current->actual.autostart;  // not part of the definition
      return EncodeUndo(undo);
    }
    case ActionType::kRelease: {
      auto current = (*hv)->domains().ObserveVm(name);
      if (!current) return std::unexpected(current.error());
      return EncodeUndo(ReleaseUndo{current->owner});
    }
    case ActionType::kStart:
      // Started after its own create in this job: it was stopped; no need to ask the node.
      if (impl_->FollowsCreateOf(action)) return EncodeUndo(PowerUndo{PowerState::kStopped});
      [[fallthrough]];
    case ActionType::kStop:
    case ActionType::kShutdown:
    case ActionType::kSuspend:
    case ActionType::kResume:
    case ActionType::kReboot:
    case ActionType::kSnapshotRevert:
    case ActionType::kBackup: {
      auto power = (*hv)->power().Get(name);
      if (!power) {
        if (action.type == ActionType::kBackup) impl_->RecordFailedBackup(action, ctx.job_id(), power.error());
        return std::unexpected(power.error());
      }
      // A backup records the power it found itself (BackupUndo::power_before), as it changes it.
      if (action.type == ActionType::kBackup) return std::string("{}");
      return EncodeUndo(PowerUndo{*power});
    }
    default: break;
  }
  return std::string("{}");
}

Result<std::string> LibvirtStepRunner::Run(const Action& action, StepContext& ctx) {
  if (action.type == ActionType::kBackupDelete) return impl_->BackupDelete(action, ctx);
  if (action.type == ActionType::kMigrate) {
    auto request = impl_->Migration(action);
    if (!request) return std::unexpected(request.error());
    return RunMigration(*request, ctx);
  }
  auto node = impl_->Node(action.node);
  if (!node) {
    impl_->RecordFailedBackup(action, ctx.job_id(), node.error());
    return std::unexpected(node.error());
  }
  gitvirt::Node& hv = **node;
  const std::string& name = action.target.name;
  auto done = [](Result<void> r) -> Result<std::string> {
    if (!r) return std::unexpected(r.error());
    return std::string("{}");
  };
  switch (action.type) {
    case ActionType::kImageImport: return impl_->ImageImport(hv, *action.image, ctx);
    case ActionType::kCreate: return impl_->Create(hv, *action.vm, ctx);
    case ActionType::kUpdateLive:
    case ActionType::kUpdateRestart: return impl_->Update(hv, action, ctx);
    case ActionType::kReplace: return impl_->Replace(hv, *action.vm, ctx);
    case ActionType::kStart: return impl_->Start(hv, action, ctx);
    case ActionType::kStop: return done(hv.power().Destroy(name));
    case ActionType::kShutdown: return impl_->Shutdown(hv, action);
    case ActionType::kReboot: return done(hv.power().Reboot(name));
    case ActionType::kSuspend: return done(hv.power().Suspend(name));
    case ActionType::kResume: return done(hv.power().Resume(name));
    case ActionType::kDelete: {
      auto gone = hv.domains().Undefine(name);
      if (!gone && gone.error().code == ErrorCode::kNotFound) return std::string("{}");
      return done(std::move(gone));
    }
    case ActionType::kRelease: return done(hv.domains().SetOwner(name, std::nullopt));
    case ActionType::kAdopt: return impl_->Adopt(hv, *action.vm, ctx);
    case ActionType::kVolumeDelete: return done(impl_->DeleteVolumes(hv.storage(), action.volumes));
    case ActionType::kSnapshot: return impl_->Snapshot(hv, action, ctx);
    case ActionType::kSnapshotDelete: return impl_->SnapshotDelete(hv, action, ctx);
    case ActionType::kSnapshotRevert: {
      if (auto ok = hv.snapshots().Revert(name, action.snapshot); !ok) return std::unexpected(ok.error());
      ctx.Event(EventLevel::kInfo, name + " reverted to snapshot " + action.snapshot);
      return json{{"reverted", action.snapshot}}.dump();
    }
    case ActionType::kBackup: return impl_->Backup(hv, action, ctx);
    case ActionType::kBackupRestore: return impl_->BackupRestore(hv, action, ctx);
    case ActionType::kMigrate:  // above: it needs two nodes
    case ActionType::kBackupDelete:
      break;
  }
  return Fail(ErrorCode::kUnsupported, std::string(EnumName(action.type)) + " is not carried out by this runner",
              action.id);
}

Result<UndoOutcome> LibvirtStepRunner::Undo(const Action& action, const std::string& undo_json, StepContext& ctx) {
  const std::string step = "job " + ctx.job_id() + " step " + action.id;
  auto ok = [](Result<void> r) -> Result<UndoOutcome> {
    if (!r) return std::unexpected(r.error());
    return UndoOutcome::kUndone;
  };
  // Every record is read, strictly, before the node is asked anything: a record that does not
  // decode as its family's type fails the undo here, with nothing done on its account.
  switch (action.type) {
    case ActionType::kReplace:
    case ActionType::kVolumeDelete:
    case ActionType::kSnapshotDelete:
    case ActionType::kBackupDelete:
    case ActionType::kSnapshotRevert:
      return UndoOutcome::kNotUndoable;
    case ActionType::kReboot:
      return UndoOutcome::kUndone;
    case ActionType::kMigrate: {
      auto request = impl_->Migration(action);
      if (!request) return std::unexpected(request.error());
      return UndoMigration(*request, undo_json, ctx);
    }
    default:
      break;
  }
  const std::string& name = action.target.name;
  auto node = [&]() { return impl_->Node(action.node); };
  switch (action.type) {
    case ActionType::kImageImport: {
      auto undo = DecodeUndo<ImageImportUndo>(undo_json, step);
      if (!undo) return std::unexpected(undo.error());
      auto hv = node();
      if (!hv) return std::unexpected(hv.error());
      return ok(impl_->DeleteVolumes((*hv)->storage(), undo->volumes));
    }
    case ActionType::kCreate:
    case ActionType::kBackupRestore: {
      auto undo = DecodeUndo<DefinitionUndo>(undo_json, step);
      if (!undo) return std::unexpected(undo.error());
      auto hv = node();
      if (!hv) return std::unexpected(hv.error());
      // Tolerates a half-done create or restore: only what exists and is this step's goes (a
      // restore's domain may be unmanaged, without gitvirt's mark: it is this step's when the
      // step says it defined it).
      auto current = (*hv)->domains().ObserveVm(name);
      const bool ours = current && (action.type == ActionType::kCreate ? current->Owned() : undo->defined);
      if (ours) {
        if (auto r = (*hv)->domains().Undefine(name); !r) return std::unexpected(r.error());
      }
      return ok(impl_->DeleteVolumes((*hv)->storage(), undo->volumes));
    }
    case ActionType::kUpdateLive:
    case ActionType::kUpdateRestart: {
      auto undo = DecodeUndo<DefinitionUndo>(undo_json, step);
      if (!undo) return std::unexpected(undo.error());
      auto hv = node();
      if (!hv) return std::unexpected(hv.error());
      gitvirt::Node& n = **hv;
      if (undo->previous_definition) {
        if (auto r = n.domains().Restore(SavedDomain{*undo->previous_definition}); !r) return std::unexpected(r.error());
      }
      if (undo->previous_autostart) {
        if (auto r = n.domains().SetAutostart(name, *undo->previous_autostart); !r) return std::unexpected(r.error());
      }
      auto power = n.power().Get(name);
      if (power && *power != PowerState::kStopped && action.type == ActionType::kUpdateLive) {
        for (const std::string& disk : undo->attached) (void)n.live().DetachDisk(name, disk);
        if (undo->previous_vcpus) (void)n.live().SetVcpus(name, *undo->previous_vcpus);
        if (undo->previous_memory) (void)n.live().SetMemory(name, *undo->previous_memory);
      }
      if (auto r = impl_->DeleteVolumes(n.storage(), undo->volumes); !r) return std::unexpected(r.error());
      // A grown disk cannot shrink again.
      if (!undo->grown.empty()) return UndoOutcome::kNotUndoable;
      return UndoOutcome::kUndone;
    }
    case ActionType::kStart:
    case ActionType::kStop:
    case ActionType::kShutdown:
    case ActionType::kSuspend:
    case ActionType::kResume: {
      auto undo = DecodeUndo<PowerUndo>(undo_json, step);
      if (!undo) return std::unexpected(undo.error());
      if (!undo->previous_power) return UndoOutcome::kUndone;
      auto hv = node();
      if (!hv) return std::unexpected(hv.error());
      // A domain that is gone has no power state to restore: the undo of its create, later
      // in the plan and so earlier in the rollback, already ran (a rollback resumed after a
      // crash undoes again what the journal had not yet recorded as undone).
      auto r = impl_->RestorePower((*hv)->power(), name, *undo->previous_power);
      if (!r && r.error().code == ErrorCode::kNotFound) return UndoOutcome::kUndone;
      return ok(std::move(r));
    }
    case ActionType::kDelete: {
      auto undo = DecodeUndo<DefinitionUndo>(undo_json, step);
      if (!undo) return std::unexpected(undo.error());
      if (!undo->previous_definition) return UndoOutcome::kNotUndoable;
      auto hv = node();
      if (!hv) return std::unexpected(hv.error());
      gitvirt::Node& n = **hv;
      if (!n.domains().ObserveVm(name)) {
        if (auto r = n.domains().Restore(SavedDomain{*undo->previous_definition}); !r) return std::unexpected(r.error());
        if (undo->previous_autostart.value_or(false)) {
          if (auto r = n.domains().SetAutostart(name, true); !r) return std::unexpected(r.error());
        }
      }
      if (undo->previous_power && *undo->previous_power != PowerState::kStopped) {
        return ok(impl_->RestorePower(n.power(), name, *undo->previous_power));
      }
      return UndoOutcome::kUndone;
    }
    case ActionType::kAdopt: {
      auto undo = DecodeUndo<AdoptUndo>(undo_json, step);
      if (!undo) return std::unexpected(undo.error());
      if (!undo->marked) return UndoOutcome::kUndone;
      auto hv = node();
      if (!hv) return std::unexpected(hv.error());
      auto current = (*hv)->domains().ObserveVm(name);
      if (!current) return std::unexpected(current.error());
      // Only this job's mark: a later job's adoption or update is not this step's to take back.
      if (!current->Owned() || current->owner->job != ctx.job_id()) return UndoOutcome::kUndone;
      return ok((*hv)->domains().SetOwner(name, std::nullopt));
    }
    case ActionType::kRelease: {
      auto undo = DecodeUndo<ReleaseUndo>(undo_json, step);
      if (!undo) return std::unexpected(undo.error());
      if (!undo->owner) return UndoOutcome::kUndone;
      auto hv = node();
      if (!hv) return std::unexpected(hv.error());
      return ok((*hv)->domains().SetOwner(name, *undo->owner));
    }
    case ActionType::kSnapshot: {
      // Only the snapshot this step made, and only while it carries this step's policy.
      auto undo = DecodeUndo<SnapshotUndo>(undo_json, step);
      if (!undo) return std::unexpected(undo.error());
      if (undo->snapshot.empty()) return UndoOutcome::kUndone;
      auto hv = node();
      if (!hv) return std::unexpected(hv.error());
      auto existing = (*hv)->snapshots().List(name);
      if (!existing) return std::unexpected(existing.error());
      for (const ObservedSnapshot& s : *existing) {
        if (s.name != action.snapshot || s.policy != action.policy) continue;
        if (action.policy == kPreChangeSnapshotPolicy) {
          // The snapshot updatePolicy.snapshot took before the change: undoing the change is
          // going back to it. It stays, and is deleted once older than its keep.
          if (auto reverted = (*hv)->snapshots().Revert(name, s.name); !reverted) return std::unexpected(reverted.error());
          ctx.Event(EventLevel::kWarning, name + " reverted to its pre-change snapshot " + s.name +
                                              ": the job failed and its rollback strategy undoes the change");
          return UndoOutcome::kUndone;
        }
        return ok((*hv)->snapshots().Delete(name, s.name));
      }
      return UndoOutcome::kUndone;
    }
    case ActionType::kBackup: {
      auto undo = DecodeUndo<BackupUndo>(undo_json, step);
      if (!undo) return std::unexpected(undo.error());
      auto hv = node();
      if (!hv) return std::unexpected(hv.error());
      return impl_->UndoBackup(**hv, action, *undo);
    }
    default:
      break;
  }
  return Fail(ErrorCode::kUnsupported, "cannot undo " + std::string(EnumName(action.type)), action.id);
}

}  // namespace gitvirt
