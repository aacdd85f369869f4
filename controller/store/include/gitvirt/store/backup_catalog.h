#pragma once
// The backup catalog: one row per backup gitvirt knows of, in the state file (table `backups`,
// schema version 3). The backup directories themselves are the truth — each holds a
// manifest.json — and the catalog is an index over them that `gitvirt backup list --rescan`
// rebuilds by scanning the target directories (ReplaceAll). Failed attempts are rows too
// (status "failed", with the error); they have no directory. Apart from the rows, the catalog
// keeps the outcome of every attempt (table `backup_runs`), for lifetime totals (RunTotals).
//
// Thread-safety: every method may be called from any thread (one connection, guarded by a
// mutex). Several processes may open the same file; SQLite serialises their writes.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gitvirt/core/error.h"
#include "gitvirt/core/observed.h"

namespace gitvirt {

struct BackupRecord {
  std::string id;        // "<vm>-<YYYYMMDDTHHMMSSZ>[-n]": unique
  std::string vm;
  std::string node;
  std::string policy;    // "" for a backup taken by hand without a policy
  std::string location;  // the backup's directory (holds manifest.json)
  std::string mode;      // snapshot | suspend | stop | offline | simulated
  std::string compression;
  std::uint64_t bytes = 0;  // stored bytes (compressed files)
  bool verified = false;
  bool is_protected = false;
  bool simulated = false;   // made on a simulated node: metadata only, not a disk image
  std::string status = "complete";  // complete | failed | deleted
  std::string error;                // why a failed attempt failed
  std::string revision;
  std::string job_id;
  TimePoint created{};
  friend bool operator==(const BackupRecord&, const BackupRecord&) = default;
};

struct BackupFilter {
  std::string vm;
  std::string policy;
  std::string status;  // "" = any
};

// What every backup attempt recorded with RecordRun added up to.
struct BackupRunTotals {
  std::uint64_t taken = 0;   // succeeded
  std::uint64_t failed = 0;
  std::uint64_t bytes = 0;   // stored bytes of those taken
  double seconds = 0;        // time spent taking those taken
  friend bool operator==(const BackupRunTotals&, const BackupRunTotals&) = default;
};

class BackupCatalog {
 public:
  // Opens (creating or migrating the schema of) the state file.
  static Result<std::unique_ptr<BackupCatalog>> Open(const std::string& path);
  virtual ~BackupCatalog() = default;

  // Inserts or replaces the record with this id.
  virtual Result<void> Put(const BackupRecord& record) = 0;
  virtual Result<void> Remove(const std::string& id) = 0;
  // kNotFound for an unknown id.
  virtual Result<BackupRecord> Get(const std::string& id) = 0;
  // Oldest first (created, then id).
  virtual Result<std::vector<BackupRecord>> List(const BackupFilter& filter) = 0;
  // The catalog becomes exactly `records` (a rescan), in one transaction.
  virtual Result<void> ReplaceAll(const std::vector<BackupRecord>& records) = 0;

  // Records how an attempt at backup `id` ended. Recorded again for the same id (a step run
  // again after a crash), it replaces the earlier outcome, so each backup counts once. Kept when
  // the backup is deleted or the catalog rescanned.
  virtual Result<void> RecordRun(const std::string& id, bool failed, std::uint64_t bytes, double seconds) = 0;
  virtual Result<BackupRunTotals> RunTotals() = 0;
};

}  // namespace gitvirt
