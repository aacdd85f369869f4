// The loader's behaviour beyond single-document positions (those are the corpus's job, in
// tests/corpus and tests/schemas/test_agreement.py): all problems at once, cluster expansion,
// defaults, references and relative paths.

#include "gitvirt/manifest/loader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "gitvirt/core/cloud_init.h"
#include "gitvirt/manifest/config_loader.h"
#include "temp_dir.h"

namespace gitvirt {
namespace {

using ::testing::HasSubstr;

LoadResult Load(std::vector<ManifestFile> files, std::string root = "") {
  return LoadManifests(files, LoadOptions{std::move(root)});
}

std::string Messages(const LoadResult& r) {
  std::string out;
  for (const Diagnostic& d : r.diagnostics) out += d.ToString() + "\n";
  return out;
}

constexpr const char* kVm = R"(apiVersion: gitvirt.dev/v1
kind: VirtualMachine
metadata: {name: web-01, labels: {tier: web}}
spec:
  vcpus: 2
  memory: 2GiB
  disks: [{name: root, size: 20GiB}]
  networks: [{network: default}]
)";

TEST(LoaderTest, ReportsEveryProblemInEveryFileAtOnce) {
  LoadResult r = Load({{"a.yaml", "apiVersion: gitvirt.dev/v1\nkind: VirtualMachine\nmetadata: {name: a}\n"
                                  "spec:\n  vcpus: 0\n  memroy: 2GiB\n"},
                       {"b.yaml", "apiVersion: gitvirt.dev/v2\nkind: Image\nmetadata: {name: b}\nspec: {}\n"}});
  ASSERT_FALSE(r.ok());
  const std::string m = Messages(r);
  EXPECT_THAT(m, HasSubstr("a.yaml:5:10: error: spec.vcpus"));
  EXPECT_THAT(m, HasSubstr("a.yaml:6:3: error: spec.memroy: unknown field \"memroy\" in spec (did you mean \"memory\"?)"));
  EXPECT_THAT(m, HasSubstr("a.yaml:4:1: error: spec.memory: missing required field"));
  EXPECT_THAT(m, HasSubstr("b.yaml:1:13: error: apiVersion: expected apiVersion gitvirt.dev/v1"));
  EXPECT_THAT(m, HasSubstr("b.yaml:4:1: error: spec.source: missing required field"));
  EXPECT_TRUE(r.desired.vms.empty()) << "one invalid document means no desired state at all";
}

TEST(LoaderTest, ReadsReadinessAndImpliesTheAgentChannel) {
  std::string vm = kVm;
  vm += "  readiness: {agent: true, tcp: 22, consoleMarker: \"login:\", timeout: 90s}\n";
  LoadResult r = Load({{"vm.yaml", vm}});
  ASSERT_TRUE(r.ok()) << Messages(r);
  const VmSpec& s = r.desired.vms.at(0).spec;
  EXPECT_EQ(s.readiness, (Readiness{.agent = true, .tcp = 22, .console_marker = "login:", .timeout = Seconds(90)}));
  EXPECT_TRUE(s.guest_agent) << "readiness by agent adds the agent channel";

  LoadResult defaults = Load({{"vm.yaml", std::string(kVm) + "  readiness: {tcp: 5432}\n"}});
  ASSERT_TRUE(defaults.ok()) << Messages(defaults);
  EXPECT_EQ(defaults.desired.vms.at(0).spec.readiness.timeout, Seconds(300));
  EXPECT_FALSE(defaults.desired.vms.at(0).spec.guest_agent);
  EXPECT_FALSE(Load({{"vm.yaml", kVm}}).desired.vms.at(0).spec.readiness.Enabled());

  LoadResult refused = Load({{"vm.yaml", std::string(kVm) + "  guestAgent: false\n  readiness: {agent: true}\n"}});
  EXPECT_THAT(Messages(refused), HasSubstr("vm.yaml:10:22: error: spec.readiness.agent: readiness by agent needs guestAgent: true"));
}

TEST(LoaderTest, ReadsTheNodesConsoleDir) {
  const std::string config = R"(apiVersion: gitvirt.dev/v1
kind: ControllerConfig
source: {path: manifests}
nodes:
  - {name: hv1, uri: "qemu:///system", consoleDir: /var/log/gitvirt/console}
  - {name: hv2, uri: "qemu+ssh://hv2/system", consoleDir: logs}
)";
  ConfigLoadResult r = ParseControllerConfig(config, "/etc/gitvirt/gitvirt.yaml");
  ASSERT_EQ(r.diagnostics.size(), 1u);
  EXPECT_THAT(r.diagnostics[0].ToString(),
              HasSubstr("gitvirt.yaml:6:59: error: nodes[1].consoleDir: consoleDir is a directory on the node and "
                        "must be absolute, got \"logs\""));
  EXPECT_EQ(r.config.nodes.at(0).console_dir, "/var/log/gitvirt/console");
  EXPECT_TRUE(r.config.nodes.at(0).IsLocal());
  EXPECT_FALSE(r.config.nodes.at(1).IsLocal());
}

