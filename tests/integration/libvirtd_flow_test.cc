// Issue 3, end to end: the real `gitvirt` binary (GITVIRT_BINARY) plans and applies temporary
// manifests against a private libvirtd (tests/harness/libvirtd.sh), through its QEMU driver and
// through its test driver. Everything is checked independently of gitvirt's observer, with
// `virsh` and `qemu-img`:
//
//   QemuFlow        linked clone + empty data disk, running; memory raise restarts the VM;
//                   disk growth grows the volume; --prune removes domain and volumes but not
//                   the image; a hand-made domain is untouched and listed as Unmanaged; plan
//                   is empty after every apply (the normaliser test).
//   TestDriverFlow  create, update, prune through test+unix:///default (one connection is
//                   held open for the whole test: the daemon resets the test driver's state
//                   when its last connection closes).
//   QemuFirmwareAndDevices  a UEFI VM and a VM with guest agent + VNC start, plan is empty.
//   OwnershipSafety a manifest VM whose name a hand-made domain has: plan fails naming it,
//                   apply changes nothing.
//
// No guest OS runs in these domains, so ACPI shutdown never completes: the VMs say
// `updatePolicy: {restart: Allowed, shutdownTimeout: 5s, forceOff: true}`.
// Set GITVIRT_KEEP_LIBVIRTD_DIR=1 to keep the daemon's directory (logs, XML) and the test's
// (gitvirt.yaml, manifests, state); a failing test prints the tails of libvirtd.log and of the
// guests' QEMU logs.
#include <gtest/gtest.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
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

constexpr std::uint64_t kMiB = 1024 * 1024;
// Bounds every child process, so a hang fails the test instead of eating the ctest timeout.
constexpr const char* kCommandTimeout = "600";

// ---- processes ---------------------------------------------------------------------------

struct Output {
  int rc = -1;
  std::string text;
  double seconds = 0;
};

Output Run(std::vector<std::string> argv) {
  Output out;
  argv.insert(argv.begin(), {"timeout", "-k", "10", kCommandTimeout});
  const auto start = Clock::now();
  out.rc = RunCommand(std::move(argv), &out.text);
  out.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return out;
}

std::string Describe(const std::vector<std::string>& argv, const Output& out) {
  std::string cmd;
  for (const std::string& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
  return "$ " + cmd + "\n(exit " + std::to_string(out.rc) + ", " + std::to_string(out.seconds) + " s)\n" + out.text;
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
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

std::string Tail(const std::string& text, std::size_t lines) {
  std::size_t pos = text.size();
  for (std::size_t n = 0; n <= lines && pos > 0; ++n) {
    pos = text.rfind('\n', pos - 1);
    if (pos == std::string::npos) return text;
  }
  return text.substr(pos + 1);
}

// Seconds each named step took, printed at the end of a test (and recorded as properties).
class Timings {
 public:
  void Add(const std::string& what, double seconds) { entries_.emplace_back(what, seconds); }
  ~Timings() {
    if (entries_.empty()) return;
    std::ostringstream s;
    for (const auto& [what, seconds] : entries_) {
      s << "[timing] " << what << ": " << seconds << " s\n";
      ::testing::Test::RecordProperty("seconds: " + what, std::to_string(seconds));
    }
    std::cout << s.str() << std::flush;
  }

 private:
  std::vector<std::pair<std::string, double>> entries_;
};

// Sets an environment variable for gitvirt runs, restoring the previous value afterwards.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value != nullptr) {
      setenv(name, value, 1);
    } else {
      unsetenv(name);
    }
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

// ---- virsh and qemu-img ------------------------------------------------------------------

class Virsh {
 public:
  explicit Virsh(std::string uri) : uri_(std::move(uri)) {}

  Output operator()(std::vector<std::string> args) const {
    args.insert(args.begin(), {"virsh", "-q", "-c", uri_});
    return Run(std::move(args));
  }
  // Output of a virsh command that must succeed (an empty string and a test failure otherwise).
  std::string Must(std::vector<std::string> args) const {
    Output out = (*this)(args);
    args.insert(args.begin(), {"virsh", "-q", "-c", uri_});
    EXPECT_EQ(out.rc, 0) << Describe(args, out);
    return out.rc == 0 ? out.text : std::string();
  }

  bool Exists(const std::string& domain) const { return (*this)({"dominfo", domain}).rc == 0; }
  std::string State(const std::string& domain) const { return Trim(Must({"domstate", domain})); }
  std::string Id(const std::string& domain) const { return Trim(Must({"domid", domain})); }
  std::string InactiveXml(const std::string& domain) const { return Must({"dumpxml", "--inactive", domain}); }
  std::string LiveXml(const std::string& domain) const { return Must({"dumpxml", domain}); }

  // A "Key:   value" field of `virsh dominfo` / `virsh vol-info`.
  static std::string Field(const std::string& text, const std::string& key) {
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
      if (line.starts_with(key + ":")) return Trim(line.substr(key.size() + 1));
    }
    return {};
  }

  std::uint64_t MaxMemoryKiB(const std::string& domain) const {
    const std::string v = Field(Must({"dominfo", domain}), "Max memory");  // "786432 KiB"
    return v.empty() ? 0 : std::stoull(v);
  }

  std::set<std::string> Volumes(const std::string& pool) const {
    std::set<std::string> names;
    std::istringstream in(Must({"vol-list", pool}));
    for (std::string line; std::getline(in, line);) {
      std::istringstream words(line);
      std::string name;
      if (words >> name) names.insert(name);
    }
    return names;
  }

  std::uint64_t VolumeCapacity(const std::string& pool, const std::string& volume) const {
    const std::string v = Field(Must({"vol-info", "--bytes", "--pool", pool, volume}), "Capacity");
    return v.empty() ? 0 : std::stoull(v);
  }
  std::string VolumePath(const std::string& pool, const std::string& volume) const {
    return Trim(Must({"vol-path", "--pool", pool, volume}));
  }

  std::set<std::string> Domains() const {
    std::set<std::string> names;
    std::istringstream in(Must({"list", "--all", "--name"}));
    for (std::string line; std::getline(in, line);) {
      if (!Trim(line).empty()) names.insert(Trim(line));
    }
    return names;
  }
  std::set<std::string> Pools() const {
    std::set<std::string> names;
    std::istringstream in(Must({"pool-list", "--all", "--name"}));
    for (std::string line; std::getline(in, line);) {
      if (!Trim(line).empty()) names.insert(Trim(line));
    }
    return names;
  }

 private:
  std::string uri_;
};

