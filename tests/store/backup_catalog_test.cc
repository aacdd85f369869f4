// The backup catalog: schema migration 1 -> 2 (an existing state file keeps its jobs), records
// in and out, filters, rescans (ReplaceAll), and sharing the file with the journal.
#include "gitvirt/store/backup_catalog.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "gitvirt/store/journal.h"
#include "temp_dir.h"

namespace gitvirt {
namespace {

std::string Sql(const std::string& path, const std::string& sql) {
  sqlite3* raw = nullptr;
  sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  std::unique_ptr<sqlite3, decltype(&sqlite3_close)> db(raw, &sqlite3_close);
  std::string out;
  auto collect = [](void* text, int columns, char** values, char**) {
    auto& s = *static_cast<std::string*>(text);
    for (int i = 0; i < columns; ++i) s += (s.empty() ? "" : "|") + std::string(values[i] ? values[i] : "NULL");
    return 0;
  };
  char* error = nullptr;
  if (sqlite3_exec(db.get(), sql.c_str(), collect, &out, &error) != SQLITE_OK) {
    std::string message = error ? error : "?";
    sqlite3_free(error);
    throw std::runtime_error(message);
  }
  return out;
}

BackupRecord Record(const std::string& id, const std::string& vm, const std::string& policy, long long created) {
  BackupRecord r;
  r.id = id;
  r.vm = vm;
  r.node = "hv1";
  r.policy = policy;
  r.location = "/backups/" + vm + "/" + id;
  r.mode = "snapshot";
  r.compression = "zstd";
  r.bytes = 12345;
  r.verified = true;
  r.created = TimePoint{std::chrono::seconds{created}};
  return r;
}

class BackupCatalogTest : public ::testing::Test {
 protected:
  testing::TempDir dir_{"gv-catalog"};
  std::string path_ = (dir_.path() / "gitvirt.db").string();
};

TEST_F(BackupCatalogTest, MigratesAVersion1StateFileKeepingItsData) {
  Sql(path_, "CREATE TABLE state (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) WITHOUT ROWID;"
             "INSERT INTO state VALUES ('applied_revision', 'abc'); PRAGMA user_version = 1");
  auto catalog = BackupCatalog::Open(path_);
  ASSERT_TRUE(catalog) << catalog.error().ToString();
  EXPECT_EQ(Sql(path_, "PRAGMA user_version"), "3");
  EXPECT_EQ(Sql(path_, "SELECT value FROM state"), "abc");
  EXPECT_EQ(Sql(path_, "SELECT count(*) FROM backups"), "0");
  EXPECT_EQ(Sql(path_, "PRAGMA journal_mode"), "wal");
}

TEST_F(BackupCatalogTest, PutGetListRemove) {
  auto catalog = BackupCatalog::Open(path_);
  ASSERT_TRUE(catalog);
  BackupCatalog& c = **catalog;
  BackupRecord a = Record("web-01-b", "web-01", "nightly", 200);
  a.is_protected = true;
  a.simulated = true;
  a.revision = "rev";
  a.job_id = "job";
  ASSERT_TRUE(c.Put(a));
  ASSERT_TRUE(c.Put(Record("web-01-a", "web-01", "nightly", 100)));
  ASSERT_TRUE(c.Put(Record("db-01-a", "db-01", "", 150)));
  EXPECT_EQ(*c.Get("web-01-b"), a);
  EXPECT_EQ(c.Get("nope").error().code, ErrorCode::kNotFound);
  auto all = c.List(BackupFilter{});
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].id, "web-01-a");  // oldest first
  EXPECT_EQ((*all)[1].id, "db-01-a");
  EXPECT_EQ(c.List(BackupFilter{"web-01", "", ""})->size(), 2u);
  EXPECT_EQ(c.List(BackupFilter{"", "nightly", ""})->size(), 2u);
  EXPECT_EQ(c.List(BackupFilter{"", "", "failed"})->size(), 0u);
  // Put replaces by id.
  a.bytes = 1;
  ASSERT_TRUE(c.Put(a));
  EXPECT_EQ(c.Get("web-01-b")->bytes, 1u);
  ASSERT_TRUE(c.Remove("web-01-b"));
  EXPECT_EQ(c.List(BackupFilter{})->size(), 2u);
  ASSERT_TRUE(c.ReplaceAll({Record("x", "web-02", "p", 1)}));
  ASSERT_EQ(c.List(BackupFilter{})->size(), 1u);
  EXPECT_EQ(c.List(BackupFilter{})->front().id, "x");
}

