#include "gitvirt/engine/clock.h"

namespace gitvirt {
namespace {

class SystemWallClockImpl final : public WallClock {
 public:
  TimePoint Now() const override {
    return std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  }
};

}  // namespace

const WallClock& SystemWallClock() {
  static const SystemWallClockImpl clock;
  return clock;
}

}  // namespace gitvirt
