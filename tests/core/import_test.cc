// Which domains `gitvirt import` picks, and the manifest each becomes (core/import.h): what the
// adapter observed, node and power state included; the refusals that leave everything as it is.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "gitvirt/core/import.h"

namespace gitvirt {
namespace {

using ::testing::HasSubstr;

ObservedVm Domain(const std::string& node, const std::string& name, bool owned = false) {
  ObservedVm vm;
  vm.name = name;
  vm.node = node;
  vm.persistent = true;
  vm.power = PowerState::kPaused;
  vm.actual.vcpus = 2;
  vm.actual.memory = 1ull << 30;
  Disk d;
  d.name = "vda";
  d.size = 10ull << 30;
  d.pool = "default";
  d.source = DiskSource{DiskSourceType::kVolume, name + ".qcow2", CloneMode::kNone};
  vm.actual.disks.push_back(d);
  Disk f = d;
  f.name = "sdb";
  f.source = DiskSource{DiskSourceType::kPath, "/srv/" + name + ".raw", CloneMode::kNone};
  vm.actual.disks.push_back(f);
  if (owned) vm.owner = Ownership{.name = name};
  return vm;
}

ObservedState Fleet() {
  ObservedState s;
  s.nodes.resize(2);
  s.nodes[0].name = "hv1";
  s.nodes[0].reachable = true;
  s.nodes[0].vms = {Domain("hv1", "db-01"), Domain("hv1", "owned-01", true), Domain("hv1", "web-01")};
  s.nodes[1].name = "hv2";
  s.nodes[1].reachable = true;
  s.nodes[1].vms = {Domain("hv2", "web-02")};
  return s;
}

TEST(ImportTest, ManifestIsTheObservedSpecWithNodePowerAndExistingStorage) {
  ObservedVm d = Domain("hv1", "db-01");
  d.unexpressed = {"cputune"};
  d.autostart = true;
  const ImportedVm vm = ManifestOfDomain(d, /*adopt=*/true);
  EXPECT_EQ(vm.vm.meta.name, "db-01");
  EXPECT_EQ(vm.vm.spec.node, "hv1");
  EXPECT_EQ(vm.vm.spec.power_state, PowerState::kPaused);
  EXPECT_TRUE(vm.vm.spec.autostart);
  EXPECT_TRUE(vm.vm.spec.adopt);
  ASSERT_EQ(vm.vm.spec.disks.size(), 2u);
  EXPECT_FALSE(vm.vm.spec.disks[0].size);  // an existing volume is used as it is
  EXPECT_EQ(vm.vm.spec.disks[0].pool, "default");
  EXPECT_FALSE(vm.vm.spec.disks[1].size);
  EXPECT_EQ(vm.unexpressed, std::vector<std::string>{"cputune"});
  EXPECT_TRUE(vm.notes.empty());
}

TEST(ImportTest, GlobsAndAllPassOverOwnedDomains) {
  auto all = ChooseImports(Fleet(), {}, ImportSelection{.all = true});
  ASSERT_TRUE(all) << all.error().message;
  ASSERT_EQ(all->vms.size(), 3u);
  EXPECT_EQ(all->vms[0].vm.meta.name, "db-01");
  EXPECT_EQ(all->vms[2].vm.meta.name, "web-02");
  EXPECT_EQ(all->skipped, std::vector<std::string>{"hv1/owned-01: gitvirt's already"});

  auto web = ChooseImports(Fleet(), {}, ImportSelection{.patterns = {"web-*"}, .node = "hv2"});
  ASSERT_TRUE(web) << web.error().message;
  ASSERT_EQ(web->vms.size(), 1u);
  EXPECT_EQ(web->vms[0].node, "hv2");
}

TEST(ImportTest, RefusesOwnedDeclaredAndUnmatchedNamesAllAtOnce) {
  auto r = ChooseImports(Fleet(), {"db-01"}, ImportSelection{.patterns = {"owned-01", "db-01", "nope-*"}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(r.error().message, HasSubstr("owned-01 on node hv1 is gitvirt's already"));
  EXPECT_THAT(r.error().message, HasSubstr("declares VirtualMachine/db-01 already"));
  EXPECT_THAT(r.error().message, HasSubstr("no domain matches nope-*"));
  EXPECT_THAT(r.error().message, HasSubstr("Nothing was written"));
}

TEST(ImportTest, RefusesNoSelectionAnUnknownNodeAndANameOnTwoNodes) {
  EXPECT_FALSE(ChooseImports(Fleet(), {}, ImportSelection{}));
  EXPECT_FALSE(ChooseImports(Fleet(), {}, ImportSelection{.all = true, .node = "hv9"}));
  ObservedState twice = Fleet();
  twice.nodes[1].vms.push_back(Domain("hv2", "web-01"));
  auto r = ChooseImports(twice, {}, ImportSelection{.patterns = {"web-01"}});
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("run on nodes hv1, hv2: pick one with --node"));
}

TEST(ImportTest, AllPassesOverANameOnTwoNodesAndImportsTheRest) {
  ObservedState twice = Fleet();
  twice.nodes[1].vms.push_back(Domain("hv2", "web-01"));
  auto r = ChooseImports(twice, {}, ImportSelection{.all = true});
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_FALSE(r->vms.empty());
  for (const ImportedVm& vm : r->vms) EXPECT_NE(vm.vm.meta.name, "web-01");
  EXPECT_THAT(::testing::PrintToString(r->skipped), HasSubstr("web-01: on more than one node (hv1, hv2)"));
}

}  // namespace
}  // namespace gitvirt
