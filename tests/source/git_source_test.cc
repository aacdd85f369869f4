// The git source against real repositories built with the `git` CLI in temporary directories
// (HOME points into them, so no user or system configuration is read).

#include "gitvirt/source/git_source.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "process.h"
#include "temp_dir.h"

namespace gitvirt {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

std::vector<std::string> Paths(const std::vector<ManifestFile>& files) {
  std::vector<std::string> paths;
  for (const ManifestFile& file : files) paths.push_back(file.path);
  return paths;
}

// Every regular file under `dir` (relative path -> bytes), skipping a top-level .git.
std::map<std::string, std::string> TreeContents(const fs::path& dir) {
  std::map<std::string, std::string> contents;
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator();
       ++it) {
    if (it->path().filename() == ".git") {
      it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file()) {
      contents[fs::relative(it->path(), dir).string()] = ReadFile(it->path());
    }
  }
  return contents;
}

class GitSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::setenv("HOME", dir_.path().c_str(), 1);
    ::setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
    ::unsetenv("SSH_AUTH_SOCK");
    cache_ = dir_.path() / "cache";
    log_ = std::make_shared<spdlog::logger>(
        "git-source-test", std::make_shared<spdlog::sinks::ostream_sink_mt>(log_text_));
    log_->set_level(spdlog::level::debug);
  }

  // Runs `git -C repo args...`, expecting success; returns its trimmed output.
  std::string Git(const fs::path& repo, std::vector<std::string> args) {
    std::vector<std::string> argv = {"git", "-C", repo.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string output;
    const int status = testing::RunCommand(argv, &output);
    std::string shown;
    for (const std::string& arg : argv) shown += arg + " ";
    EXPECT_EQ(status, 0) << shown << "\n" << output;
    while (!output.empty() && (output.back() == '\n' || output.back() == ' ')) output.pop_back();
    return output;
  }

  fs::path MakeRepo(const std::string& name, const std::string& branch = "main") {
    const fs::path repo = dir_.path() / name;
    fs::create_directories(repo);
    Git(repo, {"init", "-q", "-b", branch});
    Git(repo, {"config", "user.name", "Ada Lovelace"});
    Git(repo, {"config", "user.email", "ada@example.com"});
    Git(repo, {"config", "commit.gpgsign", "false"});
    return repo;
  }

  static void Write(const fs::path& repo, const std::string& path, const std::string& content) {
    fs::create_directories((repo / path).parent_path());
    std::ofstream(repo / path, std::ios::binary) << content;
  }

  std::string Commit(const fs::path& repo, const std::string& message) {
    Git(repo, {"add", "-A"});
    Git(repo, {"commit", "-q", "--allow-empty", "-m", message});
    return Git(repo, {"rev-parse", "HEAD"});
  }

  GitSourceOptions Options(const std::string& url, const std::string& ref = "HEAD") {
    GitSourceOptions options;
    options.url = url;
    options.ref = ref;
    options.cache_dir = cache_.string();
    return options;
  }

  std::unique_ptr<GitSource> OpenSource(const GitSourceOptions& options) {
    auto source = GitSource::Open(options, log_);
    EXPECT_TRUE(source.has_value()) << source.error().ToString();
    return source ? std::move(*source) : nullptr;
  }

  GitSnapshot MustFetch(const GitSourceOptions& options) {
    auto snapshot = FetchSnapshot(options, log_);
    EXPECT_TRUE(snapshot.has_value()) << snapshot.error().ToString();
    return snapshot.value_or(GitSnapshot{});
  }

  Error MustFail(const GitSourceOptions& options) {
    auto snapshot = FetchSnapshot(options, log_);
    EXPECT_FALSE(snapshot.has_value()) << "fetched " << snapshot->commit;
    return snapshot ? Error{} : snapshot.error();
  }

  // A repository with main (two commits), dev, and tags v1 (lightweight) and v2 (annotated).
  struct Refs {
    fs::path repo;
    std::string first, second, dev, v2_commit;
  };
  Refs MakeRepoWithRefs() {
    Refs refs;
    refs.repo = MakeRepo("refs");
    Write(refs.repo, "vm.yaml", "first\n");
    refs.first = Commit(refs.repo, "first");
    Git(refs.repo, {"tag", "v1"});
    Write(refs.repo, "vm.yaml", "second\n");
    refs.second = Commit(refs.repo, "second");
    Git(refs.repo, {"checkout", "-q", "-b", "dev"});
    Write(refs.repo, "vm.yaml", "dev\n");
    refs.dev = Commit(refs.repo, "dev");
    Git(refs.repo, {"tag", "-a", "v2", "-m", "release 2"});
    refs.v2_commit = refs.dev;
    Git(refs.repo, {"checkout", "-q", "main"});
    return refs;
  }

  testing::TempDir dir_{"gv-src"};
  fs::path cache_;
  std::ostringstream log_text_;
  std::shared_ptr<spdlog::logger> log_;
};

