#pragma once
// The manifest emitter: model values -> YAML documents in the manifest language, the exact
// inverse of the loader (loader.h) for every field it writes. Loading what it writes gives the
// value back (the metadata's source location aside; tests/manifest/emitter_test.cc holds it to
// that over the good corpus). It writes the manifest's own field names and units (`memory:
// 4GiB`, sizes in the largest exact IEC unit, durations such as `2m`), in the order
// docs/manifests.md lists them, and only what differs from the loader's defaults.
//
// It writes what a value holds and does not judge it: a value the loader would refuse (memory
// below the minimum, an invalid name) comes out as it is, and the loader then says what is
// wrong. A VirtualMachine is written as a VirtualMachine document says it: a Cluster member's
// membership and its group's anti-affinity are the Cluster's to say, and are not written.
//
// Pure (text out) and thread-compatible. `gitvirt import` writes its manifests with it; `diff`
// and `describe` are meant to.

#include <string>
#include <vector>

#include "gitvirt/core/model.h"

namespace gitvirt {

struct EmitOptions {
  // Written above the document, each line as "# line" (an empty line as "#").
  std::vector<std::string> comment;
};

std::string EmitVirtualMachine(const VirtualMachine& vm, const EmitOptions& options = {});
std::string EmitImage(const Image& image, const EmitOptions& options = {});
std::string EmitCluster(const Cluster& cluster, const EmitOptions& options = {});
std::string EmitSnapshotPolicy(const SnapshotPolicy& policy, const EmitOptions& options = {});
std::string EmitBackupPolicy(const BackupPolicy& policy, const EmitOptions& options = {});

// Documents as one YAML stream: "---" between them (each document ends in a newline).
std::string JoinDocuments(const std::vector<std::string>& documents);

}  // namespace gitvirt
