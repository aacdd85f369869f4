#include "gitvirt/engine/step_records.h"

#include "gitvirt/core/json_table.h"

namespace gitvirt {

// The keys are the ones these records have always had in the journal.
GITVIRT_JSON_FIELDS(DefinitionUndo, FieldDef{"volumes", &DefinitionUndo::volumes},
                    FieldDef{"defined", &DefinitionUndo::defined},
                    FieldDef{"previousXml", &DefinitionUndo::previous_definition},
                    FieldDef{"previousPower", &DefinitionUndo::previous_power},
                    FieldDef{"previousVcpus", &DefinitionUndo::previous_vcpus},
                    FieldDef{"previousMemory", &DefinitionUndo::previous_memory},
                    FieldDef{"previousAutostart", &DefinitionUndo::previous_autostart},
                    FieldDef{"grown", &DefinitionUndo::grown}, FieldDef{"attached", &DefinitionUndo::attached});
GITVIRT_JSON_FIELDS(PowerUndo, FieldDef{"previousPower", &PowerUndo::previous_power});
GITVIRT_JSON_FIELDS(ReleaseUndo, FieldDef{"owner", &ReleaseUndo::owner});
GITVIRT_JSON_FIELDS(AdoptUndo, FieldDef{"marked", &AdoptUndo::marked});
GITVIRT_JSON_FIELDS(ImageImportUndo, FieldDef{"volumes", &ImageImportUndo::volumes});
GITVIRT_JSON_FIELDS(SnapshotUndo, FieldDef{"snapshot", &SnapshotUndo::snapshot});
GITVIRT_JSON_FIELDS(BackupUndo, FieldDef{"powerBefore", &BackupUndo::power_before},
                    FieldDef{"directory", &BackupUndo::directory}, FieldDef{"scratch", &BackupUndo::scratch});
GITVIRT_JSON_FIELDS(MigrationUndo, FieldDef{"sourceXml", &MigrationUndo::source_definition},
                    FieldDef{"sourcePower", &MigrationUndo::source_power},
                    FieldDef{"sourceAutostart", &MigrationUndo::source_autostart},
                    FieldDef{"copying", &MigrationUndo::copying}, FieldDef{"copied", &MigrationUndo::copied},
                    FieldDef{"created", &MigrationUndo::created}, FieldDef{"defined", &MigrationUndo::defined},
                    FieldDef{"sourceUndefined", &MigrationUndo::source_undefined},
                    FieldDef{"live", &MigrationUndo::live},
                    FieldDef{"stoppedForOffline", &MigrationUndo::stopped_for_offline});

template <typename T>
std::string EncodeUndo(const T& record) {
  return json_table::Write(record).dump();
}

template <typename T>
Result<T> DecodeUndo(const std::string& json_text, const std::string& step) {
  if (json_text.empty()) return T{};
  const nlohmann::json j = nlohmann::json::parse(json_text, nullptr, false);
  if (j.is_discarded()) return Fail(ErrorCode::kInvalidArgument, "its undo record is not valid JSON", step);
  auto record = json_table::Read<T>(j, "undo record");
  if (!record) return Fail(ErrorCode::kInvalidArgument, "its undo record cannot be read: " + record.error().message, step);
  return record;
}

#define GITVIRT_UNDO_RECORD(T)                         \
  template std::string EncodeUndo<T>(const T& record); \
  template Result<T> DecodeUndo<T>(const std::string& json_text, const std::string& step)

GITVIRT_UNDO_RECORD(DefinitionUndo);
GITVIRT_UNDO_RECORD(PowerUndo);
GITVIRT_UNDO_RECORD(ReleaseUndo);
GITVIRT_UNDO_RECORD(AdoptUndo);
GITVIRT_UNDO_RECORD(ImageImportUndo);
GITVIRT_UNDO_RECORD(SnapshotUndo);
GITVIRT_UNDO_RECORD(BackupUndo);
GITVIRT_UNDO_RECORD(MigrationUndo);

#undef GITVIRT_UNDO_RECORD

}  // namespace gitvirt
