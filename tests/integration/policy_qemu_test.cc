// Issue 7 on real QEMU: the `gitvirt` binary against a private libvirtd (tests/harness), checked
// with virsh, qemu-img, qemu-io and sha256sum rather than with gitvirt's own code.
//
//   BackupAndRestoreMarker  a running VM with two qcow2 (compat 1.1) disks; markers written with
//                           qemu-io before it starts; a BackupPolicy (mode snapshot: libvirt push
//                           backup, zstd) writes a backup whose sums verify; the disk is then
//                           changed; `backup restore --as` recreates the VM and the original
//                           markers read back from the restored volumes; the restored VM is not
//                           gitvirt's (left alone by plan/prune) and starts
//   OfflineAndSuspendModes  mode stop on a stopped VM (qemu-img convert, the VM stays stopped);
//                           mode suspend with gzip on a running VM (it runs again afterwards);
//                           mode stop, uncompressed, on a running VM (stopped, copied, started)
//   SnapshotPolicyOnQemu    internal qcow2 snapshots made by a policy, retention keeps 2 of its
//                           own, a hand-made one survives; `snapshot restore` reverts
//   Throughput              a 256 MiB disk of mixed data backed up with zstd: MB/s printed
//
//   RemoteBackupQemu.*      the same on a node reached over TCP (qemu+tcp://127.0.0.2:PORT), whose
//                           pool directory exists only in the daemon's mount namespace, so the
//                           controller can reach the disks through libvirt alone:
//     RunningVmThroughLibvirt  push backup into a scratch volume on the node, downloaded and
//                           deleted; zstd, verify; restore --node onto the node (upload) brings
//                           the markers back
//     StoppedLinkedClone     mode stop on a stopped VM whose root disk is a linked clone: the
//                           overlay and its backing image are downloaded, rebased and flattened
//                           into a self-contained qcow2 that holds the image's marker too
//     Throughput             the local Throughput case on the remote node: MB/s printed
//
//   UefiSnapshotsAreExternal  a running UEFI (pflash) VM, where libvirt refuses internal
//                           snapshots: a policy's snapshots are external disk-only ones on
//                           overlay files, marked with the policy; retention deletes the oldest
//                           (libvirt commits it); the overlays are no drift for plan, survive a
//                           redefinition, are read by an offline backup (a marker written into
//                           the top overlay comes back from the restored copy), are taken of a
//                           stopped VM too (started paused for it, stopped again), are reverted
//                           to by hand (later ones dropped), and go with the VM when it is pruned
//   QuiesceThroughTheGuestAgent  a Debian guest (tests/guest image) with qemu-guest-agent:
//                           `snapshot create --quiesce` has the agent freeze its filesystems
//                           (reported in the job), and they are thawed again
//
// No guest OS runs except in QuiesceThroughTheGuestAgent; VMs stop with `power stop` (destroy).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "libvirtd_harness.h"
#include "process.h"
#include "temp_dir.h"

namespace gitvirt::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct Output {
  int rc = -1;
  std::string text;
  double seconds = 0;
};

Output Run(std::vector<std::string> argv) {
  Output out;
  argv.insert(argv.begin(), {"timeout", "-k", "10", "600"});
  const auto start = Clock::now();
  out.rc = RunCommand(std::move(argv), &out.text);
  out.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return out;
}

std::string Show(const std::vector<std::string>& argv, const Output& out) {
  std::string cmd;
  for (const std::string& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
  return "$ " + cmd + "\n(exit " + std::to_string(out.rc) + ")\n" + out.text;
}

// Runs and expects success; returns stdout+stderr.
std::string Must(std::vector<std::string> argv) {
  Output out = Run(argv);
  EXPECT_EQ(out.rc, 0) << Show(argv, out);
  return out.text;
}

std::string Trim(std::string s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  const auto e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

void WriteFile(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_.c_str(), old_->c_str(), 1);
    } else {
      unsetenv(name_.c_str());
    }
  }

 private:
  std::string name_;
  std::optional<std::string> old_;
};

std::string Tail(const std::string& text, std::size_t lines) {
  std::size_t pos = text.size();
  for (std::size_t n = 0; n <= lines && pos > 0; ++n) {
    pos = text.rfind('\n', pos - 1);
    if (pos == std::string::npos) return text;
  }
  return text.substr(pos + 1);
}

class Virsh {
 public:
  explicit Virsh(std::string uri) : uri_(std::move(uri)) {}
  std::string operator()(std::vector<std::string> args) const {
    args.insert(args.begin(), {"virsh", "-q", "-c", uri_});
    return Must(std::move(args));
  }
  bool Exists(const std::string& domain) const { return Run({"virsh", "-q", "-c", uri_, "dominfo", domain}).rc == 0; }
  std::string State(const std::string& domain) const { return Trim((*this)({"domstate", domain})); }
  std::string VolumePath(const std::string& pool, const std::string& volume) const {
    return Trim((*this)({"vol-path", "--pool", pool, volume}));
  }
  // The file a disk's <source> names in the persistent definition ("" for a volume source).
  std::string DiskSourceFile(const std::string& domain, const std::string& target) const {
    std::istringstream in((*this)({"domblklist", "--inactive", "--details", domain}));
    for (std::string line; std::getline(in, line);) {
      std::istringstream fields(line);
      std::string type, device, dev, source;
      if (fields >> type >> device >> dev >> source && dev == target) return source;
    }
    return "";
  }
  std::set<std::string> Snapshots(const std::string& domain) const {
    std::set<std::string> names;
    std::istringstream in((*this)({"snapshot-list", domain, "--name"}));
    for (std::string line; std::getline(in, line);) {
      if (!Trim(line).empty()) names.insert(Trim(line));
    }
    return names;
  }

 private:
  std::string uri_;
};

// qemu-io against an image (read-only and shared when `readonly`): true when every command
// succeeded and no pattern check failed.
bool QemuIo(const std::string& image, const std::vector<std::string>& commands, bool readonly, std::string* text) {
  std::vector<std::string> argv = {"qemu-io", "-f", "qcow2"};
  if (readonly) argv.insert(argv.end(), {"-r", "-U"});
  for (const std::string& c : commands) argv.insert(argv.end(), {"-c", c});
  argv.push_back(image);
  Output out = Run(argv);
  if (text != nullptr) *text = Show(argv, out);
  return out.rc == 0 && out.text.find("Pattern verification failed") == std::string::npos &&
         out.text.find("failed") == std::string::npos;
}

class Gitvirt {
 public:
  // `pool_dir`: the default pool's directory on the node.
  Gitvirt(const fs::path& dir, const std::string& uri, const fs::path& pool_dir) : dir_(dir) {
    WriteFile(dir_ / "gitvirt.yaml", "apiVersion: gitvirt.dev/v1\nkind: ControllerConfig\nsource:\n  path: manifests\n"
                                     "nodes:\n  - name: hv1\n    uri: \"" + uri + "\"\n    pools:\n"
                                     "      - {name: default, path: " + pool_dir.string() + "}\n"
                                     "state: state/gitvirt.db\n");
    fs::create_directories(dir_ / "state");
  }
  void Write(const std::string& file, const std::string& yaml) { WriteFile(dir_ / "manifests" / file, yaml); }
  Output operator()(std::vector<std::string> args) {
    args.insert(args.begin(), {GITVIRT_BINARY, "--config", (dir_ / "gitvirt.yaml").string()});
    last_ = args;
    return Run(std::move(args));
  }
  std::string Ok(std::vector<std::string> args) {
    Output out = (*this)(args);
    EXPECT_EQ(out.rc, 0) << Show(last_, out);
    return out.text;
  }
  std::string Explain(const Output& out) const { return Show(last_, out); }

