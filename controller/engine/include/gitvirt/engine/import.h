#pragma once
// `gitvirt import`: unowned domains -> manifests, over a Session. The flow: read the source's
// manifests (the configuration's, or -f DIR; none when neither is set) to refuse a name one of
// them declares, observe the nodes, pick the domains (core/import.h), write each as a
// VirtualMachine document (manifest/emitter.h) headed by a comment naming what the domain holds
// beyond it, and load what was written with the manifest loader, so a manifest that would not
// validate is said at once. Nothing is changed on any node: adoption is the plan's `adopt`
// action, later.
//
// One thread per call; the Session's own rules apply.

#include <string>
#include <vector>

#include "gitvirt/core/error.h"
#include "gitvirt/core/import.h"
#include "gitvirt/engine/desired_source.h"

namespace gitvirt {

class Session;

struct ImportRequest {
  ImportSelection selection;
  SourceSelection source;  // -f DIR / --repo: the manifests whose names are taken
};

struct ImportedFile {
  std::string name;  // "web-01.yaml"
  std::string text;  // one YAML document
};

struct ImportResult {
  std::vector<ImportedFile> files;     // one per VM, by name
  std::vector<std::string> warnings;   // "web-01: devices/sound[model=ich9] is not expressible ..."
  std::vector<std::string> skipped;    // what a glob or --all passed over, and why
};

// Errors: ChooseImports' (nothing picked, a domain gitvirt owns, a name the source declares), a
// source that cannot be read.
Result<ImportResult> ImportDomains(Session& session, const ImportRequest& request);

// The files as one YAML stream, documents separated by "---" (`--out -`).
std::string ImportStream(const ImportResult& result);

// kAlreadyExists, naming every file of `result` that exists in `dir`: import never overwrites.
// What WriteImport checks first, and all that `import --dry-run` checks.
Result<void> CheckImportTargets(const ImportResult& result, const std::string& dir);

// Writes the files into `dir` (made if missing), once CheckImportTargets passes: nothing is
// written if any exists. Returns the paths written.
Result<std::vector<std::string>> WriteImport(const ImportResult& result, const std::string& dir);

}  // namespace gitvirt
