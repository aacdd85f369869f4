#include "metrics.h"

#include <charconv>
#include <cmath>
#include <map>
#include <string_view>
#include <utility>
#include <vector>

namespace gitvirt::api_metrics {
namespace {

using LabelList = std::vector<std::pair<std::string_view, std::string_view>>;

// Writes one metric family at a time: HELP and TYPE once, then its samples.
class Writer {
 public:
  void Family(std::string_view name, std::string_view type, std::string_view help) {
    name_ = name;
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    for (char c : help) {
      if (c == '\\')
        out_ += "\\\\";
      else if (c == '\n')
        out_ += "\\n";
      else
        out_ += c;
    }
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }

  // A sample of the current family; `suffix` is "_sum"/"_count" for summaries.
  void Sample(double value, const LabelList& labels = {}, std::string_view suffix = {}) {
    out_ += name_;
    out_ += suffix;
    if (!labels.empty()) {
      out_ += '{';
      bool first = true;
      for (const auto& [key, label_value] : labels) {
        if (!first) out_ += ',';
        first = false;
        out_ += key;
        out_ += "=\"";
        for (char c : label_value) {
          if (c == '\\')
            out_ += "\\\\";
          else if (c == '"')
            out_ += "\\\"";
          else if (c == '\n')
            out_ += "\\n";
          else
            out_ += c;
        }
        out_ += '"';
      }
      out_ += '}';
    }
    out_ += ' ';
    AppendValue(value);
    out_ += '\n';
  }

  void Gauge(std::string_view name, std::string_view help, double value) {
    Family(name, "gauge", help);
    Sample(value);
  }
  void Counter(std::string_view name, std::string_view help, double value) {
    Family(name, "counter", help);
    Sample(value);
  }
  // A summary without quantiles: the total and the number of observations.
  void Summary(std::string_view name, std::string_view help, double sum, double count) {
    Family(name, "summary", help);
    Sample(sum, {}, "_sum");
    Sample(count, {}, "_count");
  }

  std::string Take() { return std::move(out_); }
  void Reserve(std::size_t bytes) { out_.reserve(bytes); }

 private:
  void AppendValue(double value) {
    if (std::isnan(value)) {
      out_ += "NaN";
      return;
    }
    if (std::isinf(value)) {
      out_ += value > 0 ? "+Inf" : "-Inf";
      return;
    }
    char buffer[64];
    std::to_chars_result result;
    if (value == std::floor(value) && std::fabs(value) < 9.0e15) {
      result = std::to_chars(buffer, buffer + sizeof buffer, static_cast<long long>(value));
    } else {
      result = std::to_chars(buffer, buffer + sizeof buffer, value);
    }
    out_.append(buffer, result.ptr);
  }

