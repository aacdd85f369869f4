#include "gitvirt/engine/desired_source.h"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "gitvirt/core/fingerprint.h"
#include "gitvirt/source/git_source.h"

namespace gitvirt {

namespace fs = std::filesystem;

namespace {

constexpr char kStdinName[] = "<stdin>";

// Standard input is read once: a second read in the same process (a view, then a plan) sees
// what the first saw.
Result<std::string> StandardInput() {
  static std::optional<std::string> text;
  if (!text) {
    std::ostringstream all;
    all << std::cin.rdbuf();
    if (std::cin.bad()) return Fail(ErrorCode::kIo, "cannot read the manifests from standard input");
    text = std::move(all).str();
  }
  return *text;
}

std::string Fingerprinted(const std::string& prefix, const std::vector<ManifestFile>& files) {
  std::string all;
  for (const ManifestFile& f : files) all += f.path + '\0' + f.content + '\0';
  return prefix + Fingerprint(all);
}

// What `given` names: "-" standard input, a regular file, or else a directory.
SourceRef RefOf(const std::string& given) {
  if (given == "-") return SourceRef::Stdin();
  std::error_code ec;
  const std::string absolute = fs::absolute(given).lexically_normal().string();
  return fs::is_regular_file(given, ec) ? SourceRef::File(absolute) : SourceRef::Directory(absolute);
}

}  // namespace

std::string DisplayPath(const std::string& path) {
  if (path.empty()) return path;
  std::error_code ec;
  const fs::path cwd = fs::current_path(ec);
  if (ec) return path;
  fs::path abs = fs::absolute(path, ec).lexically_normal();
  if (ec) return path;
  if (!abs.has_filename() && abs.has_relative_path()) abs = abs.parent_path();  // "dir/" -> "dir"
  const fs::path rel = abs.lexically_relative(cwd);
  if (rel.empty() || *rel.begin() == "..") return path;
  return rel.string();
}

Result<ManifestPath> ReadManifestPath(const std::string& given) {
  ManifestPath out;
  out.ref = RefOf(given);
  if (out.ref.IsStdin()) {
    auto text = StandardInput();
    if (!text) return std::unexpected(text.error());
    out.files.push_back(ManifestFile{kStdinName, std::move(*text)});
    out.root = fs::current_path().string();
    out.revision = Fingerprinted("stdin-", out.files);
    return out;
  }
  const fs::path path(given);
  if (out.ref.IsFile()) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream content;
    content << in.rdbuf();
    if (!in) return Fail(ErrorCode::kIo, "cannot read file", given);
    out.files.push_back(ManifestFile{path.filename().string(), std::move(content).str()});
    out.root = fs::path(out.ref.location).parent_path().string();
    out.shown_root = path.parent_path().string();
    out.revision = Fingerprinted("file-", out.files);
    return out;
  }
  std::error_code ec;
  if (!fs::exists(path, ec)) return Fail(ErrorCode::kNotFound, "no such file or directory", given);
  auto files = ReadManifestDirectory(path);
  if (!files) return std::unexpected(files.error());
  out.files = std::move(*files);
  out.root = out.ref.location;
  out.shown_root = given;
  // A directory has no commit: its revision is a fingerprint of its manifests.
  out.revision = Fingerprinted("dir-", out.files);
  return out;
}

Validation ValidateManifests(const std::string& path, const std::optional<std::vector<std::string>>& nodes) {
  Validation out;
  auto read = ReadManifestPath(path);
  if (!read) {
    out.loaded.diagnostics.push_back(Diagnostic{Severity::kError, {path, 0, 0}, "", read.error().ToString()});
    return out;
  }
  LoadOptions options;
  options.root_dir = read->root;
  options.nodes = nodes;
  out.loaded = LoadManifests(read->files, options);
  out.shown_root = read->shown_root;
  return out;
}

SourceSelection SourceSelection::Of(const SourceRef& source) {
  SourceSelection s;
  if (source.IsDirectory() || source.IsFile()) s.dir = source.location;
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
    for (const NodeConfig& n : config.nodes) source->nodes_.push_back(n.name);
    return source;
  }
  const std::string dir = !selection.dir.empty() ? selection.dir : config.source.path;
  if (dir.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "give the manifests with -f PATH or --repo URL (or set source in " +
                                                 config.file + ")");
  }
  std::unique_ptr<DesiredSource> source(new DesiredSource(RefOf(dir), std::move(log)));
  source->dir_ = dir;
  for (const NodeConfig& n : config.nodes) source->nodes_.push_back(n.name);
  return source;
}

Result<std::string> DesiredSource::Fetch() {
  if (git_) {
    auto commit = git_->Fetch();
    if (!commit) return std::unexpected(commit.error());
    revision_ = *commit;
    return revision_;
  }
  auto read = ReadManifestPath(dir_);
  if (!read) return std::unexpected(read.error());
  read_ = std::move(*read);
  revision_ = read_->revision;
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
    loaded = LoadManifests(snapshot->files, LoadOptions{snapshot->root_dir, nodes_});
    desired.author = snapshot->author;
    desired.message = snapshot->message;
    read.shown_root = ref_.path;
  } else {
    loaded = LoadManifests(read_->files, LoadOptions{read_->root, nodes_});
    read.shown_root = read_->shown_root;
  }
  const bool ok = loaded.ok();
  read.diagnostics = std::move(loaded.diagnostics);
  if (ok) {
    desired.state = std::move(loaded.desired);
    desired.summary = loaded.summary;
    desired.shown_root = read.shown_root;
    read.desired = std::move(desired);
  }
  return read;
}

}  // namespace gitvirt
