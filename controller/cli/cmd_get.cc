#include <iostream>

#include "command.h"
#include "flags.h"
#include "gitvirt/cli/app.h"
#include "gitvirt/core/selector.h"
#include "output.h"
#include "policy_commands.h"
#include "view.h"

namespace gitvirt::cli {
namespace {

struct GetOptions {
  std::string what;
  std::string name;
  SourceSelection source;
  std::string selector;
  std::string output = "table";
};

// Every spelling `get` takes, and what each means (kubectl takes singular and plural too).
const std::vector<std::pair<std::string, std::string>>& Types() {
  static const std::vector<std::pair<std::string, std::string>> kTypes = {
      {"vms", "vms"},           {"vm", "vms"},           {"virtualmachines", "vms"}, {"nodes", "nodes"},
      {"node", "nodes"},        {"images", "images"},    {"image", "images"},        {"clusters", "clusters"},
      {"cluster", "clusters"},  {"snapshots", "snapshots"}, {"snapshot", "snapshots"}, {"backups", "backups"},
      {"backup", "backups"}};
  return kTypes;
}

std::vector<std::string> TypeNames() {
  std::vector<std::string> names;
  for (const auto& [name, type] : Types()) names.push_back(name);
  return names;
}

std::string Canonical(const std::string& what) {
  for (const auto& [name, type] : Types()) {
    if (name == what) return type;
  }
  return what;
}

// The kind FindInView and -o name speak of.
std::string KindOf(const std::string& type) {
  if (type == "vms") return "VirtualMachine";
  if (type == "nodes") return "Node";
  if (type == "images") return "Image";
  if (type == "clusters") return "Cluster";
  if (type == "snapshots") return "Snapshot";
  return "Backup";
}

std::string Labels(const gitvirt::Labels& labels) {
  std::string out;
  for (const auto& [k, v] : labels) out += (out.empty() ? "" : ",") + k + "=" + v;
  return out.empty() ? "<none>" : out;
}

std::string Percent(std::uint64_t used, std::uint64_t total) {
  if (total == 0) return "-";
  return std::to_string(used * 100 / total) + "%";
}

// Prints `table` (or "No <what>." when it has no row), or its first column as Kind/name.
void Emit(const Table& table, const std::vector<std::string>& names, const std::string& kind, const std::string& what,
          const std::string& output) {
  if (output == "name") {
    for (const std::string& n : names) std::cout << kind << "/" << n << "\n";
  } else if (table.size() == 0) {
    std::cout << "No " << what << ".\n";
  } else {
    table.Print(std::cout);
  }
}

int GetVms(const View& view, const LabelSelector& selector, const GetOptions& opts) {
  const bool wide = opts.output == "wide";
  std::vector<std::string> header = {"NAME", "NODE", "POWER", "SYNC", "HEALTH", "VCPUS", "MEMORY"};
  if (wide) header.insert(header.end(), {"CLUSTER", "ADDRESS", "REVISION", "LABELS"});
  Table table(header);
  std::vector<std::string> names;
  for (const ResourceStatus& r : view.resources) {
    if (r.kind != Kind::kVirtualMachine || !selector.Matches(r.labels)) continue;
    if (!opts.name.empty() && r.name != opts.name) continue;
    int vcpus = 0;
    std::uint64_t memory = 0;
    for (const ObservedNode& n : view.observed.nodes) {
      // Figures only from gitvirt's own domain: a same-named unmanaged one is listed apart.
      if (const ObservedVm* vm = n.FindVm(r.name); vm != nullptr && vm->Owned()) {
        vcpus = vm->actual.vcpus;
        memory = vm->actual.memory;
      }
    }
    std::vector<std::string> row = {r.name, r.node.empty() ? "-" : r.node, r.power.empty() ? "-" : r.power,
                                    std::string(EnumName(r.sync)), std::string(EnumName(r.health)),
                                    vcpus ? std::to_string(vcpus) : "-", memory ? FormatSize(memory) : "-"};
    if (wide) {
      row.insert(row.end(), {r.cluster.empty() ? "-" : r.cluster + "/" + r.group, r.address.empty() ? "-" : r.address,
                             r.revision.empty() ? "-" : r.revision.substr(0, 16), Labels(r.labels)});
    }
    table.Add(row);
    names.push_back(r.name);
  }
  // Domains gitvirt does not own: shown, never touched (not in -o name, which lists gitvirt's).
  if (opts.selector.empty()) {
    for (const ObservedNode& n : view.observed.nodes) {
      for (const ObservedVm& vm : n.vms) {
        if (vm.Owned() || (!opts.name.empty() && vm.name != opts.name)) continue;
        std::vector<std::string> row = {vm.name, n.name, std::string(EnumName(vm.power)), "Unmanaged", "-",
                                        std::to_string(vm.actual.vcpus), FormatSize(vm.actual.memory)};
        if (wide) row.insert(row.end(), {"-", "-", "-", "<not gitvirt's>"});
        table.Add(row);
      }
    }
  }
  Emit(table, names, "VirtualMachine", "VMs", opts.output);
  return kExitOk;
}

int GetNodes(const View& view, const LabelSelector& selector, const GetOptions& opts) {
  const bool wide = opts.output == "wide";
  std::vector<std::string> header = {"NAME", "DRIVER", "REACHABLE", "VMS", "MANAGED", "VCPUS", "MEMORY", "LABELS"};
  if (wide) header.insert(header.end(), {"URI", "DRAIN", "ERROR"});
  Table table(header);
  std::vector<std::string> names;
  for (const NodeStatus& n : view.nodes) {
    if (!selector.Matches(n.labels) || (!opts.name.empty() && n.name != opts.name)) continue;
    std::vector<std::string> row = {n.name + (n.draining ? " (draining)" : ""), n.driver.empty() ? "-" : n.driver,
                                    n.reachable ? "yes" : "no", std::to_string(n.vms), std::to_string(n.vms_managed),
                                    std::to_string(n.vcpus_allocated) + "/" + std::to_string(n.vcpus),
                                    FormatSize(n.memory_allocated) + "/" + FormatSize(n.memory) + " (" +
                                        Percent(n.memory_allocated, n.memory) + ")",
                                    Labels(n.labels)};
    if (wide) row.insert(row.end(), {n.uri, n.draining ? "yes" : "no", n.error.empty() ? "-" : n.error});
    table.Add(row);
    names.push_back(n.name);
  }
  Emit(table, names, "Node", "nodes", opts.output);
  return kExitOk;
}

int GetImages(const View& view, const LabelSelector& selector, const GetOptions& opts) {
  const bool wide = opts.output == "wide";
  std::vector<std::string> header = {"NAME", "FORMAT", "POOL", "ON NODES", "SHA256"};
  if (wide) header.insert(header.end(), {"SOURCE", "OS"});
  Table table(header);
  std::vector<std::string> names;
  if (view.desired) {
    for (const Image& image : view.desired->state.images) {
      if (!selector.Matches(image.meta.labels) || (!opts.name.empty() && image.meta.name != opts.name)) continue;
      std::string on;
      for (const ObservedNode& n : view.observed.nodes) {
        const ObservedPool* pool = n.FindPool(image.spec.pool);
        if (pool != nullptr && pool->FindVolume(image.VolumeName()) != nullptr) on += (on.empty() ? "" : ",") + n.name;
      }
      std::vector<std::string> row = {image.meta.name, std::string(EnumName(image.spec.format)), image.spec.pool,
                                      on.empty() ? "-" : on, image.spec.sha256.empty() ? "-" : image.spec.sha256.substr(0, 12)};
      if (wide) {
        const std::string os = image.spec.os.variant.empty() ? image.spec.os.type : image.spec.os.variant;
        row.insert(row.end(), {image.spec.source, os.empty() ? "-" : os});
      }
      table.Add(row);
      names.push_back(image.meta.name);
    }
  }
  Emit(table, names, "Image", "images", opts.output);
  return kExitOk;
}

int GetClusters(const View& view, const GetOptions& opts) {
  // One row per member, like `kubectl get pods`: the cluster's and the group's Ready/total
  // repeat on each of their rows so a filtered or sorted listing stays readable.
  const bool wide = opts.output == "wide";
  std::vector<std::string> header = {"CLUSTER", "READY", "GROUP", "ROLE", "GROUP READY", "MEMBER", "NODE", "STATE",
                                     "MEMBER READY"};
  if (wide) header.insert(header.end(), {"SYNC", "HEALTH"});
  Table table(header);
  std::vector<std::string> names;
  for (const ClusterStatus& c : view.clusters) {
    if (!opts.name.empty() && c.name != opts.name) continue;
    names.push_back(c.name);
    const std::string cluster_ready = std::to_string(c.ready) + "/" + std::to_string(c.desired);
    for (const ClusterGroupStatus& g : c.groups) {
      const std::string group_ready = std::to_string(g.ready) + "/" + std::to_string(g.desired);
      const std::string role = g.role.empty() ? "-" : g.role;
      std::vector<std::string> none = {c.name, cluster_ready, g.name, role, group_ready, "-", "-", "-", "-"};
      if (wide) none.insert(none.end(), {"-", "-"});
      if (g.members.empty()) table.Add(none);
      for (const ClusterMemberStatus& m : g.members) {
        std::vector<std::string> row = {c.name, cluster_ready, g.name, role, group_ready, m.name,
                                        m.node.empty() ? "-" : m.node, m.power.empty() ? "missing" : m.power,
                                        m.ready ? "yes" : "no"};
        if (wide) {
          std::string sync = "-", health = "-";
          for (const ResourceStatus& r : view.resources) {
            if (r.kind == Kind::kVirtualMachine && r.name == m.name) {
              sync = EnumName(r.sync);
              health = EnumName(r.health);
            }
          }
          row.insert(row.end(), {sync, health});
        }
        table.Add(row);
      }
    }
  }
  Emit(table, names, "Cluster", "clusters", opts.output);
  return kExitOk;
}

int RunGet(const GlobalOptions& global, const GetOptions& opts) {
  auto selector = ParseLabelSelector(opts.selector);
  if (!selector) {
    std::cerr << "gitvirt: -l: " << selector.error().message << "\n";
    return kExitError;
  }
  auto view = GatherView(global, opts.source);
  if (!view) return kExitError;
  WarnUnreachable(*view);
  const std::string type = Canonical(opts.what);
  if (!opts.name.empty()) {
    if (auto found = FindInView(*view->session, *view, KindOf(type), opts.name); !found) {
      PrintError(found.error());
      return kExitError;
    }
  }
  if (opts.output == "json" || opts.output == "yaml") {
    PrintStructured(std::cout, *view, type, *selector, opts.name, opts.output);
    return kExitOk;
  }
  if (type == "vms") return GetVms(*view, *selector, opts);
  if (type == "nodes") return GetNodes(*view, *selector, opts);
  if (type == "images") return GetImages(*view, *selector, opts);
  if (type == "clusters") return GetClusters(*view, opts);
  if (type == "snapshots") {
    SnapshotQuery query;
    query.name = opts.name;
    return PrintSnapshots(std::cout, view->observed, *selector, !opts.selector.empty(), query, opts.output);
  }
  return PrintBackups(std::cout, *view->session, BackupFilter{}, opts.name, opts.output);
}

}  // namespace

void AddGetCommand(CLI::App& app, GlobalOptions& global, CommandResult& result) {
  auto opts = std::make_shared<GetOptions>();
  auto* cmd = app.add_subcommand("get", "List vms, nodes, images, clusters, snapshots or backups with their status");
  AddChoice(cmd, "type", opts->what, TypeNames(), "vms | nodes | images | clusters | snapshots | backups")->required();
  cmd->add_option("name", opts->name, "Only this one (NotFound if there is none)");
  AddSourceOptions(cmd, opts->source);
  cmd->add_option("-l,--selector", opts->selector, "Label selector, e.g. tier=web,env!=dev");
  AddOutputOption(cmd, opts->output, {"table", "wide", "json", "yaml", "name"});
  SetExamples(cmd, {"gitvirt get vms", "gitvirt get vms web-01 -o yaml", "gitvirt get vms -l tier=web -o wide",
                    "gitvirt get nodes -o wide  # with each node's URI and, if unreachable, why",
                    "gitvirt get vms -o name  # VirtualMachine/NAME, one a line"});
  cmd->callback([&global, &result, opts] { result.exit_code = RunGet(global, *opts); });
}

}  // namespace gitvirt::cli
