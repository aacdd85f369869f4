#include "gitvirt/source/git_source.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <utility>

#include "file_lock.h"
#include "git_url.h"
#include "libgit2.h"
#include "repack.h"
#include "tree_store.h"

namespace gitvirt {
namespace fs = std::filesystem;
using namespace source_internal;

namespace {

constexpr char kBranchRefspec[] = "+refs/heads/*:refs/remotes/origin/*";
constexpr char kTagRefspec[] = "+refs/tags/*:refs/tags/*";
constexpr char kRemoteHead[] = "refs/remotes/origin/HEAD";
constexpr std::string_view kTrackingPrefix = "refs/remotes/origin/";
constexpr std::string_view kBranchPrefix = "refs/heads/";
constexpr std::string_view kTagPrefix = "refs/tags/";
constexpr std::size_t kMaxListed = 20;  // names listed in a "ref not found" error, per kind

bool IsHex(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return std::isxdigit(static_cast<unsigned char>(c)) != 0;
  });
}

std::string Trim(std::string_view text) {
  const auto blank = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  while (!text.empty() && blank(text.front())) text.remove_prefix(1);
  while (!text.empty() && blank(text.back())) text.remove_suffix(1);
  return std::string(text);
}

// "deploy/prod" from "./deploy//prod/"; "" for the root. Refuses what leaves the repository.
Result<std::string> NormalizeSubPath(std::string_view sub_path) {
  if (sub_path.starts_with('/')) {
    return Fail(ErrorCode::kInvalidArgument,
                "sub_path '" + std::string(sub_path) +
                    "' must be relative to the repository root, not an absolute path");
  }
  std::string normal;
  std::size_t pos = 0;
  while (pos <= sub_path.size()) {
    std::size_t slash = sub_path.find('/', pos);
    if (slash == std::string_view::npos) slash = sub_path.size();
    const std::string_view part = sub_path.substr(pos, slash - pos);
    pos = slash + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      return Fail(ErrorCode::kInvalidArgument,
                  "sub_path '" + std::string(sub_path) + "' leaves the repository ('..')");
    }
    if (!normal.empty()) normal += '/';
    normal += part;
  }
  return normal;
}

// "<readable>-<16 hex digits of the SHA-1 of the URL>": stable across processes and versions.
std::string MirrorName(const std::string& url) {
  git_oid oid;
  git_odb_hash(&oid, url.data(), url.size(), GIT_OBJECT_BLOB);
  return ReadableName(url) + "-" + OidHex(oid).substr(0, 16);
}

std::shared_ptr<spdlog::logger> OrNullLogger(std::shared_ptr<spdlog::logger> log) {
  if (log) return log;
  return std::make_shared<spdlog::logger>("gitvirt-source");  // no sinks: discards everything
}

std::string JoinNames(const std::vector<std::string>& names) {
  if (names.empty()) return "(none)";
  std::string out;
  for (std::size_t i = 0; i < names.size() && i < kMaxListed; ++i) {
    if (i > 0) out += ", ";
    out += names[i];
  }
  if (names.size() > kMaxListed) {
    out += ", ... (" + std::to_string(names.size() - kMaxListed) + " more)";
  }
  return out;
}