  std::string out_;
  std::string_view name_;
};

double Seconds(TimePoint time) {
  return static_cast<double>(time.time_since_epoch().count());
}

}  // namespace

std::string Render(const StatusSnapshot& s) {
  Writer w;
  w.Reserve(512 + s.resources.size() * 700 + s.nodes.size() * 600 + s.backups.size() * 80);
  const ControllerMetrics& m = s.metrics;

  w.Gauge("gitvirt_ready", "1 once the controller has completed a reconcile pass.",
          s.ready ? 1 : 0);
  w.Gauge("gitvirt_status_generation", "Generation of the published status snapshot.",
          static_cast<double>(s.generation));
  w.Family("gitvirt_revision_info", "gauge",
           "The revision in force and the newest fetched revision (value always 1).");
  w.Sample(1, {{"ref", s.ref}, {"revision", s.revision}, {"fetched_revision", s.fetched_revision}});
  if (s.last_sync) {
    w.Gauge("gitvirt_last_sync_timestamp_seconds", "When the last sync finished (Unix time).",
            Seconds(*s.last_sync));
  }
  w.Family("gitvirt_last_sync_result", "gauge", "1 for the result of the last sync, else 0.");
  for (std::string_view result : {"synced", "out-of-sync", "failed", "invalid"}) {
    w.Sample(s.last_sync_result == result ? 1 : 0, {{"result", result}});
  }

  // ---- resources ----
  w.Family("gitvirt_resource_sync_status", "gauge",
           "1 for the resource's sync status, 0 for the other statuses.");
  for (const ResourceStatus& r : s.resources) {
    for (const auto& [status, name] : EnumTable<SyncStatus>::kNames) {
      w.Sample(r.sync == status ? 1 : 0,
               {{"kind", EnumName(r.kind)}, {"name", r.name}, {"status", name}});
    }
  }
  w.Family("gitvirt_resource_health", "gauge",
           "1 for the resource's health, 0 for the other health values.");
  for (const ResourceStatus& r : s.resources) {
    for (const auto& [health, name] : EnumTable<Health>::kNames) {
      w.Sample(r.health == health ? 1 : 0,
               {{"kind", EnumName(r.kind)}, {"name", r.name}, {"health", name}});
    }
  }
  w.Family("gitvirt_resource_drift_fields", "gauge",
           "Fields whose observed value differs from the desired one.");
  for (const ResourceStatus& r : s.resources) {
    w.Sample(static_cast<double>(r.drift.size()), {{"kind", EnumName(r.kind)}, {"name", r.name}});
  }
  std::map<SyncStatus, int> by_sync;
  std::map<Health, int> by_health;
  for (const ResourceStatus& r : s.resources) {
    ++by_sync[r.sync];
    ++by_health[r.health];
  }
  w.Family("gitvirt_resources_by_sync_status", "gauge", "Resources per sync status.");
  for (const auto& [status, name] : EnumTable<SyncStatus>::kNames) {
    w.Sample(by_sync[status], {{"status", name}});
  }
  w.Family("gitvirt_resources_by_health", "gauge", "Resources per health.");
  for (const auto& [health, name] : EnumTable<Health>::kNames) {
    w.Sample(by_health[health], {{"health", name}});
  }

  // ---- reconcile loop, jobs, steps ----
  w.Counter("gitvirt_reconciles_total", "Reconcile passes.",
            static_cast<double>(m.reconciles_total));
  w.Counter("gitvirt_reconcile_errors_total", "Reconcile passes that failed.",
            static_cast<double>(m.reconcile_errors_total));
  w.Counter("gitvirt_source_fetches_total", "Fetches of the git source (reads of a directory source).",
            static_cast<double>(m.source_fetches_total));
  w.Counter("gitvirt_source_loads_total",
            "Revisions whose manifests were loaded, valid or not (an invalid one is not loaded again).",
            static_cast<double>(m.source_loads_total));
  w.Gauge("gitvirt_reconcile_duration_seconds", "Duration of the last reconcile pass.",
          m.last_reconcile_seconds);
  w.Counter("gitvirt_jobs_total", "Jobs run.", static_cast<double>(m.jobs_total));
  w.Counter("gitvirt_jobs_failed_total", "Jobs that did not succeed.",
            static_cast<double>(m.jobs_failed_total));
  w.Gauge("gitvirt_job_running", "1 while a job runs.", s.current_job.empty() ? 0 : 1);
  w.Counter("gitvirt_steps_total", "Job steps run.", static_cast<double>(m.steps_total));
  w.Counter("gitvirt_steps_failed_total", "Job steps that failed.",
            static_cast<double>(m.steps_failed_total));
  w.Summary("gitvirt_step_duration_seconds", "Time spent in job steps.", m.steps_seconds_sum,
            static_cast<double>(m.steps_total));

  // ---- backups and snapshots ----
  w.Counter("gitvirt_backups_total", "Backups taken.", static_cast<double>(m.backups_total));
  w.Counter("gitvirt_backups_failed_total", "Backups that failed.",
            static_cast<double>(m.backups_failed_total));
  w.Counter("gitvirt_backup_bytes_total", "Bytes written by backups.",
            static_cast<double>(m.backup_bytes_total));
  w.Summary("gitvirt_backup_duration_seconds", "Time spent taking backups.", m.backup_seconds_sum,
            static_cast<double>(m.backups_total));
  w.Counter("gitvirt_snapshots_total", "Snapshots taken.", static_cast<double>(m.snapshots_total));
  w.Counter("gitvirt_snapshots_failed_total", "Snapshots that failed.",
            static_cast<double>(m.snapshots_failed_total));

  struct LastBackup {
    TimePoint created{};
    std::uint64_t bytes = 0;
  };
  std::map<std::string_view, LastBackup> last_backup;
  std::map<std::string_view, int> backups_by_status;
  for (const BackupEntry& b : s.backups) {
    ++backups_by_status[b.status];
    if (b.status != "complete") continue;
    LastBackup& last = last_backup[b.vm];
    if (b.created >= last.created) last = {b.created, b.bytes};
  }
  w.Family("gitvirt_backups", "gauge", "Backups in the catalog per status.");
  for (const auto& [status, count] : backups_by_status) w.Sample(count, {{"status", status}});
  w.Family("gitvirt_vm_last_backup_timestamp_seconds", "gauge",
           "When the VM's newest complete backup was taken (Unix time).");
  for (const auto& [vm, last] : last_backup) w.Sample(Seconds(last.created), {{"vm", vm}});
  w.Family("gitvirt_vm_last_backup_bytes", "gauge", "Size of the VM's newest complete backup.");
  for (const auto& [vm, last] : last_backup) {
    w.Sample(static_cast<double>(last.bytes), {{"vm", vm}});
  }
  std::map<std::string_view, int> snapshots_per_vm;
  for (const SnapshotEntry& snapshot : s.snapshots) ++snapshots_per_vm[snapshot.vm];
  w.Family("gitvirt_vm_snapshots", "gauge", "Snapshots the VM has.");
  for (const auto& [vm, count] : snapshots_per_vm) w.Sample(count, {{"vm", vm}});

  // ---- nodes ----
  struct NodeGauge {
    std::string_view name;
    std::string_view help;
    double (*value)(const NodeStatus&);
  };
  static constexpr NodeGauge kNodeGauges[] = {
      {"gitvirt_node_up", "1 when the node's libvirt daemon is reachable.",
       [](const NodeStatus& n) { return n.reachable ? 1.0 : 0.0; }},
      {"gitvirt_node_draining", "1 while the node is being drained.",
       [](const NodeStatus& n) { return n.draining ? 1.0 : 0.0; }},
      {"gitvirt_node_vms", "Domains defined on the node.",
       [](const NodeStatus& n) { return static_cast<double>(n.vms); }},
      {"gitvirt_node_vms_managed", "Domains on the node that gitvirt manages.",
       [](const NodeStatus& n) { return static_cast<double>(n.vms_managed); }},
      {"gitvirt_node_vcpus", "The node's vCPU capacity.",
       [](const NodeStatus& n) { return static_cast<double>(n.vcpus); }},
      {"gitvirt_node_vcpus_allocated", "vCPUs allocated to the node's domains.",
       [](const NodeStatus& n) { return static_cast<double>(n.vcpus_allocated); }},
      {"gitvirt_node_memory_bytes", "The node's memory capacity.",
       [](const NodeStatus& n) { return static_cast<double>(n.memory); }},
      {"gitvirt_node_memory_allocated_bytes", "Memory allocated to the node's domains.",
       [](const NodeStatus& n) { return static_cast<double>(n.memory_allocated); }},
  };
  for (const NodeGauge& gauge : kNodeGauges) {
    w.Family(gauge.name, "gauge", gauge.help);
    for (const NodeStatus& n : s.nodes) w.Sample(gauge.value(n), {{"node", n.name}});
  }

  // ---- clusters and policies ----
  w.Family("gitvirt_cluster_members_desired", "gauge", "Members the cluster should have.");
  for (const ClusterStatus& c : s.clusters) w.Sample(c.desired, {{"cluster", c.name}});
  w.Family("gitvirt_cluster_members_ready", "gauge", "Members of the cluster that are ready.");
  for (const ClusterStatus& c : s.clusters) w.Sample(c.ready, {{"cluster", c.name}});

  w.Family("gitvirt_policy_last_run_timestamp_seconds", "gauge",
           "When the policy last ran (Unix time).");
  for (const PolicyStatus& p : s.policies) {
    if (p.last_run) w.Sample(Seconds(*p.last_run), {{"kind", EnumName(p.kind)}, {"name", p.name}});
  }
  w.Family("gitvirt_policy_next_run_timestamp_seconds", "gauge",
           "When the policy runs next (Unix time).");
  for (const PolicyStatus& p : s.policies) {
    if (p.next_run) w.Sample(Seconds(*p.next_run), {{"kind", EnumName(p.kind)}, {"name", p.name}});
  }
  w.Family("gitvirt_policy_last_run_failed", "gauge", "1 when the policy's last run failed.");
  for (const PolicyStatus& p : s.policies) {
    w.Sample(p.last_result.starts_with("failed") ? 1 : 0,
             {{"kind", EnumName(p.kind)}, {"name", p.name}});
  }
  w.Family("gitvirt_policy_suspended", "gauge", "1 when the policy is suspended.");
  for (const PolicyStatus& p : s.policies) {
    w.Sample(p.suspended ? 1 : 0, {{"kind", EnumName(p.kind)}, {"name", p.name}});
  }
  return w.Take();
}

}  // namespace gitvirt::api_metrics