TEST_F(GitSourceTest, FetchesByAbsolutePathWithCommitDetails) {
  const fs::path repo = MakeRepo("manifests");
  Write(repo, "web.yaml", "kind: VirtualMachine\n");
  Git(repo, {"add", "-A"});
  Git(repo, {"commit", "-q", "-m", "Add web\n\nA longer body\nover lines."});
  const std::string head = Git(repo, {"rev-parse", "HEAD"});
  const std::string time = Git(repo, {"log", "-1", "--format=%ct"});

  const GitSnapshot snapshot = MustFetch(Options(repo.string()));

  EXPECT_EQ(snapshot.commit, head);
  EXPECT_EQ(snapshot.author, "Ada Lovelace <ada@example.com>");
  EXPECT_EQ(snapshot.message, "Add web");
  EXPECT_EQ(snapshot.time.time_since_epoch().count(), std::stoll(time));
  ASSERT_THAT(Paths(snapshot.files), ElementsAre("web.yaml"));
  EXPECT_EQ(snapshot.files[0].content, "kind: VirtualMachine\n");
  EXPECT_TRUE(fs::path(snapshot.root_dir).is_absolute());
  EXPECT_EQ(ReadFile(fs::path(snapshot.root_dir) / "web.yaml"), "kind: VirtualMachine\n");
  EXPECT_THAT(log_text_.str(),
              HasSubstr("source=" + repo.string() + " ref=HEAD commit=" + head + " fetched"));
}

TEST_F(GitSourceTest, FetchesByFileUrl) {
  const fs::path repo = MakeRepo("manifests");
  Write(repo, "a.yml", "a\n");
  const std::string head = Commit(repo, "a");

  const GitSnapshot snapshot = MustFetch(Options("file://" + repo.string()));

  EXPECT_EQ(snapshot.commit, head);
  EXPECT_THAT(Paths(snapshot.files), ElementsAre("a.yml"));
}

TEST_F(GitSourceTest, FetchesByRelativePath) {
  const fs::path repo = MakeRepo("manifests");
  Write(repo, "a.yaml", "a\n");
  const std::string head = Commit(repo, "a");
  const fs::path old_cwd = fs::current_path();
  fs::current_path(dir_.path());

  auto source = GitSource::Open(Options("./manifests/"), log_);
  fs::current_path(old_cwd);
  ASSERT_TRUE(source.has_value()) << source.error().ToString();
  EXPECT_EQ((*source)->display_url(), repo.string());
  auto commit = (*source)->Fetch();
  ASSERT_TRUE(commit.has_value()) << commit.error().ToString();
  EXPECT_EQ(*commit, head);
}

TEST_F(GitSourceTest, ResolvesBranchesTagsAndShas) {
  const Refs refs = MakeRepoWithRefs();
  const std::string url = refs.repo.string();
  const std::map<std::string, std::string> expected = {
      {"HEAD", refs.second},
      {"main", refs.second},
      {"dev", refs.dev},
      {"refs/heads/dev", refs.dev},
      {"v1", refs.first},
      {"refs/tags/v1", refs.first},
      {"v2", refs.v2_commit},  // annotated: peeled to its commit
      {refs.first, refs.first},
      {refs.first.substr(0, 8), refs.first},
      {refs.dev.substr(0, 4), refs.dev},
  };
  for (const auto& [ref, commit] : expected) {
    const GitSnapshot snapshot = MustFetch(Options(url, ref));
    EXPECT_EQ(snapshot.commit, commit) << "ref " << ref;
  }
  EXPECT_EQ(MustFetch(Options(url, "v1")).files.at(0).content, "first\n");
  EXPECT_EQ(MustFetch(Options(url, "dev")).files.at(0).content, "dev\n");
}

TEST_F(GitSourceTest, BranchWinsOverTagOfTheSameName) {
  const fs::path repo = MakeRepo("manifests");
  const std::string first = Commit(repo, "first");
  Git(repo, {"tag", "release"});
  const std::string second = Commit(repo, "second");
  Git(repo, {"branch", "release"});

  EXPECT_EQ(MustFetch(Options(repo.string(), "release")).commit, second);
  EXPECT_EQ(MustFetch(Options(repo.string(), "refs/tags/release")).commit, first);
}

