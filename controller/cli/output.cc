#include "output.h"

#include <cstdio>
#include <iterator>

#include <algorithm>
#include <filesystem>

#include "gitvirt/core/json.h"
#include "gitvirt/manifest/emitter.h"

namespace gitvirt::cli {

namespace fs = std::filesystem;

std::string DisplaySource(const SourceRef& source) {
  if (source.IsDirectory()) return SourceRef::Directory(DisplayPath(source.location)).ToString();
  if (source.IsFile()) return SourceRef::File(DisplayPath(source.location)).ToString();
  return source.ToString();
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
  // The first hundred say what is wrong; 200,000 empty documents must not print 72 MB. (-o json
  // lists every one.)
  constexpr std::size_t kPrinted = 100;
  for (std::size_t i = 0; i < diagnostics.size() && i < kPrinted; ++i) out << Displayed(diagnostics[i]).ToString() << "\n";
  if (diagnostics.size() > kPrinted) {
    out << "... and " << diagnostics.size() - kPrinted << " more (-o json lists them all)\n";
  }
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

std::string HumanSize(std::uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double value = static_cast<double>(bytes);
  std::size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(kUnits)) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  if (unit == 0 || value >= 100) {
    std::snprintf(text, sizeof text, "%.0f %s", value, kUnits[unit]);
  } else {
    std::snprintf(text, sizeof text, "%.1f %s", value, kUnits[unit]);
  }
  return text;
}

std::string HumanSeconds(double seconds) {
  char text[32];
  if (seconds < 1) {
    std::snprintf(text, sizeof text, "%.2f s", seconds);
  } else if (seconds < 60) {
    std::snprintf(text, sizeof text, "%.1f s", seconds);
  } else {
    const long whole = static_cast<long>(seconds + 0.5);
    std::snprintf(text, sizeof text, "%ldm%02lds", whole / 60, whole % 60);
  }
  return text;
}

std::string SpecManifest(const std::string& name, const std::string& spec_json) {
  if (spec_json.empty()) return "";
  auto j = nlohmann::json::parse(spec_json, nullptr, false);
  if (j.is_discarded()) return spec_json + "\n";
  auto spec = VmSpecFromJson(j);
  if (!spec) return j.dump(2) + "\n";
  VirtualMachine vm;
  vm.meta.name = name;
  vm.spec = std::move(*spec);
  vm.spec.node.clear();
  return EmitVirtualMachine(vm);
}

}  // namespace gitvirt::cli
