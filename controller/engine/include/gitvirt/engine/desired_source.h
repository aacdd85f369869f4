#pragma once
// Where the desired state is read from: a directory of manifests, or a git repository at a ref
// (fetched into the cache, read from the object database). One class for every reader: `serve`
// keeps one open across passes (a fetch brings only what changed), a command opens one, reads
// once and drops it.
//
// Thread-safety: not thread-safe; one per reader. Lifetime: independent values out.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gitvirt/core/config.h"
#include "gitvirt/core/diagnostic.h"
#include "gitvirt/core/error.h"
#include "gitvirt/core/manifest_file.h"
#include "gitvirt/core/model.h"
#include "gitvirt/core/source_ref.h"
#include "gitvirt/engine/state_paths.h"
#include "gitvirt/manifest/loader.h"

namespace spdlog {
class logger;
}

namespace gitvirt {

class GitSource;

// What to read instead of the configuration's source (the command line's -f PATH, or --repo URL
// with --ref and --path); empty fields fall back to the configuration. `dir` is a directory
// (every *.yaml / *.yml under it), one manifest file, or "-" (standard input).
struct SourceSelection {
  std::string dir;
  std::string repo;
  std::string ref;
  std::string path;
  bool empty() const { return dir.empty() && repo.empty(); }
  // The selection that reads `source` again (a saved plan's): a directory, a file or a
  // repository (standard input cannot be read again: nothing).
  static SourceSelection Of(const SourceRef& source);
};

// The desired state at one revision.
struct Desired {
  DesiredState state;
  SourceRef source;
  std::string revision;  // the commit; a directory's manifests have "dir-" + their fingerprint
  std::string author;    // git: "Name <email>"
  std::string message;   // git: the first line of the commit message
  LoadSummary summary;
  // The manifest root as the user named it (see SourceRead::shown_root): where the files that
  // diagnostics and plan errors name are.
  std::string shown_root;
};

// One read of the source: the desired state, or why there is none. Diagnostics name files
// relative to the manifest root; `shown_root` is that root as the user named it (the directory
// given, a file's directory, or the path inside the repository), to show them from where the
// user stands.
struct SourceRead {
  std::optional<Desired> desired;  // nullopt: the revision is invalid (see diagnostics)
  std::vector<Diagnostic> diagnostics;
  std::string shown_root;
};

// A path as the user would type it here: relative to the current directory when it lies under
// it ("examples/manifests", "." for the directory itself), as given otherwise. How files and
// directories are named to the person at the command line.
std::string DisplayPath(const std::string& path);

// Manifests as `-f` names them: a directory, one file, or "-" (standard input, read once per
// process, named "<stdin>" in diagnostics). Files are relative to `root` (absolute), which is
// `shown_root` as given.
struct ManifestPath {
  SourceRef ref;
  std::vector<ManifestFile> files;
  std::string root;
  std::string shown_root;
  std::string revision;  // "dir-", "file-" or "stdin-" + a fingerprint of the files
};
Result<ManifestPath> ReadManifestPath(const std::string& given);

// `gitvirt validate`: every manifest of a directory, a file or standard input, loaded; every
// problem as a diagnostic (an unreadable path too, at the path), files named relative to
// `shown_root`. With `nodes` (the configuration's), a VM pinned to another node is an error.
struct Validation {
  LoadResult loaded;
  std::string shown_root;
};
Validation ValidateManifests(const std::string& path, const std::optional<std::vector<std::string>>& nodes);

class DesiredSource {
 public:
  // The selection's source, or the configuration's when it selects none. kInvalidArgument when
  // neither names one.
  static Result<std::unique_ptr<DesiredSource>> Open(const ControllerConfig& config, const SourceSelection& selection,
                                                     const StatePaths& paths, std::shared_ptr<spdlog::logger> log);
  ~DesiredSource();

  const SourceRef& ref() const { return ref_; }

  // The revision the source names now: git fetches and resolves the ref; a directory, a file or
  // standard input is read (every *.yaml / *.yml) and fingerprinted.
  Result<std::string> Fetch();
  // The manifests of the revision Fetch returned, loaded: every diagnostic at once, and no
  // desired state when any is an error. Fetch first.
  Result<SourceRead> Load();

 private:
  DesiredSource(SourceRef ref, std::shared_ptr<spdlog::logger> log);

  SourceRef ref_;
  std::shared_ptr<spdlog::logger> log_;
  std::vector<std::string> nodes_;  // the configuration's, checked against `spec.node`
  std::string dir_;         // a directory, file or "-": as given
  std::unique_ptr<GitSource> git_;
  std::string revision_;    // what Fetch returned last
  std::optional<ManifestPath> read_;  // a directory's, file's or stdin's, as Fetch read them
};

}  // namespace gitvirt
