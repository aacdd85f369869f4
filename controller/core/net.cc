#include "gitvirt/core/net.h"

#include <arpa/inet.h>

#include <array>
#include <cctype>
#include <cstdint>
#include <optional>
#include <vector>

namespace gitvirt {
namespace {

using Ipv4Bytes = std::array<std::uint8_t, 4>;
using Ipv6Bytes = std::array<std::uint8_t, 16>;

std::optional<Ipv4Bytes> ParseIpv4(std::string_view text) {
  Ipv4Bytes bytes{};
  std::size_t part = 0;
  std::size_t i = 0;
  while (true) {
    const std::size_t start = i;
    unsigned value = 0;
    while (i < text.size() && i - start < 4 && text[i] >= '0' && text[i] <= '9') {
      value = value * 10 + static_cast<unsigned>(text[i] - '0');
      ++i;
    }
    const std::size_t digits = i - start;
    if (digits == 0 || digits > 3 || value > 255 || (digits > 1 && text[start] == '0')) {
      return std::nullopt;
    }
    bytes[part++] = static_cast<std::uint8_t>(value);
    if (part == 4) return i == text.size() ? std::optional(bytes) : std::nullopt;
    if (i >= text.size() || text[i] != '.') return std::nullopt;
    ++i;
  }
}

std::optional<Ipv6Bytes> ParseIpv6(std::string_view text) {
  // inet_pton needs a terminated string; a NUL inside `text` must not end it early.
  if (text.empty() || text.size() > 45 || text.find('\0') != std::string_view::npos) {
    return std::nullopt;
  }
  const std::string terminated(text);
  Ipv6Bytes bytes{};
  if (inet_pton(AF_INET6, terminated.c_str(), bytes.data()) != 1) return std::nullopt;
  return bytes;
}

std::string FormatIpv4(const Ipv4Bytes& b) {
  return std::to_string(b[0]) + "." + std::to_string(b[1]) + "." + std::to_string(b[2]) + "." +
         std::to_string(b[3]);
}

std::string FormatIpv6(const Ipv6Bytes& bytes) {
  char buffer[INET6_ADDRSTRLEN] = {};
  if (inet_ntop(AF_INET6, bytes.data(), buffer, sizeof buffer) == nullptr) return {};
  return buffer;
}

// An address with its prefix length; exactly one of v4/v6 is set.
struct Cidr {
  std::optional<Ipv4Bytes> v4;
  std::optional<Ipv6Bytes> v6;
  int prefix = 0;

