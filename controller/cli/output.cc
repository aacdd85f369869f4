#include "output.h"

#include <algorithm>
#include <filesystem>

namespace gitvirt::cli {

namespace fs = std::filesystem;

std::string DisplayPath(const std::string& path) {
  if (path.empty()) return path;
  std::error_code ec;
  const fs::path cwd = fs::current_path(ec);
  if (ec) return path;
  fs::path abs = fs::absolute(path, ec).lexically_normal();
  if (ec) return path;
  if (!abs.has_filename() && abs.has_relative_path()) abs = abs.parent_path();  // "dir/" -> "dir"
  const fs::path rel = abs.lexically_relative(cwd);
  if (rel.empty() || *rel.begin() == "..") return path;
  return rel.string();
}

std::string DisplaySource(const SourceRef& source) {
  if (!source.IsDirectory()) return source.ToString();
  return SourceRef::Directory(DisplayPath(source.location)).ToString();
}

std::string DisplaySource(const std::string& source) {
  auto parsed = SourceRef::Parse(source);
  return parsed ? DisplaySource(*parsed) : source;
}

namespace {

Diagnostic Displayed(Diagnostic d) {
  d.location.file = DisplayPath(d.location.file);
  return d;
}

}  // namespace

void PrintDiagnostics(std::ostream& out, const std::vector<Diagnostic>& diagnostics) {
  for (const Diagnostic& d : diagnostics) out << Displayed(d).ToString() << "\n";
}

nlohmann::json DiagnosticsJson(const std::vector<Diagnostic>& diagnostics) {
  nlohmann::json list = nlohmann::json::array();
  for (const Diagnostic& d : diagnostics) {
    list.push_back({{"file", DisplayPath(d.location.file)},
                    {"line", d.location.line},
                    {"column", d.location.column},
                    {"path", d.path},
                    {"message", d.message},
                    {"severity", d.severity == Severity::kError ? "error" : "warning"}});
  }
  return list;
}

void Table::Print(std::ostream& out) const {
  std::vector<std::size_t> widths;
  for (const auto& row : rows_) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows_) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    out << line << "\n";
  }
}

}  // namespace gitvirt::cli
