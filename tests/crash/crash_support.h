// Helpers for the crash and fault tests (tests/crash): the real `gitvirt` binary run in the
// foreground or the background, a set-up (config, manifests, state) on simulated nodes or on a
// private libvirtd, the journal read back through the C++ API, and exact snapshots of what the
// nodes hold, taken with gitvirt's own adapter (ConnectNode + Observe).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "gitvirt/core/config.h"
#include "gitvirt/core/plan.h"
#include "gitvirt/store/journal.h"

namespace gitvirt::crash {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start);

// ---- processes ---------------------------------------------------------------------------

struct Output {
  int rc = -1;
  std::string text;
  double seconds = 0;
};

// Runs argv (bounded by `timeout -k 10 SECONDS`) with extra environment "NAME=value" entries,
// stdout and stderr captured together.
Output Run(std::vector<std::string> argv, const std::vector<std::string>& env = {}, int timeout_seconds = 600);

// A process in the background whose output (stdout and stderr, merged) is read line by line.
class Child {
 public:
  static std::unique_ptr<Child> Spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env = {});
  ~Child();  // SIGKILLs and reaps the process if it is still there

  // The next complete line (without '\n'); nullopt when the output ended or `timeout` passed.
  std::optional<std::string> ReadLine(std::chrono::milliseconds timeout);
  // Reads lines until one contains `needle`; false on end of output or timeout.
  bool WaitFor(const std::string& needle, std::chrono::milliseconds timeout);
  void Signal(int sig);
  // Reads the rest of the output and reaps: the exit status (0-255), or 128 + signal.
  int Wait();
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  const std::string& output() const { return output_; }

 private:
  Child(pid_t pid, int fd) : pid_(pid), fd_(fd) {}
  bool Fill(std::chrono::milliseconds timeout);

  pid_t pid_ = -1;
  int fd_ = -1;
  int status_ = -1;
  std::string output_;
  std::string pending_;  // read but not yet returned by ReadLine
};

// ---- files -------------------------------------------------------------------------------

std::string ReadFile(const fs::path& path);
void WriteFile(const fs::path& path, const std::string& text);
// `to` becomes an exact copy of `from` (removed first).
void CopyTree(const fs::path& from, const fs::path& to);
std::string Sha256(const fs::path& file);
// A GITVIRT_FAULTS_REPORT file: mutating operations asked for, by kind, plus "any" (all).
std::map<std::string, long> ReadFaultsReport(const fs::path& report);

// ---- a gitvirt workspace --------------------------------------------------------------------

struct NodeSpec {
  std::string name;
  std::string uri;        // sim:/abs/path.xml or a libvirt URI
  std::string pool_path;  // the "default" pool's directory
};

class Workspace {
 public:
  // Writes DIR/gitvirt.yaml (state DIR/state/gitvirt.db, manifests DIR/manifests).
  Workspace(fs::path dir, std::vector<NodeSpec> nodes, std::string extra_config = {});

  fs::path manifests() const { return dir_ / "manifests"; }
  fs::path state_dir() const { return dir_ / "state"; }
  std::string state_file() const { return (dir_ / "state" / "gitvirt.db").string(); }
  const fs::path& dir() const { return dir_; }
  const std::vector<NodeSpec>& nodes() const { return nodes_; }
  std::vector<NodeConfig> NodeConfigs() const;

  // argv for the gitvirt binary with --config.
  std::vector<std::string> Argv(std::vector<std::string> args) const;
  Output operator()(std::vector<std::string> args, const std::vector<std::string>& env = {}) const;
  std::unique_ptr<Child> Start(std::vector<std::string> args, const std::vector<std::string>& env = {}) const;

 private:
  fs::path dir_;
  std::vector<NodeSpec> nodes_;
};

// ---- manifests ---------------------------------------------------------------------------

std::string ImageYaml(const std::string& name, const fs::path& file, const std::string& sha256);

struct VmOptions {
  std::string node;
  std::string image;              // root disk: a linked clone of it; "" = a new empty root disk
  std::string memory = "512MiB";
  bool data_disk = true;          // plus a new empty data disk
  bool cloud_init = false;
  std::string power = "Running";
  std::string extra;              // more spec lines, indented by two spaces
};
std::string VmYaml(const std::string& name, const VmOptions& options);

// ---- journal -----------------------------------------------------------------------------

struct JobView {
  JobRecord job;
  std::vector<StepRecord> steps;
  std::vector<EventRecord> events;
  Plan plan;
  std::string Describe() const;  // like `gitvirt jobs ID`, for failure messages
  const StepRecord* Step(const std::string& id) const;
};

// Every job of the state file, oldest first.
std::vector<JobView> ReadJobs(const std::string& state_file);

// ---- what the nodes hold ---------------------------------------------------------------------

struct Inventory {
  // "node/name" -> one line with everything observed about the domain
  std::map<std::string, std::string> domains;
  // "node/pool/volume" -> one line with everything observed about the volume
  std::map<std::string, std::string> volumes;
  // "node/name" -> power state name
  std::map<std::string, std::string> power;
  // "node/name" -> volumes gitvirt created for it ("pool/volume", from its owner metadata)
  std::map<std::string, std::set<std::string>> owned_volumes;
  std::vector<std::string> errors;  // unreachable nodes
  bool operator==(const Inventory& other) const {
    return domains == other.domains && volumes == other.volumes && errors == other.errors;
  }
};

// Observes every node through a fresh connection (gitvirt::ConnectNode + Observe, plus each
// volume's format and backing file).
Inventory TakeInventory(const std::vector<NodeConfig>& nodes);
// The lines only one side has, for failure messages.
std::string DiffInventories(const Inventory& before, const Inventory& after);

// What no run may leave behind, given the state before it: a new domain without gitvirt's owner
// mark (orphaned domain); a new volume that is not one of `allowed` (images) and that no domain
// owns (orphaned volume); a volume two domains own (duplicate); a volume a domain says it owns
// that does not exist; a domain or volume that existed before and is gone. One line each.
std::vector<std::string> FindOrphans(const Inventory& before, const Inventory& after,
                                     const std::set<std::string>& allowed);

}  // namespace gitvirt::crash
