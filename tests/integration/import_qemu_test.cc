// Issue 15 on real QEMU: a dozen domains made by hand with virsh on a private libvirtd (two disks
// on different buses, one a pool volume and one a file; two user-mode NICs with fixed MACs and
// different models; a cdrom; UEFI with secure boot and an emulated TPM; VNC; a sound card, which
// a manifest cannot express; running, stopped and paused ones) are imported with the real
// `gitvirt` binary and adopted without a restart:
//
//   import --all --out DIR --adopt -> validate -> plan (only `& adopt`, 12 of them) -> apply ->
//   the next plan is empty; every domain's definition (and a running one's live XML) is what it
//   was except <metadata>, which now holds gitvirt's owner mark; every QEMU process id and every
//   power state is unchanged.
//
// And the refusals, each exit 1 with nothing written and no domain touched: importing into a
// directory whose files would be overwritten, a name a manifest already declares, a domain
// gitvirt owns. The guests run no OS (TCG).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "libvirtd_harness.h"
#include "process.h"
#include "temp_dir.h"

namespace gitvirt::testing {
namespace {

namespace fs = std::filesystem;

struct Output {
  int rc = -1;
  std::string text;
};

Output Exec(std::vector<std::string> argv) {
  Output out;
  argv.insert(argv.begin(), {"timeout", "-k", "10", "600"});
  out.rc = RunCommand(std::move(argv), &out.text);
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

// The XML without its <metadata> element (the one thing adoption may change).
std::string WithoutMetadata(const std::string& xml) {
  return std::regex_replace(xml, std::regex(R"(\s*<metadata>[\s\S]*?</metadata>)"), "");
}

std::size_t Count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + what.size())) ++n;
  return n;
}

// One hand-made domain: its devices, and the power state it is left in.
struct HandMade {
  std::string name;
  std::string power;  // running | shut off | paused
  std::string os;     // <os> body
  std::string devices;
  std::string extra;  // top-level elements after <vcpu>
};

class ImportQemu : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!PrivateLibvirtd::Available(&why)) GTEST_SKIP() << "private libvirtd unavailable: " << why;
    auto d = PrivateLibvirtd::Start();
    ASSERT_TRUE(d) << d.error();
    daemon_ = std::move(*d);
    work_.emplace("gvimp");
    pool_ = work_->path() / "pool";
    fs::create_directories(pool_);
    fs::create_directories(work_->path() / "state");
    WriteFile(work_->path() / "gitvirt.yaml",
              "apiVersion: gitvirt.dev/v1\nkind: ControllerConfig\nnodes:\n  - name: hv1\n    uri: \"" +
                  daemon_->qemu_uri() + "\"\n    pools: [{name: default, path: " + pool_.string() +
                  "}]\nstate: state/gitvirt.db\n");
  }

  void TearDown() override {
    if (HasFailure() && daemon_) std::cout << "---- libvirtd log tail\n" << ReadFile(daemon_->log_path()).substr(0, 4000);
    if (const char* keep = std::getenv("GITVIRT_KEEP_LIBVIRTD_DIR"); keep != nullptr && *keep == '1' && work_) {
      work_->Keep();
    }
    daemon_.reset();
  }

  Output Virsh(std::vector<std::string> args) const {
    args.insert(args.begin(), {"virsh", "-q", "-c", daemon_->qemu_uri()});
    return Exec(std::move(args));
  }
  std::string MustVirsh(std::vector<std::string> args) const {
    Output out = Virsh(args);
    EXPECT_EQ(out.rc, 0) << "virsh " << args.front() << ": " << out.text;
    return out.text;
  }
  Output Gv(std::vector<std::string> args) const {
    args.insert(args.begin(), {GITVIRT_BINARY, "--config", (work_->path() / "gitvirt.yaml").string()});
    return Exec(std::move(args));
  }
  // The QEMU process of a running domain (its -name guest=NAME), 0 when none.
  static std::string QemuPid(const std::string& name) {
    // Anchored on the emulator, so that the `timeout` wrapping pgrep (whose command line holds
    // the pattern too) is not counted.
    Output out = Exec({"pgrep", "-f", "^[^ ]*qemu-system-x86_64 .*guest=" + name + ","});
    return Trim(out.text);
  }

  std::string DomainXml(const HandMade& d) const {
    // TCG: portable, and it emulates SMM, which secure boot needs (KVM here does not).
    return "<domain type='qemu'><name>" + d.name +
           "</name><memory unit='MiB'>96</memory><vcpu>1</vcpu>" + d.extra + "<os>" + d.os +
           "</os><features><acpi/><apic/></features><devices>" + d.devices +
           "<serial type='pty'/><console type='pty'/></devices></domain>";
  }

  std::unique_ptr<PrivateLibvirtd> daemon_;
  std::optional<TempDir> work_;
  fs::path pool_;
};

