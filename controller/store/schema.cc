// The journal's schema, as a list of migrations: migration i takes user_version i to i+1.
// A released migration is never edited; a change is a new entry at the end.
//
// Times are integer seconds since the epoch (UTC); enums are stored by their EnumName
// spelling so that the file can be read with the sqlite3 shell during an incident.

#include <charconv>
#include <iterator>
#include <string>

#include "sqlite_db.h"

namespace gitvirt::store_internal {
namespace {

constexpr const char* kMigrations[] = {
    // 0 -> 1: the first schema.
    R"sql(
CREATE TABLE jobs (
  id               TEXT PRIMARY KEY NOT NULL,
  kind             TEXT NOT NULL,
  status           TEXT NOT NULL,
  strategy         TEXT NOT NULL DEFAULT '',
  revision         TEXT NOT NULL DEFAULT '',
  source           TEXT NOT NULL DEFAULT '',
  plan_json        TEXT NOT NULL DEFAULT '',
  error            TEXT NOT NULL DEFAULT '',
  summary_json     TEXT NOT NULL DEFAULT '',
  created_at       INTEGER NOT NULL,
  started_at       INTEGER,
  finished_at      INTEGER,
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  owner_pid        INTEGER NOT NULL DEFAULT 0
);
-- The rowid breaks ties between jobs created in the same second, in creation order.
CREATE INDEX jobs_by_created ON jobs (created_at);
CREATE INDEX jobs_by_status ON jobs (status, created_at);
CREATE INDEX jobs_by_kind ON jobs (kind, created_at);

CREATE TABLE steps (
  job_id      TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  step_id     TEXT NOT NULL,
  seq         INTEGER NOT NULL,
  type        TEXT NOT NULL DEFAULT '',
  node        TEXT NOT NULL DEFAULT '',
  target      TEXT NOT NULL DEFAULT '',
  action_json TEXT NOT NULL DEFAULT '',
  status      TEXT NOT NULL,
  attempt     INTEGER NOT NULL DEFAULT 0,
  undo_json   TEXT NOT NULL DEFAULT '',
  result_json TEXT NOT NULL DEFAULT '',
  error       TEXT NOT NULL DEFAULT '',
  started_at  INTEGER,
  finished_at INTEGER,
  PRIMARY KEY (job_id, step_id)
);
-- A rowid table: the rowid keeps the order the steps were given in, which breaks seq ties.
CREATE INDEX steps_in_plan_order ON steps (job_id, seq);

CREATE TABLE events (
  job_id  TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  seq     INTEGER NOT NULL,
  time    INTEGER NOT NULL,
  step_id TEXT NOT NULL DEFAULT '',
  level   TEXT NOT NULL,
  message TEXT NOT NULL,
  PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;

CREATE TABLE sync_history (
  id       INTEGER PRIMARY KEY AUTOINCREMENT,
  time     INTEGER NOT NULL,
  revision TEXT NOT NULL DEFAULT '',
  result   TEXT NOT NULL,
  message  TEXT NOT NULL DEFAULT '',
  job_id   TEXT NOT NULL DEFAULT ''
);

CREATE TABLE state (
  key   TEXT PRIMARY KEY NOT NULL,
  value TEXT NOT NULL
) WITHOUT ROWID;
)sql",
    // 1 -> 2: the backup catalog (issue 7). The backup directories are the truth; this table
    // is an index of them, rebuilt by `gitvirt backup list --rescan`.
    R"sql(
CREATE TABLE backups (
  id          TEXT PRIMARY KEY NOT NULL,
  vm          TEXT NOT NULL,
  node        TEXT NOT NULL DEFAULT '',
  policy      TEXT NOT NULL DEFAULT '',
  location    TEXT NOT NULL,
  mode        TEXT NOT NULL DEFAULT '',
  compression TEXT NOT NULL DEFAULT '',
  bytes       INTEGER NOT NULL DEFAULT 0,
  verified    INTEGER NOT NULL DEFAULT 0,
  protected   INTEGER NOT NULL DEFAULT 0,
  simulated   INTEGER NOT NULL DEFAULT 0,
  status      TEXT NOT NULL,
  revision    TEXT NOT NULL DEFAULT '',
  job_id      TEXT NOT NULL DEFAULT '',
  created_at  INTEGER NOT NULL
);
CREATE INDEX backups_by_vm ON backups (vm, created_at);
CREATE INDEX backups_by_policy ON backups (policy, created_at);
)sql",
    // 2 -> 3: failed backup attempts in the catalog (status 'failed', with their error), and
    // the outcome of every attempt, kept after its backup is deleted: the lifetime totals
    // /metrics shows, whichever process ran the backup (serve's schedule, `gitvirt backup run`).
    R"sql(
ALTER TABLE backups ADD COLUMN error TEXT NOT NULL DEFAULT '';
CREATE TABLE backup_runs (
  id          TEXT PRIMARY KEY NOT NULL,
  failed      INTEGER NOT NULL,
  bytes       INTEGER NOT NULL DEFAULT 0,
  millis      INTEGER NOT NULL DEFAULT 0,
  finished_at INTEGER NOT NULL
) WITHOUT ROWID;
)sql",
};
static_assert(std::size(kMigrations) == kSchemaVersion);

// The file's schema version; an error when it is newer than this build.

Result<int> SchemaVersion(Connection& db) {
  auto text = db.QueryText("PRAGMA user_version");
  if (!text) return std::unexpected(text.error());
  int version = 0;
  if (std::from_chars(text->data(), text->data() + text->size(), version).ec != std::errc{}) {
    return Fail(ErrorCode::kIo, "unreadable schema version '" + *text + "'");
  }
  if (version > kSchemaVersion) {
    return Fail(ErrorCode::kFailedPrecondition,
                "the state file has schema version " + std::to_string(version) +
                    ", newer than this gitvirt understands (" + std::to_string(kSchemaVersion) +
                    "); upgrade gitvirt");
  }
  return version;
}

}  // namespace

Result<void> MigrateSchema(Connection& db) {
  constexpr std::string_view kContext = "migrating the state file schema";
  // The common case, a current file, takes no write lock: `gitvirt jobs` opening the file
  // beside a busy `serve` does not queue behind its commits.
  auto current = SchemaVersion(db);
  if (!current) return std::unexpected(current.error().Wrap(kContext));
  if (*current == kSchemaVersion) return {};

  // IMMEDIATE takes the write lock up front, so the version read next is the one upgraded, even
  // when two processes open a new file at once.
  if (auto begun = db.Exec("BEGIN IMMEDIATE"); !begun) {
    return std::unexpected(begun.error().Wrap(kContext));
  }
  auto fail = [&](Error error) -> Result<void> {
    (void)db.Exec("ROLLBACK");
    return std::unexpected(error.Wrap(kContext));
  };
  auto version = SchemaVersion(db);
  if (!version) return fail(version.error());
  for (int v = *version; v < kSchemaVersion; ++v) {
    if (auto done = db.Exec(kMigrations[v]); !done) {
      return fail(done.error().Wrap("to version " + std::to_string(v + 1)));
    }
  }
  // PRAGMA takes no bound parameters; the value is our own integer.
  if (auto set = db.Exec("PRAGMA user_version = " + std::to_string(kSchemaVersion)); !set) {
    return fail(set.error());
  }
  if (auto committed = db.Exec("COMMIT"); !committed) return fail(committed.error());
  return {};
}

}  // namespace gitvirt::store_internal
