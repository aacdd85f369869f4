// Backups: compression round trips and corruption detection, the manifest, and the whole flow
// on a simulated node through the scheduler, the executor and the libvirt step runner — policy
// run, catalog, retention with protect, verify, rescan, restore as a new VM (and its undo),
// failed attempts in the catalog and the run totals — and the scratch volumes of a remote
// node's live backup (the shared fake node as a QEMU node whose files the controller cannot
// read), deleted after success, failure and a crash. (The restored domain's definition itself
// is tested with the adapter: tests/hypervisor/restore_xml_test.cc.)
#include "gitvirt/engine/backup.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "fake_node.h"
#include "gitvirt/core/planner.h"
#include "gitvirt/core/policy_plan.h"
#include "gitvirt/engine/scheduler.h"
#include "gitvirt/hypervisor/connect.h"
#include "temp_dir.h"

namespace gitvirt {
namespace {

namespace fs = std::filesystem;
using std::chrono::hours;
using std::chrono::seconds;
using testing::FakeNode;

const TimePoint kT0 = TimePoint{seconds{1772323200}};  // 2026-03-01T00:00:00Z

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteAll(const fs::path& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << s;
}

// Half compressible text, half random bytes, a few MiB: several chunks of the streams.
std::string SampleData(std::size_t size) {
  std::string s;
  s.reserve(size);
  std::mt19937 rng(42);
  while (s.size() < size) {
    if ((s.size() / 65536) % 2 == 0) {
      s += "gitvirt backup line " + std::to_string(s.size()) + "\n";
    } else {
      s += static_cast<char>(rng() & 0xff);
    }
  }
  s.resize(size);
  return s;
}

class BackupFiles : public ::testing::TestWithParam<Compression> {
 protected:
  testing::TempDir dir_{"gv-bkf"};
};

TEST_P(BackupFiles, CompressDecompressRoundTripWithSums) {
  const fs::path in = dir_.path() / "in.raw", out = dir_.path() / "out.c", back = dir_.path() / "back.raw";
  const std::string data = SampleData(3 * 1024 * 1024 + 123);
  WriteAll(in, data);
  auto c = CompressFile(in, out, GetParam(), GetParam() == Compression::kGzip ? 6 : 3);
  ASSERT_TRUE(c) << c.error().ToString();
  EXPECT_EQ(c->raw_size, data.size());
  EXPECT_EQ(c->size, fs::file_size(out));
  if (GetParam() != Compression::kNone) {
    EXPECT_LT(c->size, data.size());
  }
  auto d = DecompressFile(out, back, GetParam());
  ASSERT_TRUE(d) << d.error().ToString();
  EXPECT_EQ(d->raw_sha256, c->raw_sha256);
  EXPECT_EQ(d->sha256, c->sha256);
  EXPECT_EQ(ReadAll(back), data);
  // Hash-only decompression (verify) agrees.
  auto h = DecompressFile(out, "", GetParam());
  ASSERT_TRUE(h);
  EXPECT_EQ(h->raw_sha256, c->raw_sha256);
}

TEST_P(BackupFiles, EmptyInput) {
  const fs::path in = dir_.path() / "empty", out = dir_.path() / "empty.c";
  WriteAll(in, "");
  auto c = CompressFile(in, out, GetParam(), 3);
  ASSERT_TRUE(c) << c.error().ToString();
  auto d = DecompressFile(out, "", GetParam());
  ASSERT_TRUE(d) << d.error().ToString();
  EXPECT_EQ(d->raw_size, 0u);
}

TEST_P(BackupFiles, CorruptionIsDetected) {
  if (GetParam() == Compression::kNone) GTEST_SKIP() << "no stream to corrupt; the sums catch it (VerifyBackup)";
  const fs::path in = dir_.path() / "in", out = dir_.path() / "out";
  WriteAll(in, SampleData(1 << 20));
  ASSERT_TRUE(CompressFile(in, out, GetParam(), 3));
  std::string bytes = ReadAll(out);
  // Truncated: always an error.
  WriteAll(out, bytes.substr(0, bytes.size() / 2));
  EXPECT_FALSE(DecompressFile(out, "", GetParam()));
  // Flipped bytes: an error from the codec's own checksum, or a different raw sum.
  bytes[bytes.size() / 2] ^= 0x5a;
  bytes[bytes.size() / 3] ^= 0xa5;
  WriteAll(out, bytes);
  auto d = DecompressFile(out, "", GetParam());
  auto ok = CompressFile(in, dir_.path() / "again", GetParam(), 3);
  EXPECT_TRUE(!d || d->raw_sha256 != ok->raw_sha256);
}

INSTANTIATE_TEST_SUITE_P(Codecs, BackupFiles,
                         ::testing::Values(Compression::kZstd, Compression::kGzip, Compression::kNone),
                         [](const auto& info) { return std::string(EnumName(info.param)); });

TEST(BackupManifest, JsonRoundTripAndRefusals) {
  BackupManifest m;
  m.id = "web-01-20260301T000000Z";
  m.vm = "web-01";
  m.node = "hv1";
  m.policy = "nightly";
  m.mode = "snapshot";
  m.compression = "zstd";
  m.level = 3;
  m.created = kT0;
  m.revision = "abc";
  m.simulated = false;
  m.is_protected = true;
  m.verified = true;
  m.definition = "<domain/>";
  m.files = {BackupFile{"disk-root.qcow2.zst", "root", "qcow2", "default", "web-01-root.qcow2", "/p", 1 << 30, 100,
                        std::string(64, 'a'), 200, std::string(64, 'b')}};
  auto back = ManifestFromJson(ManifestToJson(m));
  ASSERT_TRUE(back) << back.error().ToString();
  EXPECT_EQ(*back, m);
  EXPECT_EQ(m.Bytes(), 100u);
  auto j = ManifestToJson(m);
  j["files"][0]["name"] = "../../etc/passwd";
  EXPECT_FALSE(ManifestFromJson(j));
  j = ManifestToJson(m);
  j["formatVersion"] = 99;
  EXPECT_FALSE(ManifestFromJson(j));
  EXPECT_FALSE(ManifestFromJson(nlohmann::json{{"kind", "other"}}));
}

// ---- the flow on a simulated node ----------------------------------------------------------

VirtualMachine DbVm(const std::string& name) {
  VirtualMachine vm;
  vm.meta.name = name;
  vm.meta.labels = {{"tier", "db"}};
  vm.spec.node = "hv1";
  vm.spec.vcpus = 2;
  vm.spec.memory = 2ULL << 30;
  Disk root;
  root.name = "root";
  root.size = 20ULL << 30;
  Disk data;
  data.name = "data";
  data.size = 50ULL << 30;
  Disk tmp;
  tmp.name = "tmp";
  tmp.size = 1ULL << 30;
  tmp.backup = false;
  vm.spec.disks = {root, data, tmp};
  Nic nic;
  nic.network = "default";
  vm.spec.networks = {nic};
  return vm;
}

class SimBackupFlow : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.state = (dir_.path() / "gitvirt.db").string();
    NodeConfig node;
    node.name = "hv1";
    node.uri = "sim:" + (dir_.path() / "hv1.xml").string();
    node.pools = {PoolConfig{"default", (dir_.path() / "images").string()}};
    config_.nodes = {node};
    auto hv = ConnectNode(node, HypervisorOptions{});
    ASSERT_TRUE(hv) << hv.error().ToString();
    hv_ = hv->get();
    const VirtualMachine vm = DbVm("db-01");
    for (const Disk& d : vm.spec.disks) {
      const StorageRef ref = DiskStorage(vm, d);
      ASSERT_TRUE(hv_->storage().CreateVolume(VolumeSpec{ref.pool, ref.volume, *d.size, "qcow2"}));
    }
    DomainDefinition def;
    def.vm = vm;
    def.owner.name = vm.meta.name;
    def.owner.labels = vm.meta.labels;
    ASSERT_TRUE(hv_->domains().Define(def));
    ASSERT_TRUE(hv_->power().Start(vm.meta.name));
    nodes_ = std::make_unique<NodeSet>(config_.nodes);
    nodes_->Put("hv1", std::move(*hv));
    auto j = Journal::Open(config_.state);
    ASSERT_TRUE(j);
    journal_ = std::move(*j);
    auto c = BackupCatalog::Open(config_.state);
    ASSERT_TRUE(c) << c.error().ToString();
    catalog_ = std::move(*c);
    SchedulerOptions options;
    options.jobs.runner.paths = StatePaths::ForState(config_.state);
    scheduler_ = std::make_unique<PolicyScheduler>(*nodes_, *journal_, clock_, options, nullptr);
    desired_.vms = {vm};
    BackupPolicy p;
    p.meta.name = "nightly";
    p.spec.selector.match_labels = {{"tier", "db"}};
    p.spec.schedule = "0 2 * * *";
    p.spec.target.directory = (dir_.path() / "backups").string();
    p.spec.verify = true;
    p.spec.retention.keep = 2;
    desired_.backup_policies = {p};
  }

