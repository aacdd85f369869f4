#pragma once
// Sync windows: when the changes of which VMs may be applied (Argo CD's sync windows, for VMs).
//
// A window opens at each fire time of its cron schedule, evaluated in its time zone, and stays
// open for its duration (elapsed time: a window opened at 01:30 for 2h on the night clocks go
// back closes at 03:30 local summer time, two real hours later).
//
//  * Inside an active deny window that selects a VM, the VM is blocked.
//  * When allow windows select a VM and none of them is active, the VM is blocked until the
//    first of them opens. A VM no allow window selects is allowed (unless denied).
//  * Deny wins over allow.
//
// A blocked VM's changes are planned and shown ("blocked by window W until T") but not applied:
// `serve` never applies them; `gitvirt apply --override-windows` does when every window that
// blocks the VM says manualSync: true. Windows are evaluated once per plan, at the plan's time;
// `serve` plans again when a window opens or closes (NextChange). Pure.

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gitvirt/core/cron.h"
#include "gitvirt/core/model.h"
#include "gitvirt/core/selector.h"
#include "gitvirt/core/time.h"
#include "gitvirt/core/timezone.h"

namespace gitvirt {

// One window at one instant.
struct WindowState {
  bool active = false;
  // Active: when it opened and when it closes. Not active: when it next opens (nullopt: never).
  std::optional<TimePoint> since;
  std::optional<TimePoint> until;
  friend bool operator==(const WindowState&, const WindowState&) = default;
};

// Whether a window of this schedule and duration is open at `now`.
WindowState EvaluateWindow(const CronSchedule& schedule, Seconds duration, TimePoint now, const TimeZone& tz);

// Why a VM's changes wait.
struct WindowBlock {
  std::string window;  // the window that blocks (the deny that ends last; the allow that opens first)
  SyncWindowType type = SyncWindowType::kDeny;
  std::optional<TimePoint> until;  // when this block ends; nullopt: not foreseeable
  bool manual_sync = false;        // every window blocking the VM allows a manual override
  std::string problem;             // a window that could not be evaluated (its zone), else ""
  // "blocked by window W until 2026-12-08T02:00:00Z"
  std::string Reason() const;
  friend bool operator==(const WindowBlock&, const WindowBlock&) = default;
};

// The desired state's windows evaluated at one instant.
class SyncWindows {
 public:
  struct Evaluated {
    std::string name;
    SyncWindowSpec spec;
    std::optional<CompiledSelector> selector;
    WindowState state;
    std::string problem;  // its zone or schedule could not be used: it counts as blocking
  };
  // A time-zone name to its zone; null when unknown.
  using ZoneLookup = std::function<const TimeZone*(std::string_view)>;

  SyncWindows() = default;
  static SyncWindows Evaluate(const std::vector<SyncWindow>& windows, TimePoint now, const ZoneLookup& zones);

  TimePoint now() const { return now_; }
  const std::vector<Evaluated>& windows() const { return windows_; }
  bool empty() const { return windows_.empty(); }

  // Why the VM's changes wait now, or nullopt when they may be applied.
  std::optional<WindowBlock> Blocks(const VirtualMachine& vm) const;
  // The same for a VM known only by its domain (no manifest any more: a deletion).
  std::optional<WindowBlock> Blocks(std::string_view name, const Labels& labels,
                                    const std::vector<std::string>& tags, std::string_view cluster) const;
  // The first instant after now at which any window opens or closes (nullopt: none).
  std::optional<TimePoint> NextChange() const;

 private:
  TimePoint now_{};
  std::vector<Evaluated> windows_;
};

}  // namespace gitvirt
