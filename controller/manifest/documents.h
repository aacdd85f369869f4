#pragma once
// Per-kind document parsers (internal to the manifest folder). Each reads one YAML document into
// its model value, reporting every problem it can judge from that document alone; the loader
// then runs the checks that need the whole repository, from the facts recorded here.

#include <optional>
#include <string>
#include <vector>

#include "gitvirt/core/model.h"
#include "yaml_reader.h"

namespace gitvirt::manifest_internal {

// Something a document refers to, checked once every document is known.
struct Reference {
  ResourceRef from;      // the referring resource (a VM, or the Cluster for template refs)
  std::string group;     // for template refs: the node group whose members refer
  ResourceRef target;
  SourceLocation location;
  std::string path;
  enum class Use { kDependsOn, kDiskImage, kCdromImage } use = Use::kDependsOn;
};

// A static address, checked for collisions across the repository.
struct StaticAddress {
  std::string vm;
  std::string address;  // without prefix
  SourceLocation location;
  std::string path;
};

// A VM pinned to a node by name (`spec.node`), checked against the configuration's nodes when
// the loader is given them.
struct NodeReference {
  std::string vm;
  std::string node;
  SourceLocation location;
  std::string path;
};

struct DocumentFacts {
  std::vector<Reference> references;
  std::vector<StaticAddress> addresses;
  std::vector<NodeReference> nodes;
};

struct ParsedDocument {
  Kind kind = Kind::kVirtualMachine;
  SourceLocation name_location;
  std::optional<VirtualMachine> vm;
  std::optional<Cluster> cluster;
  std::optional<SnapshotPolicy> snapshot_policy;
  std::optional<BackupPolicy> backup_policy;
  std::optional<Image> image;
  std::optional<SyncWindow> sync_window;
  std::optional<DisruptionBudget> disruption_budget;
};

// A selector (all, matchLabels, names, tags, clusters), as policies, windows and the
// configuration's ignoreDifferences write it; nullopt when it has errors (they are reported).
std::optional<Selector> ParseSelectorField(const Field& field);

// A list of ignoreDifferences field paths (ignore.h), each checked where it is written.
void ParseIgnorePaths(const Field& field, std::vector<std::string>& out);

// Parses one document; nullopt when it has errors (they are in the sink). `file_dir` is the
// absolute directory of the file, for relative Image sources ("" to keep them as written).
std::optional<ParsedDocument> ParseDocument(const YAML::Node& root, DiagnosticSink& sink,
                                            const std::string& file_dir, DocumentFacts& facts);

}  // namespace gitvirt::manifest_internal
