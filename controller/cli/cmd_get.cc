#include <iostream>

#include "command.h"
#include "gitvirt/cli/app.h"
#include "gitvirt/core/selector.h"
#include "output.h"
#include "policy_commands.h"
#include "view.h"

namespace gitvirt::cli {
namespace {

struct GetOptions {
  std::string what;
  SourceSelection source;
  std::string selector;
  std::string output = "table";
};

std::string Labels(const gitvirt::Labels& labels) {
  std::string out;
  for (const auto& [k, v] : labels) out += (out.empty() ? "" : ",") + k + "=" + v;
  return out.empty() ? "<none>" : out;
}

std::string Percent(std::uint64_t used, std::uint64_t total) {
  if (total == 0) return "-";
  return std::to_string(used * 100 / total) + "%";
}

int RunGet(const GlobalOptions& global, const GetOptions& opts) {
  auto log = MakeLogger(global.verbosity);
  auto selector = ParseLabelSelector(opts.selector);
  if (!selector) {
    std::cerr << "gitvirt: -l: " << selector.error().message << "\n";
    return kExitError;
  }
  auto view = GatherView(global, opts.source, log);
  if (!view) return kExitError;
  const bool wide = opts.output == "wide";
  if (opts.output == "json" || opts.output == "yaml") {
    PrintStructured(std::cout, *view, opts.what, *selector, opts.output);
    return kExitOk;
  }
  if (opts.what == "vms" || opts.what == "vm") {
    std::vector<std::string> header = {"NAME", "NODE", "POWER", "SYNC", "HEALTH", "VCPUS", "MEMORY"};
    if (wide) header.insert(header.end(), {"CLUSTER", "ADDRESS", "REVISION", "LABELS"});
    Table table(header);
    for (const ResourceStatus& r : view->resources) {
      if (r.kind != Kind::kVirtualMachine || !selector->Matches(r.labels)) continue;
      int vcpus = 0;
      std::uint64_t memory = 0;
      for (const ObservedNode& n : view->observed.nodes) {
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
        row.insert(row.end(), {r.cluster.empty() ? "-" : r.cluster + "/" + r.group,
                               r.address.empty() ? "-" : r.address,
                               r.revision.empty() ? "-" : r.revision.substr(0, 16), Labels(r.labels)});
      }
      table.Add(row);
    }
    // Domains gitvirt does not own: shown, never touched.
    if (opts.selector.empty()) {
      for (const ObservedNode& n : view->observed.nodes) {
        for (const ObservedVm& vm : n.vms) {
          if (vm.Owned()) continue;
          std::vector<std::string> row = {vm.name, n.name, std::string(EnumName(vm.power)), "Unmanaged", "-",
                                          std::to_string(vm.actual.vcpus), FormatSize(vm.actual.memory)};
          if (wide) row.insert(row.end(), {"-", "-", "-", "<not gitvirt's>"});
          table.Add(row);
        }
      }
    }
    if (table.size() == 0) {
      std::cout << "No VMs.\n";
    } else {
      table.Print(std::cout);
    }
    return kExitOk;
  }
  if (opts.what == "nodes" || opts.what == "node") {
    Table table({"NAME", "DRIVER", "REACHABLE", "VMS", "MANAGED", "VCPUS", "MEMORY", "LABELS"});
    for (const NodeStatus& n : view->nodes) {
      if (!selector->Matches(n.labels)) continue;
      table.Add({n.name + (n.draining ? " (draining)" : ""), n.driver.empty() ? "-" : n.driver,
                 n.reachable ? "yes" : "no: " + n.error, std::to_string(n.vms), std::to_string(n.vms_managed),
                 std::to_string(n.vcpus_allocated) + "/" + std::to_string(n.vcpus),
                 FormatSize(n.memory_allocated) + "/" + FormatSize(n.memory) + " (" +
                     Percent(n.memory_allocated, n.memory) + ")",
                 Labels(n.labels)});
    }
    table.Print(std::cout);
    return kExitOk;
  }
  if (opts.what == "images" || opts.what == "image") {
    Table table({"NAME", "FORMAT", "POOL", "ON NODES", "SHA256"});
    if (view->desired) {
      for (const Image& image : view->desired->state.images) {
        if (!selector->Matches(image.meta.labels)) continue;
        std::string on;
        for (const ObservedNode& n : view->observed.nodes) {
          const ObservedPool* pool = n.FindPool(image.spec.pool);
          if (pool != nullptr && pool->FindVolume(image.VolumeName()) != nullptr) on += (on.empty() ? "" : ",") + n.name;
        }
        table.Add({image.meta.name, std::string(EnumName(image.spec.format)), image.spec.pool, on.empty() ? "-" : on,
                   image.spec.sha256.substr(0, 12)});
      }
    }
    table.Print(std::cout);
    return kExitOk;
  }
  if (opts.what == "clusters" || opts.what == "cluster") {
    // One row per member, like `kubectl get pods`: the cluster's and the group's Ready/total
    // repeat on each of their rows so a filtered or sorted listing stays readable.
    Table table({"CLUSTER", "READY", "GROUP", "ROLE", "GROUP READY", "MEMBER", "NODE", "STATE", "MEMBER READY"});
    for (const ClusterStatus& c : view->clusters) {
      const std::string cluster_ready = std::to_string(c.ready) + "/" + std::to_string(c.desired);
      for (const ClusterGroupStatus& g : c.groups) {
        const std::string group_ready = std::to_string(g.ready) + "/" + std::to_string(g.desired);
        const std::string role = g.role.empty() ? "-" : g.role;
        if (g.members.empty()) table.Add({c.name, cluster_ready, g.name, role, group_ready, "-", "-", "-", "-"});
        for (const ClusterMemberStatus& m : g.members) {
          table.Add({c.name, cluster_ready, g.name, role, group_ready, m.name, m.node.empty() ? "-" : m.node,
                     m.power.empty() ? "missing" : m.power, m.ready ? "yes" : "no"});
        }
      }
    }
    table.Print(std::cout);
    return kExitOk;
  }
  if (opts.what == "snapshots" || opts.what == "snapshot") {
    return PrintSnapshots(std::cout, view->observed, *selector, !opts.selector.empty(), "", "", opts.output);
  }
  if (opts.what == "backups" || opts.what == "backup") return PrintBackups(std::cout, *view->session, "", "", opts.output);
  std::cerr << "gitvirt get: unknown resource type \"" << opts.what
            << "\" (vms, nodes, images, clusters, snapshots, backups)\n";
  return kExitError;
}

}  // namespace

void AddGetCommand(CLI::App& app, GlobalOptions& global, CommandResult& result) {
  auto opts = std::make_shared<GetOptions>();
  auto* cmd = app.add_subcommand("get", "List vms, nodes, images or clusters with their sync status");
  cmd->add_option("what", opts->what, "vms | nodes | images | clusters | snapshots | backups")->required();
  AddSourceOptions(cmd, opts->source);
  cmd->add_option("-l,--selector", opts->selector, "Label selector, e.g. tier=web,env!=dev");
  AddOutputOption(cmd, opts->output, {"table", "wide", "json", "yaml"});
  cmd->callback([&global, &result, opts] { result.exit_code = RunGet(global, *opts); });
}

}  // namespace gitvirt::cli
