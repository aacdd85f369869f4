#pragma once
// The closed vocabularies of the manifest language, each with its spelling in YAML and JSON.
// EnumName/ParseEnum are the only conversions; a new value is added in one table.

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace gitvirt {

enum class Kind {
  kVirtualMachine,
  kCluster,
  kSnapshotPolicy,
  kBackupPolicy,
  kImage,
  kSyncWindow,
  kDisruptionBudget,
};
enum class DiskBus { kVirtio, kScsi, kSata, kIde };
enum class DiskFormat { kQcow2, kRaw };
enum class DiskCache { kDefault, kNone, kWritethrough, kWriteback, kDirectsync, kUnsafe };
enum class CloneMode { kLinked, kFull, kNone };
enum class DiskSourceType { kNew, kImage, kVolume, kPath };
enum class NicModel { kVirtio, kE1000, kE1000e, kRtl8139 };
enum class CpuMode { kDefault, kHostPassthrough, kHostModel, kCustom, kMaximum };
enum class FirmwareType { kBios, kUefi };
enum class GraphicsType { kNone, kVnc, kSpice };
enum class VideoModel { kVirtio, kQxl, kVga, kCirrus, kBochs, kNone };
enum class PowerState { kRunning, kStopped, kPaused };
enum class RestartPolicy { kNever, kAllowed };
enum class DeletionPolicy { kDelete, kRetain, kProtect, kKeepDisks };
enum class UserDataMode { kMerge, kReplace };
enum class AntiAffinity { kNone, kSoft, kHard };
enum class RollbackStrategy { kFull, kPartial, kNone, kMarkFailed };
enum class BackupMode { kSnapshot, kSuspend, kStop };
enum class Compression { kZstd, kGzip, kNone };
enum class ImageFormat { kQcow2, kRaw, kIso };
enum class IpMode { kNone, kDhcp, kStatic, kAuto };
enum class SyncWindowType { kAllow, kDeny };

template <typename E>
struct EnumTable;  // specialised below: static constexpr std::array<std::pair<E, std::string_view>, N> kNames

// Declares the spellings of an enum; usable by any header that defines a closed vocabulary.
#define GITVIRT_ENUM_TABLE(E, ...)                                          \
  template <>                                                               \
  struct EnumTable<E> {                                                     \
    static constexpr std::pair<E, std::string_view> kNames[] = {__VA_ARGS__}; \
  }

GITVIRT_ENUM_TABLE(Kind, {Kind::kVirtualMachine, "VirtualMachine"}, {Kind::kCluster, "Cluster"},
                   {Kind::kSnapshotPolicy, "SnapshotPolicy"},
                   {Kind::kBackupPolicy, "BackupPolicy"}, {Kind::kImage, "Image"},
                   {Kind::kSyncWindow, "SyncWindow"}, {Kind::kDisruptionBudget, "DisruptionBudget"});
GITVIRT_ENUM_TABLE(DiskBus, {DiskBus::kVirtio, "virtio"}, {DiskBus::kScsi, "scsi"},
                   {DiskBus::kSata, "sata"}, {DiskBus::kIde, "ide"});
GITVIRT_ENUM_TABLE(DiskFormat, {DiskFormat::kQcow2, "qcow2"}, {DiskFormat::kRaw, "raw"});
GITVIRT_ENUM_TABLE(DiskCache, {DiskCache::kDefault, "default"}, {DiskCache::kNone, "none"},
                   {DiskCache::kWritethrough, "writethrough"},
                   {DiskCache::kWriteback, "writeback"},
                   {DiskCache::kDirectsync, "directsync"}, {DiskCache::kUnsafe, "unsafe"});
GITVIRT_ENUM_TABLE(CloneMode, {CloneMode::kLinked, "linked"}, {CloneMode::kFull, "full"},
                   {CloneMode::kNone, "none"});
GITVIRT_ENUM_TABLE(DiskSourceType, {DiskSourceType::kNew, "new"},
                   {DiskSourceType::kImage, "image"}, {DiskSourceType::kVolume, "volume"},
                   {DiskSourceType::kPath, "path"});
GITVIRT_ENUM_TABLE(NicModel, {NicModel::kVirtio, "virtio"}, {NicModel::kE1000, "e1000"},
                   {NicModel::kE1000e, "e1000e"}, {NicModel::kRtl8139, "rtl8139"});
GITVIRT_ENUM_TABLE(CpuMode, {CpuMode::kDefault, "default"},
                   {CpuMode::kHostPassthrough, "host-passthrough"},
                   {CpuMode::kHostModel, "host-model"}, {CpuMode::kCustom, "custom"},
                   {CpuMode::kMaximum, "maximum"});
GITVIRT_ENUM_TABLE(FirmwareType, {FirmwareType::kBios, "bios"}, {FirmwareType::kUefi, "uefi"});
GITVIRT_ENUM_TABLE(GraphicsType, {GraphicsType::kNone, "none"}, {GraphicsType::kVnc, "vnc"},
                   {GraphicsType::kSpice, "spice"});
GITVIRT_ENUM_TABLE(VideoModel, {VideoModel::kVirtio, "virtio"}, {VideoModel::kQxl, "qxl"},
                   {VideoModel::kVga, "vga"}, {VideoModel::kCirrus, "cirrus"},
                   {VideoModel::kBochs, "bochs"}, {VideoModel::kNone, "none"});
GITVIRT_ENUM_TABLE(PowerState, {PowerState::kRunning, "Running"}, {PowerState::kStopped, "Stopped"},
                   {PowerState::kPaused, "Paused"});
GITVIRT_ENUM_TABLE(RestartPolicy, {RestartPolicy::kNever, "Never"},
                   {RestartPolicy::kAllowed, "Allowed"});
GITVIRT_ENUM_TABLE(DeletionPolicy, {DeletionPolicy::kDelete, "Delete"},
                   {DeletionPolicy::kRetain, "Retain"}, {DeletionPolicy::kProtect, "Protect"},
                   {DeletionPolicy::kKeepDisks, "KeepDisks"});
GITVIRT_ENUM_TABLE(UserDataMode, {UserDataMode::kMerge, "merge"},
                   {UserDataMode::kReplace, "replace"});
GITVIRT_ENUM_TABLE(AntiAffinity, {AntiAffinity::kNone, "NONE"}, {AntiAffinity::kSoft, "SOFT"},
                   {AntiAffinity::kHard, "HARD"});
GITVIRT_ENUM_TABLE(RollbackStrategy, {RollbackStrategy::kFull, "FULL"},
                   {RollbackStrategy::kPartial, "PARTIAL"}, {RollbackStrategy::kNone, "NONE"},
                   {RollbackStrategy::kMarkFailed, "MARK_FAILED"});
GITVIRT_ENUM_TABLE(BackupMode, {BackupMode::kSnapshot, "snapshot"},
                   {BackupMode::kSuspend, "suspend"}, {BackupMode::kStop, "stop"});
GITVIRT_ENUM_TABLE(Compression, {Compression::kZstd, "zstd"}, {Compression::kGzip, "gzip"},
                   {Compression::kNone, "none"});
GITVIRT_ENUM_TABLE(ImageFormat, {ImageFormat::kQcow2, "qcow2"}, {ImageFormat::kRaw, "raw"},
                   {ImageFormat::kIso, "iso"});
GITVIRT_ENUM_TABLE(IpMode, {IpMode::kNone, "none"}, {IpMode::kDhcp, "dhcp"},
                   {IpMode::kStatic, "static"}, {IpMode::kAuto, "auto"});
GITVIRT_ENUM_TABLE(SyncWindowType, {SyncWindowType::kAllow, "allow"}, {SyncWindowType::kDeny, "deny"});

template <typename E>
constexpr std::string_view EnumName(E value) {
  for (const auto& [v, name] : EnumTable<E>::kNames) {
    if (v == value) return name;
  }
  return "?";
}

template <typename E>
constexpr std::optional<E> ParseEnum(std::string_view text) {
  for (const auto& [v, name] : EnumTable<E>::kNames) {
    if (name == text) return v;
  }
  return std::nullopt;
}

// "a | b | c": the accepted spellings, for error messages and the schemas.
template <typename E>
std::string EnumChoices() {
  std::string out;
  for (const auto& [v, name] : EnumTable<E>::kNames) {
    if (!out.empty()) out += " | ";
    out += name;
  }
  return out;
}

}  // namespace gitvirt
