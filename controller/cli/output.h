#pragma once
// Shared output helpers for commands: diagnostics, JSON forms, tables.

#include <nlohmann/json.hpp>
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "gitvirt/core/diagnostic.h"
#include "gitvirt/core/selector.h"
#include "gitvirt/core/source_ref.h"
#include "gitvirt/engine/desired_source.h"

namespace CLI {
class App;
}  // namespace CLI

namespace gitvirt::cli {

// Files and directories are printed as engine/desired_source.h's DisplayPath names them.

// A plan's or job's source ("dir:/abs/path", "git:URL@REF", "cli:...") with a directory shown
// by DisplayPath. Only for printing: the source itself (saved plans, the journal) stays absolute.
std::string DisplaySource(const SourceRef& source);
// The same for a source in its text form (a job's), shown as it is when it is not one.
std::string DisplaySource(const std::string& source);

// Diagnostics as "file:line:column: error: ...", their files shown by DisplayPath; the JSON
// form carries the same file names.
void PrintDiagnostics(std::ostream& out, const std::vector<Diagnostic>& diagnostics);
nlohmann::json DiagnosticsJson(const std::vector<Diagnostic>& diagnostics);

// Sizes and durations for people: "5.4 KiB", "12 GiB", "512 B"; "0.02 s", "3.4 s", "2m05s".
// Exact values belong to -o json|yaml.
std::string HumanSize(std::uint64_t bytes);
std::string HumanSeconds(double seconds);

// A plain text table: columns padded to the widest cell, two spaces apart.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : rows_{std::move(header)} {}
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void Print(std::ostream& out) const;
  std::size_t size() const { return rows_.size() - 1; }

 private:
  std::vector<std::vector<std::string>> rows_;
};

// `-o json|yaml` of every command that offers them: `doc` as indented JSON, or as YAML with
// the keys in the same order (strings quoted, so "no" and "1.0" stay strings).
void PrintDocument(std::ostream& out, const nlohmann::ordered_json& doc, const std::string& format);

// A VM's spec (its status JSON, ToJson(VmSpec)) as the manifest says it: a VirtualMachine
// document in the manifest's own fields and units (`memory: 4GiB`), by the import emitter, with
// the node left out (where it runs is not part of its text). For `diff` and `describe`. The
// JSON itself if it does not read back as a spec; "" for "".
std::string SpecManifest(const std::string& name, const std::string& spec_json);

struct View;
// `get -o json|yaml`: the resources of one type as the status API shows them (`name`: only
// that one; "" = all).
void PrintStructured(std::ostream& out, const View& view, const std::string& what,
                     const LabelSelector& selector, const std::string& name, const std::string& format);

}  // namespace gitvirt::cli
