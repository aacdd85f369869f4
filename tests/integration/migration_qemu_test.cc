// Issue 6 on real QEMU: migration between two private libvirtd daemons on this machine (two
// mount namespaces, two sockets, two pool directories, distinct host UUIDs), driven by the real
// `gitvirt` binary (GITVIRT_BINARY) and checked with virsh, qemu-img and qemu-io:
//
//   OfflineThenLive  mig-01 (a linked clone of an Image as root disk, a new qcow2 data disk, a
//                    cloud-init seed on a read-only cdrom) is
//                    created stopped on hv1; markers are written into both volumes with qemu-io;
//                    `node: hv2` moves it offline (the image is imported on hv2 first, the
//                    volumes are streamed, the root disk's qcow2 header now names hv2's copy of
//                    the image), the markers read back on hv2, hv1 keeps nothing, the VM starts
//                    on hv2, `describe vm` lists the migration. Then `node: hv1` with
//                    copyStorage moves it back live, while it runs; if this machine cannot
//                    migrate live, the test is skipped with libvirt's exact error. Last, with
//                    allowOffline, a live migration made to fail falls back to offline.
//                    Injected faults (a define on the target, libvirt's migrate call) leave the
//                    VM where it was and no copy behind.
//   ABridge...       a NIC on a bridge hv1 lacks fails the plan, naming hv1's interfaces.
//   OfflineUefi...   a UEFI VM moved offline: its variable store stays on hv1, intact, and the
//                    plan warns that it does not travel; the VM starts on hv2.
//
// The guests run no OS (TCG, GITVIRT_VIRT_TYPE=qemu); the markers are the disks' content.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
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

Output Exec(std::vector<std::string> argv) {
  Output out;
  argv.insert(argv.begin(), {"timeout", "-k", "10", "600"});
  const auto start = Clock::now();
  out.rc = RunCommand(std::move(argv), &out.text);
  out.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return out;
}