 private:
  fs::path dir_;
  std::vector<std::string> last_;
};

std::string VmYaml(const std::string& name, const std::string& power, const std::string& root_size = "64MiB") {
  return "apiVersion: gitvirt.dev/v1\n"
         "kind: VirtualMachine\n"
         "metadata: {name: " + name + ", labels: {suite: policy}}\n"
         "spec:\n"
         "  node: hv1\n"
         "  vcpus: 1\n"
         "  memory: 512MiB\n"
         "  powerState: " + power + "\n"
         "  disks:\n"
         "    - {name: root, size: " + root_size + "}\n"
         "    - {name: data, size: 32MiB}\n"
         "  updatePolicy: {restart: Allowed, shutdownTimeout: 3s, forceOff: true}\n";
}

std::string BackupPolicyYaml(const std::string& name, const std::string& vm, const fs::path& target,
                             const std::string& mode, const std::string& compression) {
  return "apiVersion: gitvirt.dev/v1\n"
         "kind: BackupPolicy\n"
         "metadata: {name: " + name + "}\n"
         "spec:\n"
         "  selector: {names: [" + vm + "]}\n"
         "  target: {directory: " + target.string() + "}\n"
         "  mode: " + mode + "\n"
         "  compression: " + compression + "\n"
         "  verify: true\n"
         "  retention: {keep: 3}\n";
}

// The newest backup directory of a VM under a target.
std::optional<fs::path> NewestBackup(const fs::path& target, const std::string& vm) {
  std::optional<fs::path> newest;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(target / vm, ec)) {
    if (e.is_directory() && fs::exists(e.path() / "manifest.json") && (!newest || e.path() > *newest)) newest = e.path();
  }
  return newest;
}

// Every file of a backup against its manifest: each sum checked by another program (sha256sum),
// each zstd image decompressed by zstd's own tool to the recorded bytes, a self-contained qcow2
// image (no backing file), and exactly the files expected.
void CheckBackupFiles(const fs::path& dir, const nlohmann::json& manifest, const fs::path& scratch,
                      const std::set<std::string>& expected) {
  std::set<std::string> files;
  for (const nlohmann::json& f : manifest["files"]) {
    const std::string name = f.value("name", "");
    files.insert(name);
    EXPECT_EQ(Must({"sha256sum", (dir / name).string()}).substr(0, 64), f.value("sha256", "")) << f.dump();
    if (!name.ends_with(".zst")) continue;
    const fs::path out = scratch / ("check-" + f.value("disk", "") + ".qcow2");
    Must({"zstd", "-q", "-d", "-f", (dir / name).string(), "-o", out.string()});
    EXPECT_EQ(Must({"sha256sum", out.string()}).substr(0, 64), f.value("rawSha256", ""));
    const std::string info = Must({"qemu-img", "info", out.string()});
    EXPECT_NE(info.find("file format: qcow2"), std::string::npos) << info;
    EXPECT_EQ(info.find("backing file"), std::string::npos) << "self-contained: " << info;
  }
  EXPECT_EQ(files, expected);
}

// A figure for the log and for the test's XML report.
void Timing(const std::string& what, double seconds) {
  std::cout << "[timing] " << what << ": " << seconds << " s\n" << std::flush;
  ::testing::Test::RecordProperty("seconds: " + what, std::to_string(seconds));
}

// A failed test prints the daemon's and its guests' log tails; GITVIRT_KEEP_LIBVIRTD_DIR=1
// keeps the test's directory.
void AfterDaemonTest(bool failed, PrivateLibvirtd* daemon, std::optional<TempDir>& work) {
  if (failed && daemon != nullptr) {
    std::cout << "---- libvirtd.log (tail)\n" << Tail(ReadFile(daemon->log_path()), 30);
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(fs::path(daemon->dir()) / "log" / "qemu", ec)) {
      std::cout << "---- " << e.path() << " (tail)\n" << Tail(ReadFile(e.path()), 10);
    }
  }
  if (const char* keep = std::getenv("GITVIRT_KEEP_LIBVIRTD_DIR"); keep != nullptr && *keep == '1' && work) {
    work->Keep();
  }
}

class PolicyQemu : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!PrivateLibvirtd::Available(&why)) GTEST_SKIP() << "private libvirtd unavailable: " << why;
    auto daemon = PrivateLibvirtd::Start();
    ASSERT_TRUE(daemon) << daemon.error();
    daemon_ = std::move(*daemon);
    work_.emplace("gvpq");
    pool_ = work_->path() / "pool";
    fs::create_directories(pool_);
    gv_.emplace(work_->path(), daemon_->qemu_uri(), pool_);
    virsh_.emplace(daemon_->qemu_uri());
  }

  void TearDown() override {
    AfterDaemonTest(HasFailure(), daemon_.get(), work_);
    daemon_.reset();
  }

  std::unique_ptr<PrivateLibvirtd> daemon_;
  std::optional<TempDir> work_;
  fs::path pool_;
  std::optional<Gitvirt> gv_;
  std::optional<Virsh> virsh_;
};