// Names of the references under `prefix` (without it), sorted.
std::vector<std::string> ListReferences(git_repository* repo, std::string_view prefix) {
  std::vector<std::string> names;
  git_reference_iterator* raw = nullptr;
  const std::string glob = std::string(prefix) + "*";
  if (git_reference_iterator_glob_new(&raw, repo, glob.c_str()) != 0) return names;
  ReferenceIteratorPtr iterator(raw);
  const char* name = nullptr;
  while (git_reference_next_name(&name, iterator.get()) == 0) {
    std::string_view short_name = std::string_view(name).substr(prefix.size());
    if (short_name != "HEAD") names.emplace_back(short_name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

// Whether a tree entry name is safe to create on disk (git itself refuses these too).
bool SafeEntryName(std::string_view name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string_view::npos;
}

// What a tree walk found but did not give to its visitor.
struct WalkSkipped {
  std::vector<std::string> links;       // symbolic links
  std::vector<std::string> submodules;  // gitlinks
};

struct TreeVisitor {
  bool skip_dot_directories = false;
  std::function<Result<void>(const std::string& path)> on_tree;  // before its entries; optional
  std::function<Result<void>(const std::string& path, const git_tree_entry* entry)> on_blob;
};

// Depth-first over every entry of `tree`; paths are relative to it, '/'-separated.
Result<void> WalkTree(git_repository* repo, const git_tree* tree, const std::string& prefix,
                      const TreeVisitor& visitor, WalkSkipped& skipped) {
  const std::size_t count = git_tree_entrycount(tree);
  for (std::size_t i = 0; i < count; ++i) {
    const git_tree_entry* entry = git_tree_entry_byindex(tree, i);
    const std::string name = git_tree_entry_name(entry);
    const std::string path = prefix + name;
    if (!SafeEntryName(name)) {
      return Fail(ErrorCode::kInvalidArgument, "the tree has an unsafe entry name '" + path + "'");
    }
    switch (git_tree_entry_type(entry)) {
      case GIT_OBJECT_TREE: {
        if (visitor.skip_dot_directories && name.starts_with('.')) break;
        git_tree* raw = nullptr;
        if (int rc = git_tree_lookup(&raw, repo, git_tree_entry_id(entry)); rc != 0) {
          return std::unexpected(GitFailure(rc, "reading directory " + path));
        }
        TreePtr subtree(raw);
        if (visitor.on_tree) {
          if (auto done = visitor.on_tree(path); !done) return done;
        }
        if (auto done = WalkTree(repo, subtree.get(), path + "/", visitor, skipped); !done) {
          return done;
        }
        break;
      }
      case GIT_OBJECT_BLOB:
        if (git_tree_entry_filemode(entry) == GIT_FILEMODE_LINK) {
          skipped.links.push_back(path);
        } else if (auto done = visitor.on_blob(path, entry); !done) {
          return done;
        }
        break;
      default:
        skipped.submodules.push_back(path);
        break;
    }
  }
  return {};
}

Result<BlobPtr> LookupBlob(git_repository* repo, const git_tree_entry* entry,
                           const std::string& path) {
  git_blob* raw = nullptr;
  if (int rc = git_blob_lookup(&raw, repo, git_tree_entry_id(entry)); rc != 0) {
    return std::unexpected(GitFailure(rc, "reading " + path));
  }
  return BlobPtr(raw);
}

Result<std::string> ReadTokenFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Fail(ErrorCode::kFailedPrecondition, "cannot read token_file " + path);
  std::ostringstream content;
  content << in.rdbuf();
  std::string token = Trim(content.str());
  if (token.empty())
    return Fail(ErrorCode::kFailedPrecondition, "token_file " + path + " is empty");
  return token;
}

// The credentials callback's state for one fetch. libgit2 calls back again after the remote
// refused what it was given; the second time we stop, rather than loop.
class CredentialProvider {
 public:
  explicit CredentialProvider(const GitSourceOptions& options) : options_(options) {}

  static int Callback(git_credential** out, const char* /*url*/, const char* username_from_url,
                      unsigned int allowed_types, void* payload) noexcept {
    auto* self = static_cast<CredentialProvider*>(payload);
    try {
      return self->Provide(out, username_from_url, allowed_types);
    } catch (const std::exception& e) {
      self->failure_ = Error{ErrorCode::kInternal, std::string("credentials: ") + e.what(), {}};
      return GIT_EUSER;
    }
  }

  // Why credentials were refused or could not be given, if that is what failed the fetch.
  const std::optional<Error>& failure() const { return failure_; }

 private:
  int Provide(git_credential** out, const char* username_from_url, unsigned int allowed) {
    const bool has_user = username_from_url != nullptr && *username_from_url != '\0';
    if (allowed & GIT_CREDENTIAL_USERNAME) {
      return git_credential_username_new(out, has_user ? username_from_url : "git");
    }
    if (++attempts_ > 1) {
      return Refuse(ErrorCode::kFailedPrecondition,
                    "the server refused the credentials (" + Described() + ")");
    }
    if (allowed & GIT_CREDENTIAL_SSH_KEY) {
      const char* user = has_user ? username_from_url : "git";
      const std::string& key = options_.ssh_key_file;
      if (!key.empty()) {
        if (::access(key.c_str(), R_OK) != 0) {
          return Refuse(ErrorCode::kFailedPrecondition, "cannot read ssh_key_file " + key);
        }
        const std::string pub = key + ".pub";
        const bool has_pub = ::access(pub.c_str(), R_OK) == 0;
        return git_credential_ssh_key_new(out, user, has_pub ? pub.c_str() : nullptr, key.c_str(),
                                          nullptr);
      }
      if (std::getenv("SSH_AUTH_SOCK") != nullptr) {
        return git_credential_ssh_key_from_agent(out, user);
      }
      return Refuse(ErrorCode::kFailedPrecondition,
                    "the server needs an ssh key: set ssh_key_file (or run an ssh-agent)");
    }
    if (allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) {
      if (options_.token_file.empty()) {
        return Refuse(ErrorCode::kFailedPrecondition,
                      "the server asks for credentials: set token_file");
      }
      auto token = ReadTokenFile(options_.token_file);
      if (!token) return Refuse(token.error().code, token.error().message);
      const int rc = git_credential_userpass_plaintext_new(
          out, has_user ? username_from_url : "x-access-token", token->c_str());
      std::fill(token->begin(), token->end(), '\0');
      return rc;
    }
    return Refuse(ErrorCode::kUnsupported,
                  "the server asks for a kind of credentials gitvirt cannot give");
  }

  std::string Described() const {
    if (!options_.token_file.empty()) return "token from " + options_.token_file;
    if (!options_.ssh_key_file.empty()) return "ssh key " + options_.ssh_key_file;
    return "ssh-agent";
  }

  int Refuse(ErrorCode code, std::string message) {
    failure_ = Error{code, std::move(message), {}};
    git_error_set_str(GIT_ERROR_CALLBACK, failure_->message.c_str());
    return GIT_EUSER;
  }

  const GitSourceOptions& options_;
  int attempts_ = 0;
  std::optional<Error> failure_;
};

// Removes libgit2's "<file>.lock" files left in the mirror by a process that died while
// fetching. Only called with the mirror's flock held, when no one else can be writing.
void RemoveStaleGitLocks(const fs::path& mirror, spdlog::logger& log) {
  std::error_code ec;
  std::vector<fs::path> stale;
  for (const char* name :
       {"packed-refs.lock", "config.lock", "HEAD.lock", "FETCH_HEAD.lock", "shallow.lock"}) {
    if (fs::exists(mirror / name, ec)) stale.push_back(mirror / name);
  }
  for (fs::recursive_directory_iterator it(mirror / "refs", ec), end; !ec && it != end;
       it.increment(ec)) {
    if (it->path().extension() == ".lock") stale.push_back(it->path());
  }
  for (const fs::path& path : stale) {
    if (fs::remove(path, ec)) log.warn("removed stale git lock file {}", path.string());
  }
}

// libgit2, like git, refuses a local repository owned by another user unless it is listed in
// safe.directory, and then says "config value 'safe.directory' was not found". Says it better.
std::optional<Error> ForeignOwner(const std::string& local) {
  struct stat info {};
  if (local.empty() || ::stat(local.c_str(), &info) != 0 || info.st_uid == ::geteuid()) {
    return std::nullopt;
  }
  return Error{ErrorCode::kFailedPrecondition,
               "fetching " + local + ": the repository belongs to uid " +
                   std::to_string(info.st_uid) + ", not to uid " + std::to_string(::geteuid()) +
                   " that gitvirt runs as, and git refuses such repositories; as that user, run "
                   "`git config --global --add safe.directory " +
                   local + "`",
               {}};
}

// Notes the URL in the mirror's configuration, for a human looking at the cache.
Result<void> RecordUrl(git_repository* repo, const std::string& url) {
  git_config* raw = nullptr;
  if (int rc = git_repository_config(&raw, repo); rc != 0) {
    return std::unexpected(GitFailure(rc, "configuring the mirror"));
  }
  ConfigPtr config(raw);
  if (int rc = git_config_set_string(config.get(), "gitvirt.url", RedactUrl(url).c_str());
      rc != 0) {
    return std::unexpected(GitFailure(rc, "configuring the mirror"));
  }
  return {};
}

// An in-memory remote for `url` with no refspecs of its own (Fetch passes them). Not a
// configured "origin": libgit2 1.5 leaks a PCRE2 match block (~20 KB) for every configuration
// entry it scans when it looks up a named remote, which a 30 s fetch loop would turn into
// hundreds of megabytes a day. insteadOf rewriting is not applied.
Result<RemotePtr> AnonymousRemote(git_repository* repo, const std::string& url) {
  git_remote_create_options create;
  git_remote_create_options_init(&create, GIT_REMOTE_CREATE_OPTIONS_VERSION);
  create.repository = repo;
  create.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF;
  git_remote* raw = nullptr;
  if (int rc = git_remote_create_with_opts(&raw, url.c_str(), &create); rc != 0) {
    return std::unexpected(GitFailure(rc, "fetching " + RedactUrl(url)));
  }
  return RemotePtr(raw);
}

Result<RepositoryPtr> OpenBare(const fs::path& path) {
  git_repository* raw = nullptr;
  if (int rc = git_repository_open_bare(&raw, path.c_str()); rc != 0) {
    return std::unexpected(GitFailure(rc, "opening the mirror " + path.string()));
  }
  return RepositoryPtr(raw);
}

// Opens the mirror, creating it (in a temporary directory renamed into place, so that a crash
// never leaves half a repository) if it is missing or unusable. Called with its flock held.
Result<RepositoryPtr> OpenOrCreateMirror(const fs::path& mirror, const std::string& url,
                                         spdlog::logger& log) {
  std::error_code ec;
  if (fs::exists(mirror, ec)) {
    auto repo = OpenBare(mirror);
    if (repo) return repo;
    log.warn("recreating the git mirror {}: {}", mirror.string(), repo.error().message);
    fs::remove_all(mirror, ec);
    if (ec) return Fail(ErrorCode::kIo, "cannot remove " + mirror.string() + ": " + ec.message());
  }
  const fs::path temp = mirror.parent_path() / (".tmp-" + mirror.filename().string());
  fs::remove_all(temp, ec);
  {
    git_repository* raw = nullptr;
    if (int rc = git_repository_init(&raw, temp.c_str(), /*is_bare=*/1); rc != 0) {
      return std::unexpected(GitFailure(rc, "creating the mirror " + temp.string()));
    }
    RepositoryPtr repo(raw);
    if (auto recorded = RecordUrl(repo.get(), url); !recorded) {
      return std::unexpected(recorded.error());
    }
  }
  fs::rename(temp, mirror, ec);
  if (ec) {
    return Fail(ErrorCode::kIo,
                "cannot rename " + temp.string() + " to " + mirror.string() + ": " + ec.message());
  }
  return OpenBare(mirror);
}

std::string FirstLine(const char* message) {
  if (message == nullptr) return {};
  std::string_view text(message);
  while (!text.empty() && (text.front() == '\n' || text.front() == '\r')) text.remove_prefix(1);
  return Trim(text.substr(0, text.find('\n')));
}

std::string Signature(const git_signature* signature) {
  if (signature == nullptr) return {};
  const std::string name = signature->name ? signature->name : "";
  const std::string email = signature->email ? signature->email : "";
  return email.empty() ? name : name + " <" + email + ">";
}

}  // namespace

struct GitSource::Impl {
  struct Cached {
    GitSnapshot snapshot;
    std::string tree_id;  // of sub_path in snapshot.commit
  };

  RepositoryPtr repo;
  std::string url;        // as given to libgit2 (a password in it stays here, never shown)
  std::string lock_path;  // flock'ed while the mirror is written
  std::string sub_path;   // normalised
  TreeStore trees;
  std::string last_commit;  // what the previous Fetch returned
  std::optional<Cached> cached;

  explicit Impl(TreeStore trees) : trees(std::move(trees)) {}
};

GitSource::GitSource(GitSourceOptions options, std::shared_ptr<spdlog::logger> log)
    : options_(std::move(options)), log_(OrNullLogger(std::move(log))) {}

GitSource::~GitSource() = default;

Result<std::unique_ptr<GitSource>> GitSource::Open(GitSourceOptions options,
                                                   std::shared_ptr<spdlog::logger> log) {
  EnsureLibgit2();
  auto url = NormalizeUrl(options.url);
  if (!url) return std::unexpected(url.error().Wrap("git source"));
  const std::string display_url = RedactUrl(*url);
  if (options.cache_dir.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "no cache_dir given", "git source " + display_url);
  }
  auto sub_path = NormalizeSubPath(options.sub_path);
  if (!sub_path) return std::unexpected(sub_path.error().Wrap("git source " + display_url));
  if (options.ref.empty()) options.ref = "HEAD";
  if (!options.ca_file.empty()) {
    std::error_code exists;
    if (!fs::is_regular_file(options.ca_file, exists)) {
      return Fail(ErrorCode::kFailedPrecondition, "caFile " + options.ca_file + " is not a readable file",
                  "git source " + display_url);
    }
    if (git_libgit2_opts(GIT_OPT_SET_SSL_CERT_LOCATIONS, options.ca_file.c_str(), nullptr) < 0) {
      return Fail(ErrorCode::kFailedPrecondition, "cannot load caFile " + options.ca_file + ": " + LastGitMessage(),
                  "git source " + display_url);
    }
  }

  std::error_code ec;
  const fs::path cache = fs::absolute(options.cache_dir, ec).lexically_normal();
  fs::create_directories(cache, ec);
  if (ec) {
    return Fail(ErrorCode::kIo, "cannot create cache_dir " + cache.string() + ": " + ec.message(),
                "git source " + display_url);
  }
  const std::string name = MirrorName(*url);
  const fs::path mirror = cache / name;

  std::unique_ptr<GitSource> source(new GitSource(std::move(options), std::move(log)));
  source->display_url_ = display_url;
  source->mirror_dir_ = mirror.string();
  source->impl_ = std::make_unique<Impl>(TreeStore(cache / "trees", source->options_.lock_wait));
  Impl& impl = *source->impl_;
  impl.url = *url;
  impl.lock_path = (cache / (name + ".lock")).string();
  impl.sub_path = *sub_path;

  auto lock = FileLock::Acquire(impl.lock_path, source->options_.lock_wait,
                                "git mirror " + mirror.string());
  if (!lock) return std::unexpected(lock.error().Wrap("git source " + display_url));
  auto repo = OpenOrCreateMirror(mirror, impl.url, *source->log_);
  if (!repo) return std::unexpected(repo.error().Wrap("git source " + display_url));
  impl.repo = std::move(*repo);
  return source;
}