TEST_F(GitSourceTest, HeadFollowsTheRemoteDefaultBranch) {
  const fs::path repo = MakeRepo("manifests", "trunk");
  const std::string on_main = Commit(repo, "first");
  Git(repo, {"branch", "main"});
  const std::string on_trunk = Commit(repo, "second");
  auto source = OpenSource(Options(repo.string()));
  ASSERT_TRUE(source);

  EXPECT_EQ(source->Fetch().value_or("error"), on_trunk);
  Git(repo, {"symbolic-ref", "HEAD", "refs/heads/main"});
  EXPECT_EQ(source->Fetch().value_or("error"), on_main);
}

TEST_F(GitSourceTest, NextFetchSeesANewCommit) {
  const fs::path repo = MakeRepo("manifests");
  Write(repo, "a.yaml", "a\n");
  const std::string first = Commit(repo, "first");
  auto source = OpenSource(Options(repo.string()));
  ASSERT_TRUE(source);
  ASSERT_EQ(source->Fetch().value_or("error"), first);

  Write(repo, "b.yaml", "b\n");
  const std::string second = Commit(repo, "second");
  auto commit = source->Fetch();
  ASSERT_TRUE(commit.has_value()) << commit.error().ToString();
  EXPECT_EQ(*commit, second);
  auto snapshot = source->Snapshot(*commit);
  ASSERT_TRUE(snapshot.has_value()) << snapshot.error().ToString();
  EXPECT_THAT(Paths(snapshot->files), ElementsAre("a.yaml", "b.yaml"));
  EXPECT_EQ(snapshot->message, "second");
}

TEST_F(GitSourceTest, UnchangedFetchReturnsTheSameCommitAndSnapshotIsCached) {
  const fs::path repo = MakeRepo("manifests");
  Write(repo, "a.yaml", "a\n");
  const std::string head = Commit(repo, "first");
  auto source = OpenSource(Options(repo.string()));
  ASSERT_TRUE(source);
  auto first = source->Snapshot(source->Fetch().value_or("error"));
  ASSERT_TRUE(first.has_value()) << first.error().ToString();

  constexpr int kRounds = 20;
  const auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < kRounds; ++i) EXPECT_EQ(source->Fetch().value_or("error"), head);
  const auto per_fetch = std::chrono::duration_cast<std::chrono::microseconds>(
                             std::chrono::steady_clock::now() - started) /
                         kRounds;
  RecordProperty("no_change_fetch_us", std::to_string(per_fetch.count()));
  std::cout << "no-change Fetch of a local repository: " << per_fetch.count() << " us\n";

  auto again = source->Snapshot(head);
  ASSERT_TRUE(again.has_value()) << again.error().ToString();
  EXPECT_EQ(again->commit, first->commit);
  EXPECT_EQ(again->root_dir, first->root_dir);
  EXPECT_EQ(Paths(again->files), Paths(first->files));
  EXPECT_EQ(source->stats().trees_read, 1u);
  EXPECT_EQ(source->stats().trees_exported, 1u);
  EXPECT_EQ(source->stats().fetches, static_cast<std::uint64_t>(kRounds + 1));
  // Only the first fetch is worth an info line.
  EXPECT_THAT(log_text_.str(), HasSubstr("unchanged"));
}

TEST_F(GitSourceTest, CommitOutsideSubPathReusesTheManifests) {
  const fs::path repo = MakeRepo("manifests");
  Write(repo, "deploy/a.yaml", "a\n");
  Commit(repo, "first");
  GitSourceOptions options = Options(repo.string());
  options.sub_path = "deploy";
  auto source = OpenSource(options);
  ASSERT_TRUE(source);
  auto first = source->Snapshot(source->Fetch().value_or("error"));
  ASSERT_TRUE(first.has_value()) << first.error().ToString();

  Write(repo, "docs/readme.md", "docs\n");
  const std::string second = Commit(repo, "docs only");
  auto snapshot = source->Snapshot(source->Fetch().value_or("error"));
  ASSERT_TRUE(snapshot.has_value()) << snapshot.error().ToString();

  EXPECT_EQ(snapshot->commit, second);
  EXPECT_EQ(snapshot->message, "docs only");
  EXPECT_EQ(snapshot->root_dir, first->root_dir);
  EXPECT_THAT(Paths(snapshot->files), ElementsAre("a.yaml"));
  EXPECT_EQ(source->stats().trees_read, 1u);
}

