#include "gitvirt/core/diagnostic.h"

#include <algorithm>
#include <tuple>

namespace gitvirt {

std::string Diagnostic::ToString() const {
  std::string out = location.ToString();
  out += severity == Severity::kError ? ": error: " : ": warning: ";
  if (!path.empty()) {
    out += path;
    out += ": ";
  }
  out += message;
  return out;
}

bool HasErrors(const std::vector<Diagnostic>& diagnostics) {
  return std::any_of(diagnostics.begin(), diagnostics.end(),
                     [](const Diagnostic& d) { return d.severity == Severity::kError; });
}

void SortDiagnostics(std::vector<Diagnostic>& diagnostics) {
  std::stable_sort(diagnostics.begin(), diagnostics.end(),
                   [](const Diagnostic& a, const Diagnostic& b) {
                     return std::tie(a.location.file, a.location.line, a.location.column,
                                     a.message) < std::tie(b.location.file, b.location.line,
                                                           b.location.column, b.message);
                   });
  diagnostics.erase(std::unique(diagnostics.begin(), diagnostics.end()), diagnostics.end());
}

}  // namespace gitvirt