TEST(LoaderTest, NodesTheControllerSharesAFilesystemWith) {
  auto local = [](std::string uri) { return NodeConfig{.uri = std::move(uri)}.IsLocal(); };
  EXPECT_TRUE(local("qemu:///system"));
  EXPECT_TRUE(local("qemu+unix:///system?socket=/tmp/x/sock"));
  EXPECT_TRUE(local("test:///default"));
  EXPECT_TRUE(local("sim:/var/lib/gitvirt/hv1.xml"));
  EXPECT_TRUE(local("qemu+ssh://root@localhost/system"));
  EXPECT_FALSE(local("qemu+ssh://hv1/system"));
  EXPECT_FALSE(local("qemu://hv1/system")) << "no transport with a host is TLS to that host";
  EXPECT_FALSE(local("qemu+tls://hv1.example.com:16514/system"));
}

TEST(LoaderTest, AppliesDefaults) {
  LoadResult r = Load({{"vm.yaml", kVm}});
  ASSERT_TRUE(r.ok()) << Messages(r);
  const VmSpec& s = r.desired.vms.at(0).spec;
  EXPECT_EQ(s.memory, 2 * kGiB);
  EXPECT_EQ(s.machine, "q35");
  EXPECT_EQ(s.power_state, PowerState::kRunning);
  EXPECT_EQ(s.update_policy.restart, RestartPolicy::kNever);
  EXPECT_EQ(s.deletion_policy, DeletionPolicy::kDelete);
  EXPECT_EQ(s.disks.at(0).bus, DiskBus::kVirtio);
  EXPECT_EQ(s.disks.at(0).pool, "default");
  EXPECT_EQ(s.networks.at(0).model, NicModel::kVirtio);
}