TEST_F(PolicyQemu, BackupAndRestoreMarker) {
  Gitvirt& gv = *gv_;
  const Virsh& virsh = *virsh_;
  const fs::path target = work_->path() / "backups";
  gv.Write("vm.yaml", VmYaml("vm1", "Stopped"));
  gv.Write("backup.yaml", BackupPolicyYaml("nightly", "vm1", target, "snapshot", "zstd"));
  gv.Ok({"apply", "--auto-approve"});
  ASSERT_EQ(virsh.State("vm1"), "shut off");
  const std::string root = virsh.VolumePath("default", "vm1-root.qcow2");
  const std::string data = virsh.VolumePath("default", "vm1-data.qcow2");
  // The markers, before the VM ever starts.
  std::string io;
  ASSERT_TRUE(QemuIo(root, {"write -P 0xab 1M 64k", "write -P 0x5c 40M 4k"}, false, &io)) << io;
  ASSERT_TRUE(QemuIo(data, {"write -P 0xcd 2M 64k"}, false, &io)) << io;
  // Started by hand through gitvirt (a journaled power job); the manifest then says Running.
  gv.Ok({"power", "start", "-l", "suite=policy"});
  ASSERT_EQ(virsh.State("vm1"), "running");
  gv.Write("vm.yaml", VmYaml("vm1", "Running"));
  {
    Output plan = gv({"plan", "--detailed-exitcode", "--no-color"});
    EXPECT_EQ(plan.rc, 0) << gv.Explain(plan);
  }

  // ---- a backup of the running VM: push mode, zstd, verified
  {
    Output run = gv({"backup", "run", "nightly"});
    ASSERT_EQ(run.rc, 0) << gv.Explain(run);
    Timing("backup run nightly (push backup of 2 disks, zstd, verify)", run.seconds);
  }
  EXPECT_EQ(virsh.State("vm1"), "running") << "a live backup does not stop the VM";
  const auto dir = NewestBackup(target, "vm1");
  ASSERT_TRUE(dir) << "no backup under " << target;
  const nlohmann::json manifest = nlohmann::json::parse(ReadFile(*dir / "manifest.json"));
  EXPECT_EQ(manifest.value("mode", ""), "snapshot");
  EXPECT_EQ(manifest.value("compression", ""), "zstd");
  EXPECT_FALSE(manifest.value("simulated", true));
  EXPECT_TRUE(manifest.value("verified", false));
  EXPECT_EQ(manifest.value("policy", ""), "nightly");
  EXPECT_NE(manifest.value("domainXml", "").find("<name>vm1</name>"), std::string::npos);
  CheckBackupFiles(*dir, manifest, work_->path(),
                   {"disk-data.qcow2.zst", "disk-root.qcow2.zst", "domain.xml"});
  const std::string id = manifest.value("id", "");
  {
    Output verify = gv({"backup", "verify", id});
    EXPECT_EQ(verify.rc, 0) << gv.Explain(verify);
    Output list = gv({"backup", "list"});
    EXPECT_NE(list.text.find(id), std::string::npos) << gv.Explain(list);
    Output get = gv({"get", "backups"});
    EXPECT_NE(get.text.find(id), std::string::npos) << gv.Explain(get);
  }

  // ---- change the disk after the backup
  gv.Ok({"power", "stop", "-l", "suite=policy", "--yes"});
  ASSERT_EQ(virsh.State("vm1"), "shut off");
  ASSERT_TRUE(QemuIo(root, {"write -P 0x11 1M 64k"}, false, &io)) << io;
  ASSERT_TRUE(QemuIo(root, {"read -P 0x11 1M 64k"}, true, &io)) << io;

  // ---- restore as a new VM; the original markers come back
  {
    Output restore = gv({"backup", "restore", id, "--as", "vm1-restored", "--yes"});
    ASSERT_EQ(restore.rc, 0) << gv.Explain(restore);
    Timing("backup restore --as vm1-restored (verify, decompress, upload 2 disks, define)", restore.seconds);
    EXPECT_NE(restore.text.find("will leave it alone"), std::string::npos) << restore.text;
  }
  ASSERT_TRUE(virsh.Exists("vm1-restored"));
  EXPECT_EQ(virsh.State("vm1-restored"), "shut off");
  const std::string restored_root = virsh.VolumePath("default", "vm1-restored-root.qcow2");
  const std::string restored_data = virsh.VolumePath("default", "vm1-restored-data.qcow2");
  EXPECT_TRUE(QemuIo(restored_root, {"read -P 0xab 1M 64k", "read -P 0x5c 40M 4k"}, true, &io)) << io;
  EXPECT_TRUE(QemuIo(restored_data, {"read -P 0xcd 2M 64k"}, true, &io)) << io;
  EXPECT_TRUE(QemuIo(root, {"read -P 0x11 1M 64k"}, true, &io)) << "the original keeps its change: " << io;
  const std::string xml = virsh({"dumpxml", "--inactive", "vm1-restored"});
  const std::string original_xml = virsh({"dumpxml", "--inactive", "vm1"});
  EXPECT_EQ(xml.find("gitvirt:owner"), std::string::npos) << "a restored VM not in the manifests is not gitvirt's";
  EXPECT_NE(xml.find("vm1-restored-root.qcow2"), std::string::npos) << xml;
  EXPECT_EQ(xml.find("vm1-root.qcow2"), std::string::npos) << xml;
  EXPECT_NE(Trim(virsh({"domuuid", "vm1-restored"})), Trim(virsh({"domuuid", "vm1"})));
  EXPECT_NE(Must({"qemu-img", "info", "-U", restored_root}).find("virtual size: 64 MiB"), std::string::npos);
  // gitvirt leaves it alone: listed as unmanaged, not planned for deletion even with --prune.
  {
    Output plan = gv({"plan", "--prune", "--no-color"});
    EXPECT_EQ(plan.text.find("delete VirtualMachine/vm1-restored"), std::string::npos) << gv.Explain(plan);
  }
  // It is a working definition: QEMU starts it.
  virsh({"start", "vm1-restored"});
  EXPECT_EQ(virsh.State("vm1-restored"), "running");
  virsh({"destroy", "vm1-restored"});
  // The restore was a journaled job.
  EXPECT_NE(gv.Ok({"jobs"}).find("restore"), std::string::npos);
}

TEST_F(PolicyQemu, OfflineAndSuspendModes) {
  Gitvirt& gv = *gv_;
  const Virsh& virsh = *virsh_;
  const fs::path target = work_->path() / "backups";
  gv.Write("a.yaml", VmYaml("cold", "Stopped"));
  gv.Write("b.yaml", VmYaml("warm", "Running"));
  gv.Write("p1.yaml", BackupPolicyYaml("cold-stop", "cold", target, "stop", "zstd"));
  gv.Write("p2.yaml", BackupPolicyYaml("warm-suspend", "warm", target, "suspend", "gzip"));
  gv.Ok({"apply", "--auto-approve"});
  std::string io;
  ASSERT_TRUE(QemuIo(virsh.VolumePath("default", "cold-root.qcow2"), {"write -P 0x42 3M 8k"}, false, &io)) << io;

  Output cold = gv({"backup", "run", "cold-stop"});
  ASSERT_EQ(cold.rc, 0) << gv.Explain(cold);
  EXPECT_EQ(virsh.State("cold"), "shut off") << "a stopped VM stays stopped";
  auto dir = NewestBackup(target, "cold");
  ASSERT_TRUE(dir);
  auto m = nlohmann::json::parse(ReadFile(*dir / "manifest.json"));
  EXPECT_EQ(m.value("mode", ""), "offline");
  EXPECT_TRUE(m.value("verified", false));
  // The restored copy has the marker.
  Output restore = gv({"backup", "restore", m.value("id", ""), "--as", "cold-copy", "--yes"});
  ASSERT_EQ(restore.rc, 0) << gv.Explain(restore);
  EXPECT_TRUE(QemuIo(virsh.VolumePath("default", "cold-copy-root.qcow2"), {"read -P 0x42 3M 8k"}, true, &io)) << io;

  const std::string id_before = Trim(virsh({"domid", "warm"}));
  Output warm = gv({"backup", "run", "warm-suspend"});
  ASSERT_EQ(warm.rc, 0) << gv.Explain(warm);
  EXPECT_EQ(virsh.State("warm"), "running") << "resumed after its backup";
  EXPECT_EQ(Trim(virsh({"domid", "warm"})), id_before) << "suspend mode does not restart the VM";
  dir = NewestBackup(target, "warm");
  ASSERT_TRUE(dir);
  m = nlohmann::json::parse(ReadFile(*dir / "manifest.json"));
  EXPECT_EQ(m.value("mode", ""), "suspend");
  EXPECT_EQ(m.value("compression", ""), "gzip");
  for (const nlohmann::json& f : m["files"]) {
    if (f.value("disk", "").empty()) continue;
    EXPECT_TRUE(f.value("name", "").ends_with(".qcow2.gz")) << f.dump();
    EXPECT_EQ(Must({"sha256sum", (*dir / f.value("name", "")).string()}).substr(0, 64), f.value("sha256", ""));
    // gzip's own tool reads it.
    Must({"gzip", "-t", (*dir / f.value("name", "")).string()});
  }
  // A backup by hand of one VM: not the policy's, so retention never counts it.
  Output by_hand = gv({"backup", "run", "warm", "--dir", (work_->path() / "manual").string(), "--mode", "snapshot"});
  ASSERT_EQ(by_hand.rc, 0) << gv.Explain(by_hand);
  dir = NewestBackup(work_->path() / "manual", "warm");
  ASSERT_TRUE(dir);
  m = nlohmann::json::parse(ReadFile(*dir / "manifest.json"));
  EXPECT_EQ(m.value("policy", "x"), "");
  EXPECT_EQ(m.value("mode", ""), "snapshot");
  // Mode stop on a running VM, uncompressed: shut down (no guest OS here, so powered off after
  // its 3 s shutdownTimeout, forceOff), copied, started again.
  const std::string id_warm = Trim(virsh({"domid", "warm"}));
  Output stop = gv({"backup", "run", "warm", "--dir", (work_->path() / "stop").string(), "--mode", "stop",
                    "--compression", "none", "--verify"});
  ASSERT_EQ(stop.rc, 0) << gv.Explain(stop);
  EXPECT_EQ(virsh.State("warm"), "running") << "started again after its backup";
  EXPECT_NE(Trim(virsh({"domid", "warm"})), id_warm) << "mode stop restarts the VM";
  dir = NewestBackup(work_->path() / "stop", "warm");
  ASSERT_TRUE(dir);
  m = nlohmann::json::parse(ReadFile(*dir / "manifest.json"));
  EXPECT_EQ(m.value("mode", ""), "stop");
  EXPECT_EQ(m.value("compression", ""), "none");
  EXPECT_TRUE(m.value("verified", false));
  for (const nlohmann::json& f : m["files"]) {
    if (f.value("disk", "").empty()) continue;
    const fs::path file = *dir / f.value("name", "");
    EXPECT_EQ(file.extension(), ".qcow2") << f.dump();
    EXPECT_EQ(Must({"sha256sum", file.string()}).substr(0, 64), f.value("sha256", ""));
    EXPECT_EQ(f.value("sha256", ""), f.value("rawSha256", "")) << "stored as it is";
    EXPECT_NE(Must({"qemu-img", "info", file.string()}).find("file format: qcow2"), std::string::npos);
  }
  gv.Ok({"power", "stop", "-l", "suite=policy", "--yes"});
}

