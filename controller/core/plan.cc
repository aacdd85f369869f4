#include "gitvirt/core/plan.h"

#include <cstdio>
#include <set>

#include "gitvirt/core/fingerprint.h"

namespace gitvirt {

PlanSummary Plan::Summary() const {
  // Counted like terraform counts resources: a restart is one change, not three steps.
  PlanSummary s;
  std::set<std::string> created, changed;
  for (const Action& a : actions) {
    switch (a.type) {
      case ActionType::kCreate:
      case ActionType::kImageImport:
      case ActionType::kBackupRestore:
        ++s.add;
        created.insert(a.target.ToString());
        break;
      case ActionType::kSnapshot:  // a new snapshot (or backup) of a VM that is changed, or not
      case ActionType::kBackup:
        ++s.add;
        break;
      case ActionType::kReplace:
        ++s.replace;
        created.insert(a.target.ToString());
        break;
      case ActionType::kDelete:
      case ActionType::kRelease:
      case ActionType::kSnapshotDelete:
      case ActionType::kBackupDelete:
        ++s.destroy;
        break;
      case ActionType::kVolumeDelete:
        break;  // part of its VM's delete
      case ActionType::kAdopt:
        ++s.adopt;
        break;
      default:
        break;
    }
  }
  for (const Action& a : actions) {
    const bool change = a.type == ActionType::kUpdateLive || a.type == ActionType::kUpdateRestart ||
                        a.type == ActionType::kMigrate || a.type == ActionType::kStart ||
                        a.type == ActionType::kStop || a.type == ActionType::kShutdown ||
                        a.type == ActionType::kReboot || a.type == ActionType::kSuspend ||
                        a.type == ActionType::kResume || a.type == ActionType::kSnapshotRevert;
    if (change && !created.contains(a.target.ToString())) changed.insert(a.target.ToString());
  }
  s.change = static_cast<int>(changed.size());
  s.pending = static_cast<int>(pending.size());
  s.ignored = static_cast<int>(ignored.size());
  return s;
}

std::string PreChangeSnapshotName(TimePoint at) {
  const CivilTime t = ToCivil(at);
  char text[40];
  std::snprintf(text, sizeof text, "pre-change-%04d%02u%02u-%02ld%02ld%02ld", t.year, t.month, t.day, t.hour,
                t.minute, t.second);
  return text;
}

const Action* Plan::FindAction(std::string_view id) const {
  for (const Action& a : actions) {
    if (a.id == id) return &a;
  }
  return nullptr;
}

std::string ObservedFingerprint(const ObservedVm& vm) {
  return Fingerprint(vm.node + "|" + vm.definition_fingerprint + "|" +
                     std::string(EnumName(vm.power)));
}

}  // namespace gitvirt