namespace {

// Resolves `ref` in the mirror just fetched, in the documented order.
class RefResolver {
 public:
  RefResolver(git_repository* repo, const std::string& ref, const std::string& display_url)
      : repo_(repo), ref_(ref), url_(display_url) {}

  Result<std::string> Resolve() {
    if (ref_ == "HEAD") return ResolveRemoteHead();
    std::vector<std::string> candidates;
    if (ref_.starts_with(kBranchPrefix)) {
      candidates.push_back(std::string(kTrackingPrefix) + ref_.substr(kBranchPrefix.size()));
    } else if (ref_.starts_with(kTagPrefix)) {
      candidates.push_back(ref_);
    } else {
      candidates.push_back(std::string(kTrackingPrefix) + ref_);
      candidates.push_back(std::string(kTagPrefix) + ref_);
    }
    for (const std::string& name : candidates) {
      git_reference* raw = nullptr;
      const int rc = git_reference_lookup(&raw, repo_, name.c_str());
      if (rc == GIT_ENOTFOUND || rc == GIT_EINVALIDSPEC) continue;
      if (rc != 0) return std::unexpected(GitFailure(rc, "reading " + name + " of " + url_));
      ReferencePtr reference(raw);
      return PeelToCommit(reference.get());
    }
    if (IsHex(ref_) && ref_.size() >= 4 && ref_.size() <= GIT_OID_HEXSZ) return ResolveSha();
    return NotFound("ref '" + ref_ + "' not found in " + url_);
  }

