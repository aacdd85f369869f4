#pragma once
// Persistence for simulated nodes (sim:PATH). libvirt's test driver builds a host from a node
// XML file and never writes it back; SimStore writes the host's state back after every change,
// so `plan`, `apply` and `get` in separate processes see one consistent host.
//
// Layout: PATH is the node file; it includes one file per domain, pool and network from
// PATH.d/ (<domain file='…'/>), so a change rewrites one small file, not the whole host. Files
// are replaced atomically (write + rename): a killed process leaves the old or the new state.
//
// Generation: PATH.d/generation counts the changes to the node's files. Every change takes an
// exclusive flock on PATH.d/lock, increments the generation, then writes its files, then
// unlocks; a process loading the files (the test driver parses them when a connection opens)
// holds the shared lock while it reads the generation and loads. So a generation names exactly
// one content of the files, and a process killed between the increment and the write leaves a
// generation no earlier reader has seen (which only costs a snapshot, never gives a stale one).
//
// Observation snapshot: PATH.d/observed.snapshot holds what an observation of the node saw,
// tagged with the generation of the files it was made from and a key naming the code and
// configuration that made it (ReadSnapshot returns it only when both still match), so a later
// process can skip the test driver's parse of every domain when nothing changed.
//
// Thread-safety: every method may be called concurrently; changes are serialised.

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include "gitvirt/core/config.h"
#include "gitvirt/core/error.h"
#include "libvirt_util.h"

namespace gitvirt::libvirt {

class SimStore {
 public:
  explicit SimStore(std::string node_file);

  // Creates the node file and its directory when missing: capacity from the node's config
  // (default 16 CPUs, 64GiB), a "default" network and the configured pools (at least "default").
  Result<void> EnsureExists(const NodeConfig& node);
  // The libvirt URI that opens it: test:///abs/PATH.
  std::string Uri() const;
  // Opens a connection to the node (the test driver loads the files) under the shared lock;
  // `generation` receives the generation of what was loaded (nullopt: unknown, e.g. a node
  // written by an older gitvirt without a generation file).
  Result<Connection> Open(std::optional<std::uint64_t>& generation);
  // After the test driver has loaded the file: re-apply what its parser does not keep.
  Result<void> AfterOpen(virConnectPtr conn);

  // The current generation; nullopt when there is none or it cannot be read.
  std::optional<std::uint64_t> Generation() const;
  // The snapshot's payload when it was made at `generation` with `key`; nullopt otherwise
  // (missing, unreadable, another generation or key).
  std::optional<std::string> ReadSnapshot(std::uint64_t generation, const std::string& key) const;
  // Writes it atomically (a reader sees the old snapshot or the new one, never a mix).
  Result<void> WriteSnapshot(std::uint64_t generation, const std::string& key, const std::string& payload) const;

  Result<void> SaveDomain(virConnectPtr conn, const std::string& name);
  Result<void> RemoveDomain(const std::string& name);
  Result<void> SavePool(virConnectPtr conn, const std::string& pool);

 private:
  class Change;  // the exclusive lock and the generation increment around one change
  Result<void> WriteIndex(Change& change);
  Result<void> RemoveDomainLocked(Change& change, const std::string& name);
  std::string DomainFile(const std::string& name) const;
  std::string PoolFile(const std::string& name) const;

  std::string node_file_;
  std::string dir_;
  // One change at a time within the process (flock excludes other processes); SaveDomain and
  // SavePool read libvirt and write the file as one, so a later read is never overwritten by an
  // older one.
  std::mutex change_mu_;
  // The host's capacity the node file declares (from the node's config, by EnsureExists).
  int cpus_ = 16;
  std::uint64_t memory_ = 64ULL << 30;
};

}  // namespace gitvirt::libvirt