// `qemu-img info --backing-chain` of an image that may be in use by a running guest (-U).
nlohmann::json BackingChain(const std::string& path) {
  std::vector<std::string> argv = {"qemu-img", "info", "-U", "--backing-chain", "--output=json", path};
  Output out = Run(argv);
  EXPECT_EQ(out.rc, 0) << Describe(argv, out);
  auto j = nlohmann::json::parse(out.text, nullptr, false);
  return j.is_array() ? j : nlohmann::json::array();
}

std::string Sha256(const fs::path& file) {
  Output out = Run({"sha256sum", file.string()});
  EXPECT_EQ(out.rc, 0) << out.text;
  return out.text.substr(0, 64);
}

// ---- a gitvirt set-up: config, manifests, state ------------------------------------------

class Gitvirt {
 public:
  Gitvirt(const fs::path& dir, const std::string& uri, const fs::path& pool_dir) : dir_(dir) {
    std::ostringstream config;
    config << "apiVersion: gitvirt.dev/v1\n"
              "kind: ControllerConfig\n"
              "source:\n"
              "  path: manifests\n"
              "nodes:\n"
              "  - name: hv1\n"
              "    uri: \""
           << uri
           << "\"\n"
              "    pools:\n"
              "      - {name: default, path: "
           << pool_dir.string()
           << "}\n"
              "state: state/gitvirt.db\n";
    WriteFile(dir_ / "gitvirt.yaml", config.str());
    fs::create_directories(dir_ / "manifests");
    fs::create_directories(dir_ / "state");
  }

  void Write(const std::string& file, const std::string& yaml) { WriteFile(dir_ / "manifests" / file, yaml); }
  void Remove(const std::string& file) { fs::remove(dir_ / "manifests" / file); }

  Output operator()(std::vector<std::string> args) {
    args.insert(args.begin(), {GITVIRT_BINARY, "--config", (dir_ / "gitvirt.yaml").string()});
    last_argv_ = args;
    return Run(std::move(args));
  }
  std::string Explain(const Output& out) const { return Describe(last_argv_, out); }

