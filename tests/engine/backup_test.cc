// Backups: compression round trips and corruption detection, the manifest, the restored
// domain's XML, and the whole flow on a simulated node through the scheduler, the executor and
// the libvirt step runner — policy run, catalog, retention with protect, verify, rescan,
// restore as a new VM (and its undo).
#include "gitvirt/engine/backup.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "gitvirt/core/planner.h"
#include "gitvirt/core/policy_plan.h"
#include "gitvirt/engine/scheduler.h"
#include "gitvirt/hypervisor/domain_xml.h"
#include "gitvirt/hypervisor/libvirt_hypervisor.h"
#include "gitvirt/hypervisor/restore_xml.h"
#include "temp_dir.h"

namespace gitvirt {
namespace {

namespace fs = std::filesystem;
using std::chrono::hours;
using std::chrono::seconds;

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
  m.domain_xml = "<domain/>";
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

TEST(RewriteDomainForRestore, RenamesRepointsAndDropsWhatBelongsToTheOriginal) {
  VirtualMachine vm;
  vm.meta.name = "db-01";
  vm.spec.node = "hv1";
  vm.spec.memory = 1ULL << 30;
  vm.spec.firmware.type = FirmwareType::kUefi;
  Disk root;
  root.name = "root";
  root.size = 1ULL << 30;
  Disk scratch;
  scratch.name = "scratch";
  scratch.size = 1ULL << 30;
  vm.spec.disks = {root, scratch};
  Nic nic;
  nic.network = "default";
  nic.mac = "52:54:00:12:34:56";
  vm.spec.networks = {nic};
  DomainDefinition def;
  def.vm = vm;
  def.owner.name = "db-01";
  def.owner.created_volumes = {"default/db-01-root.qcow2"};
  def.owner.spec_hash = "h";
  def.seed = StorageRef{"default", "db-01-cidata-1234.iso", ""};
  def.console_log = "/var/log/gitvirt/db-01.log";
  const std::string xml = RenderDomainXml(def, "kvm");
  const std::map<std::string, StorageRef> volumes = {{"root", StorageRef{"fast", "db-02-root.qcow2", ""}}};

  auto unmanaged = RewriteDomainForRestore(xml, "db-02", volumes, false, "job-1");
  ASSERT_TRUE(unmanaged) << unmanaged.error().ToString();
  auto parsed = ParseDomainXml(*unmanaged);
  ASSERT_TRUE(parsed) << parsed.error().ToString();
  EXPECT_EQ(parsed->name, "db-02");
  EXPECT_EQ(parsed->uuid, "");
  EXPECT_FALSE(parsed->owner);
  ASSERT_EQ(parsed->spec.disks.size(), 1u) << "a disk not in the backup cannot be restored";
  EXPECT_EQ(parsed->disk_storage.at("root"), (StorageRef{"fast", "db-02-root.qcow2", ""}));
  EXPECT_FALSE(parsed->seed);
  EXPECT_EQ(unmanaged->find("52:54:00:12:34:56"), std::string::npos);
  EXPECT_EQ(unmanaged->find("<nvram"), std::string::npos);
  EXPECT_NE(unmanaged->find("/var/log/gitvirt/db-02.log"), std::string::npos);

  auto managed = RewriteDomainForRestore(xml, "db-02", volumes, true, "job-1");
  ASSERT_TRUE(managed);
  parsed = ParseDomainXml(*managed);
  ASSERT_TRUE(parsed && parsed->owner);
  EXPECT_EQ(parsed->owner->name, "db-02");
  EXPECT_EQ(parsed->owner->job, "job-1");
  EXPECT_EQ(parsed->owner->created_volumes, std::vector<std::string>{"fast/db-02-root.qcow2"});

  EXPECT_FALSE(RewriteDomainForRestore(xml, "x", {{"nope", StorageRef{"p", "v", ""}}}, false, ""));
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
      ASSERT_TRUE(hv_->CreateVolume(VolumeSpec{ref.pool, ref.volume, *d.size, "qcow2"}));
    }
    DomainDefinition def;
    def.vm = vm;
    def.owner.name = vm.meta.name;
    def.owner.labels = vm.meta.labels;
    ASSERT_TRUE(hv_->Define(def));
    ASSERT_TRUE(hv_->Start(vm.meta.name));
    nodes_ = std::make_unique<NodeSet>(config_);
    nodes_->Put("hv1", std::move(*hv));
    auto j = Journal::Open(config_.state);
    ASSERT_TRUE(j);
    journal_ = std::move(*j);
    auto c = BackupCatalog::Open(config_.state);
    ASSERT_TRUE(c) << c.error().ToString();
    catalog_ = std::move(*c);
    SchedulerOptions options;
    options.runner.cache_dir = (dir_.path() / "cache").string();
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
    options.cache_dir = (dir_.path() / "cache").string();
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
    a.params = {{"directory", dir}, {"managed", "false"}};
    plan.actions = {a};
    return plan;
  }

