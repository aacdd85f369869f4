#pragma once
// `gitvirt import`, the pure part: which observed domains a request picks, and the manifest each
// becomes. The manifest is read off the same observed value the planner compares manifests
// with (ObservedVm::actual, the adapter's parse of the domain's definition), so what import
// writes is what the next plan sees as unchanged: adopting it changes nothing but the owner mark.
// What the definition holds beyond a manifest (ObservedVm::unexpressed) is carried along for the
// caller to name, never dropped silently.
//
// Pure values; thread-compatible.

#include <string>
#include <vector>

#include "gitvirt/core/error.h"
#include "gitvirt/core/model.h"
#include "gitvirt/core/observed.h"

namespace gitvirt {

struct ImportSelection {
  std::vector<std::string> patterns;  // names or shell globs (selector.h's GlobMatch)
  bool all = false;                   // every domain gitvirt does not own
  std::string node;                   // only this node ("" = every node)
  bool adopt = false;                 // write spec.adopt: true into each manifest
};

struct ImportedVm {
  VirtualMachine vm;
  std::string node;
  std::vector<std::string> unexpressed;  // what the domain holds beyond the manifest, by XML path
  std::vector<std::string> notes;        // other things the user must know (a transient domain)
};

struct ImportChoice {
  std::vector<ImportedVm> vms;           // sorted by name
  std::vector<std::string> skipped;      // "node/name: why" for what a glob or --all passed over
};

// The manifest of one observed domain: its spec as observed (node, power state and autostart
// included), its disks and cdroms as the existing storage they are (no size: used as they are).
ImportedVm ManifestOfDomain(const ObservedVm& domain, bool adopt);

// The domains `selection` picks. Errors (kInvalidArgument, every reason in one message): no
// pattern and no --all; an unknown or unreachable --node; a name given exactly that gitvirt owns
// already; a name `declared` already holds (a manifest of the source); a name on two nodes; a
// pattern that picks nothing. A glob or --all passes over what gitvirt owns (listed in skipped).
Result<ImportChoice> ChooseImports(const ObservedState& observed, const std::vector<std::string>& declared,
                                   const ImportSelection& selection);

}  // namespace gitvirt
