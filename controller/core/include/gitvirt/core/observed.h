#pragma once
// The observed model: what the hypervisors really run, as one value per observation pass.
//
// A domain's configuration is read back into the same VmSpec shape the manifests produce, so the
// planner compares like with like. Only what libvirt can tell us is filled in (`actual`); the
// rest (clone sources, cloud-init contents, policies) comes from the spec gitvirt last applied,
// which it stores in the domain's owner metadata (`last_applied`), like kubectl's
// last-applied-configuration.

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "gitvirt/core/model.h"
#include "gitvirt/core/time.h"

namespace gitvirt {

// gitvirt's mark on a domain it owns (the <gitvirt:owner> metadata element).
struct Ownership {
  Kind kind = Kind::kVirtualMachine;
  std::string name;
  std::string cluster;
  std::string group;
  std::string spec_hash;
  std::string revision;  // git revision (or directory fingerprint) that last applied it
  std::string job;       // the job that last applied it
  std::string cloud_init_hash;  // inputs of the attached NoCloud seed
  std::vector<std::string> created_volumes;  // "pool/volume" created by gitvirt for this VM
  std::string applied_spec;     // JSON of the VmSpec last applied
  Labels labels;
  std::vector<std::string> tags;
  friend bool operator==(const Ownership&, const Ownership&) = default;
};

struct ObservedSnapshot {
  std::string name;
  TimePoint created{};
  std::string state;  // libvirt's: running, shutoff, paused, disk-snapshot
  std::string description;
  std::string policy;  // the SnapshotPolicy that made it, "" when made by hand
  bool current = false;
  friend bool operator==(const ObservedSnapshot&, const ObservedSnapshot&) = default;
};

struct ObservedVm {
  std::string name;
  std::string uuid;
  std::string node;
  PowerState power = PowerState::kStopped;
  std::string state_detail;  // "running", "shut off", "paused", "crashed", ...
  bool persistent = true;
  bool autostart = false;
  VmSpec actual;                        // read back from the persistent definition
  std::optional<Ownership> owner;       // nullopt: not gitvirt's; never touched
  std::optional<VmSpec> last_applied;   // parsed from owner->applied_spec
  std::vector<ObservedSnapshot> snapshots;
  std::string definition_fingerprint;   // of the persistent XML, for stale-plan checks
  // What the definition holds that a manifest cannot express, by XML path
  // ("devices/sound[model=ich9]", "cputune"): left out of `actual`, kept by the domain as long
  // as gitvirt does not redefine it, dropped when it does (plans say so).
  std::vector<std::string> unexpressed;
  bool Owned() const { return owner.has_value(); }
  friend bool operator==(const ObservedVm&, const ObservedVm&) = default;
};

struct ObservedVolume {
  std::string pool;
  std::string name;
  std::string path;
  std::uint64_t capacity = 0;
  std::uint64_t allocation = 0;
  std::uint64_t physical = 0;  // bytes of the file itself (GetVolume only; 0 = not read)
  std::string format;
  std::string backing;  // path of the backing file, for linked clones
  friend bool operator==(const ObservedVolume&, const ObservedVolume&) = default;
};

struct ObservedPool {
  std::string name;
  std::string path;
  bool active = false;
  std::vector<ObservedVolume> volumes;  // sorted by name
  const ObservedVolume* FindVolume(std::string_view name) const;
  friend bool operator==(const ObservedPool&, const ObservedPool&) = default;
};

// What a node's driver can do; the planner refuses (or works around) what it cannot.
struct NodeCapabilities {
  std::string driver;  // "QEMU", "TEST", ...
  bool live_device_changes = false;  // attach/detach with AFFECT_LIVE
  bool block_resize = false;         // grow a disk of a running domain
  bool volume_resize = false;        // grow a volume of a stopped domain
  bool backup = false;               // virDomainBackupBegin
  bool migration = false;
  bool volume_upload = false;
  bool persistent_simulation = false;  // sim: node, state saved to a file
  bool guests = false;  // domains run a guest OS that readiness can check (not the test driver)
  friend bool operator==(const NodeCapabilities&, const NodeCapabilities&) = default;
};

struct ObservedNode {
  std::string name;
  bool reachable = false;
  std::string error;  // why not reachable
  int cpus = 0;                // host CPUs (or the configured capacity override)
  std::uint64_t memory = 0;    // host memory in bytes (or the override)
  NodeCapabilities capabilities;
  std::vector<ObservedVm> vms;      // sorted by name
  std::vector<ObservedPool> pools;  // sorted by name
  std::vector<std::string> networks;
  // The host's network interfaces (a NIC's `bridge` must be one of them), sorted; nullopt where
  // the node's libvirt cannot list them (no interface driver, the test driver): not checked.
  std::optional<std::vector<std::string>> interfaces;

  const ObservedVm* FindVm(std::string_view name) const;
  const ObservedPool* FindPool(std::string_view name) const;
  friend bool operator==(const ObservedNode&, const ObservedNode&) = default;
};

struct ObservedState {
  std::vector<ObservedNode> nodes;  // in configuration order
  TimePoint observed_at{};

  const ObservedNode* FindNode(std::string_view name) const;
  // Every domain with this name across nodes (a VM mid-migration can exist on two).
  std::vector<const ObservedVm*> FindVms(std::string_view name) const;
  friend bool operator==(const ObservedState&, const ObservedState&) = default;
};

}  // namespace gitvirt
