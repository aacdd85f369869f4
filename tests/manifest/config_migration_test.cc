// gitvirt.yaml's migration settings (issue 6): shared pools and a node's migration address, and
// the diagnostics for getting them wrong.
#include <gtest/gtest.h>

#include "gitvirt/manifest/config_loader.h"

namespace gitvirt {
namespace {

constexpr const char* kHead =
    "apiVersion: gitvirt.dev/v1\n"
    "kind: ControllerConfig\n"
    "source: {path: /srv/vms}\n"
    "nodes:\n";

// The head plus the nodes, by append: GCC 12 at -O2 misreads `std::string(kHead) + "..."` as an
// out-of-bounds memcpy (-Warray-bounds, GCC bug 105329).
std::string Config(const char* nodes) {
  std::string text(kHead);
  text.append(nodes);
  return text;
}

TEST(ConfigMigrationTest, ReadsSharedPoolsAndTheMigrationAddress) {
  const ConfigLoadResult r =
      ParseControllerConfig(Config("  - name: hv1\n"
                                   "    uri: qemu+ssh://hv1/system\n"
                                   "    pools:\n"
                                   "      - {name: default, path: /var/lib/libvirt/images}\n"
                                   "      - {name: nfs, path: /srv/nfs, shared: true}\n"
                                   "    migration: {address: 10.10.0.1}\n"),
                            "/etc/gitvirt/gitvirt.yaml");
  ASSERT_TRUE(r.ok()) << (r.diagnostics.empty() ? "" : r.diagnostics.front().ToString());
  const NodeConfig& n = r.config.nodes.at(0);
  ASSERT_EQ(n.pools.size(), 2u);
  EXPECT_FALSE(n.pools[0].shared);
  EXPECT_TRUE(n.pools[1].shared);
  EXPECT_EQ(n.migration_address, "10.10.0.1");
}

TEST(ConfigMigrationTest, WrongSettingsAreReportedWhereTheyAre) {
  const ConfigLoadResult r =
      ParseControllerConfig(Config("  - name: hv1\n"
                                   "    uri: qemu+ssh://hv1/system\n"
                                   "    pools: [{name: nfs, path: /srv/nfs, shared: maybe}]\n"
                                   "    migration: {adress: 10.10.0.1}\n"),
                            "/etc/gitvirt/gitvirt.yaml");
  ASSERT_FALSE(r.ok());
  std::string all;
  for (const Diagnostic& d : r.diagnostics) all += d.ToString() + "\n";
  EXPECT_NE(all.find("gitvirt.yaml:7:"), std::string::npos) << all;    // shared: maybe
  EXPECT_NE(all.find("gitvirt.yaml:8:17"), std::string::npos) << all;  // adress
  EXPECT_NE(all.find("adress"), std::string::npos) << all;
}

}  // namespace
}  // namespace gitvirt