  // `apply --auto-approve [extra]`, which must succeed.
  double Apply(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"apply", "--auto-approve"};
    args.insert(args.end(), extra.begin(), extra.end());
    Output out = (*this)(args);
    EXPECT_EQ(out.rc, 0) << Explain(out);
    return out.seconds;
  }

  // `plan --detailed-exitcode` right after an apply: no changes (exit 0). Anything else shows
  // the diff gitvirt still sees (a normaliser gap if the apply succeeded).
  void ExpectNoChanges(const std::string& after, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"plan", "--detailed-exitcode", "--no-color"};
    args.insert(args.end(), extra.begin(), extra.end());
    Output out = (*this)(args);
    EXPECT_EQ(out.rc, 0) << "spurious diff after " << after << ":\n" << Explain(out);
  }

  const fs::path& dir() const { return dir_; }

 private:
  fs::path dir_;
  std::vector<std::string> last_argv_;
};

std::string ImageYaml(const std::string& name, const fs::path& file, const std::string& sha256) {
  return "apiVersion: gitvirt.dev/v1\n"
         "kind: Image\n"
         "metadata: {name: " + name + "}\n"
         "spec:\n"
         "  source: " + file.string() + "\n"
         "  sha256: " + sha256 + "\n"
         "  format: qcow2\n"
         "  pool: default\n";
}

// A VM with a linked-clone root disk of `image` and an empty data disk.
std::string ClonedVmYaml(const std::string& name, const std::string& image, const std::string& memory,
                         const std::string& data_size) {
  return "apiVersion: gitvirt.dev/v1\n"
         "kind: VirtualMachine\n"
         "metadata: {name: " + name + ", labels: {suite: integration}}\n"
         "spec:\n"
         "  node: hv1\n"
         "  vcpus: 1\n"
         "  memory: " + memory + "\n"
         "  disks:\n"
         "    - name: root\n"
         "      size: 1GiB\n"
         "      source: {image: " + image + ", clone: linked}\n"
         "    - name: data\n"
         "      size: " + data_size + "\n"
         "  updatePolicy: {restart: Allowed, shutdownTimeout: 5s, forceOff: true}\n";
}

std::string HandmadeXml(const std::string& virt_type, const std::string& name, const fs::path& disk) {
  return "<domain type='" + virt_type + "'><name>" + name +
         "</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>"
         "<os><type arch='x86_64' machine='q35'>hvm</type></os>"
         "<devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
         "<source file='" + disk.string() + "'/><target dev='vda' bus='virtio'/></disk></devices>"
         "</domain>";
}

void CreateQcow2(const fs::path& file, const std::string& size) {
  std::vector<std::string> argv = {"qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=1.1", file.string(), size};
  Output out = Run(argv);
  ASSERT_EQ(out.rc, 0) << Describe(argv, out);
}

// The lines of `gitvirt get vms -o wide` for a VM, joined ("" if none).
std::string VmRow(const std::string& table, const std::string& vm) {
  std::string rows;
  std::istringstream in(table);
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    std::string first;
    if (words >> first && first == vm) rows += line + "\n";
  }
  return rows;
}

// ---- fixture -----------------------------------------------------------------------------

class LibvirtdFlow : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!PrivateLibvirtd::Available(&why)) GTEST_SKIP() << "private libvirtd unavailable: " << why;
    const auto start = Clock::now();
    auto daemon = PrivateLibvirtd::Start();
    ASSERT_TRUE(daemon) << daemon.error();
    daemon_ = std::move(*daemon);
    timings_.Add("private libvirtd start", std::chrono::duration<double>(Clock::now() - start).count());
    work_.emplace("gvit");
  }

  void TearDown() override {
    if (HasFailure() && daemon_) {
      // The post-mortem, before the daemon's directory goes away.
      std::ostringstream s;
      s << "---- " << daemon_->log_path() << " (tail)\n" << Tail(ReadFile(daemon_->log_path()), 40);
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(fs::path(daemon_->dir()) / "log" / "qemu", ec)) {
        s << "---- " << e.path() << " (tail)\n" << Tail(ReadFile(e.path()), 15);
      }
      std::cout << s.str() << std::flush;
    }
    if (const char* keep = std::getenv("GITVIRT_KEEP_LIBVIRTD_DIR"); keep != nullptr && *keep == '1' && work_) {
      work_->Keep();
      std::cout << "kept " << work_->path() << " (gitvirt.yaml, manifests, state)\n";
    }
    daemon_.reset();
  }

  PrivateLibvirtd& daemon() { return *daemon_; }
  const fs::path& work() { return work_->path(); }

  std::unique_ptr<PrivateLibvirtd> daemon_;
  std::optional<TempDir> work_;
  Timings timings_;
};

