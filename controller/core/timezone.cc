#include "gitvirt/core/timezone.h"

#include <utility>

namespace gitvirt {
namespace {

using std::chrono::days;
using std::chrono::local_seconds;
using std::chrono::seconds;
using std::chrono::sys_seconds;

class FixedZone final : public TimeZone {
 public:
  FixedZone(std::string name, seconds offset) : name_(std::move(name)), offset_(offset) {}
  std::string_view Name() const override { return name_; }
  seconds OffsetAt(sys_seconds) const override { return offset_; }

 private:
  std::string name_;
  seconds offset_;
};

// The first instant in (lo, hi] whose offset differs from the offset at lo. The caller knows
// the offsets at lo and hi differ; with at most one change in between, "differs from lo" is
// monotonic over the interval, so bisection finds it.
sys_seconds FindTransition(const TimeZone& tz, sys_seconds lo, sys_seconds hi) {
  const seconds before = tz.OffsetAt(lo);
  while (hi - lo > seconds{1}) {
    const sys_seconds mid = lo + (hi - lo) / 2;
    if (tz.OffsetAt(mid) == before) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return hi;
}

}  // namespace

const TimeZone& UtcZone() {
  static const FixedZone utc("UTC", seconds{0});
  return utc;
}

std::unique_ptr<TimeZone> FixedOffsetZone(std::string name, seconds offset) {
  return std::make_unique<FixedZone>(std::move(name), offset);
}

local_seconds ToLocal(const TimeZone& tz, sys_seconds utc) {
  return local_seconds{(utc + tz.OffsetAt(utc)).time_since_epoch()};
}

LocalTimeInfo ResolveLocal(const TimeZone& tz, local_seconds local) {
  // Every instant that can show `local` lies within a day of it (offsets are within +-24h), so
  // the offsets at the ends of that window tell whether a change is involved.
  const sys_seconds as_utc{local.time_since_epoch()};
  const sys_seconds lo = as_utc - days{1};
  const sys_seconds hi = as_utc + days{1};
  const seconds before = tz.OffsetAt(lo);
  const seconds after = tz.OffsetAt(hi);

  LocalTimeInfo info;
  if (before == after) {
    info.earliest = info.latest = as_utc - before;
    return info;
  }
  const sys_seconds transition = FindTransition(tz, lo, hi);
  info.transition = transition;
  info.offset_before = before;
  info.offset_after = after;
  const sys_seconds with_before = as_utc - before;  // valid when it falls before the change
  const sys_seconds with_after = as_utc - after;    // valid when it falls at or after it
  const bool before_valid = with_before < transition;
  const bool after_valid = with_after >= transition;
  if (before_valid && after_valid) {
    info.kind = LocalTimeInfo::Kind::kFold;
    info.earliest = with_before;
    info.latest = with_after;
  } else if (before_valid || after_valid) {
    info.earliest = info.latest = before_valid ? with_before : with_after;
  } else {
    info.kind = LocalTimeInfo::Kind::kGap;
  }
  return info;
}

}  // namespace gitvirt
