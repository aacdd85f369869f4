#include "gitvirt/core/import.h"

#include <algorithm>
#include <map>
#include <set>

#include "gitvirt/core/selector.h"

namespace gitvirt {
namespace {

bool IsGlob(const std::string& pattern) { return pattern.find_first_of("*?[") != std::string::npos; }

}  // namespace

ImportedVm ManifestOfDomain(const ObservedVm& domain, bool adopt) {
  ImportedVm out;
  out.node = domain.node;
  out.unexpressed = domain.unexpressed;
  VirtualMachine& vm = out.vm;
  vm.meta.name = domain.name;
  vm.spec = domain.actual;
  vm.spec.node = domain.node;
  vm.spec.power_state = domain.power;
  vm.spec.autostart = domain.autostart;
  vm.spec.adopt = adopt;
  // An existing volume or file is used as it is: its size is the volume's, not the manifest's.
  for (Disk& d : vm.spec.disks) {
    if (d.source.type == DiskSourceType::kVolume || d.source.type == DiskSourceType::kPath) d.size.reset();
    if (d.source.type == DiskSourceType::kPath) d.pool = Disk{}.pool;
  }
  if (!domain.persistent) {
    out.notes.push_back("the domain is transient: adopting it needs a persistent definition (virsh dumpxml, "
                        "virsh define)");
  }
  return out;
}

Result<ImportChoice> ChooseImports(const ObservedState& observed, const std::vector<std::string>& declared,
                                   const ImportSelection& selection) {
  std::vector<std::string> errors;
  if (selection.patterns.empty() && !selection.all) {
    return Fail(ErrorCode::kInvalidArgument, "name the domains to import (names or globs), or pass --all");
  }
  if (!selection.node.empty()) {
    const ObservedNode* node = observed.FindNode(selection.node);
    if (node == nullptr) return Fail(ErrorCode::kInvalidArgument, "no node named " + selection.node + " in the configuration");
    if (!node->reachable) {
      return Fail(ErrorCode::kUnavailable, "node " + selection.node + " is unreachable: " + node->error);
    }
  }
  const std::set<std::string> taken(declared.begin(), declared.end());
  ImportChoice choice;
  std::map<std::string, std::vector<const ObservedVm*>> picked;  // by name
  std::set<std::string> exact_names;                              // named as they are, not by a glob
  std::vector<bool> matched(selection.patterns.size(), false);
  for (const ObservedNode& node : observed.nodes) {
    if (!selection.node.empty() && node.name != selection.node) continue;
    for (const ObservedVm& vm : node.vms) {
      bool exact = false, by_glob = selection.all;
      for (std::size_t i = 0; i < selection.patterns.size(); ++i) {
        const std::string& p = selection.patterns[i];
        if (IsGlob(p) ? GlobMatch(p, vm.name) : p == vm.name) {
          matched[i] = true;
          (IsGlob(p) ? by_glob : exact) = true;
        }
      }
      if (exact) exact_names.insert(vm.name);
      if (!exact && !by_glob) continue;
      if (vm.Owned()) {
        if (exact) {
          errors.push_back("the domain " + vm.name + " on node " + node.name + " is gitvirt's already (VirtualMachine/" +
                           vm.owner->name + "): there is nothing to import");
        } else {
          choice.skipped.push_back(node.name + "/" + vm.name + ": gitvirt's already");
        }
        continue;
      }
      picked[vm.name].push_back(&vm);
    }
  }
  for (const ObservedNode& node : observed.nodes) {
    if (!node.reachable && (selection.node.empty() || node.name == selection.node)) {
      choice.skipped.push_back(node.name + ": unreachable (" + node.error + "), not searched");
    }
  }
  for (std::size_t i = 0; i < selection.patterns.size(); ++i) {
    if (!matched[i]) {
      errors.push_back("no domain" + std::string(selection.node.empty() ? "" : " on node " + selection.node) +
                       " matches " + selection.patterns[i]);
    }
  }
  for (const auto& [name, domains] : picked) {
    if (taken.contains(name)) {
      errors.push_back("a manifest of the source declares VirtualMachine/" + name +
                       " already: edit that manifest (and set spec.adopt: true) instead of importing the domain");
      continue;
    }
    if (domains.size() > 1) {
      std::string nodes;
      for (const ObservedVm* d : domains) nodes += (nodes.empty() ? "" : ", ") + d->node;
      // Named exactly, the user must choose; picked by a glob or --all, it is passed over like a
      // domain gitvirt owns, and the others are imported.
      if (exact_names.contains(name)) {
        errors.push_back("domains named " + name + " run on nodes " + nodes + ": pick one with --node");
      } else {
        choice.skipped.push_back(name + ": on more than one node (" + nodes + "); import it with --node N");
      }
      continue;
    }
    choice.vms.push_back(ManifestOfDomain(*domains.front(), selection.adopt));
  }
  if (choice.vms.empty() && errors.empty()) errors.push_back("no domain gitvirt does not own matches");
  if (!errors.empty()) {
    std::string message = errors.size() == 1 ? errors.front() : "cannot import:";
    if (errors.size() > 1) {
      for (const std::string& e : errors) message += "\n  - " + e;
    }
    return Fail(ErrorCode::kInvalidArgument, message + "\nNothing was written and no domain was touched.");
  }
  return choice;
}

}  // namespace gitvirt