// ---- 1. the QEMU driver ------------------------------------------------------------------

TEST_F(LibvirtdFlow, QemuFlow) {
  const Virsh virsh(daemon().qemu_uri());
  const fs::path pool_dir = work() / "pool";
  fs::create_directories(pool_dir);

  // The image: a small qcow2 v3 file, imported by its real checksum.
  const fs::path base = work() / "base.qcow2";
  ASSERT_NO_FATAL_FAILURE(CreateQcow2(base, "64M"));

  // A domain made by hand on the same host, with its disk in the directory gitvirt's pool
  // will use: gitvirt must never touch either.
  const fs::path hand_disk = pool_dir / "handmade.qcow2";
  ASSERT_NO_FATAL_FAILURE(CreateQcow2(hand_disk, "32M"));
  WriteFile(work() / "handmade.xml", HandmadeXml(daemon().virt_type(), "handmade", hand_disk));
  virsh.Must({"define", (work() / "handmade.xml").string()});
  virsh.Must({"start", "handmade"});
  ASSERT_EQ(virsh.State("handmade"), "running");
  const std::string hand_id = virsh.Id("handmade");
  const std::string hand_inactive = virsh.InactiveXml("handmade");
  const std::string hand_live = virsh.LiveXml("handmade");
  auto expect_handmade_untouched = [&](const std::string& after) {
    SCOPED_TRACE("hand-made domain after " + after);
    ASSERT_TRUE(virsh.Exists("handmade"));
    EXPECT_EQ(virsh.State("handmade"), "running");
    EXPECT_EQ(virsh.Id("handmade"), hand_id) << "restarted";
    EXPECT_EQ(virsh.InactiveXml("handmade"), hand_inactive);
    EXPECT_EQ(virsh.LiveXml("handmade"), hand_live);
    EXPECT_TRUE(fs::exists(hand_disk));
  };

  Gitvirt gv(work(), daemon().qemu_uri(), pool_dir);
  gv.Write("image.yaml", ImageYaml("base", base, Sha256(base)));
  gv.Write("vm.yaml", ClonedVmYaml("vm1", "base", "512MiB", "256MiB"));

  // ---- create
  {
    Output plan = gv({"plan", "--detailed-exitcode", "--no-color"});
    EXPECT_EQ(plan.rc, 2) << gv.Explain(plan);
    EXPECT_NE(plan.text.find("create VirtualMachine/vm1"), std::string::npos) << plan.text;
    timings_.Add("gitvirt plan (before create)", plan.seconds);
  }
  timings_.Add("gitvirt apply: import image, create vm1, first QEMU start", gv.Apply());
  ASSERT_FALSE(HasFailure());
  EXPECT_EQ(virsh.State("vm1"), "running");
  const std::set<std::string> volumes = virsh.Volumes("default");
  EXPECT_TRUE(volumes.contains("base.qcow2")) << ::testing::PrintToString(volumes);
  EXPECT_TRUE(volumes.contains("vm1-root.qcow2")) << ::testing::PrintToString(volumes);
  EXPECT_TRUE(volumes.contains("vm1-data.qcow2")) << ::testing::PrintToString(volumes);
  const std::string image_path = virsh.VolumePath("default", "base.qcow2");
  const std::string root_path = virsh.VolumePath("default", "vm1-root.qcow2");
  const std::string data_path = virsh.VolumePath("default", "vm1-data.qcow2");
  EXPECT_EQ(Sha256(image_path), Sha256(base)) << "the imported image is not the file's bytes";
  {
    // The root disk is a qcow2 v3 overlay whose backing file is the imported image.
    const nlohmann::json chain = BackingChain(root_path);
    ASSERT_EQ(chain.size(), 2u) << chain.dump(2);
    EXPECT_EQ(chain[0].value("format", ""), "qcow2");
    EXPECT_EQ(chain[0].value("virtual-size", 0ull), 1024 * kMiB);
    EXPECT_EQ(chain[0]["format-specific"]["data"].value("compat", ""), "1.1") << chain[0].dump(2);
    EXPECT_EQ(chain[0].value("full-backing-filename", ""), image_path) << chain[0].dump(2);
    EXPECT_EQ(chain[0].value("backing-filename-format", ""), "qcow2");
    EXPECT_EQ(chain[1].value("filename", ""), image_path);
    // The data disk: an empty qcow2 v3 of its own.
    const nlohmann::json data = BackingChain(data_path);
    ASSERT_EQ(data.size(), 1u) << data.dump(2);
    EXPECT_EQ(data[0].value("virtual-size", 0ull), 256 * kMiB);
    EXPECT_EQ(data[0]["format-specific"]["data"].value("compat", ""), "1.1");
    EXPECT_FALSE(data[0].contains("backing-filename"));
  }
  {
    // Both disks are attached to the running domain, as vda and vdb, at their sizes.
    const std::string blk = virsh.Must({"domblklist", "vm1"});
    EXPECT_NE(blk.find("vda   vm1-root.qcow2"), std::string::npos) << blk;
    EXPECT_NE(blk.find("vdb   vm1-data.qcow2"), std::string::npos) << blk;
    EXPECT_EQ(virsh.Field(virsh.Must({"domblkinfo", "vm1", "vdb"}), "Capacity"), std::to_string(256 * kMiB));
  }
  EXPECT_EQ(virsh.MaxMemoryKiB("vm1"), 512u * 1024);
  expect_handmade_untouched("create");
  gv.ExpectNoChanges("create");
  {
    Output get = gv({"get", "vms", "-o", "wide"});
    EXPECT_EQ(get.rc, 0) << gv.Explain(get);
    const std::string row = VmRow(get.text, "handmade");
    EXPECT_NE(row.find("Unmanaged"), std::string::npos) << get.text;
    EXPECT_NE(row.find("<not gitvirt's>"), std::string::npos) << get.text;
    EXPECT_EQ(VmRow(get.text, "vm1").find("Unmanaged"), std::string::npos) << get.text;
    // The same in JSON: gitvirt's VMs in items, the hand-made domain under unmanaged.
    Output json = gv({"get", "vms", "-o", "json"});
    ASSERT_EQ(json.rc, 0) << gv.Explain(json);
    const auto doc = nlohmann::json::parse(json.text);
    std::vector<std::string> items, unmanaged;
    for (const auto& item : doc.at("items")) items.push_back(item.at("name"));
    for (const auto& item : doc.at("unmanaged")) unmanaged.push_back(item.at("name"));
    EXPECT_NE(std::find(items.begin(), items.end(), "vm1"), items.end()) << json.text;
    EXPECT_EQ(std::find(items.begin(), items.end(), "handmade"), items.end()) << json.text;
    EXPECT_NE(std::find(unmanaged.begin(), unmanaged.end(), "handmade"), unmanaged.end()) << json.text;
    EXPECT_EQ(std::find(unmanaged.begin(), unmanaged.end(), "vm1"), unmanaged.end()) << json.text;
  }

  // ---- raise the memory: needs a restart, which the policy allows
  {
    const std::string id_before = virsh.Id("vm1");
    gv.Write("vm.yaml", ClonedVmYaml("vm1", "base", "768MiB", "256MiB"));
    Output plan = gv({"plan", "--no-color"});
    EXPECT_NE(plan.text.find("shutdown VirtualMachine/vm1"), std::string::npos) << gv.Explain(plan);
    timings_.Add("gitvirt apply: memory 512MiB -> 768MiB (shutdown 5s timeout, force off, redefine, start)",
                 gv.Apply());
    EXPECT_EQ(virsh.MaxMemoryKiB("vm1"), 768u * 1024);
    EXPECT_EQ(virsh.State("vm1"), "running");
    EXPECT_NE(virsh.Id("vm1"), id_before) << "vm1 was not restarted";
    expect_handmade_untouched("memory change");
    gv.ExpectNoChanges("memory change");
  }

  // ---- grow the data disk (live, the VM keeps running)
  {
    const std::string id_before = virsh.Id("vm1");
    gv.Write("vm.yaml", ClonedVmYaml("vm1", "base", "768MiB", "512MiB"));
    timings_.Add("gitvirt apply: data disk 256MiB -> 512MiB", gv.Apply());
    EXPECT_EQ(virsh.VolumeCapacity("default", "vm1-data.qcow2"), 512 * kMiB);
    const nlohmann::json data = BackingChain(data_path);
    ASSERT_FALSE(data.empty());
    EXPECT_EQ(data[0].value("virtual-size", 0ull), 512 * kMiB);
    // The running guest sees the new size (a live block resize, not only the file).
    EXPECT_EQ(virsh.Field(virsh.Must({"domblkinfo", "vm1", "vdb"}), "Capacity"), std::to_string(512 * kMiB));
    EXPECT_EQ(virsh.State("vm1"), "running");
    EXPECT_EQ(virsh.Id("vm1"), id_before) << "growing a disk restarted the VM";
    expect_handmade_untouched("disk growth");
    gv.ExpectNoChanges("disk growth");
  }

  // ---- remove it from the manifests and prune
  {
    gv.Remove("vm.yaml");
    // Without --prune the VM is only reported as pending: nothing to do, but the hypervisor still
    // differs from the manifests (exit 2, as terraform).
    Output plan = gv({"plan", "--detailed-exitcode", "--no-color"});
    EXPECT_EQ(plan.rc, 2) << gv.Explain(plan);
    EXPECT_NE(plan.text.find("VirtualMachine/vm1 on hv1: not in the repository any more"), std::string::npos)
        << gv.Explain(plan);
    EXPECT_TRUE(virsh.Exists("vm1"));
    timings_.Add("gitvirt apply --prune: delete vm1 and its volumes", gv.Apply({"--prune"}));
    EXPECT_FALSE(virsh.Exists("vm1"));
    const std::set<std::string> left = virsh.Volumes("default");
    EXPECT_FALSE(left.contains("vm1-root.qcow2")) << ::testing::PrintToString(left);
    EXPECT_FALSE(left.contains("vm1-data.qcow2")) << ::testing::PrintToString(left);
    EXPECT_TRUE(left.contains("base.qcow2")) << "the image went too: " << ::testing::PrintToString(left);
    EXPECT_TRUE(left.contains("handmade.qcow2")) << ::testing::PrintToString(left);
    EXPECT_FALSE(fs::exists(root_path));
    EXPECT_FALSE(fs::exists(data_path));
    EXPECT_TRUE(fs::exists(image_path));
    expect_handmade_untouched("prune");
    gv.ExpectNoChanges("prune", {"--prune"});
  }
  EXPECT_EQ(virsh.Domains(), (std::set<std::string>{"handmade"}));
}

