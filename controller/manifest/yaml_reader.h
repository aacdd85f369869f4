#pragma once
// Typed, located access to yaml-cpp nodes for the manifest loader (internal to this folder).
//
// Every accessor reports what it could not accept into the DiagnosticSink and returns nullopt,
// so a parser reads a whole document and collects every problem instead of stopping at the
// first. Positions follow one convention (docs/manifests.md, tests/corpus): a bad value is
// reported at the value, an unknown or duplicate key at the key, a missing field at the key of
// the mapping that lacks it.

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gitvirt/core/diagnostic.h"
#include "gitvirt/core/enums.h"
#include "gitvirt/core/model.h"
#include "gitvirt/core/suggest.h"

namespace gitvirt::manifest_internal {

class DiagnosticSink {
 public:
  DiagnosticSink(std::string file, std::vector<Diagnostic>* out) : file_(std::move(file)), out_(out) {}

  void Error(const YAML::Mark& mark, std::string path, std::string message);
  void Warning(const YAML::Mark& mark, std::string path, std::string message);
  SourceLocation Locate(const YAML::Mark& mark) const;
  const std::string& file() const { return file_; }
  int errors() const { return errors_; }

 private:
  std::string file_;
  std::vector<Diagnostic>* out_;
  int errors_ = 0;
};

// Whether `text`, written as a plain (unquoted) scalar, is read back as that string: false for
// what reads as null, a boolean or a number ("", "yes", "12", "1.5"), which must be quoted.
bool ReadsAsString(const std::string& text);

// A value at a field path.
class Field {
 public:
  Field(DiagnosticSink* sink, YAML::Node node, YAML::Mark key_mark, std::string path)
      : sink_(sink), node_(std::move(node)), key_mark_(key_mark), path_(std::move(path)) {}

  const YAML::Node& node() const { return node_; }
  const std::string& path() const { return path_; }
  // Where the value starts (the key, for a null value, which yaml-cpp places oddly).
  YAML::Mark mark() const;
  YAML::Mark key_mark() const { return key_mark_; }
  SourceLocation location() const { return sink_->Locate(mark()); }
  DiagnosticSink& sink() const { return *sink_; }

  bool IsMap() const { return node_.IsMap(); }
  bool IsSequence() const { return node_.IsSequence(); }
  bool IsScalar() const { return node_.IsScalar(); }

  std::optional<std::string> String() const;
  std::optional<std::string> NonEmptyString() const;
  std::optional<std::int64_t> Integer(std::int64_t min, std::int64_t max) const;
  std::optional<bool> Bool() const;
  std::optional<std::uint64_t> Size() const;
  std::optional<Seconds> Duration() const;
  std::optional<Labels> StringMap() const;
  std::optional<std::vector<std::string>> StringList() const;
  // The elements of a sequence, with paths "path[i]"; reports a non-sequence.
  std::optional<std::vector<Field>> Items() const;

  template <typename E>
  std::optional<E> Enum() const {
    auto text = String();
    if (!text) return std::nullopt;
    if (auto value = ParseEnum<E>(*text)) return value;
    std::vector<std::string_view> names;
    for (const auto& [v, name] : EnumTable<E>::kNames) names.push_back(name);
    ReportBadChoice(*text, names);
    return std::nullopt;
  }

  void Error(std::string message) const { sink_->Error(mark(), path_, std::move(message)); }
  // Describes the node for messages: "a mapping", "a list", "the number 12", "\"abc\"".
  std::string Describe() const;

 private:
  void ReportBadChoice(const std::string& text, const std::vector<std::string_view>& names) const;

  DiagnosticSink* sink_;
  YAML::Node node_;
  YAML::Mark key_mark_;
  std::string path_;
};

// A mapping with a closed set of keys. Unknown keys (with a hint), duplicate keys and a
// non-mapping node are reported on construction.
class Map {
 public:
  Map(const Field& field, std::initializer_list<std::string_view> allowed);

  bool valid() const { return valid_; }
  const std::string& path() const { return path_; }
  // nullopt when absent or null.
  std::optional<Field> Get(std::string_view key) const;
  // Like Get, and reports "missing required field" at this mapping's key when absent.
  std::optional<Field> Require(std::string_view key) const;
  bool Has(std::string_view key) const { return Get(key).has_value(); }
  std::string ChildPath(std::string_view key) const;
  YAML::Mark key_mark() const { return key_mark_; }
  // Reports an error at this mapping's key (for rules that involve several fields).
  void Error(std::string message) const;

 private:
  struct Entry {
    std::string key;
    YAML::Node key_node;
    YAML::Node value;
  };
  DiagnosticSink* sink_;
  std::string path_;
  YAML::Mark key_mark_;
  std::vector<Entry> entries_;
  bool valid_ = false;
};

}  // namespace gitvirt::manifest_internal
