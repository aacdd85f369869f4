#pragma once
// Persistence for simulated nodes (sim:PATH). libvirt's test driver builds a host from a node
// XML file and never writes it back; SimStore writes the host's state back after every change,
// so `plan`, `apply` and `get` in separate processes see one consistent host.
//
// Layout: PATH is the node file; it includes one file per domain, pool and network from
// PATH.d/ (<domain file='…'/>), so a change rewrites one small file, not the whole host. Files
// are replaced atomically (write + rename): a killed process leaves the old or the new state.
//
// Thread-safety: every method may be called concurrently; writes to the index are serialised.

#include <mutex>
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
  // After the test driver has loaded the file: re-apply what its parser does not keep.
  Result<void> AfterOpen(virConnectPtr conn);

  Result<void> SaveDomain(virConnectPtr conn, const std::string& name);
  Result<void> RemoveDomain(const std::string& name);
  Result<void> SavePool(virConnectPtr conn, const std::string& pool);

 private:
  Result<void> WriteIndex();
  std::string DomainFile(const std::string& name) const;
  std::string PoolFile(const std::string& name) const;

  std::string node_file_;
  std::string dir_;
  std::mutex index_mu_;
  std::mutex save_mu_;  // one SaveDomain/SavePool at a time (reads libvirt, then writes the file)
  std::string header_;  // the <cpu>/<memory> part of the node file, kept as written
};

}  // namespace gitvirt::libvirt
