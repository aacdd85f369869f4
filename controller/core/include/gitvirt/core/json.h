#pragma once
// JSON forms of the model, for plan files, the owner metadata's last-applied spec, the journal
// and the status API. Keys are the manifest's camelCase names. Each struct lists its fields once
// (JsonFields<T> in json.cc's tables); one generic pair of functions walks those tables, so a
// new field is one line. Optional fields are omitted when unset; unknown keys are ignored when
// reading (a newer gitvirt's plan is refused by its version field, not by a parse error).

#include <nlohmann/json.hpp>

#include "gitvirt/core/error.h"
#include "gitvirt/core/fingerprint.h"
#include "gitvirt/core/model.h"
#include "gitvirt/core/plan.h"

namespace gitvirt {

nlohmann::json ToJson(const VmSpec& spec);
// The names of a VM spec's fields as manifests write them ("memory", "disks", ...).
const std::vector<std::string_view>& VmSpecFieldNames();
nlohmann::json ToJson(const VirtualMachine& vm);
nlohmann::json ToJson(const Image& image);
nlohmann::json ToJson(const ObjectMeta& meta);
nlohmann::json ToJson(const SnapshotPolicy& policy);
nlohmann::json ToJson(const BackupPolicy& policy);
nlohmann::json ToJson(const Cluster& cluster);
// gitvirt's owner mark (an undo record keeps the one a release removes).
nlohmann::json ToJson(const Ownership& owner);

Result<VmSpec> VmSpecFromJson(const nlohmann::json& j);
Result<VirtualMachine> VirtualMachineFromJson(const nlohmann::json& j);
Result<Image> ImageFromJson(const nlohmann::json& j);
Result<Ownership> OwnershipFromJson(const nlohmann::json& j);

// A plan file: the plan plus formatVersion and a summary. Reading refuses other versions.
nlohmann::json PlanToJson(const Plan& plan);
Result<Plan> PlanFromJson(const nlohmann::json& j);

// The Fingerprint (fingerprint.h) of a value's canonical JSON (sorted keys).
std::string JsonFingerprint(const nlohmann::json& j);

// The spec hash stored in a domain's owner metadata: covers everything that shapes the domain
// (not the power state or the node, which gitvirt changes without redefining).
std::string SpecHash(const VmSpec& spec);

}  // namespace gitvirt
