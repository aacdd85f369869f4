#include <yaml-cpp/yaml.h>

#include <iostream>

#include "gitvirt/api/views.h"
#include "gitvirt/engine/manual.h"
#include "output.h"
#include "view.h"

namespace gitvirt::cli {
namespace {

using api_views::Json;

// JSON -> YAML through yaml-cpp's emitter (keys keep the API's order).
void Emit(YAML::Emitter& out, const Json& j) {
  if (j.is_object()) {
    out << YAML::BeginMap;
    for (auto it = j.begin(); it != j.end(); ++it) {
      out << YAML::Key << it.key() << YAML::Value;
      Emit(out, it.value());
    }
    out << YAML::EndMap;
  } else if (j.is_array()) {
    out << YAML::BeginSeq;
    for (const Json& item : j) Emit(out, item);
    out << YAML::EndSeq;
  } else if (j.is_string()) {
    out << YAML::DoubleQuoted << j.get<std::string>();
  } else if (j.is_null()) {
    out << YAML::Null;
  } else {
    out << j.dump();
  }
}

}  // namespace

void PrintDocument(std::ostream& out, const Json& doc, const std::string& format) {
  if (format == "json") {
    out << doc.dump(2) << "\n";
    return;
  }
  YAML::Emitter emitter;
  Emit(emitter, doc);
  out << emitter.c_str() << "\n";
}

void PrintStructured(std::ostream& out, const View& view, const std::string& what, const LabelSelector& selector,
                     const std::string& name, const std::string& format) {
  Json items = Json::array();
  auto named = [&name](const std::string& n) { return name.empty() || n == name; };
  if (what == "vms" || what == "vm") {
    for (const ResourceStatus& r : view.resources) {
      if (r.kind == Kind::kVirtualMachine && selector.Matches(r.labels) && named(r.name)) items.push_back(api_views::ResourceDetail(r));
    }
  } else if (what == "nodes" || what == "node") {
    for (const NodeStatus& n : view.nodes) {
      if (selector.Matches(n.labels) && named(n.name)) items.push_back(api_views::Node(n));
    }
  } else if (what == "clusters" || what == "cluster") {
    for (const ClusterStatus& c : view.clusters) {
      if (named(c.name)) items.push_back(api_views::Cluster(c));
    }
  } else if (what == "images" || what == "image") {
    for (const ResourceStatus& r : view.resources) {
      if (r.kind == Kind::kImage && selector.Matches(r.labels) && named(r.name)) items.push_back(api_views::ResourceDetail(r));
    }
  } else if (what == "snapshots" || what == "snapshot") {
    // As the table: every VM's, or (with a selector) those of gitvirt's VMs it matches.
    for (const ObservedNode& n : view.observed.nodes) {
      for (const ObservedVm& vm : n.vms) {
        if (!selector.requirements.empty() && (!vm.Owned() || !selector.Matches(vm.owner->labels))) continue;
        for (const ObservedSnapshot& s : vm.snapshots) {
          if (!named(s.name)) continue;
          items.push_back(api_views::Snapshot(
              SnapshotEntry{vm.name, n.name, s.name, s.policy, s.description, s.state, s.created}));
        }
      }
    }
  } else if (what == "backups" || what == "backup") {
    auto records = ListBackups(*view.session, BackupFilter{});
    if (!records) {
      std::cerr << "gitvirt: " << records.error().ToString() << "\n";
    } else {
      for (const BackupRecord& r : *records) {
        if (!named(r.id)) continue;
        items.push_back(api_views::Backup(BackupEntry{r.id, r.vm, r.node, r.policy, r.location, r.mode, r.compression,
                                                      r.bytes, r.verified, r.is_protected, r.status, r.created,
                                                      r.error}));
      }
    }
  }
  Json doc = {{"kind", what}, {"items", items}};
  if ((what == "vms" || what == "vm") && selector.requirements.empty()) {
    // As the table: domains gitvirt does not own are listed (apart from its resources, which
    // `items` holds), never touched. A selector matches gitvirt's labels, which they lack.
    Json unmanaged = Json::array();
    for (const ObservedNode& n : view.observed.nodes) {
      for (const ObservedVm& vm : n.vms) {
        if (vm.Owned() || !named(vm.name)) continue;
        unmanaged.push_back({{"name", vm.name},
                             {"node", n.name},
                             {"power", EnumName(vm.power)},
                             {"state", vm.state_detail},
                             {"vcpus", vm.actual.vcpus},
                             {"memory", vm.actual.memory}});
      }
    }
    doc["unmanaged"] = std::move(unmanaged);
  }
  PrintDocument(out, doc, format);
}

}  // namespace gitvirt::cli