 private:
  Result<std::string> ResolveRemoteHead() {
    git_reference* raw = nullptr;
    if (git_reference_lookup(&raw, repo_, kRemoteHead) != 0) {
      return NotFound("ref 'HEAD' of " + url_ + " names no branch (the remote's HEAD is " +
                      "detached or the repository is empty); set ref to a branch");
    }
    ReferencePtr head(raw);
    const char* target = git_reference_symbolic_target(head.get());
    git_reference* resolved = nullptr;
    if (git_reference_resolve(&resolved, head.get()) != 0) {
      std::string branch = target != nullptr ? target : "?";
      if (branch.starts_with(kTrackingPrefix)) branch = branch.substr(kTrackingPrefix.size());
      return NotFound("ref 'HEAD' of " + url_ + " is branch '" + branch +
                      "', which has no commits");
    }
    ReferencePtr reference(resolved);
    return PeelToCommit(reference.get());
  }

  Result<std::string> ResolveSha() {
    git_object* raw = nullptr;
    const int rc = git_revparse_single(&raw, repo_, ref_.c_str());
    if (rc == GIT_EAMBIGUOUS) {
      return Fail(
          ErrorCode::kInvalidArgument,
          "ref '" + ref_ + "' is an ambiguous abbreviated SHA in " + url_ + "; give more digits");
    }
    if (rc != 0) {
      return NotFound("ref '" + ref_ + "' not found in " + url_ +
                      " (a commit SHA must be reachable from a branch or tag)");
    }
    ObjectPtr object(raw);
    git_object* peeled = nullptr;
    if (git_object_peel(&peeled, object.get(), GIT_OBJECT_COMMIT) != 0) {
      return Fail(ErrorCode::kInvalidArgument,
                  "ref '" + ref_ + "' in " + url_ + " is a " +
                      git_object_type2string(git_object_type(object.get())) + ", not a commit");
    }
    ObjectPtr commit(peeled);
    return OidHex(*git_object_id(commit.get()));
  }

