#pragma once
// Field-level differences between a desired VM spec and the observed one, each classified by how
// it can be applied: live, with a restart, by replacing the VM, metadata only, or a disk growth.
// Pure.

#include <string>
#include <vector>

#include "gitvirt/core/model.h"
#include "gitvirt/core/observed.h"
#include "gitvirt/core/plan.h"

namespace gitvirt {

struct DiffContext {
  bool running = false;  // the VM is running (or paused) now
  NodeCapabilities capabilities;
};

struct VmDiff {
  std::vector<FieldChange> changes;  // ordered by path; excludes node and power state
  std::vector<std::string> errors;   // impossible changes (a disk that would shrink)

  bool Empty() const { return changes.empty() && errors.empty(); }
  bool Has(ChangeClass c) const;
};

// Compares everything but `node` and `power_state`, which become migrate and power actions.
VmDiff DiffVm(const VmSpec& desired, const VmSpec& observed, const DiffContext& context);

// `base` with exactly the fields `changes` name (paths as DiffVm gives them) taken from
// `desired`: what an update may write when some of the desired changes must wait (pending), so
// the definition and the spec recorded as applied do not claim what the VM does not have.
// Node and power state come from `desired`.
VmSpec ApplyChanges(const VmSpec& base, const VmSpec& desired, const std::vector<FieldChange>& changes);

// The observed spec of a domain whose owner mark holds `applied` (the spec gitvirt last
// applied, or, for a domain it is about to adopt, the manifest's, which adopting writes): what a
// definition cannot say (placement, the policies, os, adopt, a graphics password's source, a
// disk's backup flag and, on virtio, its ssd flag, a mediated device's type) is taken from
// `applied`; libvirt's expansions of what `applied` set (machine q35 -> pc-q35-7.2, the CPU model
// qemu64 written in for none, no video without graphics) are folded back; a disk whose storage is
// where `applied` puts it takes its source from `applied` (an image clone) and, when `applied`
// gives it no size, no size; a cdrom on `applied`'s storage its image or path. The adapter
// normalises the domains gitvirt owns with it and the planner an adoption's domain, so both see
// one observation. `observed` is as a definition reads: disks and cdroms on their own storage.
VmSpec FillFromApplied(VmSpec observed, const VmSpec& applied, const std::string& vm_name);

// Short human summaries used in plans: "40GiB virtio qcow2, linked clone of debian-12".
std::string DescribeDisk(const Disk& disk);
std::string DescribeNic(const Nic& nic);

}  // namespace gitvirt
