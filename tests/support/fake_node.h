#pragma once
// The shared fake node: an in-memory Node (gitvirt/hypervisor/node.h) for the unit tests of
// everything that drives nodes through the ports (step runner, scheduler, readiness, backups).
// It keeps
//   domains   what Define wrote (the VM, gitvirt's owner mark, the spec last applied), power,
//             autostart, snapshots (taken at the fake clock's time), a scripted guest;
//   storage   pools with a directory, volumes with a capacity, format, backing file and bytes
//             (UploadVolume copies a file's, WriteVolume/ReadVolume stream them, a run of zero
//             blocks goes as a hole);
//   a guest   per domain: whether its agent answers (or starts to, or the domain stops, after
//             so many power checks), the addresses it and the DHCP leases report, its console;
//   backups   CopyDisks writes each disk's bytes into a volume at the file's place.
// What the node is comes from its NodeCapabilities (Simulated(), Qemu()): what they rule out
// fails with kUnsupported, as the libvirt adapter's calls do. A QEMU node the controller cannot
// read files of ("remote") is a Qemu() node whose NodeConfig is remote: that is the config's
// business, not the node's.
//
// Tests script the fake with the methods below, or with Edit (any change of the whole state,
// under the lock), and look at what happened: calls are counted by operation, named as the
// fault seam names them for changes ("define", "start", "snapshot-create", "backup", ...) and
// "observe", "observe-vm", "get-power", "get-volume", ... for reads; chosen calls fail
// (FailCalls); a hook runs before every call (a concurrency probe can hold calls there).
//
// Thread-safety: every method may be called from several threads; the hook runs outside the
// fake's lock, the functions given to Edit and ScriptGuest inside it.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gitvirt/hypervisor/node.h"

namespace gitvirt::testing {

struct FakeGuest {
  bool agent_answers = false;
  std::vector<GuestAddress> agent_addresses;  // what the agent reports
  std::vector<GuestAddress> leases;           // DHCP leases of the domain's networks
  Result<std::string> console = std::string();
  // By the number of times the domain's power was asked for (one per readiness check): >= 0,
  // the agent answers / the domain stops once it was asked more often than this.
  int agent_answers_after = -1;
  int stops_after = -1;
};

struct FakeDomain {
  VirtualMachine vm;  // its name and spec, as defined
  std::string uuid;
  std::optional<Ownership> owner;  // nullopt: a domain made by hand
  std::optional<VmSpec> last_applied;
  PowerState power = PowerState::kStopped;
  bool autostart = false;
  std::vector<ObservedSnapshot> snapshots;  // oldest first
  std::map<std::string, std::vector<std::string>> overlays;  // disk -> external-snapshot overlays
  FakeGuest guest;
  int power_checks = 0;
};

struct FakeVolume {
  std::uint64_t capacity = 0;
  std::string format = "qcow2";
  std::string backing;  // the path of its backing file, if any
  std::string bytes;    // its file's content (a node that holds no bytes leaves it empty)
};

struct FakePool {
  std::string path;
  std::map<std::string, FakeVolume> volumes;
};

// What a CopyDisks was asked for, and the target files that were already there.
struct FakeCopy {
  std::string domain;
  std::map<std::string, DiskBackupFile> disks;
  std::vector<std::string> existing;
};

class FakeNode final : public Node {
 public:
  struct State {
    std::map<std::string, FakeDomain> domains;
    std::map<std::string, FakePool> pools;
    std::vector<std::string> networks = {"default"};
    int cpus = 16;
    std::uint64_t memory = 64ULL << 30;
    std::optional<FakeCopy> last_copy;
  };

  // A simulated node: the test driver's capabilities (no guests, no volume bytes, no backups,
  // no live changes), persistent, volume growth emulated.
  static NodeCapabilities Simulated();
  // A QEMU node: every capability.
  static NodeCapabilities Qemu();

  explicit FakeNode(std::string name, NodeCapabilities capabilities = Simulated());
  ~FakeNode() override;

  // ---- set-up --------------------------------------------------------------------------------
  // The time snapshots are taken at (default: the system clock's).
  void SetClock(std::function<TimePoint()> now);
  // A domain as gitvirt would have defined it (`owner` set) or as made by hand (nullopt).
  void AddDomain(const std::string& name, PowerState power = PowerState::kStopped,
                 std::optional<Ownership> owner = Ownership{});
  void SetPower(const std::string& domain, PowerState power);
  void SetLastApplied(const std::string& domain, std::optional<VmSpec> spec);
  void ScriptGuest(const std::string& domain, const std::function<void(FakeGuest&)>& script);
  void AddPool(const std::string& name, const std::string& path);
  void SetVolumeBytes(const std::string& pool, const std::string& volume, std::string bytes);
  // Any change of the state, under the lock.
  void Edit(const std::function<void(State&)>& edit);

  // Calls of `operation` on `subject` (a domain, "pool/volume" or a pool; "" = any) fail with
  // `error`: before they change anything, or, with `after_effect`, once they have (a backup job
  // that wrote its files, then failed).
  void FailCalls(std::string operation, std::string subject, Error error, bool after_effect = false);
  void StopFailing();
  // Runs before every call, outside the lock: (operation, subject).
  void SetHook(std::function<void(std::string_view, const std::string&)> hook);

  // ---- what happened -------------------------------------------------------------------------
  int Calls(std::string_view operation) const;      // made
  int Successes(std::string_view operation) const;  // that succeeded
  std::vector<std::string> SnapshotNames(const std::string& domain) const;
  std::optional<FakeVolume> Volume(const std::string& pool, const std::string& volume) const;
  std::optional<FakeCopy> LastCopy() const;
  State Snapshot() const;  // a copy of the whole state

  // ---- Node ----------------------------------------------------------------------------------
  const std::string& name() const override { return name_; }
  const NodeCapabilities& capabilities() const override { return caps_; }
  Result<ObservedNode> Observe() override;
  Domains& domains() override;
  Power& power() override;
  LiveChanges& live() override;
  Storage& storage() override;
  Snapshots& snapshots() override;
  Guest& guest() override;
  Backups& backups() override;

 private:
  // Runs `body` on the state under the lock (the ports, fake_node.cc), counting the call and
  // failing it as FailCalls says.
  template <typename T>
  Result<T> Call(std::string_view operation, const std::string& subject, const std::function<Result<T>(State&)>& body);

  struct Failure {
    std::string operation, subject;
    Error error;
    bool after_effect = false;
  };
  struct Ports;
  const Failure* FailureFor(std::string_view operation, const std::string& subject) const;

  const std::string name_;
  const NodeCapabilities caps_;
  mutable std::mutex mu_;
  State state_;
  std::function<TimePoint()> now_;
  std::vector<Failure> failures_;
  std::function<void(std::string_view, const std::string&)> hook_;
  std::map<std::string, int, std::less<>> calls_, successes_;
  std::unique_ptr<Ports> ports_;
};

}  // namespace gitvirt::testing
