#include "gitvirt/engine/timezone_db.h"

#include <date/tz.h>

#include <string>

namespace gitvirt {
namespace {

class TzdbZone final : public TimeZone {
 public:
  TzdbZone(std::string name, const date::time_zone* zone) : name_(std::move(name)), zone_(zone) {}
  std::string_view Name() const override { return name_; }
  std::chrono::seconds OffsetAt(std::chrono::sys_seconds utc) const override {
    const date::sys_info info = zone_->get_info(date::sys_seconds{utc.time_since_epoch()});
    return info.offset;
  }

 private:
  std::string name_;
  const date::time_zone* zone_;  // owned by the date library's database, alive until exit
};

}  // namespace

Result<std::unique_ptr<TimeZone>> LoadTimeZone(std::string_view iana_name) {
  if (iana_name.empty() || iana_name == "UTC" || iana_name == "Etc/UTC") {
    return FixedOffsetZone("UTC", std::chrono::seconds{0});
  }
  try {
    const date::time_zone* zone = date::locate_zone(iana_name);
    return std::unique_ptr<TimeZone>(new TzdbZone(std::string(iana_name), zone));
  } catch (const std::exception& e) {
    return Fail(ErrorCode::kNotFound, "unknown time zone \"" + std::string(iana_name) + "\" (" + e.what() + ")");
  }
}

}  // namespace gitvirt
