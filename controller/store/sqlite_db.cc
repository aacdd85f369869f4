#include "sqlite_db.h"

#include <string>
#include <utility>

namespace gitvirt::store_internal {

Error SqliteError(int rc, std::string_view detail, std::string_view context) {
  ErrorCode code = ErrorCode::kInternal;
  switch (rc) {
    case SQLITE_CONSTRAINT_FOREIGNKEY:
      // Every foreign key points at a job: the write named a job that does not exist.
      code = ErrorCode::kNotFound;
      break;
    case SQLITE_CONSTRAINT_PRIMARYKEY:
    case SQLITE_CONSTRAINT_UNIQUE:
      code = ErrorCode::kAlreadyExists;
      break;
    default:
      switch (rc & 0xff) {
        case SQLITE_CONSTRAINT:
          code = ErrorCode::kInvalidArgument;
          break;
        // Another process held the write lock for the whole busy timeout: worth a retry.
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
          code = ErrorCode::kUnavailable;
          break;
        case SQLITE_IOERR:
        case SQLITE_FULL:
        case SQLITE_CANTOPEN:
        case SQLITE_READONLY:
        case SQLITE_PERM:
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
        case SQLITE_PROTOCOL:
          code = ErrorCode::kIo;
          break;
        default:
          break;
      }
  }
  std::string message = "sqlite: ";
  message += sqlite3_errstr(rc);
  if (!detail.empty() && detail != sqlite3_errstr(rc)) {
    message += " (";
    message += detail;
    message += ")";
  }
  return Error{code, std::move(message), std::string(context)};
}

Query::~Query() {
  if (stmt_ == nullptr) return;
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

Query::Query(Query&& other) noexcept
    : db_(other.db_),
      stmt_(std::exchange(other.stmt_, nullptr)),
      next_param_(other.next_param_),
      bind_rc_(other.bind_rc_) {}

Query& Query::Bind(std::string_view text) {
  const int rc = sqlite3_bind_text64(stmt_, next_param_++, text.data(), text.size(),
                                     SQLITE_TRANSIENT, SQLITE_UTF8);
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  return *this;
}

Query& Query::Bind(std::int64_t value) {
  const int rc = sqlite3_bind_int64(stmt_, next_param_++, value);
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  return *this;
}

Query& Query::Bind(std::optional<std::int64_t> value) {
  if (value) return Bind(*value);
  const int rc = sqlite3_bind_null(stmt_, next_param_++);
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  return *this;
}

Result<bool> Query::Step() {
  if (bind_rc_ != SQLITE_OK) {
    return std::unexpected(SqliteError(bind_rc_, sqlite3_errmsg(db_), sqlite3_sql(stmt_)));
  }
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  // With the v2 prepare interface the step's own code is the detailed one.
  return std::unexpected(SqliteError(rc, sqlite3_errmsg(db_), {}));
}

Result<void> Query::Run() {
  while (true) {
    auto row = Step();
    if (!row) return std::unexpected(row.error());
    if (!*row) return {};
  }
}

std::string Query::Text(int column) const {
  const auto* text = sqlite3_column_text(stmt_, column);
  if (text == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(text),
                     static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column)));
}

std::int64_t Query::Int(int column) const {
  return sqlite3_column_int64(stmt_, column);
}

std::optional<std::int64_t> Query::OptionalInt(int column) const {
  if (sqlite3_column_type(stmt_, column) == SQLITE_NULL) return std::nullopt;
  return sqlite3_column_int64(stmt_, column);
}

Result<Connection> Connection::Open(const std::string& path, Mode mode,
                                    std::chrono::milliseconds busy_timeout) {
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;  // one thread at a time, see header
  if (mode == Mode::kReadWriteCreate) flags |= SQLITE_OPEN_CREATE;
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  DbHandle db(raw);  // sqlite3_open_v2 may hand back a handle even when it fails
  if (rc != SQLITE_OK) {
    return std::unexpected(
        SqliteError(rc, raw ? sqlite3_errmsg(raw) : "", "opening state file " + path));
  }
  sqlite3_extended_result_codes(db.get(), 1);
  sqlite3_busy_timeout(db.get(), static_cast<int>(busy_timeout.count()));
  return Connection(std::move(db));
}

Result<void> Connection::Exec(const std::string& sql) {
  char* message = nullptr;
  const int rc = sqlite3_exec(db_.get(), sql.c_str(), nullptr, nullptr, &message);
  std::unique_ptr<char, decltype(&sqlite3_free)> owned(message, &sqlite3_free);
  if (rc != SQLITE_OK) {
    return std::unexpected(SqliteError(rc, owned ? owned.get() : "", {}));
  }
  return {};
}

Result<std::string> Connection::QueryText(const std::string& sql) {
  auto query = Prepare(sql);
  if (!query) return std::unexpected(query.error());
  auto row = query->Step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return std::string();
  return query->Text(0);
}

Result<Query> Connection::Prepare(const std::string& sql) {
  auto it = statements_.find(sql);
  if (it == statements_.end()) {
    sqlite3_stmt* raw = nullptr;
    const int rc = sqlite3_prepare_v3(db_.get(), sql.c_str(), static_cast<int>(sql.size() + 1),
                                      SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
    StatementHandle stmt(raw);
    if (rc != SQLITE_OK) return std::unexpected(LastError(rc, "preparing " + sql));
    it = statements_.emplace(sql, std::move(stmt)).first;
  }
  return Query(db_.get(), it->second.get());
}

std::int64_t Connection::Changes() const {
  return sqlite3_changes64(db_.get());
}

bool Connection::InTransaction() const {
  return sqlite3_get_autocommit(db_.get()) == 0;
}

Error Connection::LastError(int rc, std::string_view context) const {
  return SqliteError(rc, sqlite3_errmsg(db_.get()), context);
}

}  // namespace gitvirt::store_internal
