#pragma once
// What a step journals so that it can be undone, one type per action family. The step runner
// says it before the side effect (Prepare) and adds to it as it learns more (volumes just made);
// the executor journals it durably each time (StepContext::RecordUndo) as JSON through the core
// field tables (core/json_table.h), with the keys it has always had; Undo and a resumed step
// read it back strictly. A record that does not decode, or does not decode as its family's type,
// is an error naming the job, the step and the field, returned before any call to a node: a step
// is never undone, or run again, on the strength of a record that cannot be read.
//
// Pure values; thread-compatible.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gitvirt/core/error.h"
#include "gitvirt/core/model.h"
#include "gitvirt/core/observed.h"
#include "gitvirt/core/plan.h"
#include "gitvirt/engine/executor.h"

namespace gitvirt {

// create, update-live, update-restart, replace, delete, backup-restore: a VM's definition.
struct DefinitionUndo {
  std::vector<std::string> volumes;  // "pool/volume" this step created (the seed's included)
  bool defined = false;              // create, restore: the domain was (or may have been) defined
  // update, replace, delete: the definition before the step (SavedDomain::bytes, the node's own
  // format: "previousXml" for the plans' older journals) and what it does not hold.
  std::optional<std::string> previous_definition;
  std::optional<PowerState> previous_power;
  std::optional<int> previous_vcpus;
  std::optional<std::uint64_t> previous_memory;
  std::optional<bool> previous_autostart;
  std::vector<std::string> grown;     // disks grown (a disk cannot shrink: not undoable)
  std::vector<std::string> attached;  // disks hot-plugged into the running VM
  friend bool operator==(const DefinitionUndo&, const DefinitionUndo&) = default;
};

// start, stop, shutdown, reboot, suspend, resume, snapshot-revert: the power state before.
struct PowerUndo {
  std::optional<PowerState> previous_power;
  friend bool operator==(const PowerUndo&, const PowerUndo&) = default;
};

// release: gitvirt's owner mark as it was, to write back.
struct ReleaseUndo {
  std::optional<Ownership> owner;
  friend bool operator==(const ReleaseUndo&, const ReleaseUndo&) = default;
};

// adopt: whether this step may have written the owner mark (set before it writes it). Undo
// removes the mark only while it is this job's: an adopted domain goes back to unowned, as it
// ran, and is otherwise untouched.
struct AdoptUndo {
  bool marked = false;
  friend bool operator==(const AdoptUndo&, const AdoptUndo&) = default;
};

// image-import: the volume, when this step made it.
struct ImageImportUndo {
  std::vector<std::string> volumes;
  friend bool operator==(const ImageImportUndo&, const ImageImportUndo&) = default;
};

// snapshot: the snapshot this step made (or was about to make).
struct SnapshotUndo {
  std::string snapshot;
  friend bool operator==(const SnapshotUndo&, const SnapshotUndo&) = default;
};

// backup: the VM's power before (a suspend or stop mode), the backup's directory, and the
// scratch volumes a remote node's live backup was pushed into ("pool/volume").
struct BackupUndo {
  std::optional<PowerState> power_before;
  std::string directory;
  std::vector<std::string> scratch;
  friend bool operator==(const BackupUndo&, const BackupUndo&) = default;
};

// migrate (migration.h says how each field is used).
struct MigrationUndo {
  std::optional<std::string> source_definition;  // SavedDomain::bytes on the source ("sourceXml")
  std::optional<PowerState> source_power;
  bool source_autostart = false;
  std::vector<std::string> copying;  // target volumes being copied (bytes)
  std::vector<std::string> copied;   // target volumes copied whole
  std::vector<std::string> created;  // target volumes created empty, filled by a live migration
  bool defined = false;              // defined on the target
  bool source_undefined = false;
  bool live = false;                 // it moved while running
  bool stopped_for_offline = false;  // shut down for an offline fallback
  friend bool operator==(const MigrationUndo&, const MigrationUndo&) = default;
};

// The record as journaled, and back. Decoding an empty record gives the family's defaults;
// `step` names the step in the error ("job J step S").
template <typename T>
std::string EncodeUndo(const T& record);
template <typename T>
Result<T> DecodeUndo(const std::string& json_text, const std::string& step);

// The step's record so far (what Prepare said, what earlier attempts recorded), as its family's
// type; and recording a new one, durably, before the side effect it prepares for.
template <typename T>
Result<T> UndoSoFar(const StepContext& context) {
  return DecodeUndo<T>(context.undo_json(), "job " + context.job_id() + " step " + context.step_id());
}
template <typename T>
Result<void> RecordUndo(StepContext& context, const T& record) {
  return context.RecordUndo(EncodeUndo(record));
}

}  // namespace gitvirt
