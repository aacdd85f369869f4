#include "gitvirt/engine/desired_source.h"

#include <spdlog/spdlog.h>

#include <filesystem>

#include "gitvirt/core/fingerprint.h"
#include "gitvirt/source/git_source.h"

namespace gitvirt {

namespace fs = std::filesystem;

LoadResult ValidateDirectory(const std::string& dir) { return LoadDirectory(dir); }

SourceSelection SourceSelection::Of(const SourceRef& source) {
  SourceSelection s;
  if (source.IsDirectory()) s.dir = source.location;
  if (source.IsGit()) {
    s.repo = source.location;
    s.ref = source.ref;
    s.path = source.path;
  }
  return s;
}

DesiredSource::DesiredSource(SourceRef ref, std::shared_ptr<spdlog::logger> log)
    : ref_(std::move(ref)), log_(log ? std::move(log) : spdlog::default_logger()) {}

DesiredSource::~DesiredSource() = default;

Result<std::unique_ptr<DesiredSource>> DesiredSource::Open(const ControllerConfig& config,
                                                           const SourceSelection& selection, const StatePaths& paths,
                                                           std::shared_ptr<spdlog::logger> log) {
  const std::string repo = !selection.repo.empty() ? selection.repo : (selection.dir.empty() ? config.source.repo : "");
  if (!repo.empty()) {
    GitSourceOptions git;
    git.url = repo;
    git.ref = !selection.ref.empty() ? selection.ref : config.source.ref;
    git.sub_path = !selection.path.empty() ? selection.path : config.source.sub_path;
    git.token_file = config.source.token_file;
    git.ssh_key_file = config.source.ssh_key_file;
    git.ca_file = config.source.ca_file;
    git.cache_dir = paths.git;
    auto opened = GitSource::Open(git, log);
    if (!opened) return std::unexpected(opened.error());
    // Never a password from the URL: the reference goes into plans, the journal and the API.
    std::unique_ptr<DesiredSource> source(
        new DesiredSource(SourceRef::Git(RedactUrl(git.url), git.ref, git.sub_path), std::move(log)));
    source->git_ = std::move(*opened);
    return source;
  }
  const std::string dir = !selection.dir.empty() ? selection.dir : config.source.path;
  if (dir.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "give the manifests with -f DIR or --repo URL (or set source in " +
                                                 config.file + ")");
  }
  std::unique_ptr<DesiredSource> source(
      new DesiredSource(SourceRef::Directory(fs::absolute(dir).lexically_normal().string()), std::move(log)));
  source->dir_ = dir;
  return source;
}

Result<std::string> DesiredSource::Fetch() {
  if (git_) {
    auto commit = git_->Fetch();
    if (!commit) return std::unexpected(commit.error());
    revision_ = *commit;
    return revision_;
  }
  auto files = ReadManifestDirectory(dir_);
  if (!files) return std::unexpected(files.error());
  files_ = std::move(*files);
  // A directory has no commit: its revision is a fingerprint of its manifests.
  std::string all;
  for (const ManifestFile& f : files_) all += f.path + '\0' + f.content + '\0';
  revision_ = "dir-" + Fingerprint(all);
  return revision_;
}

Result<SourceRead> DesiredSource::Load() {
  if (revision_.empty()) return Fail(ErrorCode::kFailedPrecondition, "the source was not fetched", ref_.ToString());
  Desired desired;
  desired.source = ref_;
  desired.revision = revision_;
  SourceRead read;
  LoadResult loaded;
  if (git_) {
    auto snapshot = git_->Snapshot(revision_);
    if (!snapshot) return std::unexpected(snapshot.error());
    loaded = LoadManifests(snapshot->files, LoadOptions{snapshot->root_dir});
    desired.author = snapshot->author;
    desired.message = snapshot->message;
    read.shown_root = ref_.path;
  } else {
    loaded = LoadManifests(files_, LoadOptions{ref_.location});
    read.shown_root = dir_;
  }
  const bool ok = loaded.ok();
  read.diagnostics = std::move(loaded.diagnostics);
  if (ok) {
    desired.state = std::move(loaded.desired);
    desired.summary = loaded.summary;
    read.desired = std::move(desired);
  }
  return read;
}

}  // namespace gitvirt
