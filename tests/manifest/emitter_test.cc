// The manifest emitter is the exact inverse of the loader for what it writes: every good
// corpus file, loaded, written back with the emitter and loaded again, gives the same desired
// state (the documents' source locations aside). `gitvirt import` writes with it; a field the
// emitter forgot, or writes in a form the loader reads differently, fails here.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gitvirt/manifest/emitter.h"
#include "gitvirt/manifest/loader.h"

namespace gitvirt {
namespace {

namespace fs = std::filesystem;

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void ClearLocations(DesiredState& d) {
  for (auto& x : d.vms) x.meta.location = {};
  for (auto& x : d.clusters) {
    x.meta.location = {};
    for (auto& g : x.spec.node_groups) g.location = {};
  }
  for (auto& x : d.snapshot_policies) x.meta.location = {};
  for (auto& x : d.backup_policies) x.meta.location = {};
  for (auto& x : d.images) x.meta.location = {};
}

// Every document of `d` in the emitter's YAML: standalone VMs, then the other kinds (a
// Cluster's members are the Cluster's to write).
std::string EmitAll(const DesiredState& d) {
  std::vector<std::string> docs;
  for (const Image& i : d.images) docs.push_back(EmitImage(i));
  for (const VirtualMachine& vm : d.vms) {
    if (!vm.cluster) docs.push_back(EmitVirtualMachine(vm));
  }
  for (const Cluster& c : d.clusters) docs.push_back(EmitCluster(c));
  for (const SnapshotPolicy& p : d.snapshot_policies) docs.push_back(EmitSnapshotPolicy(p));
  for (const BackupPolicy& p : d.backup_policies) docs.push_back(EmitBackupPolicy(p));
  return JoinDocuments(docs);
}

std::vector<fs::path> GoodCorpus() {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(fs::path(GITVIRT_SOURCE_DIR) / "tests/corpus/good")) {
    if (e.path().extension() == ".yaml") out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string Diagnostics(const LoadResult& r) {
  std::string out;
  for (const Diagnostic& d : r.diagnostics) out += d.ToString() + "\n";
  return out;
}

TEST(EmitterTest, RoundTripsEveryGoodCorpusFile) {
  const auto files = GoodCorpus();
  ASSERT_GE(files.size(), 30u);
  int vms = 0;
  for (const fs::path& file : files) {
    SCOPED_TRACE(file.filename().string());
    const ManifestFile original{file.filename().string(), ReadFile(file)};
    LoadResult first = LoadManifests(std::span(&original, 1));
    ASSERT_TRUE(first.ok()) << Diagnostics(first);
    const std::string emitted = EmitAll(first.desired);
    const ManifestFile again{"emitted.yaml", emitted};
    LoadResult second = LoadManifests(std::span(&again, 1));
    ASSERT_TRUE(second.ok()) << Diagnostics(second) << emitted;
    ClearLocations(first.desired);
    ClearLocations(second.desired);
    EXPECT_EQ(first.desired.vms, second.desired.vms) << emitted;
    EXPECT_EQ(first.desired.images, second.desired.images) << emitted;
    EXPECT_EQ(first.desired.clusters, second.desired.clusters) << emitted;
    EXPECT_EQ(first.desired.snapshot_policies, second.desired.snapshot_policies) << emitted;
    EXPECT_EQ(first.desired.backup_policies, second.desired.backup_policies) << emitted;
    // Writing again what was read back gives the same text: the emitter has one form per value.
    EXPECT_EQ(emitted, EmitAll(second.desired));
    vms += static_cast<int>(first.desired.vms.size());
  }
  EXPECT_GT(vms, 30);
}

TEST(EmitterTest, WritesTheManifestsOwnUnits) {
  VirtualMachine vm;
  vm.meta.name = "web-01";
  vm.spec.vcpus = 2;
  vm.spec.memory = 4ull << 30;
  Disk d;
  d.name = "vda";
  d.size = 1536ull << 20;  // not a whole GiB: the largest exact unit is MiB
  vm.spec.disks.push_back(d);
  const std::string text = EmitVirtualMachine(vm, EmitOptions{{"first", "", "unexpressed: cputune"}});
  EXPECT_THAT(text, ::testing::StartsWith("# first\n#\n# unexpressed: cputune\napiVersion: gitvirt.dev/v1\n"));
  EXPECT_THAT(text, ::testing::HasSubstr("memory: 4GiB"));
  EXPECT_THAT(text, ::testing::HasSubstr("size: 1536MiB"));
  EXPECT_THAT(text, ::testing::Not(::testing::HasSubstr("KiB")));
}

TEST(EmitterTest, QuotesStringsThatWouldReadAsSomethingElse) {
  VirtualMachine vm;
  vm.meta.name = "db";
  vm.spec.memory = 1ull << 30;
  vm.meta.labels = {{"enabled", "yes"}, {"port", "8080"}, {"empty", ""}, {"plain", "web"}};
  Nic nic;
  nic.network = "default";
  nic.mac = "52:54:00:15:01:01";
  vm.spec.networks = {nic};
  vm.spec.description = "line one\nline two: with a colon\n";
  const ManifestFile file{"x.yaml", EmitVirtualMachine(vm)};
  LoadResult r = LoadManifests(std::span(&file, 1));
  ASSERT_TRUE(r.ok()) << Diagnostics(r) << file.content;
  ASSERT_EQ(r.desired.vms.size(), 1u);
  EXPECT_EQ(r.desired.vms[0].meta.labels, vm.meta.labels);
  EXPECT_EQ(r.desired.vms[0].spec.description, vm.spec.description);
  EXPECT_EQ(r.desired.vms[0].spec.networks, vm.spec.networks);
  // Read as a base-60 number by YAML 1.1 readers (PyYAML) unless quoted.
  EXPECT_NE(file.content.find("mac: \"52:54:00:15:01:01\""), std::string::npos) << file.content;
}

TEST(EmitterTest, QuotesNamesOtherReadersTakeForNumbers) {
  for (const char* name : {"0x1f", "0o17", "017", "0b101"}) {
    VirtualMachine vm;
    vm.meta.name = name;
    vm.spec.memory = 1ull << 30;
    const ManifestFile file{"x.yaml", EmitVirtualMachine(vm)};
    EXPECT_NE(file.content.find("name: \"" + std::string(name) + "\""), std::string::npos) << file.content;
    LoadResult r = LoadManifests(std::span(&file, 1));
    ASSERT_EQ(r.desired.vms.size(), 1u) << Diagnostics(r);
    EXPECT_EQ(r.desired.vms[0].meta.name, name);
  }
}

}  // namespace
}  // namespace gitvirt