  PolicyRunResult RunPolicy() {
    auto r = scheduler_->RunNow(Kind::kBackupPolicy, "nightly", desired_, nodes_->ObserveAll(), "rev-1");
    EXPECT_TRUE(r) << (r ? "" : r.error().ToString());
    return r ? *r : PolicyRunResult{};
  }

  JobOutcome RunPlan(const Plan& plan, RollbackStrategy strategy = RollbackStrategy::kNone) {
    StepRunnerOptions options;
    options.paths = StatePaths::ForState(config_.state);
    LibvirtStepRunner runner(*nodes_, plan, plan.images, options, nullptr);
    Executor executor(runner, *journal_, nullptr);
    ExecutionOptions exec;
    exec.kind = "restore";
    exec.strategy = strategy;
    auto outcome = executor.Apply(plan, exec);
    EXPECT_TRUE(outcome) << (outcome ? "" : outcome.error().ToString());
    return outcome ? *outcome : JobOutcome{};
  }

  Plan RestorePlan(const std::string& dir, const std::string& name) {
    Plan plan;
    Action a;
    a.id = "backup-restore/" + name;
    a.type = ActionType::kBackupRestore;
    a.node = "hv1";
    a.target = ResourceRef{Kind::kVirtualMachine, name};
    a.params = BackupRestoreParams{dir, "", false};
    plan.actions = {a};
    return plan;
  }

