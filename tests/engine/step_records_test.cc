// The typed undo records: what a step journals to be undone, read back strictly.
#include "gitvirt/engine/step_records.h"

#include <gtest/gtest.h>

namespace gitvirt {
namespace {

TEST(StepRecordsTest, RoundTripWithTheJournalsKeys) {
  DefinitionUndo undo;
  undo.volumes = {"default/web-01-root.qcow2"};
  undo.previous_definition = "<domain/>";
  undo.previous_power = PowerState::kRunning;
  undo.previous_memory = 4294967296u;
  undo.previous_autostart = true;
  const std::string text = EncodeUndo(undo);
  for (const char* key : {"\"volumes\"", "\"previousXml\"", "\"previousPower\":\"Running\"", "\"previousAutostart\""}) {
    EXPECT_NE(text.find(key), std::string::npos) << key << " in " << text;
  }
  auto back = DecodeUndo<DefinitionUndo>(text, "job j step s");
  ASSERT_TRUE(back) << back.error().ToString();
  EXPECT_EQ(*back, undo);
}

TEST(StepRecordsTest, AnEmptyRecordIsTheFamilysDefaults) {
  auto undo = DecodeUndo<MigrationUndo>("", "job j step s");
  ASSERT_TRUE(undo);
  EXPECT_EQ(*undo, MigrationUndo{});
}

TEST(StepRecordsTest, AWrongTypeIsAnErrorNamingTheStepAndTheField) {
  auto undo = DecodeUndo<DefinitionUndo>(R"({"volumes": 5, "defined": true})", "job j step create/web-01");
  ASSERT_FALSE(undo);
  EXPECT_EQ(undo.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(undo.error().ToString().find("job j step create/web-01"), std::string::npos) << undo.error().ToString();
  EXPECT_NE(undo.error().ToString().find("volumes"), std::string::npos) << undo.error().ToString();

  auto power = DecodeUndo<PowerUndo>(R"({"previousPower": "Sideways"})", "s");
  ASSERT_FALSE(power);
  EXPECT_NE(power.error().message.find("previousPower"), std::string::npos) << power.error().message;

  auto list = DecodeUndo<BackupUndo>(R"({"scratch": ["default/a", 7]})", "s");
  ASSERT_FALSE(list);
}

TEST(StepRecordsTest, BytesThatAreNotJsonAreAnError) {
  auto undo = DecodeUndo<SnapshotUndo>(R"({"snapshot": "a)", "job j step snapshot/x");
  ASSERT_FALSE(undo);
  EXPECT_NE(undo.error().ToString().find("not valid JSON"), std::string::npos) << undo.error().ToString();
}

}  // namespace
}  // namespace gitvirt