  Result<std::string> PeelToCommit(git_reference* reference) {
    git_object* raw = nullptr;
    if (git_reference_peel(&raw, reference, GIT_OBJECT_COMMIT) != 0) {
      return Fail(
          ErrorCode::kInvalidArgument,
          "ref '" + ref_ + "' in " + url_ + " does not point to a commit: " + LastGitMessage());
    }
    ObjectPtr commit(raw);
    return OidHex(*git_object_id(commit.get()));
  }

  std::unexpected<Error> NotFound(std::string message) {
    message += ": branches: " + JoinNames(ListReferences(repo_, kTrackingPrefix)) +
               "; tags: " + JoinNames(ListReferences(repo_, kTagPrefix));
    return Fail(ErrorCode::kNotFound, std::move(message));
  }

  git_repository* repo_;
  const std::string& ref_;
  const std::string& url_;
};

// Points refs/remotes/origin/HEAD at the tracking branch of the remote's default branch
// ("refs/heads/main"), or removes it when the remote named none.
Result<void> UpdateRemoteHead(git_repository* repo, const std::string& default_branch) {
  if (!default_branch.starts_with(kBranchPrefix)) {
    const int rc = git_reference_remove(repo, kRemoteHead);
    if (rc != 0 && rc != GIT_ENOTFOUND) {
      return std::unexpected(GitFailure(rc, "removing " + std::string(kRemoteHead)));
    }
    return {};
  }
  const std::string target =
      std::string(kTrackingPrefix) + default_branch.substr(kBranchPrefix.size());
  git_reference* raw = nullptr;
  if (git_reference_lookup(&raw, repo, kRemoteHead) == 0) {
    ReferencePtr existing(raw);
    const char* current = git_reference_symbolic_target(existing.get());
    if (current != nullptr && target == current) return {};
  }
  raw = nullptr;
  if (int rc = git_reference_symbolic_create(&raw, repo, kRemoteHead, target.c_str(), /*force=*/1,
                                             "gitvirt: remote HEAD");
      rc != 0) {
    return std::unexpected(GitFailure(rc, "recording the remote's default branch"));
  }
  ReferencePtr created(raw);
  return {};
}

}  // namespace

