#pragma once
// Where a configuration keeps its state: one value, derived from `state:` in gitvirt.yaml, used
// by everything that reads or writes there. Pure.

#include <string>

#include "gitvirt/core/config.h"

namespace gitvirt {

struct StatePaths {
  // The SQLite file: the journal, the policy schedules and the backup catalog.
  std::string state;
  // "<state>.cache": what can be fetched or made again.
  std::string cache;
  std::string git;      // cache/git: the bare mirrors of git sources and their exported trees
  std::string seeds;    // cache/seeds: cloud-init NoCloud ISOs before they are uploaded
  std::string images;   // cache/images: downloaded Images
  std::string console;  // cache/console: serial logs of VMs on local nodes without a consoleDir
  std::string restore;  // cache/restore: backups decompressed for a restore

  static StatePaths For(const ControllerConfig& config);
  static StatePaths ForState(const std::string& state_file);
};

}  // namespace gitvirt
