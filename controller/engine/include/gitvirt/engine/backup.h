#pragma once
// Full backups of a VM's disks into a directory on the controller host, their manifest, their
// verification, and restoring a VM from one.
//
// Layout: <target>/<vm>/<backup id>/
//   manifest.json             what is here (BackupManifest), with the sha256 of every file
//   domain.xml                the domain's persistent definition when the backup was taken
//   disk-<name>.<fmt>[.zst|.gz]  each disk, in its own format (qcow2 or raw), compressed
// A backup is written into "<id>.partial" and renamed into place when complete, so a directory
// with a manifest is always a whole backup.
//
// How the disks are read, per node and VM state (BackupMode):
//   QEMU, running/paused, mode snapshot  libvirt push backup (Backups::CopyDisks) of all
//                                        disks at one instant while the guest runs
//   QEMU, running, mode suspend          suspend, `qemu-img convert -U`, resume
//   QEMU, running, mode stop             shutdown (the VM's updatePolicy), convert, start again
//   QEMU, paused (suspend, stop)         convert; the VM stays paused
//   QEMU, stopped (any mode)             convert
//   test driver (sim: nodes)             no disk bytes exist: each disk file holds the volume's
//                                        metadata and the manifest says "simulated": true, so
//                                        catalog, retention, verify and restore work end to end
//                                        on simulated nodes and are never mistaken for a real
//                                        backup.
// On a node whose files the controller cannot read (a remote node: NodeConfig::IsLocal() is
// false) the bytes come through libvirt alone, no ssh: "convert" above is downloading each disk
// and its backing chain (virStorageVolDownload), re-pointing the local copies at each other
// (qemu-img rebase -u) and flattening them with the same qemu-img convert; a live backup is
// pushed into a scratch file in the disk's pool on the node (".gitvirt-backup-<id>-<disk>.<fmt>",
// recorded in the step's undo information as "scratch": ["pool/volume", ...]), downloaded, and
// deleted. Compression, sums, manifest and catalog are the same for every node.

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "gitvirt/core/error.h"
#include "gitvirt/core/model.h"
#include "gitvirt/engine/executor.h"
#include "gitvirt/hypervisor/node.h"
#include "gitvirt/store/backup_catalog.h"

