#include "yaml_reader.h"

#include <algorithm>
#include <charconv>

namespace gitvirt::manifest_internal {
namespace {

// How a plain (unquoted) scalar resolves in YAML, so a string field can refuse `version: 1.0`
// or `enabled: yes` the way a JSON Schema validator reading the same YAML would.
enum class PlainType { kString, kNull, kBool, kInt, kFloat };

// [-+]? ( .digits | digits [. digits*] ) [eE [-+]? digits]  |  [-+]?.inf  |  .nan
bool IsYamlFloat(std::string_view s) {
  std::size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  const std::string_view rest = s.substr(i);
  if (rest == ".inf" || rest == ".Inf" || rest == ".INF") return true;
  if (i == 0 && (s == ".nan" || s == ".NaN" || s == ".NAN")) return true;
  auto digits = [&](std::size_t& k) {
    const std::size_t start = k;
    while (k < s.size() && std::isdigit(static_cast<unsigned char>(s[k]))) ++k;
    return k - start;
  };
  const std::size_t whole = digits(i);
  std::size_t fraction = 0;
  bool dot = false;
  if (i < s.size() && s[i] == '.') {
    dot = true;
    ++i;
    fraction = digits(i);
  }
  if (whole == 0 && fraction == 0) return false;
  if (whole == 0 && !dot) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    if (digits(i) == 0) return false;
  }
  return i == s.size();
}

PlainType ClassifyPlain(const std::string& s) {
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return PlainType::kNull;
  static const char* const kBools[] = {"true", "True", "TRUE", "false", "False", "FALSE",
                                       "yes",  "Yes",  "YES",  "no",    "No",    "NO",
                                       "on",   "On",   "ON",   "off",   "Off",   "OFF"};
  for (const char* b : kBools) {
    if (s == b) return PlainType::kBool;
  }
  std::size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
  if (i < s.size() && std::all_of(s.begin() + i, s.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
    return PlainType::kInt;
  }
  if (IsYamlFloat(s)) return PlainType::kFloat;
  return PlainType::kString;
}

bool IsPlain(const YAML::Node& node) { return node.Tag() == "?"; }

// A value quoted in a diagnostic, cut short: a 200 MB scalar must not make a 200 MB message.
std::string Quote(std::string_view s) {
  constexpr std::size_t kShown = 120;
  if (s.size() <= kShown) return "\"" + std::string(s) + "\"";
  std::size_t cut = kShown;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;  // not inside a UTF-8 character
  return "\"" + std::string(s.substr(0, cut)) + "\"\u2026 (" + std::to_string(s.size() - cut) + " more bytes)";
}

}  // namespace

void DiagnosticSink::Error(const YAML::Mark& mark, std::string path, std::string message) {
  ++errors_;
  out_->push_back(Diagnostic{Severity::kError, Locate(mark), std::move(path), std::move(message)});
}

void DiagnosticSink::Warning(const YAML::Mark& mark, std::string path, std::string message) {
  out_->push_back(
      Diagnostic{Severity::kWarning, Locate(mark), std::move(path), std::move(message)});
}

SourceLocation DiagnosticSink::Locate(const YAML::Mark& mark) const {
  if (mark.is_null()) return SourceLocation{file_, 1, 1};
  return SourceLocation{file_, mark.line + 1, mark.column + 1};
}

bool ReadsAsString(const std::string& text) { return ClassifyPlain(text) == PlainType::kString; }

YAML::Mark Field::mark() const {
  if (!node_.IsDefined() || node_.IsNull()) return key_mark_;
  return node_.Mark();
}

std::string Field::Describe() const {
  if (!node_.IsDefined() || node_.IsNull()) return "nothing";
  if (node_.IsMap()) return "a mapping";
  if (node_.IsSequence()) return "a list";
  const std::string& s = node_.Scalar();
  if (IsPlain(node_)) {
    switch (ClassifyPlain(s)) {
      case PlainType::kNull: return "null";
      case PlainType::kBool: return "the boolean " + s;
      case PlainType::kInt:
      case PlainType::kFloat: return "the number " + s;
      case PlainType::kString: break;
    }
  }
  return Quote(s);
}

std::optional<std::string> Field::String() const {
  if (!node_.IsScalar()) {
    Error("expected a string, got " + Describe());
    return std::nullopt;
  }
  if (IsPlain(node_)) {
    const PlainType t = ClassifyPlain(node_.Scalar());
    if (t != PlainType::kString && t != PlainType::kNull) {
      Error("expected a string, got " + Describe() + " (quote it: \"" + node_.Scalar() + "\")");
      return std::nullopt;
    }
  }
  return node_.Scalar();
}

std::optional<std::string> Field::NonEmptyString() const {
  auto s = String();
  if (s && s->empty()) {
    Error("must not be empty");
    return std::nullopt;
  }
  return s;
}

std::optional<std::int64_t> Field::Integer(std::int64_t min, std::int64_t max) const {
  if (!node_.IsScalar() || !IsPlain(node_) || ClassifyPlain(node_.Scalar()) != PlainType::kInt) {
    Error("expected an integer, got " + Describe());
    return std::nullopt;
  }
  const std::string& s = node_.Scalar();
  std::int64_t value = 0;
  const char* begin = s.data() + (s[0] == '+' ? 1 : 0);
  auto [ptr, ec] = std::from_chars(begin, s.data() + s.size(), value);
  if (ec != std::errc() || ptr != s.data() + s.size() || value < min || value > max) {
    Error("must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " + s);
    return std::nullopt;
  }
  return value;
}

std::optional<bool> Field::Bool() const {
  if (node_.IsScalar() && IsPlain(node_)) {
    const std::string& s = node_.Scalar();
    if (s == "true" || s == "True" || s == "TRUE") return true;
    if (s == "false" || s == "False" || s == "FALSE") return false;
  }
  Error("expected true or false, got " + Describe());
  return std::nullopt;
}

std::optional<std::uint64_t> Field::Size() const {
  if (!node_.IsScalar() || (IsPlain(node_) && ClassifyPlain(node_.Scalar()) == PlainType::kInt)) {
    Error("expected a size with a unit such as 2GiB or 512MiB, got " + Describe());
    return std::nullopt;
  }
  auto parsed = ParseSize(node_.Scalar());
  if (!parsed) {
    Error(parsed.error().message);
    return std::nullopt;
  }
  return *parsed;
}

std::optional<Seconds> Field::Duration() const {
  if (!node_.IsScalar() || (IsPlain(node_) && ClassifyPlain(node_.Scalar()) == PlainType::kInt)) {
    Error("expected a duration such as 30s, 5m or 7d, got " + Describe());
    return std::nullopt;
  }
  auto parsed = ParseDuration(node_.Scalar());
  if (!parsed) {
    Error(parsed.error().message);
    return std::nullopt;
  }
  return *parsed;
}

std::optional<Labels> Field::StringMap() const {
  if (!node_.IsMap()) {
    Error("expected a mapping of strings, got " + Describe());
    return std::nullopt;
  }
  Labels out;
  bool ok = true;
  for (const auto& kv : node_) {
    const std::string key = kv.first.Scalar();
    Field value(sink_, kv.second, kv.first.Mark(), path_ + "." + key);
    if (out.contains(key)) {
      sink_->Error(kv.first.Mark(), path_ + "." + key, "duplicate key " + Quote(key));
      ok = false;
      continue;
    }
    auto s = value.String();
    if (!s) {
      ok = false;
      continue;
    }
    out.emplace(key, *s);
  }
  if (!ok) return std::nullopt;
  return out;
}

std::optional<std::vector<Field>> Field::Items() const {
  if (!node_.IsSequence()) {
    Error("expected a list, got " + Describe());
    return std::nullopt;
  }
  std::vector<Field> items;
  items.reserve(node_.size());
  std::size_t i = 0;
  for (const auto& item : node_) {
    items.emplace_back(sink_, item, item.Mark(), path_ + "[" + std::to_string(i++) + "]");
  }
  return items;
}

std::optional<std::vector<std::string>> Field::StringList() const {
  auto items = Items();
  if (!items) return std::nullopt;
  std::vector<std::string> out;
  bool ok = true;
  for (const Field& item : *items) {
    if (auto s = item.String()) {
      out.push_back(std::move(*s));
    } else {
      ok = false;
    }
  }
  if (!ok) return std::nullopt;
  return out;
}

void Field::ReportBadChoice(const std::string& text, const std::vector<std::string_view>& names) const {
  std::string message = "unknown value " + Quote(text) + ", expected one of ";
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) message += ", ";
    message += names[i];
  }
  const std::string hint = ClosestMatch(text, names);
  if (!hint.empty()) message += " (did you mean " + Quote(hint) + "?)";
  Error(std::move(message));
}