TEST_F(PolicyQemu, SnapshotPolicyOnQemu) {
  Gitvirt& gv = *gv_;
  const Virsh& virsh = *virsh_;
  gv.Write("vm.yaml", VmYaml("snap1", "Running"));
  gv.Write("policy.yaml",
           "apiVersion: gitvirt.dev/v1\nkind: SnapshotPolicy\nmetadata: {name: rot}\nspec:\n"
           "  selector: {matchLabels: {suite: policy}}\n"
           "  namePattern: \"rot-{vm}-{datetime}\"\n"
           "  quiesce: true\n"
           "  retention: {keep: 2}\n");
  gv.Ok({"apply", "--auto-approve"});
  virsh({"snapshot-create-as", "snap1", "handmade"});
  std::vector<double> seconds;
  for (int i = 0; i < 3; ++i) {
    Output run = gv({"snapshot", "run", "rot"});
    ASSERT_EQ(run.rc, 0) << gv.Explain(run);
    seconds.push_back(run.seconds);
  }
  Timing("snapshot run rot (internal snapshot of a running VM + retention)", seconds.back());
  const std::set<std::string> snaps = virsh.Snapshots("snap1");
  ASSERT_EQ(snaps.size(), 3u) << ::testing::PrintToString(snaps);
  EXPECT_TRUE(snaps.contains("handmade"));
  std::vector<std::string> own;
  for (const std::string& s : snaps) {
    if (s.starts_with("rot-snap1-")) own.push_back(s);
  }
  ASSERT_EQ(own.size(), 2u);
  // Internal qcow2 snapshots, in the disk file itself.
  const std::string root = virsh.VolumePath("default", "snap1-root.qcow2");
  const std::string listed = Must({"qemu-img", "snapshot", "-U", "-l", root});
  for (const std::string& s : own) EXPECT_NE(listed.find(s), std::string::npos) << listed;
  // The policy is recorded in the snapshot's metadata.
  EXPECT_NE(virsh({"snapshot-dumpxml", "snap1", own[0]}).find("[gitvirt policy=rot]"), std::string::npos);
  {
    Output list = gv({"snapshot", "list", "snap1"});
    EXPECT_NE(list.text.find("(by hand)"), std::string::npos) << gv.Explain(list);
    EXPECT_NE(list.text.find(own[1]), std::string::npos) << gv.Explain(list);
  }
  // Revert to the older one of its own.
  Output restore = gv({"snapshot", "restore", "snap1", own[0], "--yes"});
  EXPECT_EQ(restore.rc, 0) << gv.Explain(restore);
  EXPECT_NE(virsh({"snapshot-current", "--name", "snap1"}).find(own[0]), std::string::npos);
  gv.Ok({"power", "stop", "snap1", "--yes"});
}

