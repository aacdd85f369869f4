#pragma once
// The controller configuration (gitvirt.yaml): where manifests come from, which hypervisor nodes
// exist, and how sync, apply and the status API behave. Paths are absolute once loaded
// (relative ones are resolved against the config file's directory).

#include <optional>
#include <string>
#include <vector>

#include "gitvirt/core/model.h"

namespace gitvirt {

struct PoolConfig {
  std::string name;
  std::string path;
  // The pool's storage is the same on every node that declares a shared pool of this name (NFS,
  // a cluster file system): a migration between two such nodes copies none of its volumes.
  bool shared = false;
  friend bool operator==(const PoolConfig&, const PoolConfig&) = default;
};

struct NodeConfig {
  std::string name;
  std::string uri;  // libvirt URI, or sim:/abs/path.xml for a simulated node
  Labels labels;
  std::optional<int> capacity_vcpus;            // override what libvirt reports
  std::optional<std::uint64_t> capacity_memory;
  double cpu_overcommit = 4.0;
  double memory_overcommit = 1.0;
  std::vector<PoolConfig> pools;
  bool drain = false;
  int max_parallel = 4;
  // The address this node receives live migrations on (the migration network): the source
  // sends to tcp://ADDRESS and the node listens there. Empty: libvirt's default (the node's
  // hostname).
  std::string migration_address;
  // Where the node writes each VM's serial console log, as `<dir>/<vm>.log` (truncated at
  // every start, so it holds the current boot). Empty: the controller's cache directory on a
  // node it shares a filesystem with, else no log.
  std::string console_dir;

  bool IsSimulated() const { return uri.starts_with("sim:"); }
  // Whether the controller shares the node's filesystem: sim:, URIs without a host
  // (qemu:///system, qemu+unix:///system?socket=..., test:///default), and localhost.
  bool IsLocal() const;
  std::string SimPath() const { return uri.substr(4); }
  friend bool operator==(const NodeConfig&, const NodeConfig&) = default;
};

struct SourceConfig {
  std::string path;  // a working copy, or
  std::string repo;  // a git URL (file://, https://, ssh://) or a local repository path
  std::string ref = "HEAD";
  std::string sub_path;
  std::string token_file;
  std::string ssh_key_file;
  std::string ca_file;  // https: PEM bundle of trusted CAs (a private CA), instead of the system's
  Seconds interval{30};
  bool IsGit() const { return !repo.empty(); }
  friend bool operator==(const SourceConfig&, const SourceConfig&) = default;
};

struct SyncConfig {
  bool automatic = false;
  bool prune = false;
  bool self_heal = false;
  friend bool operator==(const SyncConfig&, const SyncConfig&) = default;
};

struct ApplyConfig {
  int parallel = 8;
  RollbackStrategy rollback = RollbackStrategy::kFull;
  Seconds step_timeout{600};
  friend bool operator==(const ApplyConfig&, const ApplyConfig&) = default;
};

struct ApiConfig {
  std::string listen = "127.0.0.1:8080";
  std::string tokens_file;
  std::string tls_cert;
  std::string tls_key;
  friend bool operator==(const ApiConfig&, const ApiConfig&) = default;
};

// Drift the whole fleet tolerates: field paths (ignore.h) ignored on every VM the selector
// selects, beside each manifest's own spec.ignoreDifferences.
struct IgnoreDifferencesRule {
  Selector selector;
  std::vector<std::string> paths;
  friend bool operator==(const IgnoreDifferencesRule&, const IgnoreDifferencesRule&) = default;
};

struct ControllerConfig {
  std::string file;      // the config file itself (absolute)
  std::string base_dir;  // its directory
  SourceConfig source;
  std::vector<NodeConfig> nodes;
  SyncConfig sync;
  ApplyConfig apply;
  std::string state;  // SQLite file
  std::string secrets_dir;
  ApiConfig api;
  std::vector<IgnoreDifferencesRule> ignore_differences;

  const NodeConfig* FindNode(std::string_view name) const;
  friend bool operator==(const ControllerConfig&, const ControllerConfig&) = default;
};

}  // namespace gitvirt