std::string Trim(std::string s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  const auto e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteFile(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

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
  Output operator()(std::vector<std::string> args) const {
    args.insert(args.begin(), {"virsh", "-q", "-c", uri_});
    return Exec(std::move(args));
  }
  std::string Must(std::vector<std::string> args) const {
    Output out = (*this)(args);
    EXPECT_EQ(out.rc, 0) << "virsh " << args.front() << ": " << out.text;
    return out.rc == 0 ? out.text : std::string();
  }
  bool Exists(const std::string& domain) const { return (*this)({"dominfo", domain}).rc == 0; }
  std::string State(const std::string& domain) const { return Trim(Must({"domstate", domain})); }
  std::set<std::string> Volumes(const std::string& pool) const {
    std::set<std::string> names;
    Output out = (*this)({"vol-list", pool});
    std::istringstream in(out.text);
    for (std::string line; std::getline(in, line);) {
      std::istringstream words(line);
      std::string name;
      if (words >> name) names.insert(name);
    }
    return names;
  }
  std::string VolumePath(const std::string& pool, const std::string& volume) const {
    return Trim(Must({"vol-path", "--pool", pool, volume}));
  }

 private:
  std::string uri_;
};

// qemu-io on a file (shared, read-only while a guest may have it open): true when it succeeds.
bool QemuIo(const std::string& file, const std::string& command, bool running, std::string* out) {
  std::vector<std::string> argv = {"qemu-io", "-f", "qcow2"};
  if (running) argv.insert(argv.end(), {"-U", "-r"});
  argv.insert(argv.end(), {"-c", command, file});
  Output o = Exec(argv);
  *out = o.text;
  // qemu-io exits 0 even when a read -P finds other bytes; it says "Pattern verification failed".
  return o.rc == 0 && o.text.find("failed") == std::string::npos && o.text.find("rror") == std::string::npos;
}

std::string BackingOf(const std::string& file) {
  Output o = Exec({"qemu-img", "info", "-U", "--output=json", file});
  auto j = nlohmann::json::parse(o.text, nullptr, false);
  return j.is_object() && j.contains("backing-filename") ? j["backing-filename"].get<std::string>() : "";
}

std::string Sha256(const fs::path& file) {
  Output out = Exec({"sha256sum", file.string()});
  return out.text.substr(0, 64);
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

constexpr const char* kUuid1 = "6a1f3b2c-0000-4000-8000-000000000001";
constexpr const char* kUuid2 = "6a1f3b2c-0000-4000-8000-000000000002";

class MigrationQemu : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!PrivateLibvirtd::Available(&why)) GTEST_SKIP() << "private libvirtd unavailable: " << why;
    auto a = PrivateLibvirtd::Start(kUuid1);
    ASSERT_TRUE(a) << a.error();
    a_ = std::move(*a);
    auto b = PrivateLibvirtd::Start(kUuid2);
    ASSERT_TRUE(b) << b.error();
    b_ = std::move(*b);
    work_.emplace("gvmig");
    pool1_ = work_->path() / "pool-hv1";
    pool2_ = work_->path() / "pool-hv2";
    std::ostringstream config;
    config << "apiVersion: gitvirt.dev/v1\nkind: ControllerConfig\nsource:\n  path: manifests\nnodes:\n"
           << "  - name: hv1\n    uri: \"" << a_->qemu_uri() << "\"\n    pools: [{name: default, path: " << pool1_.string()
           << "}]\n    migration: {address: 127.0.0.1}\n"
           << "  - name: hv2\n    uri: \"" << b_->qemu_uri() << "\"\n    pools: [{name: default, path: " << pool2_.string()
           << "}]\n    migration: {address: 127.0.0.1}\n"
           << "state: state/gitvirt.db\n";
    WriteFile(work_->path() / "gitvirt.yaml", config.str());
    fs::create_directories(work_->path() / "state");
  }

  void TearDown() override {
    if (HasFailure()) {
      std::ostringstream s;
      for (PrivateLibvirtd* d : {a_.get(), b_.get()}) {
        if (d == nullptr) continue;
        s << "---- " << d->log_path() << " (tail)\n" << Tail(ReadFile(d->log_path()), 30);
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(fs::path(d->dir()) / "log" / "qemu", ec)) {
          s << "---- " << e.path() << " (tail)\n" << Tail(ReadFile(e.path()), 15);
        }
      }
      std::cout << s.str() << std::flush;
    }
    if (const char* keep = std::getenv("GITVIRT_KEEP_LIBVIRTD_DIR"); keep != nullptr && *keep == '1' && work_) {
      work_->Keep();
    }
    a_.reset();
    b_.reset();
  }

  // With `env` ("NAME=value") set for the gitvirt process only.
  Output Gv(std::vector<std::string> args, const std::string& env = "") {
    args.insert(args.begin(), {GITVIRT_BINARY, "--config", (work_->path() / "gitvirt.yaml").string()});
    if (!env.empty()) args.insert(args.begin(), {"env", env});
    return Exec(std::move(args));
  }

  void WriteVm(const std::string& node, const std::string& power, const std::string& migration) {
    WriteFile(work_->path() / "manifests" / "mig-01.yaml",
              "apiVersion: gitvirt.dev/v1\nkind: VirtualMachine\nmetadata: {name: mig-01}\nspec:\n  node: " + node +
                  "\n  vcpus: 1\n  memory: 512MiB\n  powerState: " + power +
                  "\n  disks:\n    - {name: root, size: 1GiB, source: {image: base, clone: linked}}\n"
                  "    - {name: data, size: 256MiB}\n"
                  "  cloudInit: {users: [{name: ops}]}\n"
                  "  updatePolicy: {restart: Allowed, shutdownTimeout: 5s, forceOff: true}\n" + migration);
  }

  std::unique_ptr<PrivateLibvirtd> a_, b_;
  std::optional<TempDir> work_;
  fs::path pool1_, pool2_;
};