  testing::TempDir dir_{"gv-bksim"};
  FakeClock clock_{kT0 + hours(2)};
  ControllerConfig config_;
  Node* hv_ = nullptr;
  std::unique_ptr<NodeSet> nodes_;
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<BackupCatalog> catalog_;
  std::unique_ptr<PolicyScheduler> scheduler_;
  DesiredState desired_;
};

TEST_F(SimBackupFlow, PolicyRunWritesAVerifiedSimulatedBackup) {
  const PolicyRunResult r = RunPolicy();
  ASSERT_EQ(r.status, JobStatus::kSucceeded) << r.result;
  EXPECT_EQ(r.backups, 1);
  EXPECT_GT(r.backup_bytes, 0u);
  auto records = catalog_->List(BackupFilter{});
  ASSERT_TRUE(records);
  ASSERT_EQ(records->size(), 1u);
  const BackupRecord& rec = (*records)[0];
  EXPECT_EQ(rec.id, "db-01-20260301T020000Z");
  EXPECT_EQ(rec.policy, "nightly");
  EXPECT_TRUE(rec.simulated);
  EXPECT_TRUE(rec.verified);
  EXPECT_EQ(rec.mode, "simulated");
  EXPECT_EQ(rec.job_id, r.job_id);
  EXPECT_EQ(rec.location, (dir_.path() / "backups" / "db-01" / rec.id).string());
  auto m = ReadManifest(rec.location);
  ASSERT_TRUE(m) << m.error().ToString();
  EXPECT_TRUE(m->simulated);
  EXPECT_EQ(m->revision, "rev-1");
  EXPECT_EQ(m->vm, "db-01");
  EXPECT_NE(m->definition.find("<name>db-01</name>"), std::string::npos);
  std::vector<std::string> names;
  for (const BackupFile& f : m->files) names.push_back(f.name);
  EXPECT_EQ(names, (std::vector<std::string>{"disk-root.sim.json.zst", "disk-data.sim.json.zst", "domain.xml"}))
      << "the disks in the domain's order; the tmp disk says backup: false";
  EXPECT_EQ(m->files[0].capacity, 20ULL << 30);
  EXPECT_EQ(m->files[1].capacity, 50ULL << 30);
  EXPECT_TRUE(VerifyBackup(*m, rec.location));
  EXPECT_FALSE(fs::exists(rec.location + ".partial"));
  // The stand-in says what it is.
  auto text = DecompressFile(rec.location + "/disk-root.sim.json.zst", (dir_.path() / "root.json").string(),
                             Compression::kZstd);
  ASSERT_TRUE(text);
  EXPECT_NE(ReadAll(dir_.path() / "root.json").find("\"simulated\": true"), std::string::npos);
  // A damaged file fails verification, naming it.
  WriteAll(rec.location + "/domain.xml", "<domain>tampered</domain>");
  auto bad = VerifyBackup(*m, rec.location);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("domain.xml"), std::string::npos);
}