TEST_F(PolicyQemu, UefiSnapshotsAreExternal) {
  // TCG: OVMF is guest code, which this machine's KVM (kvm_pvm) cannot run.
  ScopedEnv tcg("GITVIRT_VIRT_TYPE", "qemu");
  Gitvirt& gv = *gv_;
  const Virsh& virsh = *virsh_;
  const std::string uefi_vm = VmYaml("efi1", "Running") + "  firmware: {type: uefi}\n";
  gv.Write("vm.yaml", uefi_vm);
  gv.Write("policy.yaml",
           "apiVersion: gitvirt.dev/v1\nkind: SnapshotPolicy\nmetadata: {name: efi-rot}\nspec:\n"
           "  selector: {names: [efi1]}\n"
           "  namePattern: \"rot-{vm}-{datetime}\"\n"
           "  quiesce: true\n"
           "  retention: {keep: 2}\n");
  gv.Ok({"apply", "--auto-approve"});
  ASSERT_EQ(virsh.State("efi1"), "running");
  ASSERT_NE(virsh({"dumpxml", "efi1"}).find("type='pflash'"), std::string::npos);
  // What libvirt says to an internal snapshot of this VM.
  {
    Output internal = ::gitvirt::testing::Run({"virsh", "-q", "-c", daemon_->qemu_uri(), "snapshot-create-as", "efi1", "internal"});
    EXPECT_NE(internal.rc, 0);
    EXPECT_NE(internal.text.find("pflash"), std::string::npos) << internal.text;
  }
  for (int i = 0; i < 3; ++i) {
    Output run = gv({"snapshot", "run", "efi-rot"});
    ASSERT_EQ(run.rc, 0) << gv.Explain(run);
    Timing("snapshot run efi-rot (external disk-only snapshot of 2 disks + retention)", run.seconds);
  }
  const std::set<std::string> kept = virsh.Snapshots("efi1");
  const std::vector<std::string> own(kept.begin(), kept.end());  // by name = by time
  ASSERT_EQ(own.size(), 2u) << ::testing::PrintToString(own);
  for (const std::string& snap : own) {
    const std::string xml = virsh({"snapshot-dumpxml", "efi1", snap});
    EXPECT_NE(xml.find("[gitvirt policy=efi-rot]"), std::string::npos) << xml;
    EXPECT_NE(xml.find("snapshot='external'"), std::string::npos) << xml;
    EXPECT_NE(xml.find("<state>disk-snapshot</state>"), std::string::npos) << xml;
  }
  // Each kept snapshot has an overlay per disk next to the volume; the deleted one's were
  // committed and removed by libvirt.
  const std::string root = virsh.VolumePath("default", "efi1-root.qcow2");
  std::set<std::string> files;
  for (const auto& e : fs::directory_iterator(pool_)) files.insert(e.path().filename().string());
  std::set<std::string> overlays;
  for (const std::string& f : files) {
    if (f.find(".gvsnap-") != std::string::npos) overlays.insert(f);
  }
  EXPECT_EQ(overlays, (std::set<std::string>{"efi1-root.qcow2.gvsnap-" + own[0], "efi1-root.qcow2.gvsnap-" + own[1],
                                             "efi1-data.qcow2.gvsnap-" + own[0], "efi1-data.qcow2.gvsnap-" + own[1]}))
      << ::testing::PrintToString(files);
  const std::string top = virsh.DiskSourceFile("efi1", "vda");
  EXPECT_EQ(fs::path(top).filename().string(), "efi1-root.qcow2.gvsnap-" + own[1]);
  EXPECT_NE(Must({"qemu-img", "info", "-U", "--backing-chain", top}).find(root), std::string::npos);
  // The overlays are not a change of the disks.
  {
    Output plan = gv({"plan", "--detailed-exitcode", "--no-color"});
    EXPECT_EQ(plan.rc, 0) << gv.Explain(plan);
  }
  // A redefinition (a new description) keeps the VM on its overlays.
  gv.Write("vm.yaml", uefi_vm + "  description: \"redefined\"\n");
  gv.Ok({"apply", "--auto-approve"});
  EXPECT_NE(virsh({"dumpxml", "--inactive", "efi1"}).find("redefined"), std::string::npos);
  EXPECT_EQ(virsh.DiskSourceFile("efi1", "vda"), top) << "the redefinition kept the overlay";
  {
    Output plan = gv({"plan", "--detailed-exitcode", "--no-color"});
    EXPECT_EQ(plan.rc, 0) << gv.Explain(plan);
  }
  // A hand-made snapshot is external too, and the policy's retention leaves it alone.
  gv.Ok({"snapshot", "create", "efi1", "by-hand"});
  Output again = gv({"snapshot", "run", "efi-rot"});
  ASSERT_EQ(again.rc, 0) << gv.Explain(again);
  EXPECT_TRUE(virsh.Snapshots("efi1").contains("by-hand"));
  EXPECT_EQ(virsh.Snapshots("efi1").size(), 3u) << ::testing::PrintToString(virsh.Snapshots("efi1"));

  // Stopped, a UEFI VM is started paused for its external snapshot and stopped again; the
  // policy's retention deletes its oldest while it is stopped.
  gv.Write("vm.yaml", VmYaml("efi1", "Stopped") + "  firmware: {type: uefi}\n  description: \"redefined\"\n");
  gv.Ok({"apply", "--auto-approve"});
  ASSERT_EQ(virsh.State("efi1"), "shut off");
  {
    const std::set<std::string> before = virsh.Snapshots("efi1");
    Output stopped = gv({"snapshot", "run", "efi-rot"});
    ASSERT_EQ(stopped.rc, 0) << gv.Explain(stopped);
    EXPECT_EQ(virsh.State("efi1"), "shut off");
    const std::set<std::string> after = virsh.Snapshots("efi1");
    ASSERT_EQ(after.size(), 3u) << ::testing::PrintToString(after);
    EXPECT_TRUE(after.contains("by-hand"));
    std::string made;
    for (const std::string& snap : after) {
      if (!before.contains(snap)) made = snap;
    }
    ASSERT_FALSE(made.empty()) << ::testing::PrintToString(after);
    const std::string xml = virsh({"snapshot-dumpxml", "efi1", made});
    EXPECT_NE(xml.find("snapshot='external'"), std::string::npos) << xml;
    EXPECT_EQ(fs::path(virsh.DiskSourceFile("efi1", "vda")).filename().string(), "efi1-root.qcow2.gvsnap-" + made);
    Output plan = gv({"plan", "--detailed-exitcode", "--no-color"});
    EXPECT_EQ(plan.rc, 0) << gv.Explain(plan);
  }
  // Reverting to an external snapshot, which libvirt 9.0 cannot do: gitvirt does it by hand.
  // The disk is as it was at the snapshot, the later snapshot and its overlay are gone, the VM
  // stays stopped, and the snapshot can still be deleted (its overlay is in the disk's chain).
  {
    std::string io;
    const std::string top0 = virsh.DiskSourceFile("efi1", "vda");
    ASSERT_TRUE(QemuIo(top0, {"write -P 0x11 6M 64k"}, false, &io)) << io;
    gv.Ok({"snapshot", "create", "efi1", "r-point"});
    const std::string top1 = virsh.DiskSourceFile("efi1", "vda");
    ASSERT_NE(top1, top0);
    ASSERT_TRUE(QemuIo(top1, {"write -P 0x22 6M 64k"}, false, &io)) << io;
    gv.Ok({"snapshot", "create", "efi1", "r-later"});
    const std::string top2 = virsh.DiskSourceFile("efi1", "vda");
    ASSERT_NE(top2, top1);
    ASSERT_TRUE(QemuIo(top2, {"write -P 0x33 6M 64k"}, false, &io)) << io;
    Output revert = gv({"snapshot", "restore", "efi1", "r-point", "--yes"});
    ASSERT_EQ(revert.rc, 0) << gv.Explain(revert);
    EXPECT_EQ(virsh.State("efi1"), "shut off");
    EXPECT_EQ(virsh.DiskSourceFile("efi1", "vda"), top1);
    EXPECT_TRUE(QemuIo(top1, {"read -P 0x11 6M 64k"}, true, &io)) << "the state at r-point: " << io;
    EXPECT_FALSE(virsh.Snapshots("efi1").contains("r-later"));
    EXPECT_TRUE(virsh.Snapshots("efi1").contains("r-point"));
    EXPECT_TRUE(virsh.Snapshots("efi1").contains("by-hand"));
    EXPECT_FALSE(fs::exists(top2)) << "the dropped snapshot's overlay was left behind";
    EXPECT_EQ(Trim(virsh({"snapshot-current", "--name", "efi1"})), "r-point");
    Output plan = gv({"plan", "--detailed-exitcode", "--no-color"});
    EXPECT_EQ(plan.rc, 0) << gv.Explain(plan);
    gv.Ok({"snapshot", "delete", "efi1", "r-point", "--yes"});
    EXPECT_EQ(virsh.DiskSourceFile("efi1", "vda"), top0);
    EXPECT_TRUE(QemuIo(top0, {"read -P 0x11 6M 64k"}, true, &io)) << io;
  }
  // A marker written into the overlay in use (the disk's current content) comes back from an
  // offline backup: the copy reads through the chain.
  const std::string current = virsh.DiskSourceFile("efi1", "vda");
  ASSERT_NE(current.find(".gvsnap-"), std::string::npos) << current;
  std::string io;
  ASSERT_TRUE(QemuIo(current, {"write -P 0x7e 5M 64k"}, false, &io)) << io;
  const fs::path target = work_->path() / "backups";
  Output backup = gv({"backup", "run", "efi1", "--dir", target.string(), "--verify"});
  ASSERT_EQ(backup.rc, 0) << gv.Explain(backup);
  auto dir = NewestBackup(target, "efi1");
  ASSERT_TRUE(dir);
  Output restore = gv({"backup", "restore", dir->string(), "--as", "efi1-copy", "--yes"});
  ASSERT_EQ(restore.rc, 0) << gv.Explain(restore);
  EXPECT_TRUE(QemuIo(virsh.VolumePath("default", "efi1-copy-root.qcow2"), {"read -P 0x7e 5M 64k"}, true, &io)) << io;
  EXPECT_EQ(virsh({"dumpxml", "--inactive", "efi1-copy"}).find("gvsnap"), std::string::npos)
      << "the copy runs on its own volumes";
  virsh({"undefine", "--nvram", "efi1-copy"});

  // Pruned, the VM takes its overlays with it.
  fs::remove(work_->path() / "manifests" / "vm.yaml");
  fs::remove(work_->path() / "manifests" / "policy.yaml");
  Output prune = gv({"apply", "--auto-approve", "--prune"});
  ASSERT_EQ(prune.rc, 0) << gv.Explain(prune);
  EXPECT_FALSE(virsh.Exists("efi1"));
  files.clear();
  for (const auto& e : fs::directory_iterator(pool_)) {
    if (e.path().filename().string().starts_with("efi1-") &&
        !e.path().filename().string().starts_with("efi1-copy")) {
      files.insert(e.path().filename().string());
    }
  }
  EXPECT_TRUE(files.empty()) << ::testing::PrintToString(files);
}

