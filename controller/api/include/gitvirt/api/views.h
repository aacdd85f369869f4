#pragma once
// JSON views of the status values for the API: camelCase names, enums by their EnumName
// spelling, times as RFC 3339 UTC strings (null when unknown), embedded JSON documents
// (desired/observed specs, plans, step results) parsed so they nest instead of being strings.
// Used by the status API and by `gitvirt get -o json|yaml`, so both print the same shapes.
// Pure functions.

#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "gitvirt/core/status.h"

namespace gitvirt::api_views {

// Keys keep the order they are written in, so answers read like the docs.
using Json = nlohmann::ordered_json;

// Compact JSON text; invalid UTF-8 (a libvirt message in another encoding) is replaced, never
// thrown about.
std::string Dump(const Json& json);

Json Time(const std::optional<TimePoint>& time);
// The document in `text` when it parses, else the text itself; null when empty.
Json EmbeddedJson(const std::string& text);

Json ResourceSummary(const ResourceStatus& resource);
Json ResourceDetail(const ResourceStatus& resource);
Json Node(const NodeStatus& node);
Json Cluster(const ClusterStatus& cluster);
Json Policy(const PolicyStatus& policy);
Json Snapshot(const SnapshotEntry& snapshot);
Json Backup(const BackupEntry& backup);
Json DiagnosticView(const Diagnostic& diagnostic);

// steps_done / steps_total in percent, one decimal; a finished job without steps is 100.
double JobProgress(const JobRecord& job);
Json JobSummary(const JobRecord& job);
// The summary plus steps, running steps, per-target state and the rollback outcome.
Json JobDetail(const JobRecord& job, const std::vector<StepRecord>& steps);
Json Event(const EventRecord& event);
// The `progress` payload of an event stream.
Json JobProgressView(const JobRecord& job);

// /api/v1/status; `current_job` is the running job when there is one.
Json Status(const StatusSnapshot& snapshot, const std::optional<JobRecord>& current_job);

}  // namespace gitvirt::api_views