TEST_F(SimBackupFlow, RetentionKeepsTwoAndNeverTouchesProtectedOrHandMadeBackups) {
  // A protected backup of the policy and a backup by hand, both old.
  for (const auto& [id, policy, protect] : std::vector<std::tuple<std::string, std::string, bool>>{
           {"db-01-old-protected", "nightly", true}, {"db-01-by-hand", "", false}}) {
    Plan plan;
    BackupPolicySpec spec = desired_.backup_policies[0].spec;
    spec.protect = protect;
    plan.actions = {MakeBackupAction(desired_.vms[0], "hv1", spec, policy, id, kT0)};
    ASSERT_TRUE(RunPlan(plan).Ok());
  }
  for (int day = 0; day < 4; ++day) {
    clock_.Advance(hours(24));
    ASSERT_EQ(RunPolicy().status, JobStatus::kSucceeded);
  }
  auto records = catalog_->List(BackupFilter{});
  ASSERT_TRUE(records);
  std::vector<std::string> ids;
  for (const BackupRecord& r : *records) ids.push_back(r.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"db-01-by-hand", "db-01-old-protected", "db-01-20260304T020000Z",
                                           "db-01-20260305T020000Z"}));
  // The directories agree with the catalog: a rescan finds the same.
  auto scanned = ScanBackups((dir_.path() / "backups").string());
  ASSERT_EQ(scanned.size(), 4u);
  ASSERT_TRUE(catalog_->ReplaceAll(scanned));
  EXPECT_EQ(catalog_->List(BackupFilter{})->size(), 4u);
  EXPECT_TRUE(catalog_->Get("db-01-old-protected")->is_protected);
  // Deleting a protected backup is refused, even by hand, unless forced.
  EXPECT_FALSE(DeleteBackupDirectory(catalog_->Get("db-01-old-protected")->location, false));
}

