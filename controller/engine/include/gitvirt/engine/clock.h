#pragma once
// Wall-clock time for the policy scheduler, behind an interface so tests drive schedules with a
// fake clock: no test sleeps for a schedule.

#include <atomic>
#include <chrono>

#include "gitvirt/core/observed.h"

namespace gitvirt {

class WallClock {
 public:
  virtual ~WallClock() = default;
  virtual TimePoint Now() const = 0;
};

// The system clock, in whole seconds. A process-wide singleton.
const WallClock& SystemWallClock();

// A clock that moves only when told to. Thread-safe.
class FakeClock final : public WallClock {
 public:
  explicit FakeClock(TimePoint start) : now_(start.time_since_epoch().count()) {}
  TimePoint Now() const override { return TimePoint{std::chrono::seconds{now_.load()}}; }
  void Set(TimePoint t) { now_ = t.time_since_epoch().count(); }
  void Advance(std::chrono::seconds d) { now_ += d.count(); }

 private:
  std::atomic<long long> now_;
};

}  // namespace gitvirt