namespace gitvirt {

struct BackupFile {
  std::string name;    // file name in the backup directory
  std::string disk;    // the VM's disk name
  std::string format;  // qcow2 | raw (of the content, after decompression)
  std::string pool;    // where the disk lived
  std::string volume;
  std::string path;
  std::uint64_t capacity = 0;   // the disk's virtual size
  std::uint64_t size = 0;       // bytes of this file as stored
  std::string sha256;           // of this file as stored
  std::uint64_t raw_size = 0;   // bytes after decompression
  std::string raw_sha256;       // of the bytes after decompression
  friend bool operator==(const BackupFile&, const BackupFile&) = default;
};

struct BackupManifest {
  static constexpr int kFormatVersion = 1;
  std::string id;
  std::string vm;
  std::string node;
  std::string policy;
  std::string mode;         // snapshot | suspend | stop | offline | simulated
  std::string compression;  // zstd | gzip | none
  int level = 0;
  TimePoint created{};
  double seconds = 0;       // how long taking it took
  std::string revision;     // the git revision (or directory fingerprint) in force
  std::string job_id;
  std::string description;
  bool simulated = false;
  bool is_protected = false;
  bool verified = false;    // checked after writing
  // The persistent definition as the node saved it (SavedDomain::bytes), given back to the node
  // on restore; "domainXml" in manifest.json, and in domain.xml beside it.
  std::string definition;
  std::vector<BackupFile> files;
  std::uint64_t Bytes() const;  // stored bytes, all files
  friend bool operator==(const BackupManifest&, const BackupManifest&) = default;
};

nlohmann::json ManifestToJson(const BackupManifest& manifest);
Result<BackupManifest> ManifestFromJson(const nlohmann::json& j);
// Reads <dir>/manifest.json.
Result<BackupManifest> ReadManifest(const std::string& dir);
// The catalog's view of a backup.
BackupRecord RecordOf(const BackupManifest& manifest, const std::string& dir);

// Sizes and SHA-256 of a stream before (raw) and after (stored) compression.
struct StreamDigest {
  std::uint64_t raw_size = 0;
  std::string raw_sha256;
  std::uint64_t size = 0;
  std::string sha256;
};
// Compresses `in` into `out` (streaming: zstd with libzstd, gzip with zlib, none = copy).
Result<StreamDigest> CompressFile(const std::string& in, const std::string& out, Compression compression,
                                  int level);
// Decompresses `in` into `out` ("" = only read and hash the result, writing nothing).
Result<StreamDigest> DecompressFile(const std::string& in, const std::string& out, Compression compression);

// Re-reads every file of the backup in `dir`: the stored bytes and the decompressed bytes must
// match the manifest's sums. The error names the first file that does not.
Result<void> VerifyBackup(const BackupManifest& manifest, const std::string& dir);

struct BackupRequest {
  std::string id;
  std::string directory;  // the final directory, <target>/<vm>/<id>
  std::string vm;
  std::string policy;
  std::string revision;
  std::string description;
  std::string job_id;
  BackupMode mode = BackupMode::kSnapshot;
  Compression compression = Compression::kZstd;
  int level = 3;
  bool verify = false;
  bool is_protected = false;
  TimePoint created{};
  UpdatePolicy update_policy;          // mode stop: how to shut the VM down
  std::vector<std::string> skip_disks; // disks whose spec says backup: false
  bool local_node = true;              // the node's files are on this host (else: through libvirt)
  std::chrono::seconds timeout{600};
};

// Takes the backup (idempotent: a backup whose directory is complete is not taken again),
// reporting progress and undo information (the VM's power before) through `context`.
Result<BackupManifest> TakeBackup(Node& node, const BackupRequest& request, StepContext& context);

// Deletes the scratch volumes ("pool/volume") a live backup of a remote node recorded under
// "scratch" in its undo information; those already gone are fine.
Result<void> DeleteBackupScratch(Storage& storage, const std::vector<std::string>& keys);

// Deletes a backup directory. A protected backup is refused unless `force`.
Result<void> DeleteBackupDirectory(const std::string& dir, bool force);

// Every complete backup under a target directory (<target>/<vm>/<id>/manifest.json).
std::vector<BackupRecord> ScanBackups(const std::string& target, std::vector<std::string>* problems = nullptr);

// Brings the catalog in line with what `target` holds (the directories are the truth): backups
// found there are put in, complete records located under it whose directory is gone are
// removed; records elsewhere are not touched. Returns how many records changed. Run before
// every BackupPolicy run, so retention sees every backup of the policy even after the state
// file was lost, and `backup list --rescan` does it for every target.
Result<int> SyncCatalogWithTarget(BackupCatalog& catalog, const std::string& target,
                                  std::vector<std::string>* problems = nullptr);

struct RestoreRequest {
  std::string directory;  // the backup
  std::string new_name;   // "" = the backed-up VM's name
  bool managed = false;   // the new name is a VM in the manifests: keep gitvirt's owner mark
  std::string cache_dir;  // scratch space for decompressed disks
  std::string job_id;
  std::string revision;
};

// Recreates the VM on `node` from the backup: checks the sums first, writes each disk into a new
// volume "<name>-<disk>.<fmt>" in the disk's pool (recorded in the undo information before it
// is created), and defines the domain from the backup's definition under the new name with a new UUID,
// the disks pointing at the new volumes, fresh MAC addresses, no cloud-init seed. The VM is left
// stopped. Returns the volumes created.
Result<std::vector<std::string>> RestoreBackup(Node& node, const RestoreRequest& request,
                                               StepContext& context);

}  // namespace gitvirt