  testing::TempDir dir_{"gv-bksim"};
  FakeClock clock_{kT0 + hours(2)};
  ControllerConfig config_;
  Hypervisor* hv_ = nullptr;
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
  EXPECT_NE(m->domain_xml.find("<name>db-01</name>"), std::string::npos);
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
  auto vm = hv_->ObserveVm("db-restored");
  ASSERT_TRUE(vm) << vm.error().ToString();
  EXPECT_FALSE(vm->Owned()) << "not in the manifests: left alone by gitvirt";
  EXPECT_EQ(vm->power, PowerState::kStopped);
  auto original = hv_->ObserveVm("db-01");
  ASSERT_TRUE(original);
  EXPECT_NE(vm->uuid, original->uuid);
  auto xml = hv_->GetDefinitionXml("db-restored");
  ASSERT_TRUE(xml);
  auto parsed = ParseDomainXml(*xml);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->disk_storage.at("root"), (StorageRef{"default", "db-restored-root.qcow2", ""}));
  EXPECT_EQ(parsed->disk_storage.at("data"), (StorageRef{"default", "db-restored-data.qcow2", ""}));
  EXPECT_FALSE(parsed->disk_storage.contains("tmp"));
  auto data = hv_->GetVolume("default", "db-restored-data.qcow2");
  ASSERT_TRUE(data);
  EXPECT_EQ(data->capacity, 50ULL << 30);

  // Restoring again under the same name is refused; over the original too.
  EXPECT_FALSE(RunPlan(RestorePlan(rec.location, "db-restored")).Ok());
  EXPECT_FALSE(RunPlan(RestorePlan(rec.location, "db-01")).Ok());

  // A damaged backup restores nothing.
  WriteAll(rec.location + "/domain.xml", "tampered");
  EXPECT_FALSE(RunPlan(RestorePlan(rec.location, "db-other")).Ok());
  EXPECT_FALSE(hv_->ObserveVm("db-other"));
  EXPECT_FALSE(hv_->GetVolume("default", "db-other-root.qcow2"));
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
  EXPECT_FALSE(hv_->ObserveVm("db-copy"));
  EXPECT_FALSE(hv_->GetVolume("default", "db-copy-root.qcow2"));
  EXPECT_FALSE(hv_->GetVolume("default", "db-copy-data.qcow2"));
}

TEST_F(SimBackupFlow, ABackupStepRunAgainAfterACrashFinishesIt) {
  Plan plan;
  plan.actions = {MakeBackupAction(desired_.vms[0], "hv1", desired_.backup_policies[0].spec, "nightly", "db-01-x", kT0)};
  ASSERT_TRUE(RunPlan(plan).Ok());
  const std::string dir = plan.actions[0].params.at("directory");
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

}  // namespace
}  // namespace gitvirt