TEST_F(SimBackupFlow, TheCatalogFollowsTheTargetDirectoryBeforeEachRun) {
  for (int day = 0; day < 2; ++day) {
    ASSERT_EQ(RunPolicy().status, JobStatus::kSucceeded);
    clock_.Advance(hours(24));
  }
  // The state file's catalog is lost (a new state file, say), and a backup directory of
  // another policy is copied into the target by hand.
  ASSERT_TRUE(catalog_->ReplaceAll({}));
  {
    Plan plan;
    BackupPolicySpec spec = desired_.backup_policies[0].spec;
    plan.actions = {MakeBackupAction(desired_.vms[0], "hv1", spec, "weekly", "db-01-weekly", kT0)};
    ASSERT_TRUE(RunPlan(plan).Ok());
  }
  ASSERT_TRUE(catalog_->Remove("db-01-weekly"));
  EXPECT_TRUE(catalog_->List(BackupFilter{})->empty());
  // The next run finds all three, and retention (keep 2) counts the policy's two old ones.
  ASSERT_EQ(RunPolicy().status, JobStatus::kSucceeded);
  const auto records = catalog_->List(BackupFilter{});
  ASSERT_TRUE(records);
  std::vector<std::string> ids;
  for (const BackupRecord& r : *records) ids.push_back(r.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"db-01-weekly", "db-01-20260302T020000Z", "db-01-20260303T020000Z"}));
  EXPECT_FALSE(fs::exists(dir_.path() / "backups" / "db-01" / "db-01-20260301T020000Z"));
  // A backup directory deleted by hand leaves the catalog at the next sync.
  fs::remove_all(dir_.path() / "backups" / "db-01" / "db-01-weekly");
  auto changed = SyncCatalogWithTarget(*catalog_, (dir_.path() / "backups").string());
  ASSERT_TRUE(changed) << changed.error().ToString();
  EXPECT_EQ(*changed, 1);
  EXPECT_FALSE(catalog_->Get("db-01-weekly"));
  EXPECT_EQ(*SyncCatalogWithTarget(*catalog_, (dir_.path() / "backups").string()), 0) << "in line: nothing to do";
}

TEST_F(SimBackupFlow, RestoreAsANewUnmanagedVmAndUndoIt) {
  ASSERT_EQ(RunPolicy().status, JobStatus::kSucceeded);
  const BackupRecord rec = (*catalog_->List(BackupFilter{}))[0];
  JobOutcome outcome = RunPlan(RestorePlan(rec.location, "db-restored"));
  ASSERT_TRUE(outcome.Ok()) << (outcome.errors.empty() ? "" : outcome.errors[0]);
  auto vm = hv_->domains().ObserveVm("db-restored");
  ASSERT_TRUE(vm) << vm.error().ToString();
  EXPECT_FALSE(vm->Owned()) << "not in the manifests: left alone by gitvirt";
  EXPECT_EQ(vm->power, PowerState::kStopped);
  auto original = hv_->domains().ObserveVm("db-01");
  ASSERT_TRUE(original);
  EXPECT_NE(vm->uuid, original->uuid);
  auto disks = hv_->domains().Disks("db-restored");
  ASSERT_TRUE(disks);
  std::map<std::string, StorageRef> storage;
  for (const DiskLocation& d : *disks) storage[d.disk] = d.storage;
  EXPECT_EQ(storage.at("root"), (StorageRef{"default", "db-restored-root.qcow2", ""}));
  EXPECT_EQ(storage.at("data"), (StorageRef{"default", "db-restored-data.qcow2", ""}));
  EXPECT_FALSE(storage.contains("tmp"));
  auto data = hv_->storage().GetVolume("default", "db-restored-data.qcow2");
  ASSERT_TRUE(data);
  EXPECT_EQ(data->capacity, 50ULL << 30);

  // Restoring again under the same name is refused; over the original too.
  EXPECT_FALSE(RunPlan(RestorePlan(rec.location, "db-restored")).Ok());
  EXPECT_FALSE(RunPlan(RestorePlan(rec.location, "db-01")).Ok());

  // A damaged backup restores nothing.
  WriteAll(rec.location + "/domain.xml", "tampered");
  EXPECT_FALSE(RunPlan(RestorePlan(rec.location, "db-other")).Ok());
  EXPECT_FALSE(hv_->domains().ObserveVm("db-other"));
  EXPECT_FALSE(hv_->storage().GetVolume("default", "db-other-root.qcow2"));
}