Result<std::string> GitSource::Fetch() {
  const auto started = std::chrono::steady_clock::now();
  Impl& impl = *impl_;
  const std::string what = "fetching " + display_url_;
  auto lock = FileLock::Acquire(impl.lock_path, options_.lock_wait, "git mirror " + mirror_dir_);
  if (!lock) return std::unexpected(lock.error().Wrap(what));
  RemoveStaleGitLocks(mirror_dir_, *log_);
  // A fresh handle each time: one kept open would keep reading (and keep on disk) the packs
  // another process's repack deleted.
  auto reopened = OpenBare(mirror_dir_);
  if (!reopened) return std::unexpected(reopened.error().Wrap(what));
  impl.repo = std::move(*reopened);

  auto anonymous = AnonymousRemote(impl.repo.get(), impl.url);
  if (!anonymous) return std::unexpected(anonymous.error());
  RemotePtr remote = std::move(*anonymous);

  CredentialProvider credentials(options_);
  git_remote_callbacks callbacks;
  git_remote_init_callbacks(&callbacks, GIT_REMOTE_CALLBACKS_VERSION);
  callbacks.credentials = &CredentialProvider::Callback;
  callbacks.payload = &credentials;
  git_proxy_options proxy;
  git_proxy_options_init(&proxy, GIT_PROXY_OPTIONS_VERSION);
  proxy.type = GIT_PROXY_AUTO;  // http.proxy of the git configuration, or the environment's

  const std::string local = LocalDirectory(impl.url);
  const auto failed = [&](int rc) {
    if (credentials.failure()) return std::unexpected(credentials.failure()->Wrap(what));
    if (const std::string said = LastGitMessage();
        said.find("safe.directory") != std::string::npos ||
        said.find("owned") != std::string::npos) {
      if (auto foreign = ForeignOwner(local)) return std::unexpected(*foreign);
    }
    Error error = GitFailure(rc, what, /*over_network=*/local.empty());
    if (rc == GIT_ECERTIFICATE) {
      error.message +=
          " (ssh: the server's key must be in ~/.ssh/known_hosts of the user "
          "gitvirt runs as; https: the server's certificate must be trusted)";
    }
    return std::unexpected(std::move(error));
  };
  if (std::error_code ec; !local.empty() && !fs::exists(local, ec)) {
    // libgit2 would say "unsupported URL protocol" about a path that does not exist.
    return Fail(ErrorCode::kNotFound, what + ": no such repository (" + local + " does not exist)");
  }
  if (int rc = git_remote_connect(remote.get(), GIT_DIRECTION_FETCH, &callbacks, &proxy, nullptr);
      rc != 0) {
    return failed(rc);
  }
  std::string default_branch;
  {
    GitBuf buf;
    if (git_remote_default_branch(buf.get(), remote.get()) == 0) default_branch = buf.str();
  }
  git_fetch_options fetch_options;
  git_fetch_options_init(&fetch_options, GIT_FETCH_OPTIONS_VERSION);
  fetch_options.callbacks = callbacks;
  fetch_options.prune = GIT_FETCH_PRUNE;
  fetch_options.update_fetchhead = 0;
  fetch_options.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;  // the tag refspec fetches them all
  fetch_options.proxy_opts = proxy;
  std::array<char*, 2> specs = {const_cast<char*>(kBranchRefspec), const_cast<char*>(kTagRefspec)};
  const git_strarray refspecs{specs.data(), specs.size()};
  if (int rc = git_remote_fetch(remote.get(), &refspecs, &fetch_options, "gitvirt: fetch");
      rc != 0) {
    return failed(rc);
  }
  if (auto updated = UpdateRemoteHead(impl.repo.get(), default_branch); !updated) {
    return std::unexpected(updated.error().Wrap(what));
  }
  if (auto repacked = RepackIfNeeded(impl.repo.get(), mirror_dir_, options_.max_packs); !repacked) {
    log_->warn("source={} repacking the mirror {} failed: {}", display_url_, mirror_dir_,
               repacked.error().message);
  } else if (*repacked) {
    ++stats_.repacks;
    log_->info("source={} mirror={} repacked", display_url_, mirror_dir_);
    auto fresh = OpenBare(mirror_dir_);  // let go of the deleted packs
    if (!fresh) return std::unexpected(fresh.error().Wrap(what));
    impl.repo = std::move(*fresh);
  }
  auto commit = RefResolver(impl.repo.get(), options_.ref, display_url_).Resolve();
  if (!commit) return commit;

  ++stats_.fetches;
  if (impl.cached) impl.trees.Touch(impl.cached->tree_id);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - started)
                      .count();
  if (*commit != impl.last_commit) {
    log_->info("source={} ref={} commit={} fetched", display_url_, options_.ref, *commit);
    impl.last_commit = *commit;
  } else {
    log_->debug("source={} ref={} commit={} unchanged ms={}", display_url_, options_.ref, *commit,
                ms);
  }
  return commit;
}

