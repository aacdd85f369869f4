#pragma once
// JSON forms from field tables: a struct lists its fields once, as (key, member) pairs, and one
// generic pair of functions walks the table both ways. Every folder encodes its records through
// these (core's model and plans in json.cc, the engine's undo records beside its steps), so a new
// field is one line and the rules are the same everywhere:
//
//   * keys are the manifest's camelCase names; an unset optional is left out;
//   * enums are their names (EnumTable), Seconds a number, vectors arrays, maps objects;
//   * reading is strict about types (a string where a number belongs is an error naming the
//     field, never a thrown exception out of Read) and ignores unknown keys.
//
// Declare a table at namespace gitvirt scope, before the first Write/Read of the type:
//   GITVIRT_JSON_FIELDS(MyRecord, FieldDef{"volumes", &MyRecord::volumes}, ...);
// A type whose form is not a plain table (a plan's action, a source reference, gitvirt's owner
// mark) has a JsonCodec specialization instead, declared here so every reader sees the same.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <vector>

#include "gitvirt/core/enums.h"
#include "gitvirt/core/error.h"
#include "gitvirt/core/units.h"

namespace gitvirt {

struct Action;
struct SourceRef;
struct Ownership;

template <typename T, typename M>
struct FieldDef {
  std::string_view key;
  M T::*member;
};
template <typename T, typename M>
FieldDef(std::string_view, M T::*) -> FieldDef<T, M>;

// Specialized by GITVIRT_JSON_FIELDS.
template <typename T>
struct JsonFields;

#define GITVIRT_JSON_FIELDS(T, ...)                               \
  template <>                                                     \
  struct JsonFields<T> {                                          \
    static constexpr auto kFields = std::make_tuple(__VA_ARGS__); \
  }

// Specialized for types with a form of their own: static nlohmann::json Encode(const T&) and
// static void Decode(const nlohmann::json&, T&) (throwing std::exception on a bad value).
template <typename T>
struct JsonCodec;
template <>
struct JsonCodec<Action> {
  static nlohmann::json Encode(const Action& action);
  static void Decode(const nlohmann::json& j, Action& action);
};
template <>
struct JsonCodec<SourceRef> {
  static nlohmann::json Encode(const SourceRef& source);
  static void Decode(const nlohmann::json& j, SourceRef& source);
};
template <>
struct JsonCodec<Ownership> {
  static nlohmann::json Encode(const Ownership& owner);
  static void Decode(const nlohmann::json& j, Ownership& owner);
};

namespace json_table {

using nlohmann::json;

template <typename T>
concept HasCodec = requires(const T& v, const json& j, T& out) {
  JsonCodec<T>::Encode(v);
  JsonCodec<T>::Decode(j, out);
};
template <typename T>
concept HasFields = requires { JsonFields<T>::kFields; };
template <typename T>
concept NamedEnum = std::is_enum_v<T> && requires { EnumTable<T>::kNames; };
template <typename T>
struct IsOptional : std::false_type {};
template <typename T>
struct IsOptional<std::optional<T>> : std::true_type {};
template <typename T>
struct IsVector : std::false_type {};
template <typename T>
struct IsVector<std::vector<T>> : std::true_type {};

template <typename V>
json Encode(const V& v);

// Walks T's table: each field present (an optional when set) is written as leaf(value). A
// codec whose leaves differ (an action's params are strings) walks the same tables with its own.
template <typename T, typename Leaf>
json EncodeFields(const T& value, const Leaf& leaf) {
  json out = json::object();
  std::apply(
      [&](const auto&... field) {
        (
            [&] {
              const auto& member = value.*(field.member);
              using M = std::remove_cvref_t<decltype(member)>;
              if constexpr (IsOptional<M>::value) {
                if (member) out[std::string(field.key)] = leaf(*member);
              } else {
                out[std::string(field.key)] = leaf(member);
              }
            }(),
            ...);
      },
      JsonFields<T>::kFields);
  return out;
}

// The table's fields only (JsonCodec implementations call it for their plain part).
template <typename T>
json EncodeObject(const T& value) {
  return EncodeFields(value, [](const auto& member) { return Encode(member); });
}

template <typename V>
json Encode(const V& v) {
  if constexpr (HasCodec<V>) {
    return JsonCodec<V>::Encode(v);
  } else if constexpr (HasFields<V>) {
    return EncodeObject(v);
  } else if constexpr (NamedEnum<V>) {
    return std::string(EnumName(v));
  } else if constexpr (std::is_same_v<V, Seconds>) {
    return v.count();
  } else if constexpr (IsVector<V>::value) {
    json arr = json::array();
    for (const auto& item : v) arr.push_back(Encode(item));
    return arr;
  } else {
    return json(v);  // strings, numbers, booleans, string maps
  }
}

template <typename V>
void Decode(const json& j, V& out);

// Reads T's table from an object: each key present (and not null) into its field through
// leaf(json, member); a bad value is an error naming the field.
template <typename T, typename Leaf>
void DecodeFields(const json& j, T& value, const Leaf& leaf) {
  if (!j.is_object()) throw std::invalid_argument("expected an object");
  std::apply(
      [&](const auto&... field) {
        (
            [&] {
              auto it = j.find(std::string(field.key));
              if (it == j.end() || it->is_null()) return;
              auto& member = value.*(field.member);
              using M = std::remove_cvref_t<decltype(member)>;
              try {
                if constexpr (IsOptional<M>::value) {
                  typename M::value_type inner{};
                  leaf(*it, inner);
                  member = std::move(inner);
                } else {
                  leaf(*it, member);
                }
              } catch (const std::exception& e) {
                throw std::invalid_argument(std::string(field.key) + ": " + e.what());
              }
            }(),
            ...);
      },
      JsonFields<T>::kFields);
}

template <typename T>
void DecodeObject(const json& j, T& value) {
  DecodeFields(j, value, [](const json& item, auto& member) { Decode(item, member); });
}

template <typename V>
void Decode(const json& j, V& out) {
  if constexpr (HasCodec<V>) {
    JsonCodec<V>::Decode(j, out);
  } else if constexpr (HasFields<V>) {
    DecodeObject(j, out);
  } else if constexpr (NamedEnum<V>) {
    auto parsed = ParseEnum<V>(j.get<std::string>());
    if (!parsed) throw std::invalid_argument("unknown value " + j.dump());
    out = *parsed;
  } else if constexpr (std::is_same_v<V, Seconds>) {
    out = Seconds(j.get<std::int64_t>());
  } else if constexpr (IsVector<V>::value) {
    if (!j.is_array()) throw std::invalid_argument("expected an array");
    out.clear();
    for (const json& item : j) {
      typename V::value_type element{};
      Decode(item, element);
      out.push_back(std::move(element));
    }
  } else {
    out = j.get<V>();
  }
}

// The value a JSON document holds; kInvalidArgument naming the field that is wrong.
template <typename T>
Result<T> Read(const json& j, std::string_view what) {
  T value{};
  try {
    Decode(j, value);
  } catch (const std::exception& e) {
    return Fail(ErrorCode::kInvalidArgument, e.what(), "reading " + std::string(what) + " JSON");
  }
  return value;
}

template <typename T>
json Write(const T& value) {
  return Encode(value);
}

}  // namespace json_table
}  // namespace gitvirt