Map::Map(const Field& field, std::initializer_list<std::string_view> allowed)
    : sink_(&field.sink()), path_(field.path()), key_mark_(field.key_mark()) {
  const YAML::Node& node = field.node();
  if (!node.IsMap()) {
    field.Error("expected a mapping, got " + field.Describe());
    return;
  }
  valid_ = true;
  const std::vector<std::string_view> names(allowed);
  for (const auto& kv : node) {
    Field key(sink_, kv.first, kv.first.Mark(), path_);
    if (!kv.first.IsScalar()) {
      key.Error("expected a field name, got " + key.Describe());
      continue;
    }
    const std::string name = kv.first.Scalar();
    const std::string child = ChildPath(name);
    if (std::find(names.begin(), names.end(), name) == names.end()) {
      std::string message = "unknown field " + Quote(name);
      message += path_.empty() ? " at the top level" : " in " + path_;
      const std::string hint = ClosestMatch(name, names);
      if (!hint.empty()) message += " (did you mean " + Quote(hint) + "?)";
      sink_->Error(kv.first.Mark(), child, std::move(message));
      continue;
    }
    const bool duplicate = std::any_of(entries_.begin(), entries_.end(),
                                       [&](const Entry& e) { return e.key == name; });
    if (duplicate) {
      sink_->Error(kv.first.Mark(), child, "duplicate key " + Quote(name));
      continue;
    }
    entries_.push_back(Entry{name, kv.first, kv.second});
  }
}

std::optional<Field> Map::Get(std::string_view key) const {
  for (const Entry& e : entries_) {
    if (e.key == key) {
      if (!e.value.IsDefined() || e.value.IsNull()) return std::nullopt;
      return Field(sink_, e.value, e.key_node.Mark(), ChildPath(key));
    }
  }
  return std::nullopt;
}

std::optional<Field> Map::Require(std::string_view key) const {
  auto field = Get(key);
  if (!field && valid_) {
    const std::string where = path_.empty() ? "the document" : path_;
    sink_->Error(key_mark_, ChildPath(key),
                 "missing required field " + Quote(key) + " in " + where);
  }
  return field;
}

std::string Map::ChildPath(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

void Map::Error(std::string message) const { sink_->Error(key_mark_, path_, std::move(message)); }

}  // namespace gitvirt::manifest_internal
