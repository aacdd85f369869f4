// The controller configurations the project ships (examples/*.yaml, deploy/*.yaml) and the
// configuration corpus (tests/corpus/config) load without a single diagnostic. The same files
// are checked against schemas/controllerconfig.schema.json by tests/schemas/test_schemas.py,
// which collects them with the same globs.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "gitvirt/manifest/config_loader.h"

namespace gitvirt {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> ShippedConfigs() {
  std::vector<fs::path> out;
  const fs::path root(GITVIRT_SOURCE_DIR);
  for (const char* dir : {"examples", "deploy", "tests/corpus/config"}) {
    for (const fs::directory_entry& e : fs::directory_iterator(root / dir)) {
      if (e.is_regular_file() && e.path().extension() == ".yaml") out.push_back(e.path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(ConfigExamplesTest, EveryShippedConfigurationLoadsCleanly) {
  const std::vector<fs::path> files = ShippedConfigs();
  // The three the README and deploy/ name must be among them.
  for (const char* must : {"examples/gitvirt.yaml", "examples/gitvirt-git.yaml", "deploy/gitvirt.example.yaml"}) {
    EXPECT_NE(std::find(files.begin(), files.end(), fs::path(GITVIRT_SOURCE_DIR) / must), files.end()) << must;
  }
  for (const fs::path& file : files) {
    SCOPED_TRACE(file.string());
    const ConfigLoadResult r = LoadControllerConfig(file);
    std::string messages;
    for (const Diagnostic& d : r.diagnostics) messages += d.ToString() + "\n";
    EXPECT_TRUE(r.diagnostics.empty()) << messages;
    EXPECT_FALSE(r.config.nodes.empty());
    EXPECT_TRUE(!r.config.source.path.empty() || !r.config.source.repo.empty()) << "no source";
    EXPECT_EQ(r.config.file, file.lexically_normal().string());
  }
}

TEST(ConfigExamplesTest, TheDeployExampleDescribesRealHostsFromGit) {
  const ConfigLoadResult r =
      LoadControllerConfig(fs::path(GITVIRT_SOURCE_DIR) / "deploy" / "gitvirt.example.yaml");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.config.source.repo, "https://git.example.com/infra/vms.git");
  EXPECT_EQ(r.config.source.sub_path, "manifests");
  EXPECT_EQ(r.config.state, "/var/lib/gitvirt/gitvirt.db");
  ASSERT_EQ(r.config.nodes.size(), 3u);
  for (const NodeConfig& n : r.config.nodes) EXPECT_FALSE(n.IsLocal()) << n.name << " " << n.uri;
}

}  // namespace
}  // namespace gitvirt