// The guest image of tests/guest/build-image.sh when it is built (cached) on this machine.
struct GuestImage {
  std::string image, kernel, initrd, cmdline;
};
std::optional<GuestImage> CachedGuestImage(std::string* why) {
  const fs::path script = fs::path(GITVIRT_SOURCE_DIR) / "tests" / "guest" / "build-image.sh";
  const std::string hash = Must({"sha256sum", script.string()}).substr(0, 16);
  const char* cache = std::getenv("GITVIRT_CACHE_DIR");
  const fs::path dir = fs::path(cache != nullptr ? cache : "/var/cache/gitvirt") / "guest" / ("debian12-" + hash);
  if (!fs::exists(dir / "disk.qcow2")) {
    *why = "no guest image at " + dir.string() + " (build it with sudo tests/guest/build-image.sh)";
    return std::nullopt;
  }
  return GuestImage{(dir / "disk.qcow2").string(), (dir / "vmlinuz").string(), (dir / "initrd.img").string(),
                    Trim(ReadFile(dir / "cmdline"))};
}

TEST_F(PolicyQemu, QuiesceThroughTheGuestAgent) {
  std::string why;
  auto guest = CachedGuestImage(&why);
  if (!guest) GTEST_SKIP() << why;
  ScopedEnv tcg("GITVIRT_VIRT_TYPE", "qemu");  // this machine's KVM cannot boot a stock kernel
  Gitvirt& gv = *gv_;
  const Virsh& virsh = *virsh_;
  gv.Write("guest.yaml",
           "apiVersion: gitvirt.dev/v1\nkind: Image\nmetadata: {name: debian12}\n"
           "spec: {source: " + guest->image + ", format: qcow2, sha256: " +
           Must({"sha256sum", guest->image}).substr(0, 64) + "}\n"
           "---\n"
           "apiVersion: gitvirt.dev/v1\nkind: VirtualMachine\nmetadata: {name: agent1}\n"
           "spec:\n"
           "  node: hv1\n"
           "  vcpus: 2\n"
           "  memory: 1GiB\n"
           "  boot: {kernel: " + guest->kernel + ", initrd: " + guest->initrd + ", cmdline: \"" + guest->cmdline +
           "\"}\n"
           "  guestAgent: true\n"
           "  disks: [{name: root, size: 5GiB, source: {image: debian12}}]\n"
           "  updatePolicy: {restart: Allowed, shutdownTimeout: 5s, forceOff: true}\n");
  gv.Ok({"apply", "--auto-approve"});
  ASSERT_EQ(virsh.State("agent1"), "running");
  // Booting under TCG takes one to three minutes here; the agent answers when the guest is up.
  const auto boot_start = Clock::now();
  bool answered = false;
  while (Clock::now() - boot_start < std::chrono::minutes(10)) {
    if (::gitvirt::testing::Run({"virsh", "-q", "-c", daemon_->qemu_uri(), "qemu-agent-command", "agent1", R"({"execute":"guest-ping"})"})
            .rc == 0) {
      answered = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::seconds(2));
  }
  ASSERT_TRUE(answered) << "the guest agent never answered";
  Timing("Debian guest boot until its agent answers (TCG)",
         std::chrono::duration<double>(Clock::now() - boot_start).count());
  Output quiesced = gv({"snapshot", "create", "agent1", "frozen", "--quiesce"});
  ASSERT_EQ(quiesced.rc, 0) << gv.Explain(quiesced);
  // The job says the agent froze the filesystems.
  std::istringstream jobs(gv.Ok({"jobs", "--kind", "snapshot", "--limit", "1"}));
  std::string header, job;
  std::getline(jobs, header);
  jobs >> job;  // the newest job's id
  const std::string detail = gv.Ok({"jobs", job});
  const auto frozen_at = detail.find("frozen by the guest agent");
  EXPECT_NE(frozen_at, std::string::npos) << detail;
  if (frozen_at != std::string::npos) {
    const auto line = detail.rfind('\n', frozen_at) + 1;
    std::cout << "[event] " << detail.substr(line, detail.find('\n', frozen_at) - line) << "\n";
  }
  EXPECT_NE(virsh({"qemu-agent-command", "agent1", R"({"execute":"guest-fsfreeze-status"})"}).find("thawed"),
            std::string::npos)
      << "thawed again";
  EXPECT_TRUE(virsh.Snapshots("agent1").contains("frozen"));
  gv.Ok({"power", "stop", "agent1", "--yes"});
}

// 256 MiB of data: a quarter random, a quarter text-like, half a repeated pattern; written into
// the qcow2 `image` through qemu-img so a backup reads real allocated clusters.
void FillWithMixedData(const fs::path& scratch_dir, const std::string& image) {
  const fs::path raw = scratch_dir / "fill.raw";
  {
    std::ofstream out(raw, std::ios::binary);
    std::mt19937_64 rng(7);
    std::string block(1 << 20, '\0');
    for (int mib = 0; mib < 256; ++mib) {
      for (std::size_t i = 0; i < block.size(); ++i) {
        if (mib % 4 == 0) {
          block[i] = static_cast<char>(rng());
        } else if (mib % 4 == 1) {
          block[i] = "the quick brown fox jumps over the lazy dog 0123456789\n"[(i + mib) % 55];
        } else {
          block[i] = static_cast<char>(i % 251);
        }
      }
      out << block;
    }
  }
  Must({"qemu-img", "convert", "-n", "-f", "raw", "-O", "qcow2", raw.string(), image});
  fs::remove(raw);
}

// Prints (and returns) the MB/s of the newest backup of `vm` under `target`: bytes of disk
// images read over the seconds the backup took, by its manifest.
double ReportThroughput(const fs::path& target, const std::string& vm, const std::string& how) {
  auto dir = NewestBackup(target, vm);
  EXPECT_TRUE(dir);
  if (!dir) return 0;
  const auto m = nlohmann::json::parse(ReadFile(*dir / "manifest.json"));
  std::uint64_t raw_bytes = 0, stored = 0;
  for (const nlohmann::json& f : m["files"]) {
    raw_bytes += f.value("rawSize", std::uint64_t{0});
    stored += f.value("size", std::uint64_t{0});
  }
  const double seconds = m.value("seconds", 0.0);
  EXPECT_GT(seconds, 0);
  EXPECT_GT(raw_bytes, 200u * 1000 * 1000);
  if (seconds <= 0) return 0;
  std::cout << "[throughput] " << how << ": " << raw_bytes / 1e6 << " MB read in " << seconds
            << " s = " << raw_bytes / 1e6 / seconds << " MB/s; stored " << stored / 1e6 << " MB (ratio "
            << static_cast<double>(raw_bytes) / static_cast<double>(std::max<std::uint64_t>(stored, 1)) << ")\n";
  return raw_bytes / 1e6 / seconds;
}

