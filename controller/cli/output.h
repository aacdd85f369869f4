#pragma once
// Shared output helpers for commands: diagnostics, JSON forms, tables.

#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "gitvirt/core/diagnostic.h"
#include "gitvirt/core/selector.h"
#include "gitvirt/core/source_ref.h"

namespace CLI {
class App;
}  // namespace CLI

namespace gitvirt::cli {

// A path as the user would type it here: relative to the current directory when it lies under
// it ("examples/manifests", "." for the directory itself), as given otherwise. What the CLI
// prints for files and directories, in summaries and in diagnostics alike.
std::string DisplayPath(const std::string& path);

// A plan's or job's source ("dir:/abs/path", "git:URL@REF", "cli:...") with a directory shown
// by DisplayPath. Only for printing: the source itself (saved plans, the journal) stays absolute.
std::string DisplaySource(const SourceRef& source);
// The same for a source in its text form (a job's), shown as it is when it is not one.
std::string DisplaySource(const std::string& source);

// Diagnostics as "file:line:column: error: ...", their files shown by DisplayPath; the JSON
// form carries the same file names.
void PrintDiagnostics(std::ostream& out, const std::vector<Diagnostic>& diagnostics);
nlohmann::json DiagnosticsJson(const std::vector<Diagnostic>& diagnostics);

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

// Adds `-o,--output` accepting `formats` (the first is the default) to `command`.
void AddOutputOption(CLI::App* command, std::string& output, const std::vector<std::string>& formats);

struct View;
// `get -o json|yaml`: the resources of one type as the status API shows them.
void PrintStructured(std::ostream& out, const View& view, const std::string& what,
                     const LabelSelector& selector, const std::string& format);

}  // namespace gitvirt::cli
