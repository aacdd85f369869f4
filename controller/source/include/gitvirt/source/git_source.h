#pragma once
// The git source: where the desired state comes from when it lives in a git repository.
//
// A repository is fetched (libgit2, no `git` binary) into a bare mirror kept under
// `cache_dir`, one per URL (its branches as refs/remotes/origin/*, its default branch as
// refs/remotes/origin/HEAD, its tags as refs/tags/*), and a commit is read straight from the
// object database: no work tree is checked out. A snapshot is the commit's manifests (the *.yaml /
// *.yml files under `sub_path`) as values, plus a directory on disk holding that sub_path tree so
// that files a manifest names by a relative path (an Image's `source: ../images/tiny.qcow2`)
// resolve.
//
// Several processes may share one cache_dir (a `serve` and a CLI `plan`): fetches into a
// mirror are serialised with flock(2) on "<mirror>.lock", and exported trees are written to a
// temporary directory and renamed into place under "trees/.lock".
//
// Nothing here logs or returns a secret: tokens and keys are read when the remote asks for
// them, and a password written into a URL (https://user:pw@host/...) is shown as "***".

#include <spdlog/fwd.h>  // the logger by name: spdlog/logger.h costs seconds per file

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gitvirt/core/error.h"
#include "gitvirt/core/time.h"
#include "gitvirt/core/manifest_file.h"
#include "gitvirt/source/redact_url.h"

namespace gitvirt {

struct GitSourceOptions {
  // file:///path, /abs/path or ./rel path to a repository (bare or not), https://...,
  // ssh://..., user@host:path. A relative path is made absolute against the working directory
  // when the source is opened.
  std::string url;
  // Branch name, tag name, full or abbreviated (>= 4 hex digits) commit SHA, or HEAD (the
  // remote's default branch). "refs/heads/X" and "refs/tags/X" are accepted too. A branch wins
  // over a tag of the same name, and both win over a SHA.
  std::string ref = "HEAD";
  // Directory inside the repository holding the manifests ("" or "." = the root). Must stay
  // inside the repository: an absolute path or a ".." component is refused.
  std::string sub_path;
  // https: a token read from this file (whitespace trimmed) each time the server asks, sent as
  // the password with user "x-access-token" (or the user named in the URL). Never logged.
  std::string token_file;
  // ssh: private key file (public key = key + ".pub" if it exists; no passphrase). Empty: the
  // ssh-agent at $SSH_AUTH_SOCK, if any.
  std::string ssh_key_file;
  // https: a PEM bundle of the certificate authorities trusted for the server (a private CA),
  // instead of the system's. libgit2 keeps one such setting per process: gitvirt reads one
  // source per process.
  std::string ca_file;
  // Where the fetched repositories are kept: a bare repository per URL
  // ("<name>-<hash of URL>"), and "trees/" with the exported snapshot directories.
  std::string cache_dir;
  // How long a fetch waits for another process fetching the same URL into the same cache.
  std::chrono::milliseconds lock_wait = std::chrono::minutes(5);
  // How many pack files the mirror may collect (one per fetch that brought something new)
  // before a fetch packs everything reachable into one and deletes the rest.
  int max_packs = 32;
};

struct GitSnapshot {
  std::string commit;   // full SHA
  std::string author;   // "Name <email>"
  std::string message;  // first line of the commit message
  TimePoint time{};     // committer time
  // Every *.yaml / *.yml under sub_path, recursively, skipping dot-directories, sorted by path,
  // paths relative to sub_path ("vms/web.yaml"). Symbolic links and submodules are not read.
  std::vector<ManifestFile> files;
  // Absolute directory holding the sub_path tree of this commit: every regular file (not only
  // the manifests, and dot-directories too), with the executable bit; no symbolic links.
  // Shared by all commits with the same sub_path tree ("<cache_dir>/trees/<tree id>"), so a
  // relative path that climbs out of sub_path does not resolve (unlike with a checkout). It stays
  // on disk while it is in use: a GitSource refreshes it on every Fetch and Snapshot, and
  // trees nobody has refreshed for a day are removed when a new one is exported.
  std::string root_dir;
};

// A repository source kept open between fetches, for the controller loop: Fetch only
// downloads what changed (a no-change fetch of a local repository takes well under 2 ms; of a
// remote one, the connection and one round trip for the advertised refs), and Snapshot of the
// commit it already read returns the same value without reading the repository again; so does
// a Snapshot of a new commit whose sub_path tree did not change, apart from the commit fields.
//
// Thread-safety: not thread-safe; one per controller (or per command). Separate instances,
// in this process or others, may share a cache_dir and a URL.
// Lifetime: owns the open mirror repository; snapshots it returns are independent values.
class GitSource {
 public:
  // Counters for metrics and tests.
  struct Stats {
    std::uint64_t fetches = 0;         // successful Fetch calls
    std::uint64_t trees_read = 0;      // Snapshot calls that walked a tree (not served from cache)
    std::uint64_t trees_exported = 0;  // sub_path trees this instance wrote to disk
    std::uint64_t repacks = 0;         // times this instance compacted the mirror's packs
  };

  // Checks the options, creates cache_dir and the mirror (if missing) and opens it. Does not
  // contact the remote. Fails with kInvalidArgument for an empty URL or cache_dir or a
  // sub_path leaving the repository, kIo when the cache cannot be written.
  static Result<std::unique_ptr<GitSource>> Open(GitSourceOptions options,
                                                 std::shared_ptr<spdlog::logger> log);
  ~GitSource();
  GitSource(const GitSource&) = delete;
  GitSource& operator=(const GitSource&) = delete;

  // Fetches branches and tags from the remote (pruning deleted ones) and returns the full SHA
  // the ref resolves to now. Waits up to lock_wait for another fetch into the same mirror; no
  // network timeout of its own (libgit2 1.5 has none beyond the operating system's). Errors name
  // the URL and the ref: kNotFound for an unknown ref (listing the branches and tags there are),
  // kUnavailable when the remote cannot be reached (worth a retry), kFailedPrecondition when
  // credentials are missing or refused.
  Result<std::string> Fetch();

  // Reads a commit of the mirror (normally one Fetch returned; a full or abbreviated SHA).
  // Fails with kNotFound when sub_path is not a directory in that commit.
  Result<GitSnapshot> Snapshot(const std::string& commit);

  const GitSourceOptions& options() const { return options_; }
  // The URL as used (a local path made absolute), with any password in it shown as "***".
  const std::string& display_url() const { return display_url_; }
  // The bare mirror repository under cache_dir; its flock file is mirror_dir() + ".lock".
  const std::string& mirror_dir() const { return mirror_dir_; }
  const Stats& stats() const { return stats_; }

 private:
  struct Impl;
  GitSource(GitSourceOptions options, std::shared_ptr<spdlog::logger> log);

  GitSourceOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  std::string display_url_;
  std::string mirror_dir_;
  Stats stats_;
  std::unique_ptr<Impl> impl_;
};

// Open + Fetch + Snapshot: the commit `options.ref` names now, for one-shot commands.
Result<GitSnapshot> FetchSnapshot(const GitSourceOptions& options,
                                  const std::shared_ptr<spdlog::logger>& log);

}  // namespace gitvirt
