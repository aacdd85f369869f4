#pragma once
// The manifest loader: YAML text -> DesiredState, with every problem in the repository reported
// at once as a Diagnostic (file:line:column). One invalid document means no desired state at
// all: a plan is never made from part of a repository.
//
// LoadManifests is pure (text in, values out) and thread-compatible; ReadManifestDirectory is
// the only function here that touches the file system.

#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "gitvirt/core/diagnostic.h"
#include "gitvirt/core/error.h"
#include "gitvirt/core/manifest_file.h"
#include "gitvirt/core/model.h"

namespace gitvirt {

struct LoadOptions {
  // Absolute directory the manifest paths are relative to. Relative Image sources are resolved
  // against their manifest file's directory under this root; empty leaves them as written.
  std::string root_dir;
  // The configuration's node names: a VM pinned (`spec.node`) to any other is an error at that
  // field. nullopt: not checked (no configuration at hand).
  std::optional<std::vector<std::string>> nodes;
};

struct LoadSummary {
  int files = 0;
  int documents = 0;
  std::map<std::string, int> by_kind;  // documents per kind, as written
  int vms_total = 0;                   // VirtualMachines after Cluster expansion
  int cluster_members = 0;
};

struct LoadResult {
  DesiredState desired;  // empty unless ok()
  std::vector<Diagnostic> diagnostics;
  LoadSummary summary;
  bool ok() const { return !HasErrors(diagnostics); }
};

LoadResult LoadManifests(std::span<const ManifestFile> files, const LoadOptions& options = {});

// Every *.yaml / *.yml file under `dir`, recursively, skipping dot-directories, sorted by path.
Result<std::vector<ManifestFile>> ReadManifestDirectory(const std::filesystem::path& dir);

// Both of the above; the diagnostics name files relative to `dir`.
LoadResult LoadDirectory(const std::filesystem::path& dir);

}  // namespace gitvirt
