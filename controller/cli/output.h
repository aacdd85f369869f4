#pragma once
// Shared output helpers for commands: diagnostics, JSON forms, tables.

#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "gitvirt/core/diagnostic.h"
#include "gitvirt/core/selector.h"

namespace gitvirt::cli {

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

struct View;
// `get -o json|yaml`: the resources of one type as the status API shows them.
void PrintStructured(std::ostream& out, const View& view, const std::string& what,
                     const LabelSelector& selector, const std::string& format);

}  // namespace gitvirt::cli
