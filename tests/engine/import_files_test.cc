// import writes new files only: the check the real run makes first is the whole of a dry run.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "gitvirt/engine/import.h"
#include "temp_dir.h"

namespace gitvirt {
namespace {

namespace fs = std::filesystem;

ImportResult TwoFiles() { return ImportResult{{{"web-01.yaml", "a: 1\n"}, {"web-02.yaml", "b: 2\n"}}, {}, {}}; }

TEST(ImportFiles, AnExistingFileIsRefusedBeforeAnythingIsWritten) {
  testing::TempDir tmp("gv-import");
  const fs::path dir = tmp.path() / "out";
  fs::create_directory(dir);
  std::ofstream(dir / "web-02.yaml") << "mine\n";
  auto checked = CheckImportTargets(TwoFiles(), dir.string());
  ASSERT_FALSE(checked.has_value());
  EXPECT_EQ(checked.error().code, ErrorCode::kAlreadyExists);
  EXPECT_NE(checked.error().message.find((dir / "web-02.yaml").string()), std::string::npos);
  auto written = WriteImport(TwoFiles(), dir.string());
  ASSERT_FALSE(written.has_value());
  EXPECT_FALSE(fs::exists(dir / "web-01.yaml")) << "nothing is written when one file exists";
}

TEST(ImportFiles, NewFilesAreWrittenIntoADirectoryMadeIfMissing) {
  testing::TempDir tmp("gv-import");
  const fs::path dir = tmp.path() / "new" / "dir";
  EXPECT_TRUE(CheckImportTargets(TwoFiles(), dir.string()).has_value());
  auto written = WriteImport(TwoFiles(), dir.string());
  ASSERT_TRUE(written.has_value()) << written.error().ToString();
  EXPECT_EQ(written->size(), 2u);
  EXPECT_FALSE(CheckImportTargets(TwoFiles(), dir.string()).has_value()) << "a second import would overwrite";
}

}  // namespace
}  // namespace gitvirt