class SubPathTest : public GitSourceTest {
 protected:
  void SetUp() override {
    GitSourceTest::SetUp();
    repo_ = MakeRepo("manifests");
    Write(repo_, "root.yaml", "outside\n");
    Write(repo_, "deploy/staging/other.yaml", "staging\n");
    Write(repo_, "deploy/prod/top.yaml", "top\n");
    Write(repo_, "deploy/prod/vms/web/web.yaml", "web\n");
    Write(repo_, "deploy/prod/nets/lan.yml", "lan\n");
    Write(repo_, "deploy/prod/.hidden/secret.yaml", "hidden\n");
    Write(repo_, "deploy/prod/.dot.yaml", "dotfile\n");
    Write(repo_, "deploy/prod/README.md", "# readme\n");
    Write(repo_, "deploy/prod/vms/web/notes.txt", "notes\n");
    Write(repo_, "deploy/prod/images/tiny.qcow2", std::string("QFI\xfb\0\0\0\x03 binary", 14));
    Write(repo_, "deploy/prod/scripts/run.sh", "#!/bin/sh\necho hi\n");
    fs::permissions(repo_ / "deploy/prod/scripts/run.sh", fs::perms::owner_exec,
                    fs::perm_options::add);
    commit_ = Commit(repo_, "layout");
  }

  GitSourceOptions SubPathOptions(const std::string& sub_path) {
    GitSourceOptions options = Options(repo_.string());
    options.sub_path = sub_path;
    return options;
  }

  fs::path repo_;
  std::string commit_;
};

TEST_F(SubPathTest, ReadsYamlRecursivelySkippingDotDirectories) {
  const GitSnapshot snapshot = MustFetch(SubPathOptions("deploy/prod"));

  EXPECT_THAT(Paths(snapshot.files),
              ElementsAre(".dot.yaml", "nets/lan.yml", "top.yaml", "vms/web/web.yaml"));
  EXPECT_EQ(snapshot.files[3].content, "web\n");
}

TEST_F(SubPathTest, NormalisesTheSubPath) {
  const GitSnapshot plain = MustFetch(SubPathOptions("deploy/prod"));
  const GitSnapshot messy = MustFetch(SubPathOptions("./deploy//prod/"));
  EXPECT_EQ(Paths(messy.files), Paths(plain.files));
  EXPECT_EQ(messy.root_dir, plain.root_dir);
  EXPECT_THAT(
      Paths(MustFetch(SubPathOptions(".")).files),
      ElementsAre("deploy/prod/.dot.yaml", "deploy/prod/nets/lan.yml", "deploy/prod/top.yaml",
                  "deploy/prod/vms/web/web.yaml", "deploy/staging/other.yaml", "root.yaml"));
}

TEST_F(SubPathTest, RootDirHoldsTheCompleteSubPathTree) {
  const GitSnapshot snapshot = MustFetch(SubPathOptions("deploy/prod"));
  const fs::path root = snapshot.root_dir;

  EXPECT_EQ(TreeContents(root), TreeContents(repo_ / "deploy/prod"));
  EXPECT_TRUE(fs::exists(root / "images/tiny.qcow2"));
  EXPECT_TRUE(fs::exists(root / ".hidden/secret.yaml"));
  EXPECT_FALSE(fs::exists(root / "other.yaml"));
  EXPECT_NE(fs::status(root / "scripts/run.sh").permissions() & fs::perms::owner_exec,
            fs::perms::none);
  EXPECT_EQ(fs::status(root / "top.yaml").permissions() & fs::perms::owner_exec, fs::perms::none);
  // A relative Image source resolves against it.
  EXPECT_EQ(ReadFile(root / "vms/web/../../images/tiny.qcow2").size(), 14u);
}