TEST_F(PolicyQemu, Throughput) {
  Gitvirt& gv = *gv_;
  const Virsh& virsh = *virsh_;
  const fs::path target = work_->path() / "backups";
  gv.Write("vm.yaml", VmYaml("big", "Stopped", "256MiB"));
  gv.Write("backup.yaml", BackupPolicyYaml("tp", "big", target, "snapshot", "zstd"));
  gv.Ok({"apply", "--auto-approve"});
  FillWithMixedData(work_->path(), virsh.VolumePath("default", "big-root.qcow2"));
  gv.Ok({"power", "start", "big"});
  Output run = gv({"backup", "run", "tp"});
  ASSERT_EQ(run.rc, 0) << gv.Explain(run);
  RecordProperty("backup MB/s", std::to_string(ReportThroughput(target, "big", "push backup + zstd level 3 + verify")));
  gv.Ok({"power", "stop", "big", "--yes"});
}

// ---- a remote node: everything through libvirt ------------------------------------------

// The node is the private daemon reached over TCP at 127.0.0.2 (not "this host" by its URI, so
// gitvirt treats it as remote), and its pool lives under /var/lib/libvirt, which the harness
// bind-mounts from the daemon's directory inside the daemon's mount namespace only: on the
// controller that path does not exist, so any attempt to read a disk file directly fails. The
// test itself reaches the files through the daemon's directory (Outside).
class RemoteBackupQemu : public ::testing::Test {
 protected:
  static constexpr const char* kNodePool = "/var/lib/libvirt/gv-remote-pool";

  void SetUp() override {
    std::string why;
    if (!PrivateLibvirtd::Available(&why)) GTEST_SKIP() << "private libvirtd unavailable: " << why;
    ASSERT_FALSE(fs::exists(kNodePool)) << kNodePool << " exists on the controller: the test needs it to be the node's only";
    auto daemon = PrivateLibvirtd::StartWithTcp("127.0.0.2");
    ASSERT_TRUE(daemon) << daemon.error();
    daemon_ = std::move(*daemon);
    ASSERT_TRUE(daemon_->tcp_uri().starts_with("qemu+tcp://127.0.0.2:")) << daemon_->tcp_uri();
    work_.emplace("gvrb");
    gv_.emplace(work_->path(), daemon_->tcp_uri(), kNodePool);
    virsh_.emplace(daemon_->tcp_uri());
  }

  void TearDown() override {
    AfterDaemonTest(HasFailure(), daemon_.get(), work_);
    EXPECT_FALSE(fs::exists(kNodePool)) << "gitvirt wrote the node's path on the controller";
    daemon_.reset();
  }

  // Where a file of the node's pool is, seen from the controller (the test only).
  std::string Outside(const std::string& node_path) const {
    const std::string prefix = "/var/lib/libvirt/";
    EXPECT_TRUE(node_path.starts_with(prefix)) << node_path;
    return daemon_->dir() + "/lib/" + node_path.substr(prefix.size());
  }

  // Files of the pool directory on the node whose name starts with `prefix`.
  std::vector<std::string> PoolFiles(const std::string& prefix) const {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(Outside(kNodePool), ec)) {
      if (e.path().filename().string().starts_with(prefix)) out.push_back(e.path().filename().string());
    }
    return out;
  }

  std::unique_ptr<PrivateLibvirtd> daemon_;
  std::optional<TempDir> work_;
  std::optional<Gitvirt> gv_;
  std::optional<Virsh> virsh_;
};

TEST_F(RemoteBackupQemu, RunningVmThroughLibvirt) {
  Gitvirt& gv = *gv_;
  const Virsh& virsh = *virsh_;
  const fs::path target = work_->path() / "backups";
  gv.Write("vm.yaml", VmYaml("vm1", "Stopped"));
  gv.Write("backup.yaml", BackupPolicyYaml("nightly", "vm1", target, "snapshot", "zstd"));
  gv.Ok({"apply", "--auto-approve"});
  ASSERT_EQ(virsh.State("vm1"), "shut off");
  const std::string root = virsh.VolumePath("default", "vm1-root.qcow2");
  const std::string data = virsh.VolumePath("default", "vm1-data.qcow2");
  ASSERT_TRUE(root.starts_with(kNodePool)) << root;
  std::string io;
  ASSERT_TRUE(QemuIo(Outside(root), {"write -P 0xab 1M 64k", "write -P 0x5c 40M 4k"}, false, &io)) << io;
  ASSERT_TRUE(QemuIo(Outside(data), {"write -P 0xcd 2M 64k"}, false, &io)) << io;
  gv.Ok({"power", "start", "-l", "suite=policy"});
  ASSERT_EQ(virsh.State("vm1"), "running");
  gv.Write("vm.yaml", VmYaml("vm1", "Running"));

  {
    Output run = gv({"backup", "run", "nightly"});
    ASSERT_EQ(run.rc, 0) << gv.Explain(run);
    Timing("remote backup run nightly (push backup on the node, download of 2 disks, zstd, verify)", run.seconds);
  }
  EXPECT_EQ(virsh.State("vm1"), "running") << "a live backup does not stop the VM";
  EXPECT_TRUE(PoolFiles(".gitvirt-backup-").empty()) << "scratch files left on the node: "
                                                      << ::testing::PrintToString(PoolFiles(".gitvirt-backup-"));
  EXPECT_EQ(virsh({"vol-list", "default"}).find(".gitvirt-backup-"), std::string::npos);
  const auto dir = NewestBackup(target, "vm1");
  ASSERT_TRUE(dir) << "no backup under " << target;
  const nlohmann::json manifest = nlohmann::json::parse(ReadFile(*dir / "manifest.json"));
  EXPECT_EQ(manifest.value("mode", ""), "snapshot");
  EXPECT_EQ(manifest.value("compression", ""), "zstd");
  EXPECT_EQ(manifest.value("node", ""), "hv1");
  EXPECT_FALSE(manifest.value("simulated", true));
  EXPECT_TRUE(manifest.value("verified", false));
  CheckBackupFiles(*dir, manifest, work_->path(),
                   {"disk-data.qcow2.zst", "disk-root.qcow2.zst", "domain.xml"});
  const std::string id = manifest.value("id", "");
  {
    Output verify = gv({"backup", "verify", id});
    EXPECT_EQ(verify.rc, 0) << gv.Explain(verify);
  }

  // Change the disk after the backup, then restore onto the node as a new VM.
  gv.Ok({"power", "stop", "-l", "suite=policy", "--yes"});
  ASSERT_EQ(virsh.State("vm1"), "shut off");
  ASSERT_TRUE(QemuIo(Outside(root), {"write -P 0x11 1M 64k"}, false, &io)) << io;
  {
    Output restore = gv({"backup", "restore", id, "--as", "vm1-restored", "--node", "hv1", "--yes"});
    ASSERT_EQ(restore.rc, 0) << gv.Explain(restore);
    Timing("remote restore --as vm1-restored (verify, decompress, upload 2 disks over TCP, define)", restore.seconds);
  }
  ASSERT_TRUE(virsh.Exists("vm1-restored"));
  const std::string restored_root = virsh.VolumePath("default", "vm1-restored-root.qcow2");
  const std::string restored_data = virsh.VolumePath("default", "vm1-restored-data.qcow2");
  ASSERT_TRUE(restored_root.starts_with(kNodePool)) << restored_root;
  EXPECT_TRUE(QemuIo(Outside(restored_root), {"read -P 0xab 1M 64k", "read -P 0x5c 40M 4k"}, true, &io)) << io;
  EXPECT_TRUE(QemuIo(Outside(restored_data), {"read -P 0xcd 2M 64k"}, true, &io)) << io;
  EXPECT_TRUE(QemuIo(Outside(root), {"read -P 0x11 1M 64k"}, true, &io)) << "the original keeps its change: " << io;
  virsh({"start", "vm1-restored"});
  EXPECT_EQ(virsh.State("vm1-restored"), "running");
  virsh({"destroy", "vm1-restored"});
}