TEST_F(MigrationQemu, OfflineThenLive) {
  ScopedEnv tcg("GITVIRT_VIRT_TYPE", "qemu");
  const Virsh hv1(a_->qemu_uri()), hv2(b_->qemu_uri());
  const fs::path image = work_->path() / "base.qcow2";
  {
    Output made = Exec({"qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=1.1", image.string(), "64M"});
    ASSERT_EQ(made.rc, 0) << made.text;
    // Something in the base image too: reads through the clone's backing chain must find it.
    std::string out;
    ASSERT_TRUE(QemuIo(image.string(), "write -P 0x33 0 64k", false, &out)) << out;
  }
  WriteFile(work_->path() / "manifests" / "image.yaml",
            "apiVersion: gitvirt.dev/v1\nkind: Image\nmetadata: {name: base}\nspec:\n  source: " + image.string() +
                "\n  sha256: " + Sha256(image) + "\n  format: qcow2\n  pool: default\n");
  WriteVm("hv1", "Stopped", "");
  Output created = Gv({"apply", "--auto-approve"});
  ASSERT_EQ(created.rc, 0) << created.text;
  ASSERT_TRUE(hv1.Exists("mig-01"));
  ASSERT_EQ(hv1.State("mig-01"), "shut off");
  const std::string root1 = hv1.VolumePath("default", "mig-01-root.qcow2");
  const std::string data1 = hv1.VolumePath("default", "mig-01-data.qcow2");
  ASSERT_TRUE(root1.starts_with(pool1_.string())) << root1;
  const std::string image1 = hv1.VolumePath("default", "base.qcow2");
  ASSERT_EQ(BackingOf(root1), image1);

  // The markers, at known offsets.
  std::string out;
  ASSERT_TRUE(QemuIo(root1, "write -P 0x5a 1M 64k", false, &out)) << out;
  ASSERT_TRUE(QemuIo(data1, "write -P 0xa5 4M 128k", false, &out)) << out;

  // ---- offline: hv1 -> hv2
  WriteVm("hv2", "Stopped", "");
  {
    // Defining on hv2 fails once the volumes are there: FULL takes the copies away again and
    // hv1 keeps the VM as it was.
    Output failed = Gv({"apply", "--auto-approve"}, "GITVIRT_FAULTS=define:1");
    ASSERT_EQ(failed.rc, 1) << failed.text;
    EXPECT_NE(failed.text.find("injected fault: define"), std::string::npos) << failed.text;
    ASSERT_TRUE(hv1.Exists("mig-01"));
    EXPECT_FALSE(hv2.Exists("mig-01"));
    for (const std::string& v : hv2.Volumes("default")) EXPECT_FALSE(v.starts_with("mig-01")) << v << " left on hv2";
    EXPECT_TRUE(QemuIo(root1, "read -P 0x5a 1M 64k", false, &out)) << out;
  }
  Output plan = Gv({"plan"});
  ASSERT_EQ(plan.rc, 0) << plan.text;
  EXPECT_NE(plan.text.find("migrate VirtualMachine/mig-01 from hv1 to hv2"), std::string::npos) << plan.text;
  EXPECT_NE(plan.text.find("mode: offline"), std::string::npos) << plan.text;
  EXPECT_NE(plan.text.find("image-import Image/base on hv2"), std::string::npos) << plan.text;
  Output moved = Gv({"apply", "--auto-approve"});
  ASSERT_EQ(moved.rc, 0) << moved.text;
  std::cout << "[timing] offline migration apply: " << moved.seconds << " s\n";

  EXPECT_FALSE(hv1.Exists("mig-01"));
  ASSERT_TRUE(hv2.Exists("mig-01"));
  EXPECT_EQ(hv2.State("mig-01"), "shut off");
  EXPECT_EQ(hv1.Volumes("default"), std::set<std::string>{"base.qcow2"}) << "the source's copies are deleted";
  // The cloud-init seed (a read-only cdrom) came along.
  std::string seed;
  for (const std::string& v : hv2.Volumes("default")) {
    if (v.starts_with("mig-01-cidata-")) seed = v;
  }
  EXPECT_FALSE(seed.empty());
  const std::string root2 = hv2.VolumePath("default", "mig-01-root.qcow2");
  const std::string data2 = hv2.VolumePath("default", "mig-01-data.qcow2");
  ASSERT_TRUE(root2.starts_with(pool2_.string())) << root2;
  EXPECT_EQ(BackingOf(root2), hv2.VolumePath("default", "base.qcow2")) << "the clone's backing file was not repointed";
  EXPECT_TRUE(QemuIo(root2, "read -P 0x5a 1M 64k", false, &out)) << out;
  EXPECT_TRUE(QemuIo(root2, "read -P 0x33 0 64k", false, &out)) << "through the backing image: " << out;
  EXPECT_TRUE(QemuIo(data2, "read -P 0xa5 4M 128k", false, &out)) << out;
  {
    Output check = Exec({"qemu-img", "check", root2});
    EXPECT_EQ(check.rc, 0) << check.text;
  }
  Output settled = Gv({"plan", "--detailed-exitcode"});
  EXPECT_EQ(settled.rc, 0) << settled.text;

  // It runs from there.
  WriteVm("hv2", "Running", "");
  Output started = Gv({"apply", "--auto-approve"});
  ASSERT_EQ(started.rc, 0) << started.text;
  EXPECT_EQ(hv2.State("mig-01"), "running");
  Output describe = Gv({"describe", "vm", "mig-01"});
  EXPECT_NE(describe.text.find("Migrations:"), std::string::npos) << describe.text;
  EXPECT_NE(describe.text.find("hv1 -> hv2  offline"), std::string::npos) << describe.text;

  // ---- live: hv2 -> hv1, copying the disks while it runs
  WriteVm("hv1", "Running", "  migration: {copyStorage: true}\n");
  Output live_plan = Gv({"plan"});
  ASSERT_EQ(live_plan.rc, 0) << live_plan.text;
  EXPECT_NE(live_plan.text.find("mode: live"), std::string::npos) << live_plan.text;
  {
    // libvirt's migration call fails: the VM runs on where it was, the empty volumes made for
    // it on hv1 are gone.
    Output failed = Gv({"apply", "--auto-approve"}, "GITVIRT_FAULTS=migrate:1");
    ASSERT_EQ(failed.rc, 1) << failed.text;
    EXPECT_EQ(hv2.State("mig-01"), "running");
    EXPECT_FALSE(hv1.Exists("mig-01"));
    for (const std::string& v : hv1.Volumes("default")) EXPECT_FALSE(v.starts_with("mig-01")) << v << " left on hv1";
  }
  Output live = Gv({"apply", "--auto-approve"});
  std::cout << "[timing] live migration apply: " << live.seconds << " s\n";
  if (live.rc != 0) {
    // The job failed and (FULL) moved nothing: the VM must still run on hv2, intact.
    EXPECT_TRUE(hv2.Exists("mig-01")) << live.text;
    EXPECT_EQ(hv2.State("mig-01"), "running");
    EXPECT_FALSE(hv1.Exists("mig-01"));
    EXPECT_EQ(hv1.Volumes("default"), std::set<std::string>{"base.qcow2"}) << "copies left on hv1";
    EXPECT_TRUE(QemuIo(root2, "read -P 0x5a 1M 64k", true, &out)) << out;
    const auto at = live.text.find("migrate/mig-01");
    GTEST_SKIP() << "live migration is not possible here; gitvirt reported:\n"
                 << (at == std::string::npos ? live.text : live.text.substr(at));
  }
  EXPECT_FALSE(hv2.Exists("mig-01"));
  ASSERT_TRUE(hv1.Exists("mig-01"));
  EXPECT_EQ(hv1.State("mig-01"), "running");
  EXPECT_EQ(hv2.Volumes("default"), std::set<std::string>{"base.qcow2"});
  EXPECT_TRUE(hv1.Volumes("default").contains(seed)) << "the seed did not come back";
  const std::string root_back = hv1.VolumePath("default", "mig-01-root.qcow2");
  const std::string data_back = hv1.VolumePath("default", "mig-01-data.qcow2");
  EXPECT_EQ(BackingOf(root_back), image1);
  EXPECT_TRUE(QemuIo(root_back, "read -P 0x5a 1M 64k", true, &out)) << out;
  EXPECT_TRUE(QemuIo(data_back, "read -P 0xa5 4M 128k", true, &out)) << out;
  Output after_live = Gv({"plan", "--detailed-exitcode"});
  EXPECT_EQ(after_live.rc, 0) << after_live.text;
  Output described = Gv({"describe", "vm", "mig-01"});
  EXPECT_NE(described.text.find("hv2 -> hv1  live"), std::string::npos) << described.text;

  // ---- allowOffline: the live migration fails (injected), the VM is shut down (forced after
  // 5 s: no guest OS answers ACPI), moved offline and started on hv2.
  WriteVm("hv2", "Running", "  migration: {copyStorage: true, allowOffline: true}\n");
  Output fallback = Gv({"apply", "--auto-approve"}, "GITVIRT_FAULTS=migrate:1");
  ASSERT_EQ(fallback.rc, 0) << fallback.text;
  EXPECT_FALSE(hv1.Exists("mig-01"));
  ASSERT_TRUE(hv2.Exists("mig-01"));
  EXPECT_EQ(hv2.State("mig-01"), "running");
  const std::string root_fb = hv2.VolumePath("default", "mig-01-root.qcow2");
  EXPECT_TRUE(QemuIo(root_fb, "read -P 0x5a 1M 64k", true, &out)) << out;
  EXPECT_TRUE(QemuIo(hv2.VolumePath("default", "mig-01-data.qcow2"), "read -P 0xa5 4M 128k", true, &out)) << out;
  // The empty disks made for the live copy were not taken for copies: the markers above say so.
  Output fell = Gv({"describe", "vm", "mig-01"});
  EXPECT_NE(fell.text.find("hv1 -> hv2  offline (live failed)"), std::string::npos) << fell.text;
  EXPECT_NE(fell.text.find("injected fault: migrate"), std::string::npos) << fell.text;
}