TEST_F(SubPathTest, ExportIsIdempotent) {
  const GitSnapshot first = MustFetch(SubPathOptions("deploy/prod"));
  struct stat before {};
  ASSERT_EQ(::stat((fs::path(first.root_dir) / "top.yaml").c_str(), &before), 0);

  const GitSnapshot second = MustFetch(SubPathOptions("deploy/prod"));

  EXPECT_EQ(second.root_dir, first.root_dir);
  struct stat after {};
  ASSERT_EQ(::stat((fs::path(second.root_dir) / "top.yaml").c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino);  // not written again
  EXPECT_EQ(after.st_mtime, before.st_mtime);
  std::vector<std::string> leftovers;
  for (const auto& entry : fs::directory_iterator(cache_ / "trees")) {
    if (entry.path().filename().string().starts_with(".tmp")) leftovers.push_back(entry.path());
  }
  EXPECT_THAT(leftovers, ElementsAre());
}

TEST_F(SubPathTest, DifferentSubPathsGetDifferentRootDirs) {
  const GitSnapshot prod = MustFetch(SubPathOptions("deploy/prod"));
  const GitSnapshot staging = MustFetch(SubPathOptions("deploy/staging"));
  EXPECT_NE(prod.root_dir, staging.root_dir);
  EXPECT_THAT(Paths(staging.files), ElementsAre("other.yaml"));
  EXPECT_TRUE(fs::exists(fs::path(staging.root_dir) / "other.yaml"));
  EXPECT_TRUE(fs::exists(fs::path(prod.root_dir) / "top.yaml"));
}

TEST_F(SubPathTest, RootDirRemovedBehindOurBackIsWrittenAgain) {
  auto source = OpenSource(SubPathOptions("deploy/prod"));
  ASSERT_TRUE(source);
  auto first = source->Snapshot(source->Fetch().value_or("error"));
  ASSERT_TRUE(first.has_value()) << first.error().ToString();
  fs::remove_all(first->root_dir);

  auto again = source->Snapshot(commit_);
  ASSERT_TRUE(again.has_value()) << again.error().ToString();
  EXPECT_EQ(again->root_dir, first->root_dir);
  EXPECT_TRUE(fs::exists(fs::path(again->root_dir) / "top.yaml"));
}

TEST_F(SubPathTest, IdleExportsAreRemovedWhenANewOneIsWritten) {
  const GitSnapshot staging = MustFetch(SubPathOptions("deploy/staging"));
  const auto two_days_ago = fs::file_time_type::clock::now() - std::chrono::hours(48);
  fs::last_write_time(staging.root_dir, two_days_ago);

  const GitSnapshot prod = MustFetch(SubPathOptions("deploy/prod"));

  EXPECT_TRUE(fs::exists(prod.root_dir));
  EXPECT_FALSE(fs::exists(staging.root_dir));
}

TEST_F(SubPathTest, MissingSubPathIsAnErrorNamingIt) {
  const Error error = MustFail(SubPathOptions("deploy/missing"));
  EXPECT_EQ(error.code, ErrorCode::kNotFound);
  EXPECT_THAT(error.ToString(), HasSubstr("sub_path 'deploy/missing' does not exist in commit " +
                                          commit_ + " of " + repo_.string()));
}

TEST_F(SubPathTest, SubPathNamingAFileIsAnError) {
  const Error error = MustFail(SubPathOptions("deploy/prod/top.yaml"));
  EXPECT_EQ(error.code, ErrorCode::kNotFound);
  EXPECT_THAT(error.ToString(), HasSubstr("sub_path 'deploy/prod/top.yaml' is not a directory"));
}

TEST_F(SubPathTest, SubPathLeavingTheRepositoryIsRefused) {
  for (const std::string sub_path : {"../etc", "deploy/../../x", "/etc"}) {
    auto source = GitSource::Open(SubPathOptions(sub_path), log_);
    ASSERT_FALSE(source.has_value()) << sub_path;
    EXPECT_EQ(source.error().code, ErrorCode::kInvalidArgument);
    EXPECT_THAT(source.error().ToString(), HasSubstr("sub_path '" + sub_path + "'"));
  }
}

TEST_F(GitSourceTest, DeletedBranchAndTagArePruned) {
  const fs::path repo = MakeRepo("manifests");
  Commit(repo, "first");
  Git(repo, {"branch", "feature"});
  Git(repo, {"tag", "old"});
  auto feature = OpenSource(Options(repo.string(), "feature"));
  auto tag = OpenSource(Options(repo.string(), "old"));
  ASSERT_TRUE(feature && tag);
  ASSERT_TRUE(feature->Fetch().has_value());
  ASSERT_TRUE(tag->Fetch().has_value());

  Git(repo, {"branch", "-D", "feature"});
  Git(repo, {"tag", "-d", "old"});
  auto gone = feature->Fetch();
  ASSERT_FALSE(gone.has_value());
  EXPECT_EQ(gone.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(gone.error().message,
            "ref 'feature' not found in " + repo.string() + ": branches: main; tags: (none)");
  EXPECT_FALSE(tag->Fetch().has_value());
}

TEST_F(GitSourceTest, UnknownRefErrorListsBranchesAndTags) {
  const Refs refs = MakeRepoWithRefs();
  const Error error = MustFail(Options(refs.repo.string(), "mian"));
  EXPECT_EQ(error.code, ErrorCode::kNotFound);
  EXPECT_EQ(error.ToString(), "ref 'mian' not found in " + refs.repo.string() +
                                  ": branches: dev, main; tags: v1, v2");
}

TEST_F(GitSourceTest, TooShortOrUnknownShaIsNotFound) {
  const Refs refs = MakeRepoWithRefs();
  EXPECT_THAT(MustFail(Options(refs.repo.string(), refs.first.substr(0, 3))).message,
              HasSubstr("not found"));
  EXPECT_THAT(MustFail(Options(refs.repo.string(), std::string(40, 'e'))).message,
              HasSubstr("not found"));
}

TEST_F(GitSourceTest, EmptyRepositoryHasNoDefaultBranch) {
  const fs::path repo = MakeRepo("empty");
  const Error error = MustFail(Options(repo.string()));
  EXPECT_EQ(error.code, ErrorCode::kNotFound);
  EXPECT_THAT(error.message, HasSubstr("ref 'HEAD' of " + repo.string()));
}

TEST_F(GitSourceTest, BadUrlErrorNamesTheUrl) {
  const std::string missing = (dir_.path() / "no-such-repo").string();
  const Error error = MustFail(Options(missing));
  EXPECT_THAT(error.ToString(), HasSubstr("fetching " + missing));

  const Error file_url = MustFail(Options("file://" + missing));
  EXPECT_THAT(file_url.ToString(), HasSubstr("file://" + missing));
}

TEST_F(GitSourceTest, RepositoryOfAnotherUserIsRefusedWithAHint) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give the repository away";
  const fs::path repo = MakeRepo("manifests");
  Commit(repo, "first");
  for (const auto& entry : fs::recursive_directory_iterator(repo)) {
    ASSERT_EQ(::lchown(entry.path().c_str(), 65534, 65534), 0);
  }
  ASSERT_EQ(::chown(repo.c_str(), 65534, 65534), 0);

  const Error error = MustFail(Options(repo.string()));

  EXPECT_EQ(error.code, ErrorCode::kFailedPrecondition);
  EXPECT_THAT(error.message, HasSubstr("belongs to uid 65534"));
  EXPECT_THAT(error.message, HasSubstr("safe.directory " + repo.string()));
}

TEST_F(GitSourceTest, UnreachableServerIsRetryableAndPasswordIsRedacted) {
  // Port 1 on the loopback refuses connections at once.
  const Error error = MustFail(Options("https://bot:s3cret@127.0.0.1:1/org/repo.git"));
  EXPECT_EQ(error.code, ErrorCode::kUnavailable);
  EXPECT_TRUE(error.Retryable());
  EXPECT_THAT(error.ToString(), HasSubstr("https://bot:***@127.0.0.1:1/org/repo.git"));
  EXPECT_THAT(error.ToString(), Not(HasSubstr("s3cret")));
  EXPECT_THAT(log_text_.str(), Not(HasSubstr("s3cret")));
  for (const auto& entry : fs::directory_iterator(cache_)) {
    EXPECT_THAT(entry.path().string(), Not(HasSubstr("s3cret")));
  }
}

TEST_F(GitSourceTest, RedactUrlHidesOnlyThePassword) {
  EXPECT_EQ(RedactUrl("https://bot:s3cret@host/r.git"), "https://bot:***@host/r.git");
  EXPECT_EQ(RedactUrl("https://bot@host:8443/r.git"), "https://bot@host:8443/r.git");
  EXPECT_EQ(RedactUrl("ssh://git@host:22/r.git"), "ssh://git@host:22/r.git");
  EXPECT_EQ(RedactUrl("git@host:org/r.git"), "git@host:org/r.git");
  EXPECT_EQ(RedactUrl("/srv/repo"), "/srv/repo");
  EXPECT_EQ(RedactUrl("cannot fetch 'http://u:p@h/x' or https://a:b@c"),
            "cannot fetch 'http://u:***@h/x' or https://a:***@c");
}

TEST_F(GitSourceTest, BareSourceRepositoryWorks) {
  const fs::path repo = MakeRepo("manifests");
  Write(repo, "deploy/a.yaml", "a\n");
  const std::string head = Commit(repo, "first");
  const fs::path bare = dir_.path() / "bare.git";
  Git(dir_.path(), {"clone", "-q", "--bare", repo.string(), bare.string()});
  GitSourceOptions options = Options(bare.string());
  options.sub_path = "deploy";

  const GitSnapshot snapshot = MustFetch(options);

  EXPECT_EQ(snapshot.commit, head);
  EXPECT_THAT(Paths(snapshot.files), ElementsAre("a.yaml"));
}

TEST_F(GitSourceTest, StaleGitLockFileLeftByACrashIsRemoved) {
  const fs::path repo = MakeRepo("manifests");
  Commit(repo, "first");
  auto source = OpenSource(Options(repo.string()));
  ASSERT_TRUE(source);
  ASSERT_TRUE(source->Fetch().has_value());
  std::ofstream(fs::path(source->mirror_dir()) / "refs/remotes/origin/main.lock") << "junk";
  const std::string second = Commit(repo, "second");

  auto commit = source->Fetch();
  ASSERT_TRUE(commit.has_value()) << commit.error().ToString();
  EXPECT_EQ(*commit, second);
  EXPECT_THAT(log_text_.str(), HasSubstr("removed stale git lock file"));
}

TEST_F(GitSourceTest, ManyFetchesAreRepackedIntoOnePack) {
  const fs::path repo = MakeRepo("manifests");
  Write(repo, "a.yaml", "v0\n");
  const std::string first = Commit(repo, "first");
  Git(repo, {"tag", "-a", "v0", "-m", "release 0"});
  GitSourceOptions options = Options(repo.string());
  options.max_packs = 2;
  auto source = OpenSource(options);
  ASSERT_TRUE(source);
  std::string head;
  for (int i = 1; i <= 6; ++i) {
    Write(repo, "a.yaml", "v" + std::to_string(i) + "\n");
    head = Commit(repo, "change " + std::to_string(i));
    ASSERT_EQ(source->Fetch().value_or("error"), head);
  }

  EXPECT_GE(source->stats().repacks, 1u);
  int packs = 0;
  for (const auto& entry :
       fs::directory_iterator(fs::path(source->mirror_dir()) / "objects/pack")) {
    packs += entry.path().extension() == ".pack";
  }
  EXPECT_LE(packs, 3);
  Git(source->mirror_dir(), {"fsck", "--full", "--no-dangling"});
  auto old = source->Snapshot(first);
  ASSERT_TRUE(old.has_value()) << old.error().ToString();
  EXPECT_EQ(old->files.at(0).content, "v0\n");
  GitSourceOptions tagged = Options(repo.string(), "v0");
  EXPECT_EQ(MustFetch(tagged).commit, first);
  auto latest = source->Snapshot(head);
  ASSERT_TRUE(latest.has_value()) << latest.error().ToString();
  EXPECT_EQ(latest->files.at(0).content, "v6\n");
}

TEST_F(GitSourceTest, FetchWaitsForAnotherProcessHoldingTheMirror) {
  const fs::path repo = MakeRepo("manifests");
  const std::string head = Commit(repo, "first");
  GitSourceOptions options = Options(repo.string());
  options.lock_wait = std::chrono::milliseconds(100);
  auto source = OpenSource(options);
  ASSERT_TRUE(source);
  // Another open file description excludes us just like another process would.
  const int holder = ::open((source->mirror_dir() + ".lock").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(holder, 0);
  ASSERT_EQ(::flock(holder, LOCK_EX), 0);

  auto locked = source->Fetch();
  ::close(holder);

  ASSERT_FALSE(locked.has_value());
  EXPECT_EQ(locked.error().code, ErrorCode::kUnavailable);
  EXPECT_THAT(locked.error().ToString(), HasSubstr("still locked by another process"));
  EXPECT_EQ(source->Fetch().value_or("error"), head);
}

TEST_F(GitSourceTest, BrokenMirrorIsRecreated) {
  const fs::path repo = MakeRepo("manifests");
  const std::string head = Commit(repo, "first");
  std::string mirror;
  {
    auto source = OpenSource(Options(repo.string()));
    ASSERT_TRUE(source);
    mirror = source->mirror_dir();
  }
  fs::remove_all(mirror);
  fs::create_directories(mirror);  // a directory that is no repository

  EXPECT_EQ(MustFetch(Options(repo.string())).commit, head);
}

TEST_F(GitSourceTest, MirrorIsNamedAfterTheUrl) {
  const fs::path repo = MakeRepo("manifests");
  auto source = OpenSource(Options(repo.string()));
  ASSERT_TRUE(source);
  const std::string name = fs::path(source->mirror_dir()).filename();
  EXPECT_THAT(name, ::testing::MatchesRegex("manifests-[0-9a-f]{16}"));
  EXPECT_EQ(fs::path(source->mirror_dir()).parent_path(), cache_);
  EXPECT_TRUE(fs::exists(fs::path(source->mirror_dir()) / "HEAD"));  // a bare repository
}

TEST_F(GitSourceTest, ConcurrentSourcesShareOneCache) {
  const fs::path repo = MakeRepo("manifests");
  Write(repo, "a.yaml", "a\n");
  const std::string head = Commit(repo, "first");
  std::atomic<int> ok{0};
  std::mutex errors_mutex;
  std::vector<std::string> errors;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 5; ++i) {
        auto snapshot = FetchSnapshot(Options(repo.string()), nullptr);
        if (snapshot && snapshot->commit == head && snapshot->files.size() == 1) {
          ++ok;
        } else {
          std::lock_guard lock(errors_mutex);
          errors.push_back(snapshot ? snapshot->commit : snapshot.error().ToString());
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(ok.load(), 20);
  EXPECT_THAT(errors, ElementsAre());
}

// A minimal HTTP server that asks for Basic credentials and records what it gets.
class AuthServer {
 public:
  AuthServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(fd_, 8) != 0) {
      throw std::runtime_error("cannot listen");
    }
    socklen_t length = sizeof address;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~AuthServer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  int port() const { return port_; }
  std::vector<std::string> authorizations() {
    std::lock_guard lock(mutex_);
    return authorizations_;
  }

 private:
  void Serve() {
    while (!stop_) {
      pollfd waiting{fd_, POLLIN, 0};
      if (::poll(&waiting, 1, 50) <= 0) continue;
      const int client = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      std::string request;
      char buf[4096];
      while (request.find("\r\n\r\n") == std::string::npos) {
        const ssize_t n = ::read(client, buf, sizeof buf);
        if (n <= 0) break;
        request.append(buf, static_cast<std::size_t>(n));
      }
      const std::size_t at = request.find("Authorization: Basic ");
      if (at != std::string::npos) {
        const std::size_t start = at + 21;
        std::lock_guard lock(mutex_);
        authorizations_.push_back(request.substr(start, request.find("\r\n", start) - start));
      }
      const std::string response =
          "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"test\"\r\n"
          "Content-Length: 0\r\nConnection: close\r\n\r\n";
      (void)!::write(client, response.data(), response.size());
      ::close(client);
    }
  }

  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mutex_;
  std::vector<std::string> authorizations_;
};

TEST_F(GitSourceTest, TokenFromFileIsSentAsPasswordAndNeverShown) {
  AuthServer server;
  const fs::path token_file = dir_.path() / "token";
  std::ofstream(token_file) << "  tok-123\n";
  GitSourceOptions options =
      Options("http://127.0.0.1:" + std::to_string(server.port()) + "/org/repo.git");
  options.token_file = token_file.string();

  const Error error = MustFail(options);

  EXPECT_EQ(error.code, ErrorCode::kFailedPrecondition);
  EXPECT_THAT(error.ToString(),
              HasSubstr("refused the credentials (token from " + token_file.string() + ")"));
  // base64("x-access-token:tok-123")
  EXPECT_THAT(server.authorizations(), ElementsAre("eC1hY2Nlc3MtdG9rZW46dG9rLTEyMw=="));
  EXPECT_THAT(error.ToString(), Not(HasSubstr("tok-123")));
  EXPECT_THAT(log_text_.str(), Not(HasSubstr("tok-123")));
}

TEST_F(GitSourceTest, ServerAskingForCredentialsWithoutTokenFileSaysWhatToSet) {
  AuthServer server;
  const Error error =
      MustFail(Options("http://127.0.0.1:" + std::to_string(server.port()) + "/org/repo.git"));
  EXPECT_EQ(error.code, ErrorCode::kFailedPrecondition);
  EXPECT_THAT(error.ToString(), HasSubstr("asks for credentials: set token_file"));
  EXPECT_THAT(server.authorizations(), ElementsAre());
}

TEST_F(GitSourceTest, UnreadableTokenFileIsNamed) {
  AuthServer server;
  GitSourceOptions options =
      Options("http://127.0.0.1:" + std::to_string(server.port()) + "/org/repo.git");
  options.token_file = (dir_.path() / "missing-token").string();
  const Error error = MustFail(options);
  EXPECT_THAT(error.ToString(), HasSubstr("cannot read token_file " + options.token_file));
}

TEST_F(GitSourceTest, EmptyUrlOrCacheDirIsRefused) {
  auto no_url = GitSource::Open(Options(""), log_);
  ASSERT_FALSE(no_url.has_value());
  EXPECT_EQ(no_url.error().code, ErrorCode::kInvalidArgument);
  GitSourceOptions no_cache = Options("/srv/repo");
  no_cache.cache_dir.clear();
  auto refused = GitSource::Open(no_cache, log_);
  ASSERT_FALSE(refused.has_value());
  EXPECT_THAT(refused.error().ToString(), HasSubstr("no cache_dir"));
}

}  // namespace
}  // namespace gitvirt
