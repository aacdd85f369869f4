#include "gitvirt/store/backup_catalog.h"

#include <mutex>
#include <thread>

#include "sqlite_db.h"

namespace gitvirt {
namespace {

using store_internal::Connection;
using store_internal::Query;

constexpr std::chrono::milliseconds kBusyTimeout{10'000};

constexpr const char* kColumns =
    "id, vm, node, policy, location, mode, compression, bytes, verified, protected, simulated, status, "
    "revision, job_id, created_at, error";

BackupRecord ReadRow(const Query& q) {
  BackupRecord r;
  r.id = q.Text(0);
  r.vm = q.Text(1);
  r.node = q.Text(2);
  r.policy = q.Text(3);
  r.location = q.Text(4);
  r.mode = q.Text(5);
  r.compression = q.Text(6);
  r.bytes = static_cast<std::uint64_t>(q.Int(7));
  r.verified = q.Int(8) != 0;
  r.is_protected = q.Int(9) != 0;
  r.simulated = q.Int(10) != 0;
  r.status = q.Text(11);
  r.revision = q.Text(12);
  r.job_id = q.Text(13);
  r.created = TimePoint{std::chrono::seconds{q.Int(14)}};
  r.error = q.Text(15);
  return r;
}

class SqliteBackupCatalog final : public BackupCatalog {
 public:
  explicit SqliteBackupCatalog(Connection db) : db_(std::move(db)) {}

  Result<void> Put(const BackupRecord& r) override {
    std::lock_guard lock(mu_);
    return PutLocked(r);
  }

  Result<void> Remove(const std::string& id) override {
    std::lock_guard lock(mu_);
    auto q = db_.Prepare("DELETE FROM backups WHERE id = ?");
    if (!q) return std::unexpected(q.error());
    q->Bind(id);
    if (auto ok = q->Run(); !ok) return std::unexpected(ok.error().Wrap("removing backup " + id));
    return {};
  }

  Result<BackupRecord> Get(const std::string& id) override {
    std::lock_guard lock(mu_);
    auto q = db_.Prepare(std::string("SELECT ") + kColumns + " FROM backups WHERE id = ?");
    if (!q) return std::unexpected(q.error());
    q->Bind(id);
    auto row = q->Step();
    if (!row) return std::unexpected(row.error().Wrap("reading backup " + id));
    if (!*row) return Fail(ErrorCode::kNotFound, "no backup " + id + " in the catalog");
    return ReadRow(*q);
  }

  Result<std::vector<BackupRecord>> List(const BackupFilter& filter) override {
    std::lock_guard lock(mu_);
    auto q = db_.Prepare(std::string("SELECT ") + kColumns +
                         " FROM backups WHERE (?1 = '' OR vm = ?1) AND (?2 = '' OR policy = ?2) "
                         "AND (?3 = '' OR status = ?3) ORDER BY created_at, id");
    if (!q) return std::unexpected(q.error());
    q->Bind(filter.vm).Bind(filter.policy).Bind(filter.status);
    std::vector<BackupRecord> out;
    while (true) {
      auto row = q->Step();
      if (!row) return std::unexpected(row.error().Wrap("listing backups"));
      if (!*row) break;
      out.push_back(ReadRow(*q));
    }
    return out;
  }

  Result<void> ReplaceAll(const std::vector<BackupRecord>& records) override {
    std::lock_guard lock(mu_);
    if (auto ok = db_.Exec("BEGIN IMMEDIATE"); !ok) return std::unexpected(ok.error().Wrap("rescanning backups"));
    auto fail = [&](const Error& e) -> Result<void> {
      (void)db_.Exec("ROLLBACK");
      return std::unexpected(e.Wrap("rescanning backups"));
    };
    if (auto ok = db_.Exec("DELETE FROM backups"); !ok) return fail(ok.error());
    for (const BackupRecord& r : records) {
      if (auto ok = PutLocked(r); !ok) return fail(ok.error());
    }
    if (auto ok = db_.Exec("COMMIT"); !ok) return fail(ok.error());
    return {};
  }

  Result<void> RecordRun(const std::string& id, bool failed, std::uint64_t bytes, double seconds) override {
    std::lock_guard lock(mu_);
    auto q = db_.Prepare("INSERT OR REPLACE INTO backup_runs (id, failed, bytes, millis, finished_at) VALUES (?, ?, ?, ?, ?)");
    if (!q) return std::unexpected(q.error());
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch());
    q->Bind(id).Bind(failed ? 1 : 0).Bind(static_cast<std::int64_t>(failed ? 0 : bytes));
    q->Bind(static_cast<std::int64_t>(failed ? 0 : seconds * 1000)).Bind(static_cast<std::int64_t>(now.count()));
    if (auto ok = q->Run(); !ok) return std::unexpected(ok.error().Wrap("recording the outcome of backup " + id));
    return {};
  }

  Result<BackupRunTotals> RunTotals() override {
    std::lock_guard lock(mu_);
    auto q = db_.Prepare(
        "SELECT count(*) - total(failed), total(failed), total(bytes), total(millis) FROM backup_runs");
    if (!q) return std::unexpected(q.error());
    auto row = q->Step();
    if (!row) return std::unexpected(row.error().Wrap("adding up backup runs"));
    BackupRunTotals t;
    if (*row) {
      t.taken = static_cast<std::uint64_t>(q->Int(0));
      t.failed = static_cast<std::uint64_t>(q->Int(1));
      t.bytes = static_cast<std::uint64_t>(q->Int(2));
      t.seconds = static_cast<double>(q->Int(3)) / 1000.0;
    }
    return t;
  }

 private:
  Result<void> PutLocked(const BackupRecord& r) {
    auto q = db_.Prepare(std::string("INSERT OR REPLACE INTO backups (") + kColumns +
                         ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (!q) return std::unexpected(q.error());
    q->Bind(r.id).Bind(r.vm).Bind(r.node).Bind(r.policy).Bind(r.location).Bind(r.mode).Bind(r.compression);
    q->Bind(static_cast<std::int64_t>(r.bytes)).Bind(r.verified ? 1 : 0).Bind(r.is_protected ? 1 : 0);
    q->Bind(r.simulated ? 1 : 0).Bind(r.status).Bind(r.revision).Bind(r.job_id);
    q->Bind(static_cast<std::int64_t>(r.created.time_since_epoch().count())).Bind(r.error);
    if (auto ok = q->Run(); !ok) return std::unexpected(ok.error().Wrap("recording backup " + r.id));
    return {};
  }

  std::mutex mu_;
  Connection db_;
};

}  // namespace

Result<std::unique_ptr<BackupCatalog>> BackupCatalog::Open(const std::string& path) {
  const std::string context = "opening the backup catalog in " + path;
  auto db = Connection::Open(path, Connection::Mode::kReadWriteCreate, kBusyTimeout);
  if (!db) return std::unexpected(db.error().Wrap(context));
  // The journal may be switching the file to WAL at this moment: retry while it is busy.
  const auto deadline = std::chrono::steady_clock::now() + kBusyTimeout;
  while (true) {
    auto mode = db->QueryText("PRAGMA journal_mode = WAL");
    if (mode) break;
    if (mode.error().code != ErrorCode::kUnavailable || std::chrono::steady_clock::now() >= deadline) {
      return std::unexpected(mode.error().Wrap(context));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (auto ok = db->Exec("PRAGMA synchronous = FULL"); !ok) return std::unexpected(ok.error().Wrap(context));
  if (auto ok = store_internal::MigrateSchema(*db); !ok) return std::unexpected(ok.error().Wrap(context));
  return std::unique_ptr<BackupCatalog>(new SqliteBackupCatalog(std::move(*db)));
}

}  // namespace gitvirt