namespace {

// The tree at `sub_path` ("" = the root) of `commit`.
Result<TreePtr> SubTree(git_repository* repo, git_commit* commit, const std::string& sub_path,
                        const std::string& context) {
  git_tree* raw = nullptr;
  if (int rc = git_commit_tree(&raw, commit); rc != 0) {
    return std::unexpected(GitFailure(rc, "reading " + context));
  }
  TreePtr root(raw);
  if (sub_path.empty()) return root;
  git_tree_entry* found = nullptr;
  const int rc = git_tree_entry_bypath(&found, root.get(), sub_path.c_str());
  if (rc == GIT_ENOTFOUND) {
    return Fail(ErrorCode::kNotFound, "sub_path '" + sub_path + "' does not exist in " + context);
  }
  if (rc != 0) return std::unexpected(GitFailure(rc, "reading " + sub_path + " of " + context));
  TreeEntryPtr entry(found);
  if (git_tree_entry_type(entry.get()) != GIT_OBJECT_TREE) {
    return Fail(ErrorCode::kNotFound,
                "sub_path '" + sub_path + "' is not a directory in " + context);
  }
  raw = nullptr;
  if (int lookup = git_tree_lookup(&raw, repo, git_tree_entry_id(entry.get())); lookup != 0) {
    return std::unexpected(GitFailure(lookup, "reading " + sub_path + " of " + context));
  }
  return TreePtr(raw);
}

Result<std::vector<ManifestFile>> ReadManifests(git_repository* repo, const git_tree* tree,
                                                WalkSkipped& skipped) {
  std::vector<ManifestFile> files;
  TreeVisitor visitor;
  visitor.skip_dot_directories = true;
  visitor.on_blob = [&](const std::string& path, const git_tree_entry* entry) -> Result<void> {
    const std::string extension = fs::path(path).extension().string();
    if (extension != ".yaml" && extension != ".yml") return {};
    auto blob = LookupBlob(repo, entry, path);
    if (!blob) return std::unexpected(blob.error());
    const auto* bytes = static_cast<const char*>(git_blob_rawcontent(blob->get()));
    files.push_back(ManifestFile{
        path, std::string(bytes, static_cast<std::size_t>(git_blob_rawsize(blob->get())))});
    return {};
  };
  if (auto walked = WalkTree(repo, tree, "", visitor, skipped); !walked) {
    return std::unexpected(walked.error());
  }
  std::sort(files.begin(), files.end(),
            [](const ManifestFile& a, const ManifestFile& b) { return a.path < b.path; });
  return files;
}

Result<void> ExportTree(git_repository* repo, const git_tree* tree, const fs::path& dir) {
  WalkSkipped skipped;  // reported when the manifests are read
  TreeVisitor visitor;
  visitor.on_tree = [&](const std::string& path) -> Result<void> {
    const fs::path target = dir / path;
    if (::mkdir(target.c_str(), 0755) != 0) {
      return Fail(ErrorCode::kIo, "cannot create " + target.string() + ": " + std::strerror(errno));
    }
    return {};
  };
  visitor.on_blob = [&](const std::string& path, const git_tree_entry* entry) -> Result<void> {
    auto blob = LookupBlob(repo, entry, path);
    if (!blob) return std::unexpected(blob.error());
    return WriteNewFile(dir / path, git_blob_rawcontent(blob->get()),
                        static_cast<std::size_t>(git_blob_rawsize(blob->get())),
                        git_tree_entry_filemode(entry) == GIT_FILEMODE_BLOB_EXECUTABLE);
  };
  return WalkTree(repo, tree, "", visitor, skipped);
}

Result<git_oid> ParseCommitId(git_repository* repo, const std::string& text,
                              const std::string& url) {
  git_oid oid;
  if (text.size() == GIT_OID_HEXSZ && IsHex(text) && git_oid_fromstr(&oid, text.c_str()) == 0) {
    return oid;
  }
  if (text.size() < 4 || text.size() > GIT_OID_HEXSZ || !IsHex(text)) {
    return Fail(ErrorCode::kInvalidArgument, "'" + text + "' is not a commit SHA");
  }
  git_object* raw = nullptr;
  if (int rc = git_revparse_single(&raw, repo, text.c_str()); rc != 0) {
    return std::unexpected(GitFailure(rc, "commit " + text + " of " + url));
  }
  ObjectPtr object(raw);
  return *git_object_id(object.get());
}

}  // namespace