TEST_F(SimBackupFlow, RestoreRollsBackWithFullStrategy) {
  ASSERT_EQ(RunPolicy().status, JobStatus::kSucceeded);
  const BackupRecord rec = (*catalog_->List(BackupFilter{}))[0];
  // A second step that fails makes FULL undo the restore.
  Plan plan = RestorePlan(rec.location, "db-copy");
  Action fail;
  fail.id = "start/nonexistent";
  fail.type = ActionType::kStart;
  fail.node = "hv1";
  fail.target = ResourceRef{Kind::kVirtualMachine, "nonexistent"};
  fail.depends_on = {plan.actions[0].id};
  plan.actions.push_back(fail);
  JobOutcome outcome = RunPlan(plan, RollbackStrategy::kFull);
  EXPECT_EQ(outcome.status, JobStatus::kRolledBack);
  EXPECT_EQ(outcome.undone, 1);
  EXPECT_FALSE(hv_->domains().ObserveVm("db-copy"));
  EXPECT_FALSE(hv_->storage().GetVolume("default", "db-copy-root.qcow2"));
  EXPECT_FALSE(hv_->storage().GetVolume("default", "db-copy-data.qcow2"));
}

TEST_F(SimBackupFlow, ABackupStepRunAgainAfterACrashFinishesIt) {
  Plan plan;
  plan.actions = {MakeBackupAction(desired_.vms[0], "hv1", desired_.backup_policies[0].spec, "nightly", "db-01-x", kT0)};
  ASSERT_TRUE(RunPlan(plan).Ok());
  const std::string dir = plan.actions[0].Params<BackupParams>().directory;
  const std::string manifest = ReadAll(fs::path(dir) / "manifest.json");
  // Run again (as a recovery would): the complete backup is not taken again.
  ASSERT_TRUE(RunPlan(plan).Ok());
  EXPECT_EQ(ReadAll(fs::path(dir) / "manifest.json"), manifest);
  // A leftover partial directory from a crash is replaced.
  fs::remove_all(dir);
  fs::create_directories(dir + ".partial");
  WriteAll(fs::path(dir + ".partial") / "junk", "x");
  ASSERT_TRUE(RunPlan(plan).Ok());
  EXPECT_TRUE(fs::exists(fs::path(dir) / "manifest.json"));
  EXPECT_FALSE(fs::exists(dir + ".partial"));
  EXPECT_FALSE(fs::exists(fs::path(dir) / "junk"));
}

// ---- failed attempts -----------------------------------------------------------------------

TEST_F(SimBackupFlow, AFailedAttemptIsInTheCatalogWithItsErrorAndCounted) {
  // A regular file stands where the target directory would be created.
  WriteAll(dir_.path() / "blocker", "in the way");
  desired_.backup_policies[0].spec.target.directory = (dir_.path() / "blocker" / "backups").string();
  PolicyRunResult r = RunPolicy();
  EXPECT_EQ(r.status, JobStatus::kFailed) << r.result;
  EXPECT_EQ(r.backups_failed, 1);
  auto failed = catalog_->List(BackupFilter{"", "", "failed"});
  ASSERT_TRUE(failed);
  ASSERT_EQ(failed->size(), 1u);
  const BackupRecord& rec = failed->front();
  EXPECT_EQ(rec.vm, "db-01");
  EXPECT_EQ(rec.node, "hv1");
  EXPECT_EQ(rec.policy, "nightly");
  EXPECT_EQ(rec.job_id, r.job_id);
  EXPECT_EQ(rec.bytes, 0u);
  EXPECT_NE(rec.error.find("blocker"), std::string::npos) << rec.error;
  EXPECT_EQ(*catalog_->RunTotals(), (BackupRunTotals{.taken = 0, .failed = 1}));

  // The next run, to a target that works, succeeds; retention (keep 2) neither counts nor
  // deletes the failed record, which has no directory.
  desired_.backup_policies[0].spec.target.directory = (dir_.path() / "backups").string();
  for (int i = 0; i < 3; ++i) {
    clock_.Advance(hours(24));
    r = RunPolicy();
    ASSERT_EQ(r.status, JobStatus::kSucceeded) << r.result;
  }
  EXPECT_EQ(catalog_->List(BackupFilter{"", "", "complete"})->size(), 2u);
  EXPECT_EQ(catalog_->List(BackupFilter{"", "", "failed"})->size(), 1u);
  const BackupRunTotals totals = *catalog_->RunTotals();
  EXPECT_EQ(totals.taken, 3u) << "the one retention deleted still counts";
  EXPECT_EQ(totals.failed, 1u);
  EXPECT_GT(totals.bytes, 0u);
}