// ---- 2. the test driver, served by the same kind of daemon -------------------------------

TEST_F(LibvirtdFlow, TestDriverFlow) {
  // The daemon keeps test:///default's state only while a connection is open: hold one.
  std::unique_ptr<virConnect, int (*)(virConnectPtr)> hold(virConnectOpen(daemon().test_uri().c_str()),
                                                           virConnectClose);
  ASSERT_TRUE(hold) << virGetLastErrorMessage();
  const Virsh virsh(daemon().test_uri());
  // The test driver's built-in domain `test` (running) is the hand-made domain here.
  ASSERT_EQ(virsh.State("test"), "running");
  const std::string test_inactive = virsh.InactiveXml("test");

  const fs::path base = work() / "base.qcow2";
  ASSERT_NO_FATAL_FAILURE(CreateQcow2(base, "64M"));
  Gitvirt gv(work(), daemon().test_uri(), "/gitvirt-test-pool");  // the test driver touches no files
  gv.Write("image.yaml", ImageYaml("base", base, Sha256(base)));
  gv.Write("vm.yaml", ClonedVmYaml("vm1", "base", "512MiB", "256MiB"));

  timings_.Add("gitvirt apply (test driver): import image, create and start vm1", gv.Apply());
  ASSERT_FALSE(HasFailure());
  EXPECT_EQ(virsh.State("vm1"), "running");
  EXPECT_EQ(virsh.MaxMemoryKiB("vm1"), 512u * 1024);
  {
    const std::set<std::string> volumes = virsh.Volumes("default");
    EXPECT_TRUE(volumes.contains("base.qcow2")) << ::testing::PrintToString(volumes);
    EXPECT_TRUE(volumes.contains("vm1-root.qcow2")) << ::testing::PrintToString(volumes);
    EXPECT_TRUE(volumes.contains("vm1-data.qcow2")) << ::testing::PrintToString(volumes);
    // The clone's backing store is the imported image's volume.
    const std::string vol_xml = virsh.Must({"vol-dumpxml", "--pool", "default", "vm1-root.qcow2"});
    EXPECT_NE(vol_xml.find("<path>" + virsh.VolumePath("default", "base.qcow2") + "</path>"), std::string::npos)
        << vol_xml;
    EXPECT_EQ(virsh.VolumeCapacity("default", "vm1-data.qcow2"), 256 * kMiB);
  }
  gv.ExpectNoChanges("create");
  {
    Output get = gv({"get", "vms", "-o", "wide"});
    EXPECT_EQ(get.rc, 0) << gv.Explain(get);
    EXPECT_NE(VmRow(get.text, "test").find("Unmanaged"), std::string::npos) << get.text;
  }

  // Update: more memory, through a restart.
  gv.Write("vm.yaml", ClonedVmYaml("vm1", "base", "768MiB", "256MiB"));
  timings_.Add("gitvirt apply (test driver): memory 512MiB -> 768MiB", gv.Apply());
  EXPECT_EQ(virsh.MaxMemoryKiB("vm1"), 768u * 1024);
  EXPECT_EQ(virsh.State("vm1"), "running");
  gv.ExpectNoChanges("memory change");

  // The test driver cannot resize volumes: growing a disk is refused at plan time.
  gv.Write("vm.yaml", ClonedVmYaml("vm1", "base", "768MiB", "512MiB"));
  {
    Output plan = gv({"plan", "--no-color"});
    EXPECT_EQ(plan.rc, 1) << gv.Explain(plan);
    EXPECT_NE(plan.text.find("cannot resize volumes"), std::string::npos) << gv.Explain(plan);
  }
  gv.Write("vm.yaml", ClonedVmYaml("vm1", "base", "768MiB", "256MiB"));

  // Prune.
  gv.Remove("vm.yaml");
  timings_.Add("gitvirt apply --prune (test driver)", gv.Apply({"--prune"}));
  EXPECT_FALSE(virsh.Exists("vm1"));
  {
    const std::set<std::string> left = virsh.Volumes("default");
    EXPECT_FALSE(left.contains("vm1-root.qcow2")) << ::testing::PrintToString(left);
    EXPECT_FALSE(left.contains("vm1-data.qcow2")) << ::testing::PrintToString(left);
    EXPECT_TRUE(left.contains("base.qcow2")) << ::testing::PrintToString(left);
  }
  gv.ExpectNoChanges("prune", {"--prune"});
  EXPECT_EQ(virsh.State("test"), "running");
  EXPECT_EQ(virsh.InactiveXml("test"), test_inactive);
  EXPECT_EQ(virsh.Domains(), (std::set<std::string>{"test"}));
}