TEST_F(ImportQemu, ImportValidatePlanOnlyAdoptsApplyKeepsEveryDomainAndProcess) {
  // The pool, volumes and files, as an operator would make them.
  MustVirsh({"pool-define-as", "default", "dir", "--target", pool_.string()});
  MustVirsh({"pool-start", "default"});
  const std::string iso = (work_->path() / "tools.iso").string();
  WriteFile(work_->path() / "iso" / "README", "tools\n");
  ASSERT_EQ(Exec({"xorrisofs", "-quiet", "-o", iso, (work_->path() / "iso").string()}).rc, 0);

  const std::string q35 = "<type arch='x86_64' machine='q35'>hvm</type>";
  std::vector<HandMade> domains;
  // hand-06's root is a linked clone of a base named as an Image's volume.
  MustVirsh({"vol-create-as", "default", "tiny-base.qcow2", "16M", "--format", "qcow2"});
  for (int i = 1; i <= 12; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "hand-%02d", i);
    HandMade d{name, i % 3 == 1 ? "running" : i % 3 == 2 ? "shut off" : "paused", q35, "", ""};
    const std::string vol = d.name + "-root.qcow2";
    if (i == 6) {
      MustVirsh({"vol-create-as", "default", vol, "64M", "--format", "qcow2", "--backing-vol", "tiny-base.qcow2",
                 "--backing-vol-format", "qcow2"});
    } else {
      MustVirsh({"vol-create-as", "default", vol, "64M", "--format", "qcow2"});
    }
    const std::string data = (pool_ / (d.name + "-data.raw")).string();
    ASSERT_EQ(Exec({"qemu-img", "create", "-q", "-f", "raw", data, "32M"}).rc, 0);
    char mac1[32], mac2[32];
    std::snprintf(mac1, sizeof mac1, "52:54:00:15:%02x:01", i);
    std::snprintf(mac2, sizeof mac2, "52:54:00:15:%02x:02", i);
    d.devices =
        "<disk type='volume' device='disk'><driver name='qemu' type='qcow2' cache='none' discard='unmap'/>"
        "<source pool='default' volume='" + vol + "'/><target dev='vda' bus='virtio'/><boot order='1'/></disk>"
        "<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='" + data +
        "'/><target dev='sdb' bus='sata'/></disk>"
        "<interface type='user'><mac address='" + std::string(mac1) + "'/><model type='virtio'/></interface>"
        "<interface type='user'><mac address='" + std::string(mac2) + "'/><model type='e1000'/></interface>";
    if (i == 1) {
      // UEFI with secure boot (SMM on q35) and an emulated TPM 2.0.
      d.os = q35 + "<loader readonly='yes' secure='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.secboot.fd</loader>"
                   "<nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'/>";
      d.extra = "";
      d.devices += "<tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>";
    }
    if (i == 2 || i == 5) {
      d.devices += "<disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='" + iso +
                   "'/><target dev='sdc' bus='sata'/><readonly/></disk>";
    }
    if (i == 4) d.devices += "<graphics type='vnc' autoport='yes' listen='127.0.0.1'/><video><model type='vga'/></video>";
    if (i == 7) d.devices += "<sound model='ich9'/>";  // not expressible in a manifest
    std::string xml = DomainXml(d);
    if (i == 1) xml.replace(xml.find("<features>"), 10, "<features><smm state='on'/>");
    const fs::path file = work_->path() / "xml" / (d.name + ".xml");
    WriteFile(file, xml);
    MustVirsh({"define", file.string()});
    if (d.power != "shut off") MustVirsh({"start", d.name});
    if (d.power == "paused") MustVirsh({"suspend", d.name});
    domains.push_back(d);
  }

  std::map<std::string, std::string> inactive, live, pids;
  for (const HandMade& d : domains) {
    ASSERT_EQ(Trim(MustVirsh({"domstate", d.name})), d.power) << d.name;
    inactive[d.name] = MustVirsh({"dumpxml", "--inactive", d.name});
    if (d.power != "shut off") {
      live[d.name] = MustVirsh({"dumpxml", d.name});
      pids[d.name] = QemuPid(d.name);
      ASSERT_FALSE(pids[d.name].empty()) << d.name;
      ASSERT_EQ(pids[d.name].find('\n'), std::string::npos) << d.name << ": one QEMU process, got " << pids[d.name];
    }
  }

  // import -> validate
  const fs::path out = work_->path() / "manifests";
  Output imported = Gv({"import", "--all", "--out", out.string(), "--adopt"});
  ASSERT_EQ(imported.rc, 0) << imported.text;
  EXPECT_EQ(Count(imported.text, "wrote "), 13u) << imported.text;  // 12 VMs and the clone's base Image
  EXPECT_NE(imported.text.find("hand-07: devices/sound[model=ich9] is not expressible"), std::string::npos)
      << imported.text;
  const std::string first = ReadFile(out / "hand-01.yaml");
  for (const char* field : {"memory: 96MiB", "type: uefi", "secureBoot: true", "tpm: true", "adopt: true",
                            "mac: \"52:54:00:15:01:01\"", "model: e1000", "user: true", "bus: sata",
                            "volume: hand-01-root.qcow2", "bootOrder: 1", "cache: none", "discard: true"}) {
    EXPECT_NE(first.find(field), std::string::npos) << field << " in\n" << first;
  }
  EXPECT_NE(ReadFile(out / "hand-02.yaml").find("powerState: Stopped"), std::string::npos);
  EXPECT_NE(ReadFile(out / "hand-02.yaml").find("path: " + iso), std::string::npos);
  EXPECT_NE(ReadFile(out / "hand-03.yaml").find("powerState: Paused"), std::string::npos);
  EXPECT_NE(ReadFile(out / "hand-04.yaml").find("type: vnc"), std::string::npos);
  EXPECT_NE(ReadFile(out / "hand-07.yaml").find("#   unexpressed: devices/sound[model=ich9]"), std::string::npos);
  // The linked clone's base as an Image (its sha256 read through libvirt); the clone stays its
  // volume (gitvirt would name it hand-06-vda.qcow2), with a note naming the Image.
  const std::string base = ReadFile(out / "image-tiny-base.yaml");
  for (const char* field : {"kind: Image", "name: tiny-base", "sha256: ", "tiny-base.qcow2"}) {
    EXPECT_NE(base.find(field), std::string::npos) << field << " in\n" << base;
  }
  const Output sum = Exec({"sha256sum", (pool_ / "tiny-base.qcow2").string()});
  ASSERT_EQ(sum.rc, 0) << sum.text;
  EXPECT_NE(base.find("sha256: " + sum.text.substr(0, 64)), std::string::npos) << base;
  EXPECT_NE(ReadFile(out / "hand-06.yaml").find("the volume of Image tiny-base"), std::string::npos)
      << ReadFile(out / "hand-06.yaml");
  Output valid = Gv({"validate", "-f", out.string()});
  ASSERT_EQ(valid.rc, 0) << valid.text;

  // The refusals: nothing written, no domain touched.
  const std::string before_refusals = ReadFile(out / "hand-01.yaml");
  Output again = Gv({"import", "hand-01", "--out", out.string(), "-f", out.string()});
  EXPECT_EQ(again.rc, 1) << again.text;
  EXPECT_NE(again.text.find("declares VirtualMachine/hand-01 already"), std::string::npos) << again.text;
  Output overwrite = Gv({"import", "hand-01", "--out", out.string()});  // no source: no name is taken
  EXPECT_EQ(overwrite.rc, 1) << overwrite.text;
  EXPECT_NE(overwrite.text.find("never overwrites"), std::string::npos) << overwrite.text;
  EXPECT_EQ(ReadFile(out / "hand-01.yaml"), before_refusals);

  // plan: only adopt
  Output plan = Gv({"plan", "-f", out.string(), "--no-color"});
  ASSERT_EQ(plan.rc, 0) << plan.text;
  EXPECT_EQ(Count(plan.text, "& adopt VirtualMachine/hand-"), 12u) << plan.text;
  EXPECT_NE(plan.text.find("Plan: 12 to adopt, 0 to add, 0 to change, 0 to replace, 0 to destroy."), std::string::npos)
      << plan.text;
  EXPECT_NE(plan.text.find("devices/sound[model=ich9]"), std::string::npos) << plan.text;  // the warning

  // apply, then the next plan is empty
  Output apply = Gv({"apply", "-f", out.string(), "--auto-approve", "--no-color"});
  ASSERT_EQ(apply.rc, 0) << apply.text;
  Output next = Gv({"plan", "-f", out.string(), "--detailed-exitcode", "--no-color"});
  EXPECT_EQ(next.rc, 0) << next.text;
  EXPECT_NE(next.text.find("No changes."), std::string::npos) << next.text;

  for (const HandMade& d : domains) {
    SCOPED_TRACE(d.name);
    EXPECT_EQ(Trim(MustVirsh({"domstate", d.name})), d.power);
    const std::string now = MustVirsh({"dumpxml", "--inactive", d.name});
    EXPECT_NE(now.find("gitvirt.dev"), std::string::npos) << "no owner mark:\n" << now;
    EXPECT_EQ(WithoutMetadata(now), WithoutMetadata(inactive[d.name]));
    if (d.power != "shut off") {
      EXPECT_EQ(WithoutMetadata(MustVirsh({"dumpxml", d.name})), WithoutMetadata(live[d.name]));
      EXPECT_EQ(QemuPid(d.name), pids[d.name]) << "the QEMU process was restarted";
    }
  }

  // Owned now: importing one is a clear error.
  Output owned = Gv({"import", "hand-05", "--out", "-"});
  EXPECT_EQ(owned.rc, 1) << owned.text;
  EXPECT_NE(owned.text.find("is gitvirt's already"), std::string::npos) << owned.text;
}

}  // namespace
}  // namespace gitvirt::testing