  std::string Address() const { return v4 ? FormatIpv4(*v4) : FormatIpv6(*v6); }
  std::string ToString() const { return Address() + "/" + std::to_string(prefix); }
  // The network address (host bits cleared), IPv4 only.
  Ipv4Bytes Network() const {
    const std::uint32_t mask = prefix == 0 ? 0 : ~std::uint32_t{0} << (32 - prefix);
    const std::uint32_t value = (std::uint32_t{(*v4)[0]} << 24) | (std::uint32_t{(*v4)[1]} << 16) |
                                (std::uint32_t{(*v4)[2]} << 8) | std::uint32_t{(*v4)[3]};
    const std::uint32_t network = value & mask;
    return {static_cast<std::uint8_t>(network >> 24), static_cast<std::uint8_t>(network >> 16),
            static_cast<std::uint8_t>(network >> 8), static_cast<std::uint8_t>(network)};
  }
  bool Contains(const Ipv4Bytes& address) const {
    Cidr other{address, std::nullopt, prefix};
    return other.Network() == Network();
  }
};

// Messages leave out the input; callers say which value they were looking at.
Result<Cidr> ParseCidr(std::string_view text) {
  const std::size_t slash = text.find('/');
  const std::string_view address = text.substr(0, slash);
  Cidr cidr{ParseIpv4(address), ParseIpv6(address), 0};
  if (!cidr.v4 && !cidr.v6) {
    return Fail(ErrorCode::kInvalidArgument,
                "'" + std::string(address) + "' is not an IPv4 or IPv6 address");
  }
  if (slash == std::string_view::npos) {
    return Fail(ErrorCode::kInvalidArgument, "no prefix length (write it as " +
                                                 std::string(address) + (cidr.v4 ? "/24" : "/64") +
                                                 ", with the network's length)");
  }
  const std::string_view prefix = text.substr(slash + 1);
  const int max = cidr.v4 ? 32 : 128;
  const bool digits = !prefix.empty() && prefix.size() <= 3 &&
                      prefix.find_first_not_of("0123456789") == std::string_view::npos;
  if (!digits) {
    return Fail(ErrorCode::kInvalidArgument,
                "prefix length '" + std::string(prefix) + "' is not a number");
  }
  cidr.prefix = std::stoi(std::string(prefix));
  if (cidr.prefix > max) {
    return Fail(ErrorCode::kInvalidArgument, "prefix length " + std::to_string(cidr.prefix) +
                                                 " is out of range 0-" + std::to_string(max) +
                                                 (cidr.v4 ? " for IPv4" : " for IPv6"));
  }
  return cidr;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::unexpected<Error> Invalid(std::string message) {
  return Fail(ErrorCode::kInvalidArgument, std::move(message));
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The four raw values of an ipConfig, before they are checked together.
struct IpConfigFields {
  std::optional<std::string_view> ip, gw, ip6, gw6;
};

Result<IpConfigFields> SplitIpConfig(std::string_view text) {
  IpConfigFields fields;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = std::min(text.find(',', start), text.size());
    const std::string_view item = Trim(text.substr(start, comma - start));
    start = comma + 1;
    if (item.empty()) {
      return Invalid("empty entry in '" + std::string(text) + "' (two commas in a row?)");
    }
    const std::size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      return Invalid("'" + std::string(item) + "' is not key=value (keys: ip, gw, ip6, gw6)");
    }
    const std::string_view key = Trim(item.substr(0, eq));
    const std::string_view value = Trim(item.substr(eq + 1));
    std::optional<std::string_view>* slot = key == "ip"    ? &fields.ip
                                            : key == "gw"  ? &fields.gw
                                            : key == "ip6" ? &fields.ip6
                                            : key == "gw6" ? &fields.gw6
                                                           : nullptr;
    if (slot == nullptr) {
      return Invalid("unknown key '" + std::string(key) + "' (expected ip, gw, ip6 or gw6)");
    }
    if (slot->has_value()) return Invalid("key '" + std::string(key) + "' is given twice");
    *slot = value;
  }
  return fields;
}

// ip= or ip6=: dhcp, (ip6 only) auto, or a CIDR of the key's family.
Result<void> ParseAddressing(std::string_view key, std::string_view value, bool v6, IpMode& mode,
                             std::string& address, std::optional<Cidr>& cidr) {
  const std::string shown = std::string(key) + "=" + std::string(value);
  if (value == "dhcp" || (v6 && value == "auto")) {
    mode = value == "dhcp" ? IpMode::kDhcp : IpMode::kAuto;
    return {};
  }
  auto parsed = ParseCidr(value);
  if (!parsed) {
    const bool looks_like_address =
        value.find('/') != std::string_view::npos || ParseIpv4(value) || ParseIpv6(value);
    if (!looks_like_address) {
      return Invalid(shown + ": expected " +
                     (v6 ? "dhcp, auto or an IPv6 CIDR such as 2001:db8::5/64"
                         : "dhcp or an IPv4 CIDR such as 10.0.0.5/24"));
    }
    return Invalid(shown + ": " + parsed.error().message);
  }
  if (v6 && parsed->v4) return Invalid(shown + ": an IPv4 CIDR belongs in ip=");
  if (!v6 && parsed->v6) return Invalid(shown + ": an IPv6 CIDR belongs in ip6=");
  mode = IpMode::kStatic;
  address = parsed->ToString();
  cidr = *parsed;
  return {};
}

}  // namespace

bool IsIpv4(std::string_view text) {
  return ParseIpv4(text).has_value();
}

bool IsIpv6(std::string_view text) {
  return ParseIpv6(text).has_value();
}

Result<void> ValidateCidr(std::string_view cidr) {
  auto parsed = ParseCidr(cidr);
  if (!parsed) return Invalid("'" + std::string(cidr) + "': " + parsed.error().message);
  return {};
}

std::string CidrAddress(std::string_view cidr) {
  const std::string_view address = cidr.substr(0, cidr.find('/'));
  if (auto v4 = ParseIpv4(address)) return FormatIpv4(*v4);
  if (auto v6 = ParseIpv6(address)) return FormatIpv6(*v6);
  return std::string(address);
}

bool IsUnicastMac(std::string_view text) {
  if (text.size() != 17) return false;
  bool all_zero = true;
  int first_octet = 0;
  for (std::size_t octet = 0; octet < 6; ++octet) {
    const std::size_t at = octet * 3;
    const int high = HexDigit(text[at]);
    const int low = HexDigit(text[at + 1]);
    if (high < 0 || low < 0) return false;
    if (octet < 5 && text[at + 2] != ':') return false;
    const int value = high * 16 + low;
    if (octet == 0) first_octet = value;
    all_zero = all_zero && value == 0;
  }
  return (first_octet & 1) == 0 && !all_zero;
}

Result<IpConfig> ParseIpConfig(std::string_view text) {
  if (Trim(text).empty()) return Invalid("empty ipConfig: give ip= and/or ip6=");
  auto fields = SplitIpConfig(text);
  if (!fields) return std::unexpected(fields.error());

  IpConfig config;
  std::optional<Cidr> v4_cidr;
  std::optional<Cidr> v6_cidr;
  if (fields->ip) {
    auto ok = ParseAddressing("ip", *fields->ip, false, config.v4, config.v4_address, v4_cidr);
    if (!ok) return std::unexpected(ok.error());
  }
  if (fields->ip6) {
    auto ok = ParseAddressing("ip6", *fields->ip6, true, config.v6, config.v6_address, v6_cidr);
    if (!ok) return std::unexpected(ok.error());
  }

  if (fields->gw) {
    const std::string shown = "gw=" + std::string(*fields->gw);
    if (!v4_cidr) {
      return Invalid(shown + " needs a static ip=CIDR" +
                     (fields->ip ? ", not ip=" + std::string(*fields->ip) : std::string()));
    }
    const std::optional<Ipv4Bytes> gateway = ParseIpv4(*fields->gw);
    if (!gateway) {
      if (ParseIpv6(*fields->gw)) return Invalid(shown + ": an IPv6 gateway belongs in gw6=");
      return Invalid(shown + ": not an IPv4 address");
    }
    const std::string network =
        FormatIpv4(v4_cidr->Network()) + "/" + std::to_string(v4_cidr->prefix);
    if (!v4_cidr->Contains(*gateway)) {
      return Invalid(shown + " is outside " + network + ", the network of ip=" + config.v4_address);
    }
    if (*gateway == *v4_cidr->v4) return Invalid(shown + " is the address of ip= itself");
    config.v4_gateway = FormatIpv4(*gateway);
  }

  if (fields->gw6) {
    const std::string shown = "gw6=" + std::string(*fields->gw6);
    if (!v6_cidr) {
      return Invalid(shown + " needs a static ip6=CIDR" +
                     (fields->ip6 ? ", not ip6=" + std::string(*fields->ip6) : std::string()));
    }
    const std::optional<Ipv6Bytes> gateway = ParseIpv6(*fields->gw6);
    if (!gateway) {
      if (ParseIpv4(*fields->gw6)) return Invalid(shown + ": an IPv4 gateway belongs in gw=");
      return Invalid(shown + ": not an IPv6 address");
    }
    // No network check: IPv6 gateways are usually link-local (fe80::1), outside the prefix.
    if (*gateway == *v6_cidr->v6) return Invalid(shown + " is the address of ip6= itself");
    config.v6_gateway = FormatIpv6(*gateway);
  }
  return config;
}

std::string IpConfig::ToString() const {
  std::string out;
  const auto add = [&out](std::string_view key, std::string_view value) {
    if (!out.empty()) out += ',';
    out += key;
    out += '=';
    out += value;
  };
  if (v4 != IpMode::kNone) add("ip", v4 == IpMode::kStatic ? v4_address : EnumName(v4));
  if (!v4_gateway.empty()) add("gw", v4_gateway);
  if (v6 != IpMode::kNone) add("ip6", v6 == IpMode::kStatic ? v6_address : EnumName(v6));
  if (!v6_gateway.empty()) add("gw6", v6_gateway);
  return out;
}

bool IsDnsName(std::string_view text) {
  if (text.empty() || text.size() > 253) return false;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = std::min(text.find('.', start), text.size());
    const std::string_view label = text.substr(start, dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (const char c : label) {
      // ASCII only, whatever the process locale says about other bytes.
      const bool ok =
          (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
      if (!ok) return false;
    }
    if (dot == text.size()) return true;
    start = dot + 1;
  }
}

}  // namespace gitvirt