TEST(LoaderTest, ExpandsAClusterIntoNamedLabelledMembersWithTheirAddresses) {
  LoadResult r = Load({{"k8s.yaml", R"(apiVersion: gitvirt.dev/v1
kind: Cluster
metadata: {name: k8s, labels: {env: prod}}
spec:
  cloudInit: {nameservers: [1.1.1.1]}
  nodeGroups:
    - name: cp
      role: control-plane
      count: 3
      placement: {antiAffinity: HARD}
      ipConfigPatterns: ["ip=10.0.100.{10+index}/24,gw=10.0.100.1"]
      template:
        vcpus: 2
        memory: 4GiB
        networks: [{bridge: br0}]
    - name: worker
      count: 2
      ipConfigPatterns: ["ip=10.0.{index}.9/24"]
      template: {vcpus: 4, memory: 8GiB, networks: [{bridge: br0}]}
)"}});
  ASSERT_TRUE(r.ok()) << Messages(r);
  ASSERT_EQ(r.desired.vms.size(), 5u);
  EXPECT_EQ(r.desired.FindVm("k8s-worker-02")->spec.cloud_init->ip_configs.at(0).ToString(), "ip=10.0.1.9/24");
  EXPECT_EQ(r.summary.cluster_members, 5);
  const VirtualMachine* cp2 = r.desired.FindVm("k8s-cp-02");
  ASSERT_NE(cp2, nullptr);
  EXPECT_EQ(cp2->meta.labels.at("gitvirt.dev/cluster"), "k8s");
  EXPECT_EQ(cp2->meta.labels.at("gitvirt.dev/role"), "control-plane");
  EXPECT_EQ(cp2->meta.labels.at("env"), "prod");
  ASSERT_TRUE(cp2->spec.cloud_init);
  EXPECT_EQ(cp2->spec.cloud_init->ip_configs.at(0).ToString(), "ip=10.0.100.11/24,gw=10.0.100.1");
  EXPECT_EQ(cp2->spec.cloud_init->nameservers, std::vector<std::string>{"1.1.1.1"});
  EXPECT_EQ(cp2->spec.cloud_init->hostname, "k8s-cp-02");
  EXPECT_EQ(cp2->spec.placement.anti_affinity, AntiAffinity::kHard);
  ASSERT_TRUE(cp2->cluster);
  EXPECT_EQ(cp2->cluster->index, 1);
  EXPECT_EQ(r.desired.FindVm("k8s-worker-02")->cluster->group_order, 1);
}

TEST(LoaderTest, PatternsThatCollideAcrossTheRepositoryAreErrors) {
  LoadResult r = Load({{"c.yaml", R"(apiVersion: gitvirt.dev/v1
kind: Cluster
metadata: {name: c}
spec:
  nodeGroups:
    - name: g
      count: 2
      ipConfigPatterns: ["ip=10.0.0.5/24"]
      template: {vcpus: 1, memory: 1GiB, networks: [{bridge: br0}]}
)"}});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(Messages(r), HasSubstr("address 10.0.0.5 is already used"));
}

// A hostile tree gives an error, never an exception (a symlink loop aborted validate and serve),
// and no file outside the directory is read.
TEST(ReadManifestDirectory, ASymlinkLoopIsAnErrorNotAnAbort) {
  testing::TempDir tmp("gv-loop");
  const auto dir = tmp.path() / "x";
  std::filesystem::create_directory(dir);
  std::filesystem::create_symlink("b.yaml", dir / "a.yaml");
  std::filesystem::create_symlink("a.yaml", dir / "b.yaml");
  auto files = ReadManifestDirectory(dir);
  ASSERT_FALSE(files.has_value());
  EXPECT_THAT(files.error().ToString(), HasSubstr("a symbolic link that cannot be followed"));
  LoadResult r = LoadDirectory(dir);
  EXPECT_FALSE(r.ok());
}

TEST(ReadManifestDirectory, ALinkOutOfTheDirectoryIsRefusedAndNotRead) {
  testing::TempDir tmp("gv-out");
  const auto dir = tmp.path() / "manifests";
  std::filesystem::create_directory(dir);
  std::ofstream(tmp.path() / "secret.yaml") << "password: hunter2\n";
  std::filesystem::create_symlink(tmp.path() / "secret.yaml", dir / "vm.yaml");
  LoadResult r = LoadDirectory(dir);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(Messages(r), HasSubstr("points outside the manifest directory"));
  EXPECT_THAT(Messages(r), ::testing::Not(HasSubstr("hunter2")));
}

TEST(ReadManifestDirectory, LinksInsideAreReadOnceUnderTheirOwnName) {
  testing::TempDir tmp("gv-in");
  const auto dir = tmp.path() / "m";
  std::filesystem::create_directories(dir / "real");
  std::ofstream(dir / "real" / "vm.yaml") << kVm;
  std::filesystem::create_directory_symlink("real", dir / "alias");  // not descended into
  std::filesystem::create_symlink("/nonexistent/readme.txt", dir / "README");  // not a manifest
  auto files = ReadManifestDirectory(dir);
  ASSERT_TRUE(files.has_value()) << files.error().ToString();
  ASSERT_EQ(files->size(), 1u);
  EXPECT_EQ(files->at(0).path, "real/vm.yaml");
}

// Limits (docs/limits.md): said at once, not after minutes and gigabytes.
TEST(LoaderLimits, AFileOverEightMebibytesIsRefusedUnread) {
  std::string big = kVm;
  big.append("# ");
  big.append((8u << 20), 'x');
  LoadResult r = Load({{"big.yaml", big}});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(Messages(r), HasSubstr("big.yaml:1:1: error: the file is"));
  EXPECT_THAT(Messages(r), HasSubstr("at most 8 MiB"));
  EXPECT_LT(Messages(r).size(), 400u);
}

TEST(LoaderLimits, AQuotedValueIsCutShort) {
  std::string vm = kVm;
  vm.replace(vm.find("vcpus: 2"), 8, "vcpus: " + std::string(5000, 'x'));
  LoadResult r = Load({{"vm.yaml", vm}});
  ASSERT_FALSE(r.ok());
  const std::string m = Messages(r);
  EXPECT_THAT(m, HasSubstr("(4880 more bytes)"));
  EXPECT_LT(m.size(), 600u) << m;
}

TEST(LoaderLimits, MoreThan256LabelsAreRefused) {
  std::string labels;
  for (int i = 0; i < 257; ++i) labels.append("    l").append(std::to_string(i)).append(": v\n");
  std::string vm = "apiVersion: gitvirt.dev/v1\nkind: VirtualMachine\nmetadata:\n  name: web-01\n  labels:\n";
  vm.append(labels).append("spec:\n  memory: 2GiB\n  disks: [{name: root, size: 20GiB}]\n");
  LoadResult r = Load({{"vm.yaml", vm}});
  ASSERT_FALSE(r.ok()) << vm;
  EXPECT_THAT(Messages(r), HasSubstr("has 257 entries; an object may have at most 256"));
}

TEST(LoaderTest, ResolvesRelativeImageSourcesAgainstTheManifestsDirectory) {
  LoadResult r = Load({{"images/base.yaml", R"(apiVersion: gitvirt.dev/v1
kind: Image
metadata: {name: base}
spec: {source: ../blobs/base.qcow2, sha256: "0000000000000000000000000000000000000000000000000000000000000000"}
)"}},
                      "/srv/repo");
  ASSERT_TRUE(r.ok()) << Messages(r);
  EXPECT_EQ(r.desired.images.at(0).spec.source, "/srv/repo/blobs/base.qcow2");
}

TEST(LoaderTest, GivesMediatedDevicesWithoutAUuidAStableOne) {
  const std::string doc = std::string(kVm) + "  gpus: [{mdev: {type: nvidia-63}}]\n";
  LoadResult first = Load({{"vm.yaml", doc}});
  LoadResult second = Load({{"vm.yaml", doc}});
  ASSERT_TRUE(first.ok()) << Messages(first);
  const std::string uuid = first.desired.vms.at(0).spec.gpus.at(0).mdev_uuid;
  EXPECT_EQ(uuid.size(), 36u);
  EXPECT_EQ(uuid, second.desired.vms.at(0).spec.gpus.at(0).mdev_uuid);
}

TEST(LoaderTest, ValidInputNeverProducesADiagnostic) {
  LoadResult r = Load({{"vm.yaml", kVm}, {"more.yaml", std::string(kVm).replace(std::string(kVm).find("web-01"), 6, "web-02")}});
  EXPECT_TRUE(r.diagnostics.empty()) << Messages(r);
  EXPECT_EQ(r.summary.documents, 2);
}

// The corpus cannot hold a file of zero bytes (its cases start with a header comment), so it is
// made here, on disk, read the way `validate` reads a directory.
TEST(LoaderTest, AZeroByteFileIsReportedAtItsFirstPosition) {
  testing::TempDir dir("gitvirt-zero");
  std::ofstream(dir.path() / "zero.yaml").flush();
  std::ofstream(dir.path() / "vm.yaml") << kVm;
  ASSERT_EQ(std::filesystem::file_size(dir.path() / "zero.yaml"), 0u);
  LoadResult r = LoadDirectory(dir.path());
  EXPECT_FALSE(r.ok());
  ASSERT_EQ(r.diagnostics.size(), 1u) << Messages(r);
  EXPECT_THAT(r.diagnostics[0].ToString(),
              HasSubstr("zero.yaml:1:1: error: the file has no documents (it is empty or only comments)"));
  EXPECT_EQ(r.summary.files, 2);
}

TEST(LoaderTest, NicMacsAreStableAndDistinct) {
  LoadResult r = Load({{"vm.yaml", std::string(kVm) + "  cloudInit: {ipConfigs: [\"ip=dhcp\"]}\n"}});
  ASSERT_TRUE(r.ok()) << Messages(r);
  const VirtualMachine& vm = r.desired.vms.at(0);
  EXPECT_EQ(NicMac(vm, 0), NicMac(vm, 0));
  VirtualMachine other = vm;
  other.meta.name = "web-02";
  EXPECT_NE(NicMac(vm, 0), NicMac(other, 0));
  EXPECT_TRUE(NicMac(vm, 0).starts_with("52:54:00:"));
}

}  // namespace
}  // namespace gitvirt