// ---- 3. UEFI, guest agent, VNC on QEMU ---------------------------------------------------

std::string DeviceVmYaml(const std::string& name, const std::string& extra) {
  return "apiVersion: gitvirt.dev/v1\n"
         "kind: VirtualMachine\n"
         "metadata: {name: " + name + "}\n"
         "spec:\n"
         "  node: hv1\n"
         "  vcpus: 1\n"
         "  memory: 512MiB\n" +
         extra +
         "  disks:\n"
         "    - {name: root, size: 128MiB}\n"
         "  updatePolicy: {restart: Allowed, shutdownTimeout: 5s, forceOff: true}\n";
}

TEST_F(LibvirtdFlow, QemuFirmwareAndDevices) {
  // TCG: OVMF is guest code, and on hosts whose KVM cannot run a real guest (this machine's
  // kvm_pvm) it stops at once with "emulation failure" and the domain ends up paused.
  ScopedEnv tcg("GITVIRT_VIRT_TYPE", "qemu");
  const Virsh virsh(daemon().qemu_uri());
  const fs::path pool_dir = work() / "pool";
  Gitvirt gv(work(), daemon().qemu_uri(), pool_dir);
  gv.Write("uefi.yaml", DeviceVmYaml("vm-uefi", "  firmware: {type: uefi}\n"));
  gv.Write("devices.yaml", DeviceVmYaml("vm-dev", "  guestAgent: true\n  graphics: {type: vnc}\n"));

  timings_.Add("gitvirt apply: create + start vm-uefi and vm-dev (TCG)", gv.Apply());
  ASSERT_FALSE(HasFailure());
  EXPECT_EQ(virsh.State("vm-uefi"), "running");
  EXPECT_EQ(virsh.State("vm-dev"), "running");
  std::string nvram;
  {
    const std::string xml = virsh.LiveXml("vm-uefi");
    EXPECT_NE(xml.find("<domain type='qemu'"), std::string::npos) << xml;
    EXPECT_NE(xml.find("type='pflash'"), std::string::npos) << "no UEFI loader:\n" << xml;
    EXPECT_NE(xml.find("OVMF"), std::string::npos) << xml;
    const auto at = xml.find("<nvram");
    ASSERT_NE(at, std::string::npos) << xml;
    const auto open = xml.find('>', at) + 1;
    nvram = xml.substr(open, xml.find("</nvram>", open) - open);
    // The daemon's /var/lib/libvirt is DIR/lib.
    ASSERT_TRUE(nvram.starts_with("/var/lib/libvirt/")) << nvram;
    nvram = daemon().dir() + "/lib/" + nvram.substr(std::string("/var/lib/libvirt/").size());
    EXPECT_TRUE(fs::exists(nvram)) << nvram;
  }
  {
    const std::string xml = virsh.LiveXml("vm-dev");
    EXPECT_NE(xml.find("name='org.qemu.guest_agent.0'"), std::string::npos) << xml;
    EXPECT_NE(xml.find("<graphics type='vnc'"), std::string::npos) << xml;
    const std::string display = Trim(virsh.Must({"domdisplay", "vm-dev"}));
    EXPECT_TRUE(display.starts_with("vnc://127.0.0.1:")) << display;
    // The agent's channel is wired to QEMU (no guest answers it, so it stays disconnected).
    const std::string qemu_log = ReadFile(fs::path(daemon().dir()) / "log" / "qemu" / "vm-dev.log");
    EXPECT_NE(qemu_log.find("org.qemu.guest_agent.0"), std::string::npos) << Tail(qemu_log, 5);
  }
  gv.ExpectNoChanges("creating the UEFI and the agent/VNC VMs");

  // Deleting a UEFI domain needs the NVRAM flag; its variables file goes with it.
  gv.Remove("uefi.yaml");
  gv.Remove("devices.yaml");
  timings_.Add("gitvirt apply --prune: delete vm-uefi and vm-dev", gv.Apply({"--prune"}));
  EXPECT_FALSE(virsh.Exists("vm-uefi"));
  EXPECT_FALSE(virsh.Exists("vm-dev"));
  if (!nvram.empty()) {
    EXPECT_FALSE(fs::exists(nvram)) << nvram;
  }
  EXPECT_TRUE(virsh.Volumes("default").empty()) << ::testing::PrintToString(virsh.Volumes("default"));
}

