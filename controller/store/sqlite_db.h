#pragma once
// A thin, private C++ face on SQLite for the store: a connection that owns its prepared
// statements, and a Query that borrows one statement and resets it when it goes away.
// Nothing outside controller/store/ sees this header; the public interfaces carry only values.
//
// Thread-safety: none. A Connection (and every Query taken from it) is used by one thread at a
// time; the journal gives its write connection to the writer thread and guards its read
// connection with a mutex.
// Lifetime: a Query must not outlive the Connection it came from, and at most one Query per
// SQL text may be alive at once (they share the cached statement).

#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "gitvirt/core/error.h"

namespace gitvirt::store_internal {

struct SqliteCloser {
  // close_v2 defers the close until every statement is finalised, so member order cannot leak.
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StatementFinalizer {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using DbHandle = std::unique_ptr<sqlite3, SqliteCloser>;
using StatementHandle = std::unique_ptr<sqlite3_stmt, StatementFinalizer>;

// Maps a SQLite result code (extended codes on) to a gitvirt Error.
Error SqliteError(int rc, std::string_view detail, std::string_view context);

// One prepared statement in use: bind, step, read columns. Resets (and drops the bindings) on
// destruction so the statement's read transaction ends promptly and never pins the WAL.
class Query {
 public:
  Query(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  ~Query();
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;
  Query(Query&& other) noexcept;
  Query& operator=(Query&&) = delete;

  // Binds the next positional parameter (?1, ?2, ... in call order).
  Query& Bind(std::string_view text);
  Query& Bind(std::int64_t value);
  Query& Bind(int value) { return Bind(static_cast<std::int64_t>(value)); }
  Query& Bind(std::optional<std::int64_t> value);

  // Advances to the next row: true when there is one, false when done.
  Result<bool> Step();
  // Steps until done, for statements that return no rows.
  Result<void> Run();

  std::string Text(int column) const;
  std::int64_t Int(int column) const;
  std::optional<std::int64_t> OptionalInt(int column) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;  // owned by the Connection's cache
  int next_param_ = 1;
  int bind_rc_ = SQLITE_OK;  // the first failed bind, reported by Step
};

class Connection {
 public:
  enum class Mode { kReadWriteCreate, kReadWrite };

  // Opens `path` with extended result codes on and the given busy timeout.
  static Result<Connection> Open(const std::string& path, Mode mode,
                                 std::chrono::milliseconds busy_timeout);

  // Runs one or more statements that return no rows (schema, pragmas).
  Result<void> Exec(const std::string& sql);
  // The first column of the first row of a one-row statement (pragmas), as text.
  Result<std::string> QueryText(const std::string& sql);
  // A cached prepared statement for `sql`; building it on first use.
  Result<Query> Prepare(const std::string& sql);

  // Rows changed by the last INSERT/UPDATE/DELETE on this connection.
  std::int64_t Changes() const;
  bool InTransaction() const;
  Error LastError(int rc, std::string_view context) const;

 private:
  explicit Connection(DbHandle db) : db_(std::move(db)) {}

  // Statements are declared after the handle so they are finalised first.
  DbHandle db_;
  std::unordered_map<std::string, StatementHandle> statements_;
};

// Brings the schema to the newest version (PRAGMA user_version), in one IMMEDIATE
// transaction so that two processes opening a fresh file do not both migrate it.
// Fails with kFailedPrecondition when the file is newer than this build understands.
Result<void> MigrateSchema(Connection& db);
inline constexpr int kSchemaVersion = 3;

}  // namespace gitvirt::store_internal