Result<GitSnapshot> GitSource::Snapshot(const std::string& commit_text) {
  Impl& impl = *impl_;
  git_repository* repo = impl.repo.get();
  auto oid = ParseCommitId(repo, commit_text, display_url_);
  if (!oid) return std::unexpected(oid.error());
  const std::string commit_id = OidHex(*oid);
  const std::string context = "commit " + commit_id + " of " + display_url_;

  const auto ensure_exported = [&](const git_tree* tree,
                                   const std::string& tree_id) -> Result<std::string> {
    auto written = impl.trees.Ensure(
        tree_id, [&](const fs::path& temp) { return ExportTree(repo, tree, temp); });
    if (!written) return std::unexpected(written.error().Wrap("exporting " + context));
    const std::string root = impl.trees.PathOf(tree_id).string();
    if (*written) {
      ++stats_.trees_exported;
      log_->info("source={} commit={} tree={} exported to {}", display_url_, commit_id, tree_id,
                 root);
    }
    return root;
  };
  const auto lookup_tree = [&](const std::string& tree_id) -> Result<TreePtr> {
    git_oid id;
    git_tree* raw = nullptr;
    if (int rc = git_oid_fromstr(&id, tree_id.c_str()); rc != 0) {
      return std::unexpected(GitFailure(rc, "reading " + context));
    }
    if (int rc = git_tree_lookup(&raw, repo, &id); rc != 0) {
      return std::unexpected(GitFailure(rc, "reading " + context));
    }
    return TreePtr(raw);
  };

  if (impl.cached && impl.cached->snapshot.commit == commit_id) {
    if (!impl.trees.Touch(impl.cached->tree_id)) {  // removed behind our back: write it again
      auto tree = lookup_tree(impl.cached->tree_id);
      if (!tree) return std::unexpected(tree.error());
      auto root = ensure_exported(tree->get(), impl.cached->tree_id);
      if (!root) return std::unexpected(root.error());
    }
    return impl.cached->snapshot;
  }

  git_commit* raw = nullptr;
  if (int rc = git_commit_lookup(&raw, repo, &*oid); rc != 0) {
    return std::unexpected(GitFailure(rc, "reading " + context));
  }
  CommitPtr commit(raw);
  auto tree = SubTree(repo, commit.get(), impl.sub_path, context);
  if (!tree) return std::unexpected(tree.error());
  const std::string tree_id = OidHex(*git_tree_id(tree->get()));

  GitSnapshot snapshot;
  snapshot.commit = commit_id;
  snapshot.author = Signature(git_commit_author(commit.get()));
  snapshot.message = FirstLine(git_commit_message(commit.get()));
  snapshot.time = TimePoint(std::chrono::seconds(git_commit_time(commit.get())));

  if (impl.cached && impl.cached->tree_id == tree_id) {
    // Another commit, same manifests (a change outside sub_path): nothing to read.
    snapshot.files = impl.cached->snapshot.files;
  } else {
    WalkSkipped skipped;
    auto files = ReadManifests(repo, tree->get(), skipped);
    if (!files) return std::unexpected(files.error().Wrap("reading " + context));
    snapshot.files = std::move(*files);
    ++stats_.trees_read;
    if (!skipped.links.empty() || !skipped.submodules.empty()) {
      log_->warn(
          "source={} commit={} skipped symbolic links ({}) and submodules ({}): gitvirt "
          "reads regular files only",
          display_url_, commit_id, JoinNames(skipped.links), JoinNames(skipped.submodules));
    }
  }
  auto root = ensure_exported(tree->get(), tree_id);
  if (!root) return std::unexpected(root.error());
  snapshot.root_dir = std::move(*root);
  log_->debug("source={} commit={} files={} root_dir={}", display_url_, commit_id,
              snapshot.files.size(), snapshot.root_dir);
  impl.cached = Impl::Cached{snapshot, tree_id};
  return snapshot;
}

Result<GitSnapshot> FetchSnapshot(const GitSourceOptions& options,
                                  const std::shared_ptr<spdlog::logger>& log) {
  auto source = GitSource::Open(options, log);
  if (!source) return std::unexpected(source.error());
  auto commit = (*source)->Fetch();
  if (!commit) return std::unexpected(commit.error());
  return (*source)->Snapshot(*commit);
}

}  // namespace gitvirt