// A NIC on a bridge the host does not have fails the plan, naming the host's interfaces as
// libvirt lists them (the check a migration's target gets too).
TEST_F(MigrationQemu, ABridgeTheHostLacksFailsThePlan) {
  WriteFile(work_->path() / "manifests" / "br-01.yaml",
            "apiVersion: gitvirt.dev/v1\nkind: VirtualMachine\nmetadata: {name: br-01}\nspec:\n  node: hv1\n"
            "  vcpus: 1\n  memory: 512MiB\n  networks: [{bridge: gvnobr0}]\n");
  Output plan = Gv({"plan"});
  EXPECT_EQ(plan.rc, 1) << plan.text;
  EXPECT_NE(plan.text.find("uses bridge \"gvnobr0\", which does not exist on node hv1 (its interfaces: "),
            std::string::npos)
      << plan.text;
  EXPECT_NE(plan.text.find("lo"), std::string::npos) << plan.text;
  EXPECT_FALSE(Virsh(a_->qemu_uri()).Exists("br-01"));
}

// A UEFI VM that moves offline leaves its firmware variables on the source (the plan says so)
// instead of having them deleted with its definition there, and starts on the target.
TEST_F(MigrationQemu, OfflineUefiLeavesTheFirmwareVariablesOnTheSource) {
  ScopedEnv tcg("GITVIRT_VIRT_TYPE", "qemu");
  const Virsh hv1(a_->qemu_uri()), hv2(b_->qemu_uri());
  auto write = [&](const std::string& node, const std::string& power) {
    WriteFile(work_->path() / "manifests" / "efi-01.yaml",
              "apiVersion: gitvirt.dev/v1\nkind: VirtualMachine\nmetadata: {name: efi-01}\nspec:\n  node: " + node +
                  "\n  vcpus: 1\n  memory: 512MiB\n  firmware: {type: uefi}\n  powerState: " + power +
                  "\n  disks:\n    - {name: root, size: 64MiB}\n"
                  "  updatePolicy: {restart: Allowed, shutdownTimeout: 2s, forceOff: true}\n");
  };
  // Running once makes libvirt create the variable store from the template.
  write("hv1", "Running");
  Output created = Gv({"apply", "--auto-approve"});
  ASSERT_EQ(created.rc, 0) << created.text;
  write("hv1", "Stopped");
  Output stopped = Gv({"apply", "--auto-approve"});
  ASSERT_EQ(stopped.rc, 0) << stopped.text;
  ASSERT_EQ(hv1.State("efi-01"), "shut off");
  // With firmware auto-selection the definition names no variable store: libvirt keeps it at
  // its default path.
  const std::string xml = hv1.Must({"dumpxml", "efi-01"});
  std::string nvram = "/var/lib/libvirt/qemu/nvram/efi-01_VARS.fd";
  if (const auto open = xml.find("<nvram"); open != std::string::npos) {
    const auto from = xml.find('>', open) + 1;
    nvram = xml.substr(from, xml.find("</nvram>", from) - from);
  }
  ASSERT_TRUE(nvram.starts_with("/var/lib/libvirt/")) << nvram;
  // The daemons' /var/lib/libvirt is their own directory's lib/ (tests/harness/libvirtd.sh).
  const fs::path on_hv1 = fs::path(a_->dir()) / "lib" / nvram.substr(std::string("/var/lib/libvirt/").size());
  ASSERT_TRUE(fs::exists(on_hv1)) << on_hv1;
  const std::string before = Sha256(on_hv1);

  write("hv2", "Stopped");
  Output plan = Gv({"plan"});
  ASSERT_EQ(plan.rc, 0) << plan.text;
  EXPECT_NE(plan.text.find("mode: offline"), std::string::npos) << plan.text;
  EXPECT_NE(plan.text.find("does not carry the UEFI variables (NVRAM): they stay on hv1"), std::string::npos)
      << plan.text;
  Output moved = Gv({"apply", "--auto-approve"});
  ASSERT_EQ(moved.rc, 0) << moved.text;
  EXPECT_FALSE(hv1.Exists("efi-01"));
  ASSERT_TRUE(hv2.Exists("efi-01"));
  ASSERT_TRUE(fs::exists(on_hv1)) << "the variables were deleted with the source's definition";
  EXPECT_EQ(Sha256(on_hv1), before);

  write("hv2", "Running");
  Output started = Gv({"apply", "--auto-approve"});
  ASSERT_EQ(started.rc, 0) << started.text;
  EXPECT_EQ(hv2.State("efi-01"), "running");
}

}  // namespace
}  // namespace gitvirt::testing
