#pragma once
// Network values in manifests: addresses, CIDRs, MACs, host names and the Proxmox-style
// ipConfig strings of cloud-init ("ip=10.0.0.5/24,gw=10.0.0.1"). Pure functions; the address
// parsing is the C library's inet_pton/inet_ntop for IPv6 and our own strict parser for IPv4.

#include <string>
#include <string_view>

#include "gitvirt/core/error.h"
#include "gitvirt/core/model.h"

namespace gitvirt {

// Dotted quad, four decimal parts 0-255 without leading zeros ("010.0.0.1" is rejected: some
// tools read it as octal).
bool IsIpv4(std::string_view text);
// Any RFC 4291 text form, including "::" compression and an embedded IPv4 tail; no zone
// ("%eth0"), no brackets.
bool IsIpv6(std::string_view text);

// "address/prefix" for IPv4 (prefix 0-32) or IPv6 (0-128). Host bits may be set: this is an
// interface address with its network, as cloud-init wants it. The message says what is wrong.
Result<void> ValidateCidr(std::string_view cidr);

// The address part of a CIDR (or a bare address) in canonical form: IPv6 lower case and
// compressed per RFC 5952, so "2001:DB8:0::1/64" and "2001:db8::1/48" compare equal for
// collision checks. Text that is not an address is returned as written.
std::string CidrAddress(std::string_view cidr);

// "xx:xx:xx:xx:xx:xx" in hex (either case), with the multicast bit clear and not all zero.
bool IsUnicastMac(std::string_view text);

// "ip=dhcp", "ip=CIDR[,gw=IP]", "ip6=dhcp|auto|CIDR[,gw6=IP]", comma-separated in any order,
// each key at most once, at least one of ip/ip6. A gateway needs a static address of its
// family; an IPv4 gateway must lie inside the address's network and differ from the address.
// Addresses are stored canonically, so ToString() gives back an equal value. Errors name the
// key and the value: "gw=10.0.1.1 is outside 10.0.0.0/24, the network of ip=10.0.0.5/24".
Result<IpConfig> ParseIpConfig(std::string_view text);

// An RFC 1123 host name: dot-separated labels of 1-63 letters, digits and '-', not starting or
// ending with '-', at most 253 characters in all, no trailing dot.
bool IsDnsName(std::string_view text);

}  // namespace gitvirt
