#include "gitvirt/core/sync_window.h"

#include <algorithm>

namespace gitvirt {

WindowState EvaluateWindow(const CronSchedule& schedule, Seconds duration, TimePoint now, const TimeZone& tz) {
  WindowState state;
  // The latest opening at or before now has the latest end: if it has closed, so have all.
  if (auto opened = PreviousFire(schedule, now, tz); opened && now < *opened + duration) {
    state.active = true;
    state.since = *opened;
    state.until = *opened + duration;
    return state;
  }
  if (auto next = NextFire(schedule, now, tz)) state.until = *next;
  return state;
}

std::string WindowBlock::Reason() const {
  std::string text = "blocked by window " + window;
  text += until ? " until " + FormatTime(*until) : problem.empty() ? " (it does not open again)" : "";
  if (!problem.empty()) text += " (" + problem + ")";
  return text;
}

SyncWindows SyncWindows::Evaluate(const std::vector<SyncWindow>& windows, TimePoint now, const ZoneLookup& zones) {
  SyncWindows out;
  out.now_ = now;
  for (const SyncWindow& w : windows) {
    Evaluated e;
    e.name = w.meta.name;
    e.spec = w.spec;
    if (auto selector = CompiledSelector::Compile(w.spec.selector)) {
      e.selector = std::move(*selector);
    } else {
      e.problem = selector.error().message;
    }
    const TimeZone* tz = zones ? zones(w.spec.time_zone) : nullptr;
    if (tz == nullptr && (w.spec.time_zone.empty() || w.spec.time_zone == "UTC")) tz = &UtcZone();
    auto schedule = ParseCron(w.spec.schedule);
    if (tz == nullptr) {
      e.problem = "unknown time zone \"" + w.spec.time_zone + "\"";
    } else if (!schedule) {
      e.problem = "schedule: " + schedule.error().message;
    } else {
      e.state = EvaluateWindow(*schedule, w.spec.duration, now, *tz);
    }
    out.windows_.push_back(std::move(e));
  }
  return out;
}

std::optional<WindowBlock> SyncWindows::Blocks(const VirtualMachine& vm) const {
  return Blocks(vm.meta.name, vm.meta.labels, vm.meta.tags, vm.cluster ? std::string_view(vm.cluster->cluster) : "");
}

std::optional<WindowBlock> SyncWindows::Blocks(std::string_view name, const Labels& labels,
                                               const std::vector<std::string>& tags,
                                               std::string_view cluster) const {
  // A window that cannot be evaluated selects what its selector says, or everything when the
  // selector itself is broken, and blocks: failing closed is the safe side of a window.
  auto selects = [&](const Evaluated& w) { return !w.selector || w.selector->Matches(name, labels, tags, cluster); };
  std::optional<WindowBlock> deny;
  bool all_manual = true;
  for (const Evaluated& w : windows_) {
    if (w.spec.type != SyncWindowType::kDeny || !selects(w) || (w.problem.empty() && !w.state.active)) continue;
    all_manual = all_manual && w.spec.manual_sync;
    // The deny that ends last says until when the VM waits.
    if (!deny || (deny->until && (!w.state.until || *w.state.until > *deny->until))) {
      deny = WindowBlock{w.name, SyncWindowType::kDeny, w.state.until, false, w.problem};
    }
  }
  if (deny) {
    deny->manual_sync = all_manual;
    return deny;
  }
  std::optional<WindowBlock> allow;
  for (const Evaluated& w : windows_) {
    if (w.spec.type != SyncWindowType::kAllow || !selects(w)) continue;
    if (w.problem.empty() && w.state.active) return std::nullopt;  // an open allow window
    all_manual = all_manual && w.spec.manual_sync;
    // The allow window that opens first says until when the VM waits.
    if (!allow || (w.state.until && (!allow->until || *w.state.until < *allow->until))) {
      allow = WindowBlock{w.name, SyncWindowType::kAllow, w.state.until, false, w.problem};
    }
  }
  if (allow) allow->manual_sync = all_manual;
  return allow;
}

std::optional<TimePoint> SyncWindows::NextChange() const {
  std::optional<TimePoint> next;
  for (const Evaluated& w : windows_) {
    if (w.state.until && *w.state.until > now_ && (!next || *w.state.until < *next)) next = w.state.until;
  }
  return next;
}

}  // namespace gitvirt