TEST_F(BackupCatalogTest, MigratesAVersion2CatalogKeepingItsBackups) {
  // The version-2 table as released, with one backup in it.
  Sql(path_, "CREATE TABLE state (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) WITHOUT ROWID;"
             "CREATE TABLE backups (id TEXT PRIMARY KEY NOT NULL, vm TEXT NOT NULL, node TEXT NOT NULL DEFAULT '', "
             "policy TEXT NOT NULL DEFAULT '', location TEXT NOT NULL, mode TEXT NOT NULL DEFAULT '', "
             "compression TEXT NOT NULL DEFAULT '', bytes INTEGER NOT NULL DEFAULT 0, verified INTEGER NOT NULL "
             "DEFAULT 0, protected INTEGER NOT NULL DEFAULT 0, simulated INTEGER NOT NULL DEFAULT 0, status TEXT NOT "
             "NULL, revision TEXT NOT NULL DEFAULT '', job_id TEXT NOT NULL DEFAULT '', created_at INTEGER NOT NULL);"
             "INSERT INTO backups (id, vm, location, status, bytes, created_at) VALUES ('old', 'vm', '/b/vm/old', "
             "'complete', 7, 100); PRAGMA user_version = 2");
  auto catalog = BackupCatalog::Open(path_);
  ASSERT_TRUE(catalog) << catalog.error().ToString();
  EXPECT_EQ(Sql(path_, "PRAGMA user_version"), "3");
  auto old = (*catalog)->Get("old");
  ASSERT_TRUE(old) << old.error().ToString();
  EXPECT_EQ(old->bytes, 7u);
  EXPECT_EQ(old->status, "complete");
  EXPECT_EQ(old->error, "");
  EXPECT_EQ(*(*catalog)->RunTotals(), BackupRunTotals{}) << "no outcome was recorded before version 3";
}

TEST_F(BackupCatalogTest, FailedAttemptsKeepTheirError) {
  auto catalog = BackupCatalog::Open(path_);
  ASSERT_TRUE(catalog);
  BackupCatalog& c = **catalog;
  BackupRecord failed = Record("web-01-c", "web-01", "nightly", 300);
  failed.status = "failed";
  failed.bytes = 0;
  failed.error = "disk root: qemu-img convert failed";
  ASSERT_TRUE(c.Put(failed));
  ASSERT_TRUE(c.Put(Record("web-01-a", "web-01", "nightly", 100)));
  EXPECT_EQ(*c.Get("web-01-c"), failed);
  auto only_failed = c.List(BackupFilter{"", "", "failed"});
  ASSERT_EQ(only_failed->size(), 1u);
  EXPECT_EQ(only_failed->front().error, "disk root: qemu-img convert failed");
  EXPECT_EQ(c.List(BackupFilter{"", "", "complete"})->size(), 1u);
}

TEST_F(BackupCatalogTest, RunTotalsCountEachBackupOnceAndOutliveItsRecord) {
  auto catalog = BackupCatalog::Open(path_);
  ASSERT_TRUE(catalog);
  BackupCatalog& c = **catalog;
  EXPECT_EQ(*c.RunTotals(), BackupRunTotals{});
  ASSERT_TRUE(c.RecordRun("a", false, 1000, 1.5));
  ASSERT_TRUE(c.RecordRun("b", true, 0, 0));
  ASSERT_TRUE(c.RecordRun("c", true, 0, 0));
  // c's step was run again after a crash and succeeded this time: it counts once, as taken.
  ASSERT_TRUE(c.RecordRun("c", false, 500, 0.25));
  EXPECT_EQ(*c.RunTotals(), (BackupRunTotals{.taken = 2, .failed = 1, .bytes = 1500, .seconds = 1.75}));
  // Deleting backups or rescanning the catalog does not make the counters go back.
  ASSERT_TRUE(c.Put(Record("a", "vm", "", 1)));
  ASSERT_TRUE(c.Remove("a"));
  ASSERT_TRUE(c.ReplaceAll({}));
  EXPECT_EQ(c.RunTotals()->taken, 2u);
  // Another process sees them.
  auto other = BackupCatalog::Open(path_);
  ASSERT_TRUE(other);
  EXPECT_EQ((*other)->RunTotals()->failed, 1u);
}

TEST_F(BackupCatalogTest, SharesTheStateFileWithTheJournal) {
  auto journal = Journal::Open(path_);
  ASSERT_TRUE(journal);
  auto catalog = BackupCatalog::Open(path_);
  ASSERT_TRUE(catalog);
  ASSERT_TRUE((*journal)->SetState("k", "v"));
  ASSERT_TRUE((*catalog)->Put(Record("a", "vm", "", 1)));
  ASSERT_TRUE((*journal)->Flush());
  auto second = BackupCatalog::Open(path_);  // another process's view
  ASSERT_TRUE(second);
  EXPECT_EQ((*second)->List(BackupFilter{})->size(), 1u);
  EXPECT_EQ(**(*journal)->GetState("k"), "v");
}

}  // namespace
}  // namespace gitvirt
