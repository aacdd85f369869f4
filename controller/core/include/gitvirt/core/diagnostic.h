#pragma once
// A problem found in the user's input, located precisely enough for an editor to jump to it.

#include <string>
#include <vector>

#include "gitvirt/core/enums.h"
#include "gitvirt/core/model.h"

namespace gitvirt {

enum class Severity { kError, kWarning };
GITVIRT_ENUM_TABLE(Severity, {Severity::kError, "error"}, {Severity::kWarning, "warning"});

struct Diagnostic {
  Severity severity = Severity::kError;
  SourceLocation location;
  std::string path;  // field path inside the document: "spec.disks[1].size"; may be empty
  std::string message;

  // "file:line:column: error: spec.memory: expected a size..." (the compiler convention, so
  // editors and CI annotate the right line).
  std::string ToString() const;
  friend bool operator==(const Diagnostic&, const Diagnostic&) = default;
};

bool HasErrors(const std::vector<Diagnostic>& diagnostics);

// Orders by file, line, column, then message: the order people read a repository in.
void SortDiagnostics(std::vector<Diagnostic>& diagnostics);

}  // namespace gitvirt
