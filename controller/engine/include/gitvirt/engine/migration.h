#pragma once
// Moving a VM from one node to another: the `migrate` step (issue 6).
//
//   live     a running VM moves while it runs (libvirt's managed migration, LIVE |
//            PERSIST_DEST | UNDEFINE_SOURCE); volumes that are not on shared storage are
//            created empty on the target first (a linked clone over the same image) and filled
//            by QEMU while the guest runs (NON_SHARED_DISK: the whole disk, as libvirt 9 cannot
//            pre-create volume disks for an incremental copy, so a linked clone arrives with
//            its base's data in it); read-only volumes (the cloud-init seed) are copied
//            beforehand. With migration.allowOffline a failed live migration
//            falls back to offline: the VM is shut down, moved, and started again.
//   offline  a stopped VM: its volumes are streamed from the source to the target (sparse
//            libvirt streams; a linked clone's qcow2 header gets the target's path of its
//            backing image), the definition and snapshot metadata are defined on the target,
//            then the domain is undefined on the source.
//   simulated (two test-driver nodes) the definition, snapshot metadata and volume metadata
//            move; a running VM is started on the target.
// The source's volumes stay: the plan deletes them in a later volume-delete step, so that
// until then a FULL rollback can move the VM back onto them.
//
// Undo information: a MigrationUndo (step_records.h), journaled as
//   {"sourceXml", "sourcePower", "sourceAutostart",  recorded before anything changes
//    "copying": [...], "copied": [...], "created": [...]   target volumes this step made
//                                                   (copied: bytes; created: empty, filled live)
//    "defined": true, "sourceUndefined": true,         offline progress
//    "live": true, "stoppedForOffline": true}          what happened to the running VM
// Undo moves the VM back: live when it runs on the target (the source's volumes receive the
// disks again), otherwise its volumes are copied back, the source definition restored, the
// power state before the step restored, and the target's copies deleted.

#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "gitvirt/core/error.h"
#include "gitvirt/engine/executor.h"
#include "gitvirt/hypervisor/node.h"
#include "gitvirt/hypervisor/node_set.h"

namespace gitvirt {

struct MigrationRequest {
  Node* source = nullptr;
  Node* target = nullptr;
  Migrations* migrations = nullptr;  // the live migration between the two (the NodeSet's)
  std::string vm;
  std::string mode = "offline";   // planned mode: live | offline
  bool allow_offline = false;     // a failed live migration falls back to offline
  std::vector<std::string> volumes;  // "pool/volume" to copy (not on shared storage)
  std::optional<std::uint64_t> bandwidth;
  std::string target_address;  // the target node's migration address
  std::string source_address;  // the source's, for moving back on undo
  UpdatePolicy update_policy;  // shutdown timeout and forceOff for the offline fallback
  // Creates the configured pools a node lacks (the step runner's EnsurePools).
  std::function<Result<void>(Node&, const std::set<std::string>&)> ensure_pools;
  // The layout of a disk's volume (format, linked-clone backing) as the VM's last applied spec
  // made it: what an empty copy on another node must look like.
  std::function<Result<VolumeSpec>(const VirtualMachine&, const Disk&)> volume_for;
};

// Prepare: what undoing needs, read before anything changes ({} once the VM has left).
Result<std::string> PrepareMigration(const MigrationRequest& request);
// Runs the migration; converges when run again after a crash. The result names the source,
// the target, the mode used and what was copied.
Result<std::string> RunMigration(const MigrationRequest& request, StepContext& context);
Result<UndoOutcome> UndoMigration(const MigrationRequest& request, const std::string& undo_json,
                                  StepContext& context);

// Points a qcow2 image's backing file at `backing`, in a copy of the image's first bytes
// (at least its first cluster, or the whole file when shorter): the name is rewritten in place
// in the header's cluster, as `qemu-img rebase -u` would. Fails when `head` is not a qcow2
// header with a backing file, or the new name does not fit in the first cluster.
Result<void> RewriteQcow2Backing(std::string& head, const std::string& backing);

// A VolumeSink that rewrites the qcow2 backing file name in the bytes passing through it
// (buffering the first cluster), then forwards everything to `inner`.
class Qcow2BackingRewriter final : public VolumeSink {
 public:
  Qcow2BackingRewriter(VolumeSink& inner, std::string backing) : inner_(inner), backing_(std::move(backing)) {}
  Result<void> Write(const char* data, std::size_t size) override;
  Result<void> Hole(std::uint64_t length) override;
  Result<void> Finish() override;
  void Abort() override;

 private:
  Result<void> Flush();
  VolumeSink& inner_;
  std::string backing_;
  std::string head_;
  std::size_t wanted_ = 65536;  // the first cluster, once the header says how big it is
  bool passed_ = false;
};

}  // namespace gitvirt
