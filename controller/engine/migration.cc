#include "gitvirt/engine/migration.h"

#include "gitvirt/engine/step_records.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>

#include "gitvirt/core/units.h"

namespace gitvirt {

using nlohmann::json;

// ---- qcow2 backing file name -------------------------------------------------------------

namespace {

std::uint64_t BigEndian(const std::string& b, std::size_t off, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(b[off + i]);
  return v;
}

void PutBigEndian(std::string& b, std::size_t off, int bytes, std::uint64_t v) {
  for (int i = bytes - 1; i >= 0; --i) {
    b[off + i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
}

bool IsQcow2(const std::string& head) {
  return head.size() >= 4 && std::memcmp(head.data(), "QFI\xfb", 4) == 0;
}

}  // namespace

Result<void> RewriteQcow2Backing(std::string& head, const std::string& backing) {
  // Header (big endian): magic u32 @0, version u32 @4, backing_file_offset u64 @8,
  // backing_file_size u32 @16, cluster_bits u32 @20.
  if (head.size() < 72 || !IsQcow2(head)) return Fail(ErrorCode::kInvalidArgument, "not a qcow2 image");
  const std::uint64_t offset = BigEndian(head, 8, 8);
  const std::uint64_t old_size = BigEndian(head, 16, 4);
  const std::uint64_t cluster = std::uint64_t{1} << BigEndian(head, 20, 4);
  if (offset == 0) return Fail(ErrorCode::kInvalidArgument, "the qcow2 image has no backing file");
  // qemu writes the name after the header extensions, last in the first cluster; whatever
  // follows it up to the cluster's end is unused.
  if (offset + std::max<std::uint64_t>(old_size, backing.size()) > std::min<std::uint64_t>(cluster, head.size())) {
    return Fail(ErrorCode::kInvalidArgument, "the backing file name " + backing + " does not fit in the qcow2 header");
  }
  std::fill(head.begin() + static_cast<std::ptrdiff_t>(offset),
            head.begin() + static_cast<std::ptrdiff_t>(offset + old_size), '\0');
  head.replace(offset, backing.size(), backing);
  PutBigEndian(head, 16, 4, backing.size());
  return {};
}

Result<void> Qcow2BackingRewriter::Write(const char* data, std::size_t size) {
  if (passed_) return inner_.Write(data, size);
  head_.append(data, size);
  if (head_.size() >= 24 && IsQcow2(head_)) wanted_ = std::size_t{1} << BigEndian(head_, 20, 4);
  if (head_.size() < wanted_) return {};
  return Flush();
}

Result<void> Qcow2BackingRewriter::Hole(std::uint64_t length) {
  if (!passed_) {
    if (auto ok = Flush(); !ok) return ok;
  }
  return inner_.Hole(length);
}

Result<void> Qcow2BackingRewriter::Finish() {
  if (!passed_) {
    if (auto ok = Flush(); !ok) return ok;
  }
  return inner_.Finish();
}

void Qcow2BackingRewriter::Abort() { inner_.Abort(); }

Result<void> Qcow2BackingRewriter::Flush() {
  passed_ = true;
  if (auto ok = RewriteQcow2Backing(head_, backing_); !ok) return ok;
  auto ok = inner_.Write(head_.data(), head_.size());
  head_.clear();
  head_.shrink_to_fit();
  return ok;
}

// ---- the migrate step --------------------------------------------------------------------

namespace {

using Clock = std::chrono::steady_clock;

bool Contains(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

std::pair<std::string, std::string> SplitVolume(const std::string& key) {
  const auto slash = key.find('/');
  return {key.substr(0, slash), key.substr(slash + 1)};
}

bool Simulated(const Node& a, const Node& b) {
  return a.capabilities().driver == "TEST" && b.capabilities().driver == "TEST";
}

// Counts the bytes that pass (holes are not bytes).
class CountingSink final : public VolumeSink {
 public:
  explicit CountingSink(VolumeSink& inner) : inner_(inner) {}
  Result<void> Write(const char* data, std::size_t size) override {
    bytes += size;
    return inner_.Write(data, size);
  }
  Result<void> Hole(std::uint64_t length) override { return inner_.Hole(length); }
  Result<void> Finish() override { return inner_.Finish(); }
  void Abort() override { inner_.Abort(); }
  std::uint64_t bytes = 0;

 private:
  VolumeSink& inner_;
};

class Migration {
 public:
  Migration(const MigrationRequest& r, StepContext& ctx) : r_(r), ctx_(ctx) {}

  Result<std::string> Run() {
    const auto start = Clock::now();
    Node& src = *r_.source;
    Node& dst = *r_.target;
    auto here = src.domains().ObserveVm(r_.vm);
    auto there = dst.domains().ObserveVm(r_.vm);
    if (there && !there->Owned()) {
      return Fail(ErrorCode::kAlreadyExists, "a domain named " + r_.vm + " exists on " + dst.name() + " and is not gitvirt's");
    }
    if (!here) {
      if (here.error().code != ErrorCode::kNotFound) return std::unexpected(here.error());
      if (there) {
        ctx_.Event(EventLevel::kInfo, r_.vm + " is on " + dst.name() + " already");
        return Outcome("done before", true);
      }
      return Fail(ErrorCode::kNotFound, r_.vm + " is on neither " + src.name() + " nor " + dst.name());
    }
    if (!here->Owned()) return Fail(ErrorCode::kFailedPrecondition, r_.vm + " on " + src.name() + " is not gitvirt's");
    current_ = *here;
    const bool running = current_.power != PowerState::kStopped;
    if (running && r_.mode == "offline") {
      return Fail(ErrorCode::kFailedPrecondition,
                  r_.vm + " is running on " + src.name() + "; an offline migration needs it stopped");
    }
    if (auto ok = EnsurePools(); !ok) return std::unexpected(ok.error());
    std::string mode = running ? "live" : "offline";
    if (running && Simulated(src, dst)) {
      if (auto ok = SimulatedLive(); !ok) return std::unexpected(ok.error());
    } else if (running) {
      auto live = Live();
      if (!live && r_.allow_offline && live.error().code != ErrorCode::kCancelled) {
        ctx_.Event(EventLevel::kWarning, "live migration of " + r_.vm + " failed (" + live.error().message +
                                             "); migration.allowOffline: moving it offline");
        if (auto ok = StopForOffline(); !ok) return std::unexpected(ok.error());
        if (auto ok = Offline(); !ok) return std::unexpected(ok.error());
        if (auto ok = RestorePower(dst, current_.power); !ok) return std::unexpected(ok.error());
        mode = "offline (live failed)";
      } else if (!live) {
        return std::unexpected(live.error());
      }
    } else {
      if (auto ok = Offline(); !ok) return std::unexpected(ok.error());
    }
    seconds_ = std::chrono::duration<double>(Clock::now() - start).count();
    ctx_.Event(EventLevel::kInfo, "migrated " + r_.vm + " from " + src.name() + " to " + dst.name() + " (" + mode +
                                      (Simulated(src, dst) ? ", simulated" : "") + ", " +
                                      std::to_string(r_.volumes.size()) + " volume(s) copied, " +
                                      FormatSize(bytes_) + ")");
    return Outcome(mode, false);
  }

  Result<UndoOutcome> Undo(const std::string& undo_json) {
    // Read strictly, before either node is asked anything.
    auto record = DecodeUndo<MigrationUndo>(undo_json, "job " + ctx_.job_id() + " step " + ctx_.step_id());
    if (!record) return std::unexpected(record.error());
    const MigrationUndo& undo = *record;
    Node& src = *r_.source;
    Node& dst = *r_.target;
    // Everything this step made on the target; what holds the VM's data once it is there (the
    // byte copies, and the disks a live migration filled).
    const std::vector<std::string> made = [&] {
      auto list = undo.copied;
      for (const auto* more : {&undo.copying, &undo.created}) {
        for (const std::string& v : *more) {
          if (!Contains(list, v)) list.push_back(v);
        }
      }
      return list;
    }();
    auto there = dst.domains().ObserveVm(r_.vm);
    auto here = src.domains().ObserveVm(r_.vm);
    const PowerState before = undo.source_power.value_or(PowerState::kStopped);
    std::vector<std::string> copied = undo.copied;
    for (const std::string& v : undo.created) {
      if (!Contains(copied, v)) copied.push_back(v);
    }
    if (there && there->Owned() && !here) {
      current_ = *there;
      const bool running = there->power != PowerState::kStopped;
      if (running && !Simulated(src, dst)) {
        // Back the way it came, while it runs: the source's volumes receive the disks again
        // (any a later step deleted are made again, empty, first).
        for (const std::string& v : copied) {
          const auto [pool, name] = SplitVolume(v);
          if (src.storage().GetVolume(pool, name) || !dst.storage().GetVolume(pool, name)) continue;
          if (!DiskOn(*there, v)) {
            if (auto ok = Copy(dst, src, v); !ok) return std::unexpected(ok.error());
            continue;
          }
          auto info = dst.storage().GetVolume(pool, name);
          if (!info) return std::unexpected(info.error());
          auto layout = Layout(*info, v);
          if (!layout) return std::unexpected(layout.error());
          if (auto ok = src.storage().CreateVolume(*layout); !ok) return std::unexpected(ok.error());
        }
        LiveMigration back;
        back.copy_volumes = DiskVolumes(*there, made);
        back.bandwidth = r_.bandwidth;
        back.address = r_.source_address;
        back.trust_storage = OnlyReadOnlyLeft(*there, made);
        if (auto ok = r_.migrations->MigrateLive(r_.vm, dst.name(), src.name(), back); !ok) {
          return std::unexpected(ok.error());
        }
        ctx_.Event(EventLevel::kInfo, r_.vm + " moved back to " + src.name() + " (live)");
      } else {
        if (running) {
          if (auto ok = dst.power().Destroy(r_.vm); !ok) return std::unexpected(ok.error());
        }
        // Its disks as they are now go back where they came from (on simulated nodes, the
        // volumes a later step deleted from the source are made again).
        for (const std::string& v : copied) {
          const auto [pool, name] = SplitVolume(v);
          if (!dst.storage().GetVolume(pool, name)) continue;
          const bool on_source = static_cast<bool>(src.storage().GetVolume(pool, name));
          if (Simulated(src, dst) && on_source) continue;
          if (on_source) {
            if (auto ok = src.storage().DeleteVolume(pool, name); !ok) return std::unexpected(ok.error());
          }
          if (auto ok = Copy(dst, src, v); !ok) return std::unexpected(ok.error());
        }
        auto snapshots = dst.snapshots().Export(r_.vm);
        if (!undo.source_definition) return UndoOutcome::kNotUndoable;
        if (auto ok = src.domains().Restore(SavedDomain{*undo.source_definition}); !ok) {
          return std::unexpected(ok.error());
        }
        if (snapshots) {
          if (auto ok = src.snapshots().Import(r_.vm, *snapshots); !ok) return std::unexpected(ok.error());
        }
        if (auto ok = src.domains().SetAutostart(r_.vm, undo.source_autostart); !ok) {
          return std::unexpected(ok.error());
        }
        if (auto ok = dst.domains().Undefine(r_.vm); !ok) return std::unexpected(ok.error());
        ctx_.Event(EventLevel::kInfo, r_.vm + " moved back to " + src.name() + " (offline)");
      }
    } else if (there && there->Owned() && here && here->Owned() && undo.defined) {
      // The offline copy was defined but the source never let go: drop the copy.
      if (auto ok = dst.domains().Undefine(r_.vm); !ok) return std::unexpected(ok.error());
    }
    // The power state before the step (a fallback stopped it; a simulated move started a copy).
    if (auto now = src.power().Get(r_.vm); now && before != *now) {
      if (auto ok = RestorePower(src, before); !ok) return std::unexpected(ok.error());
    }
    if (auto back = src.domains().ObserveVm(r_.vm); !back) {
      // Never delete the copies while the source does not hold the VM again.
      return std::unexpected(back.error().Wrap("moving " + r_.vm + " back to " + src.name()));
    }
    for (const std::string& v : copied) {
      const auto [pool, name] = SplitVolume(v);
      if (!src.storage().GetVolume(pool, name)) {
        return Fail(ErrorCode::kFailedPrecondition, "volume " + v + " is on " + dst.name() + " only; keeping it there",
                    "moving " + r_.vm + " back to " + src.name());
      }
    }
    for (const std::string& v : made) {
      const auto [pool, name] = SplitVolume(v);
      auto deleted = dst.storage().DeleteVolume(pool, name);
      if (!deleted && deleted.error().code != ErrorCode::kNotFound) return std::unexpected(deleted.error());
    }
    return UndoOutcome::kUndone;
  }

 private:
  // The step's result, which the journal keeps: describe vm reads it.
  Result<std::string> Outcome(const std::string& mode, bool already) {
    json out{{"source", r_.source->name()},
             {"target", r_.target->name()},
             {"mode", mode},
             {"volumes", r_.volumes},
             {"bytes", bytes_},
             {"seconds", seconds_}};
    if (Simulated(*r_.source, *r_.target)) out["simulated"] = true;
    if (already) out["alreadyDone"] = true;
    return out.dump();
  }

  Result<void> EnsurePools() {
    std::set<std::string> pools;
    for (const std::string& v : r_.volumes) pools.insert(SplitVolume(v).first);
    for (const Disk& d : current_.actual.disks) {
      if (d.source.type != DiskSourceType::kPath) pools.insert(d.pool);
    }
    if (!r_.ensure_pools) return {};
    return r_.ensure_pools(*r_.target, pools);
  }

  VirtualMachine CurrentVm(const ObservedVm& vm) const {
    VirtualMachine out;
    out.meta.name = r_.vm;
    out.spec = vm.last_applied ? *vm.last_applied : vm.actual;
    return out;
  }

  // The disk (not cdrom, not seed) that lives on volume `key`, if any.
  std::optional<Disk> DiskOn(const ObservedVm& vm, const std::string& key) const {
    const VirtualMachine v = CurrentVm(vm);
    for (const Disk& d : v.spec.disks) {
      const StorageRef ref = DiskStorage(v, d);
      if (ref.IsVolume() && ref.pool + "/" + ref.volume == key) return d;
    }
    return std::nullopt;
  }

  std::vector<std::string> DiskVolumes(const ObservedVm& vm, const std::vector<std::string>& keys) const {
    std::vector<std::string> out;
    for (const std::string& k : keys) {
      if (DiskOn(vm, k)) out.push_back(k);
    }
    return out;
  }

  // What the copy of `key` on the target looks like: the disk's layout (a linked clone keeps
  // its backing image, which the plan imported on the target), or, for anything else (the
  // seed), the source volume's own format.
  Result<VolumeSpec> Layout(const ObservedVolume& info, const std::string& key) {
    const auto [pool, name] = SplitVolume(key);
    VolumeSpec spec;
    if (auto disk = DiskOn(current_, key); disk && r_.volume_for) {
      auto s = r_.volume_for(CurrentVm(current_), *disk);
      if (!s) return std::unexpected(s.error());
      spec = *s;
      spec.copy_from.reset();
    }
    spec.pool = pool;
    spec.name = name;
    spec.capacity = info.capacity;
    if (!info.format.empty()) spec.format = info.format;
    if (info.backing.empty()) spec.backing.reset();
    return spec;
  }

  // Copies one volume from `from` to `to`: bytes where volumes hold bytes, metadata between
  // simulated nodes.
  Result<void> Copy(Node& from, Node& to, const std::string& key) {
    const auto [pool, name] = SplitVolume(key);
    auto info = from.storage().GetVolume(pool, name);
    if (!info) return std::unexpected(info.error());
    auto layout = Layout(*info, key);
    if (!layout) return std::unexpected(layout.error());
    if (Simulated(from, to)) return to.storage().CreateVolume(*layout);
    std::string backing;
    if (layout->backing && !info->backing.empty()) {
      auto base = to.storage().GetVolume(layout->backing->pool, layout->backing->volume);
      if (!base) return std::unexpected(base.error().Wrap("the backing image of " + key + " on " + to.name()));
      if (base->path != info->backing) backing = base->path;
    }
    VolumeSpec raw;
    raw.pool = pool;
    raw.name = name;
    raw.capacity = info->physical != 0 ? info->physical : info->allocation;
    auto sink = to.storage().WriteVolume(raw);
    if (!sink) return std::unexpected(sink.error());
    CountingSink counted(**sink);
    std::optional<Qcow2BackingRewriter> rewriter;
    if (!backing.empty()) rewriter.emplace(counted, backing);
    VolumeSink& into = rewriter ? static_cast<VolumeSink&>(*rewriter) : counted;
    if (auto ok = from.storage().ReadVolume(pool, name, into); !ok) return ok;
    bytes_ += counted.bytes;
    return {};
  }

  // Makes the volumes on the target, recording each before it is made ("copying") and once it
  // is done: "copied" when it holds the source's bytes (or, simulated, metadata), "created" when
  // it is an empty disk a live migration fills. A volume an interrupted attempt left half-made is
  // made again; so is an empty one when the bytes are needed (a live migration that fell back
  // to offline).
  Result<void> CopyAll(bool empty_disks) {
    Node& src = *r_.source;
    Node& dst = *r_.target;
    for (const std::string& key : r_.volumes) {
      auto undo = UndoSoFar<MigrationUndo>(ctx_);
      if (!undo) return std::unexpected(undo.error());
      std::vector<std::string>& copying = undo->copying;
      std::vector<std::string>& copied = undo->copied;
      std::vector<std::string>& created = undo->created;
      const bool empty = empty_disks && DiskOn(current_, key).has_value();
      const auto [pool, name] = SplitVolume(key);
      if (dst.storage().GetVolume(pool, name)) {
        if (Contains(copied, key) || (empty && Contains(created, key))) continue;
        if (!Contains(copying, key) && !Contains(created, key)) {
          return Fail(ErrorCode::kAlreadyExists, "volume " + key + " exists on " + dst.name() +
                                                      " and this migration did not copy it there");
        }
        if (auto ok = dst.storage().DeleteVolume(pool, name); !ok) return ok;
      }
      if (!Contains(copying, key)) copying.push_back(key);
      std::erase(created, key);
      if (auto ok = RecordUndo(ctx_, *undo); !ok) return ok;
      if (empty) {
        // Filled by QEMU during the live migration.
        auto info = src.storage().GetVolume(pool, name);
        if (!info) return std::unexpected(info.error());
        auto layout = Layout(*info, key);
        if (!layout) return std::unexpected(layout.error());
        if (auto ok = dst.storage().CreateVolume(*layout); !ok) return ok;
        created.push_back(key);
        if (auto ok = RecordUndo(ctx_, *undo); !ok) return ok;
        continue;
      }
      if (auto ok = Copy(src, dst, key); !ok) return ok;
      copied.push_back(key);
      if (auto ok = RecordUndo(ctx_, *undo); !ok) return ok;
    }
    return {};
  }

  // Define on the target, carry the snapshot metadata, undefine on the source.
  Result<void> MoveDefinition() {
    Node& src = *r_.source;
    Node& dst = *r_.target;
    auto saved = src.domains().Save(r_.vm);
    if (!saved) return std::unexpected(saved.error());
    SavedSnapshots snapshots;
    if (!current_.snapshots.empty()) {
      auto listed = src.snapshots().Export(r_.vm);
      if (!listed) return std::unexpected(listed.error());
      snapshots = std::move(*listed);
    }
    if (auto ok = Record([](MigrationUndo& u) { u.defined = true; }); !ok) return ok;
    if (auto ok = dst.domains().Restore(*saved); !ok) return ok;
    if (auto ok = dst.snapshots().Import(r_.vm, snapshots); !ok) return ok;
    if (auto ok = dst.domains().SetAutostart(r_.vm, current_.autostart); !ok) return ok;
    return {};
  }

  Result<void> LetGoOfSource() {
    if (auto ok = Record([](MigrationUndo& u) { u.source_undefined = true; }); !ok) return ok;
    // The UEFI variables and TPM state stay on the source (the plan says so): nothing carries
    // them to the target, and nothing may destroy them.
    auto gone = r_.source->domains().UndefineKeepingFirmwareState(r_.vm);
    if (!gone && gone.error().code != ErrorCode::kNotFound) return gone;
    return {};
  }

  Result<void> Offline() {
    if (auto ok = CopyAll(false); !ok) return ok;
    if (auto ok = MoveDefinition(); !ok) return ok;
    return LetGoOfSource();
  }

  Result<void> SimulatedLive() {
    if (auto ok = CopyAll(false); !ok) return ok;
    if (auto ok = MoveDefinition(); !ok) return ok;
    if (auto ok = RestorePower(*r_.target, current_.power); !ok) return ok;
    return LetGoOfSource();
  }

  Result<void> Live() {
    if (auto ok = CopyAll(true); !ok) return ok;
    LiveMigration options;
    options.copy_volumes = DiskVolumes(current_, r_.volumes);
    options.bandwidth = r_.bandwidth;
    options.address = r_.target_address;
    options.trust_storage = OnlyReadOnlyLeft(current_, r_.volumes);
    if (auto ok = Record([](MigrationUndo& u) { u.live = true; }); !ok) return ok;
    return r_.migrations->MigrateLive(r_.vm, r_.source->name(), r_.target->name(), options);
  }

  Result<void> StopForOffline() {
    if (auto ok = Record([](MigrationUndo& u) { u.stopped_for_offline = true; }); !ok) return ok;
    return r_.source->power().Shutdown(r_.vm, r_.update_policy.shutdown_timeout, r_.update_policy.force_off);
  }

  // Adds to the step's undo record, durably, before what it prepares for.
  template <typename Change>
  Result<void> Record(Change change) {
    auto undo = UndoSoFar<MigrationUndo>(ctx_);
    if (!undo) return std::unexpected(undo.error());
    change(*undo);
    return RecordUndo(ctx_, *undo);
  }

  Result<void> RestorePower(Node& hv, PowerState power) {
    switch (power) {
      case PowerState::kStopped: return hv.power().Destroy(r_.vm);
      case PowerState::kRunning: return hv.power().Start(r_.vm);
      case PowerState::kPaused: {
        if (auto ok = hv.power().Start(r_.vm); !ok) return ok;
        return hv.power().Suspend(r_.vm);
      }
    }
    return {};
  }

  // libvirt refuses a live migration when a disk it does not copy is on local storage, unless
  // told it is safe: it is when every such disk is read-only (cdroms, the seed: copied before).
  // A writable disk on shared storage is left to libvirt's own check (cache mode).
  bool OnlyReadOnlyLeft(const ObservedVm& vm, const std::vector<std::string>& copied) const {
    const VirtualMachine v = CurrentVm(vm);
    for (const Disk& d : v.spec.disks) {
      const StorageRef ref = DiskStorage(v, d);
      if (d.readonly) continue;
      if (!ref.IsVolume() || !Contains(copied, ref.pool + "/" + ref.volume)) return false;
    }
    return true;
  }

  const MigrationRequest& r_;
  StepContext& ctx_;
  ObservedVm current_;
  std::uint64_t bytes_ = 0;
  double seconds_ = 0;
};

}  // namespace

Result<std::string> PrepareMigration(const MigrationRequest& request) {
  auto vm = request.source->domains().ObserveVm(request.vm);
  if (!vm) {
    if (vm.error().code == ErrorCode::kNotFound) return std::string("{}");
    return std::unexpected(vm.error());
  }
  auto saved = request.source->domains().Save(request.vm);
  if (!saved) return std::unexpected(saved.error());
  MigrationUndo undo;
  undo.source_definition = saved->bytes;
  undo.source_power = vm->power;
  undo.source_autostart = vm->autostart;
  return EncodeUndo(undo);
}

Result<std::string> RunMigration(const MigrationRequest& request, StepContext& context) {
  return Migration(request, context).Run();
}

Result<UndoOutcome> UndoMigration(const MigrationRequest& request, const std::string& undo_json,
                                  StepContext& context) {
  return Migration(request, context).Undo(undo_json);
}

}  // namespace gitvirt