// ---- a remote node's live backup: scratch volumes on the node --------------------------------

// Undo information merged as the executor merges it (top-level keys; arrays replaced).
class UndoContext final : public StepContext {
 public:
  explicit UndoContext(nlohmann::json undo = nlohmann::json::object()) : undo_(std::move(undo)) {}
  const std::string& job_id() const override { return id_; }
  const std::string& step_id() const override { return id_; }
  Result<void> RecordUndo(const std::string& j) override {
    const nlohmann::json added = nlohmann::json::parse(j);
    for (const auto& [k, v] : added.items()) undo_[k] = v;
    return {};
  }
  std::string undo_json() const override { return undo_.dump(); }
  void Event(EventLevel, const std::string& message) override { events.push_back(message); }
  bool Cancelled() const override { return false; }
  std::chrono::steady_clock::time_point deadline() const override {
    return std::chrono::steady_clock::now() + std::chrono::minutes(1);
  }
  nlohmann::json undo() const { return undo_; }
  std::vector<std::string> events;

 private:
  std::string id_ = "job";
  nlohmann::json undo_;
};

// db-01 running on a QEMU node whose files the controller cannot read: a push backup writes its
// files into the disks' pool on the node, where they are downloaded from through the port.
class RemoteLiveBackup : public ::testing::Test {
 protected:
  static constexpr const char* kPoolDir = "/node/pools/default";

  void SetUp() override {
    node_.AddPool("default", kPoolDir);
    const VirtualMachine vm = DbVm("db-01");
    for (const Disk& d : vm.spec.disks) {
      const StorageRef ref = DiskStorage(vm, d);
      ASSERT_TRUE(node_.storage().CreateVolume(VolumeSpec{ref.pool, ref.volume, *d.size, "qcow2"}));
      node_.SetVolumeBytes(ref.pool, ref.volume, Bytes(d.name));
    }
    DomainDefinition def;
    def.vm = vm;
    def.owner.name = vm.meta.name;
    ASSERT_TRUE(node_.domains().Define(def));
    ASSERT_TRUE(node_.power().Start("db-01"));
  }

  // A disk's content: a block of data, then a hole.
  static std::string Bytes(const std::string& disk) { return std::string(4096, disk.front()) + std::string(4096, '\0'); }

  BackupRequest Request(const std::string& id) {
    BackupRequest req;
    req.id = id;
    req.directory = (dir_.path() / "backups" / "db-01" / id).string();
    req.vm = "db-01";
    req.mode = BackupMode::kSnapshot;
    req.compression = Compression::kZstd;
    req.verify = true;
    req.skip_disks = {"tmp"};
    req.local_node = false;
    req.created = kT0;
    return req;
  }
  std::vector<std::string> ScratchVolumes() {
    std::vector<std::string> out;
    auto observed = node_.Observe();
    for (const ObservedPool& p : observed->pools) {
      for (const ObservedVolume& v : p.volumes) {
        if (v.name.starts_with(".gitvirt-backup-")) out.push_back(p.name + "/" + v.name);
      }
    }
    return out;
  }

  testing::TempDir dir_{"gv-bkremote"};
  FakeNode node_{"hv1", FakeNode::Qemu()};
};