// ---- 4. ownership safety -----------------------------------------------------------------

TEST_F(LibvirtdFlow, OwnershipSafety) {
  const Virsh virsh(daemon().qemu_uri());
  const fs::path pool_dir = work() / "pool";
  const fs::path disk = work() / "taken.qcow2";
  ASSERT_NO_FATAL_FAILURE(CreateQcow2(disk, "32M"));
  WriteFile(work() / "taken.xml", HandmadeXml(daemon().virt_type(), "taken", disk));
  virsh.Must({"define", (work() / "taken.xml").string()});
  virsh.Must({"start", "taken"});
  const std::string id = virsh.Id("taken");
  const std::string inactive = virsh.InactiveXml("taken");
  const std::string live = virsh.LiveXml("taken");
  const std::set<std::string> pools_before = virsh.Pools();

  Gitvirt gv(work(), daemon().qemu_uri(), pool_dir);
  gv.Write("taken.yaml", DeviceVmYaml("taken", ""));
  gv.Write("other.yaml", DeviceVmYaml("innocent", ""));

  Output plan = gv({"plan", "--no-color"});
  EXPECT_EQ(plan.rc, 1) << gv.Explain(plan);
  EXPECT_NE(plan.text.find("a domain named \"taken\""), std::string::npos) << gv.Explain(plan);
  EXPECT_NE(plan.text.find("not managed by gitvirt"), std::string::npos) << gv.Explain(plan);

  Output apply = gv({"apply", "--auto-approve"});
  EXPECT_NE(apply.rc, 0) << gv.Explain(apply);
  EXPECT_NE(apply.text.find("\"taken\""), std::string::npos) << gv.Explain(apply);

  // Nothing changed: the domain, its definition, its run, and no pool, volume or other VM.
  EXPECT_EQ(virsh.State("taken"), "running");
  EXPECT_EQ(virsh.Id("taken"), id);
  EXPECT_EQ(virsh.InactiveXml("taken"), inactive);
  EXPECT_EQ(virsh.LiveXml("taken"), live);
  EXPECT_EQ(virsh.Domains(), (std::set<std::string>{"taken"}));
  EXPECT_EQ(virsh.Pools(), pools_before);
  EXPECT_FALSE(fs::exists(pool_dir / "taken-root.qcow2"));
  EXPECT_FALSE(fs::exists(pool_dir / "innocent-root.qcow2"));
  Output get = gv({"get", "vms", "-o", "wide"});
  EXPECT_NE(VmRow(get.text, "taken").find("Unmanaged"), std::string::npos) << gv.Explain(get);
}

}  // namespace
}  // namespace gitvirt::testing