TEST_F(RemoteBackupQemu, StoppedLinkedClone) {
  Gitvirt& gv = *gv_;
  const Virsh& virsh = *virsh_;
  const fs::path target = work_->path() / "backups";
  // An Image on the controller, imported into the node's pool (uploaded); the VM's root disk is
  // a linked clone of it.
  const fs::path image = work_->path() / "base.qcow2";
  Must({"qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=1.1", image.string(), "64M"});
  std::string io;
  ASSERT_TRUE(QemuIo(image.string(), {"write -P 0x33 0 64k"}, false, &io)) << io;
  gv.Write("image.yaml", "apiVersion: gitvirt.dev/v1\nkind: Image\nmetadata: {name: base}\nspec:\n  source: " +
                             image.string() + "\n  sha256: " + Must({"sha256sum", image.string()}).substr(0, 64) +
                             "\n  format: qcow2\n  pool: default\n");
  gv.Write("vm.yaml", "apiVersion: gitvirt.dev/v1\nkind: VirtualMachine\nmetadata: {name: cold, labels: {suite: policy}}\n"
                      "spec:\n  node: hv1\n  vcpus: 1\n  memory: 512MiB\n  powerState: Stopped\n  disks:\n"
                      "    - {name: root, size: 64MiB, source: {image: base, clone: linked}}\n"
                      "    - {name: data, size: 32MiB}\n");
  gv.Write("backup.yaml", BackupPolicyYaml("cold-stop", "cold", target, "stop", "zstd"));
  gv.Ok({"apply", "--auto-approve"});
  ASSERT_EQ(virsh.State("cold"), "shut off");
  const std::string root = virsh.VolumePath("default", "cold-root.qcow2");
  const std::string base = virsh.VolumePath("default", "base.qcow2");
  ASSERT_TRUE(root.starts_with(kNodePool)) << root;
  ASSERT_NE(virsh({"vol-dumpxml", "--pool", "default", "cold-root.qcow2"}).find(base), std::string::npos)
      << "the root disk is a linked clone of the image";
  // The overlay names its backing file by the node's path, which the test opens from outside.
  {
    const std::string opts = "driver=qcow2,file.driver=file,file.filename=" + Outside(root) +
                             ",backing.driver=qcow2,backing.file.driver=file,backing.file.filename=" + Outside(base);
    const std::vector<std::string> argv = {"qemu-io", "--image-opts", "-c", "write -P 0x5a 1M 64k", opts};
    const Output out = testing::Run(argv);
    ASSERT_TRUE(out.rc == 0 && out.text.find("rror") == std::string::npos) << Show(argv, out);
    EXPECT_NE(Must({"qemu-img", "info", "-U", Outside(root)}).find("backing file: " + base), std::string::npos)
        << "the overlay still points at the node's path";
  }
  ASSERT_TRUE(QemuIo(Outside(virsh.VolumePath("default", "cold-data.qcow2")), {"write -P 0xa5 4M 128k"}, false, &io))
      << io;

  Output run = gv({"backup", "run", "cold-stop"});
  ASSERT_EQ(run.rc, 0) << gv.Explain(run);
  Timing("remote backup run cold-stop (download of overlay + image + data disk, rebase, flatten, zstd)", run.seconds);
  EXPECT_EQ(virsh.State("cold"), "shut off") << "a stopped VM stays stopped";
  const auto dir = NewestBackup(target, "cold");
  ASSERT_TRUE(dir);
  const nlohmann::json m = nlohmann::json::parse(ReadFile(*dir / "manifest.json"));
  EXPECT_EQ(m.value("mode", ""), "offline");
  EXPECT_TRUE(m.value("verified", false));
  std::set<std::string> files;
  for (const auto& e : fs::directory_iterator(*dir)) files.insert(e.path().filename().string());
  EXPECT_EQ(files, (std::set<std::string>{"disk-data.qcow2.zst", "disk-root.qcow2.zst", "domain.xml", "manifest.json"}))
      << "no downloads left behind";
  // The root disk's backup is self-contained: no backing file, and the image's bytes are in it.
  const fs::path flat = work_->path() / "root-flat.qcow2";
  Must({"zstd", "-q", "-d", "-f", (*dir / "disk-root.qcow2.zst").string(), "-o", flat.string()});
  const std::string info = Must({"qemu-img", "info", flat.string()});
  EXPECT_EQ(info.find("backing file"), std::string::npos) << info;
  EXPECT_TRUE(QemuIo(flat.string(), {"read -P 0x33 0 64k", "read -P 0x5a 1M 64k"}, true, &io)) << io;

  // Restored onto the node: a whole disk, no backing file, both markers.
  Output restore = gv({"backup", "restore", m.value("id", ""), "--as", "cold-copy", "--node", "hv1", "--yes"});
  ASSERT_EQ(restore.rc, 0) << gv.Explain(restore);
  const std::string copy = virsh.VolumePath("default", "cold-copy-root.qcow2");
  EXPECT_TRUE(QemuIo(Outside(copy), {"read -P 0x33 0 64k", "read -P 0x5a 1M 64k"}, true, &io)) << io;
  EXPECT_TRUE(QemuIo(Outside(virsh.VolumePath("default", "cold-copy-data.qcow2")), {"read -P 0xa5 4M 128k"}, true, &io))
      << io;
  EXPECT_EQ(virsh({"vol-dumpxml", "--pool", "default", "cold-copy-root.qcow2"}).find("<backingStore>"),
            std::string::npos);
}

TEST_F(RemoteBackupQemu, Throughput) {
  Gitvirt& gv = *gv_;
  const Virsh& virsh = *virsh_;
  const fs::path target = work_->path() / "backups";
  gv.Write("vm.yaml", VmYaml("big", "Stopped", "256MiB"));
  gv.Write("backup.yaml", BackupPolicyYaml("tp", "big", target, "snapshot", "zstd"));
  gv.Ok({"apply", "--auto-approve"});
  FillWithMixedData(work_->path(), Outside(virsh.VolumePath("default", "big-root.qcow2")));
  gv.Ok({"power", "start", "big"});
  Output run = gv({"backup", "run", "tp"});
  ASSERT_EQ(run.rc, 0) << gv.Explain(run);
  RecordProperty("backup MB/s",
                 std::to_string(ReportThroughput(target, "big", "remote: push into the pool + download over TCP + zstd "
                                                                "level 3 + verify")));
  EXPECT_TRUE(PoolFiles(".gitvirt-backup-").empty());
  gv.Ok({"power", "stop", "big", "--yes"});
}

}  // namespace
}  // namespace gitvirt::testing