TEST_F(RemoteLiveBackup, PushedIntoThePoolDownloadedAndDeleted) {
  // The guest goes on writing once the backup's instant has passed: what is stored is the copy
  // of that instant, never the disk itself.
  node_.SetHook([&](std::string_view operation, const std::string&) {
    if (operation == "read-volume") node_.SetVolumeBytes("default", "db-01-root.qcow2", "written since");
  });
  UndoContext ctx;
  auto m = TakeBackup(node_, Request("db-01-r1"), ctx);
  ASSERT_TRUE(m) << m.error().ToString();
  EXPECT_EQ(m->mode, "snapshot");
  EXPECT_FALSE(m->simulated);
  EXPECT_TRUE(m->verified);
  // QEMU was told to write into the disks' pool directory on the node, under recognisable names.
  ASSERT_TRUE(node_.LastCopy());
  const auto pushed = node_.LastCopy()->disks;
  ASSERT_EQ(pushed.size(), 2u);
  EXPECT_EQ(pushed.at("root").file, "/node/pools/default/.gitvirt-backup-db-01-r1-root.qcow2");
  EXPECT_EQ(pushed.at("data").file, "/node/pools/default/.gitvirt-backup-db-01-r1-data.qcow2");
  // Recorded for undo before QEMU wrote anything, and deleted afterwards.
  EXPECT_EQ(ctx.undo()["scratch"], (nlohmann::json{"default/.gitvirt-backup-db-01-r1-data.qcow2",
                                                   "default/.gitvirt-backup-db-01-r1-root.qcow2"}));
  EXPECT_TRUE(ScratchVolumes().empty()) << ::testing::PrintToString(ScratchVolumes());
  // The stored disk is what was downloaded, holes and all.
  const BackupFile& root = m->files.at(0);
  ASSERT_EQ(root.disk, "root");
  const fs::path out = dir_.path() / "root.out";
  ASSERT_TRUE(DecompressFile((fs::path(Request("db-01-r1").directory) / root.name).string(), out.string(),
                             Compression::kZstd));
  EXPECT_EQ(ReadAll(out), Bytes("root"));
  EXPECT_FALSE(fs::exists(Request("db-01-r1").directory + ".partial"));
}

TEST_F(RemoteLiveBackup, AFailedJobLeavesNoScratchBehind) {
  node_.FailCalls("backup", "db-01", Error{ErrorCode::kInternal, "the backup job failed: No space left on device", "db-01"},
                  /*after_effect=*/true);
  UndoContext ctx;
  auto m = TakeBackup(node_, Request("db-01-r2"), ctx);
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().ToString().find("No space left"), std::string::npos) << m.error().ToString();
  ASSERT_TRUE(node_.LastCopy());
  EXPECT_EQ(node_.LastCopy()->disks.size(), 2u) << "the job had written its files";
  EXPECT_TRUE(ScratchVolumes().empty()) << ::testing::PrintToString(ScratchVolumes());
}

TEST_F(RemoteLiveBackup, AnAttemptAfterACrashDeletesTheLeftoversFirstAndUndoDeletesThem) {
  // The controller died while the first attempt's job was writing: its undo information names
  // the scratch volumes, which are still on the node.
  const std::vector<std::string> leftovers = {".gitvirt-backup-db-01-r3-root.qcow2", ".gitvirt-backup-db-01-r3-data.qcow2"};
  for (const std::string& v : leftovers) {
    ASSERT_TRUE(node_.storage().CreateVolume(VolumeSpec{"default", v, 1 << 20, "qcow2"}));
  }
  UndoContext resumed(nlohmann::json{{"powerBefore", "Running"},
                                     {"scratch", {"default/" + leftovers[0], "default/" + leftovers[1]}}});
  auto m = TakeBackup(node_, Request("db-01-r3"), resumed);
  ASSERT_TRUE(m) << m.error().ToString();
  ASSERT_TRUE(node_.LastCopy());
  EXPECT_TRUE(node_.LastCopy()->existing.empty()) << "leftovers must go before a new job writes the same files";
  EXPECT_TRUE(ScratchVolumes().empty());

  // Undo (a rollback, or a crash after the job) deletes what the step recorded.
  for (const std::string& v : leftovers) {
    ASSERT_TRUE(node_.storage().CreateVolume(VolumeSpec{"default", v, 1 << 20, "qcow2"}));
  }
  ASSERT_TRUE(DeleteBackupScratch(node_.storage(), {"default/" + leftovers[0], "default/" + leftovers[1], "default/gone"}));
  EXPECT_TRUE(ScratchVolumes().empty());
}

}  // namespace
}  // namespace gitvirt
