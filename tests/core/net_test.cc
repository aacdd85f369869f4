#include "gitvirt/core/net.h"

#include <gtest/gtest.h>

#include <string>

namespace gitvirt {
namespace {

TEST(NetTest, Ipv4DottedQuads) {
  EXPECT_TRUE(IsIpv4("10.0.0.5"));
  EXPECT_TRUE(IsIpv4("0.0.0.0"));
  EXPECT_TRUE(IsIpv4("255.255.255.255"));
  EXPECT_FALSE(IsIpv4("256.0.0.1"));
  EXPECT_FALSE(IsIpv4("10.0.0"));
  EXPECT_FALSE(IsIpv4("10.0.0.5.6"));
  EXPECT_FALSE(IsIpv4("10.0.0.5."));
  EXPECT_FALSE(IsIpv4(".10.0.0.5"));
  EXPECT_FALSE(IsIpv4("10..0.5"));
  EXPECT_FALSE(IsIpv4("010.0.0.1"));
  EXPECT_FALSE(IsIpv4("1.2.3.0004"));
  EXPECT_FALSE(IsIpv4("1.2.3.4 "));
  EXPECT_FALSE(IsIpv4("a.b.c.d"));
  EXPECT_FALSE(IsIpv4(""));
  EXPECT_FALSE(IsIpv4("::1"));
}

TEST(NetTest, Ipv6TextForms) {
  EXPECT_TRUE(IsIpv6("::1"));
  EXPECT_TRUE(IsIpv6("::"));
  EXPECT_TRUE(IsIpv6("2001:db8::5"));
  EXPECT_TRUE(IsIpv6("2001:DB8:0:0:0:0:0:5"));
  EXPECT_TRUE(IsIpv6("fe80::1"));
  EXPECT_TRUE(IsIpv6("::ffff:10.0.0.5"));
  EXPECT_FALSE(IsIpv6("2001:db8::5::1"));
  EXPECT_FALSE(IsIpv6("fe80::1%eth0"));
  EXPECT_FALSE(IsIpv6("[::1]"));
  EXPECT_FALSE(IsIpv6("10.0.0.5"));
  EXPECT_FALSE(IsIpv6("12345::"));
  EXPECT_FALSE(IsIpv6(""));
  EXPECT_FALSE(IsIpv6(std::string_view("::1\0junk", 8)));
}

std::string CidrError(std::string_view cidr) {
  auto result = ValidateCidr(cidr);
  EXPECT_FALSE(result.has_value()) << cidr;
  return result ? "" : result.error().message;
}

TEST(NetTest, ValidCidrs) {
  EXPECT_TRUE(ValidateCidr("10.0.0.5/24").has_value());
  EXPECT_TRUE(ValidateCidr("0.0.0.0/0").has_value());
  EXPECT_TRUE(ValidateCidr("10.0.0.5/32").has_value());
  EXPECT_TRUE(ValidateCidr("2001:db8::5/64").has_value());
  EXPECT_TRUE(ValidateCidr("::/0").has_value());
  EXPECT_TRUE(ValidateCidr("::1/128").has_value());
}

TEST(NetTest, CidrErrorsSayWhatIsWrong) {
  EXPECT_EQ(CidrError("10.0.0.5"),
            "'10.0.0.5': no prefix length (write it as 10.0.0.5/24, with the network's length)");
  EXPECT_EQ(CidrError("2001:db8::5"),
            "'2001:db8::5': no prefix length (write it as 2001:db8::5/64, with the network's "
            "length)");
  EXPECT_EQ(CidrError("10.0.0.300/24"),
            "'10.0.0.300/24': '10.0.0.300' is not an IPv4 or IPv6 address");
  EXPECT_EQ(CidrError("10.0.0.5/33"),
            "'10.0.0.5/33': prefix length 33 is out of range 0-32 for IPv4");
  EXPECT_EQ(CidrError("::1/129"), "'::1/129': prefix length 129 is out of range 0-128 for IPv6");
  EXPECT_EQ(CidrError("10.0.0.5/"), "'10.0.0.5/': prefix length '' is not a number");
  EXPECT_EQ(CidrError("10.0.0.5/-1"), "'10.0.0.5/-1': prefix length '-1' is not a number");
  EXPECT_EQ(CidrError("10.0.0.5/24/8"), "'10.0.0.5/24/8': prefix length '24/8' is not a number");
  EXPECT_EQ(CidrError("/24"), "'/24': '' is not an IPv4 or IPv6 address");
}

TEST(NetTest, CidrAddressIsCanonical) {
  EXPECT_EQ(CidrAddress("10.0.0.5/24"), "10.0.0.5");
  EXPECT_EQ(CidrAddress("2001:DB8:0:0::1/64"), "2001:db8::1");
  EXPECT_EQ(CidrAddress("2001:db8:0000:0000:0000:0000:0000:0001/48"), "2001:db8::1");
  EXPECT_EQ(CidrAddress("2001:db8:0:1:0:0:0:1/64"), "2001:db8:0:1::1");
  EXPECT_EQ(CidrAddress("fe80::1"), "fe80::1");
  EXPECT_EQ(CidrAddress(CidrAddress("2001:DB8::A/64")), "2001:db8::a");
  EXPECT_EQ(CidrAddress("not-an-ip/24"), "not-an-ip");
}

TEST(NetTest, UnicastMacs) {
  EXPECT_TRUE(IsUnicastMac("52:54:00:12:34:56"));
  EXPECT_TRUE(IsUnicastMac("52:54:00:AB:cd:Ef"));
  EXPECT_TRUE(IsUnicastMac("02:00:00:00:00:01"));   // locally administered is fine
  EXPECT_FALSE(IsUnicastMac("01:00:5e:00:00:01"));  // multicast bit
  EXPECT_FALSE(IsUnicastMac("ff:ff:ff:ff:ff:ff"));  // broadcast
  EXPECT_FALSE(IsUnicastMac("00:00:00:00:00:00"));
  EXPECT_FALSE(IsUnicastMac("52-54-00-12-34-56"));
  EXPECT_FALSE(IsUnicastMac("52:54:00:12:34"));
  EXPECT_FALSE(IsUnicastMac("52:54:00:12:34:5g"));
  EXPECT_FALSE(IsUnicastMac("525:4:00:12:34:56"));
  EXPECT_FALSE(IsUnicastMac("52:54:00:12:34:56:"));
  EXPECT_FALSE(IsUnicastMac(""));
}

IpConfig Ip(std::string_view text) {
  auto parsed = ParseIpConfig(text);
  EXPECT_TRUE(parsed.has_value()) << text << ": " << parsed.error().message;
  return parsed.value_or(IpConfig{});
}

std::string IpError(std::string_view text) {
  auto parsed = ParseIpConfig(text);
  EXPECT_FALSE(parsed.has_value()) << text << " -> " << parsed.value_or(IpConfig{}).ToString();
  return parsed ? "" : parsed.error().message;
}

TEST(IpConfigTest, Dhcp) {
  EXPECT_EQ(Ip("ip=dhcp"), (IpConfig{.v4 = IpMode::kDhcp}));
}

TEST(IpConfigTest, StaticWithGateway) {
  EXPECT_EQ(Ip("ip=10.0.100.10/24,gw=10.0.100.1"), (IpConfig{.v4 = IpMode::kStatic,
                                                             .v4_address = "10.0.100.10/24",
                                                             .v4_gateway = "10.0.100.1"}));
  EXPECT_EQ(Ip("ip=10.0.0.5/24"), (IpConfig{.v4 = IpMode::kStatic, .v4_address = "10.0.0.5/24"}));
}

TEST(IpConfigTest, Ipv6Forms) {
  EXPECT_EQ(Ip("ip6=auto"), (IpConfig{.v6 = IpMode::kAuto}));
  EXPECT_EQ(Ip("ip6=dhcp"), (IpConfig{.v6 = IpMode::kDhcp}));
  EXPECT_EQ(
      Ip("ip6=2001:DB8::5/64,gw6=FE80::1"),
      (IpConfig{.v6 = IpMode::kStatic, .v6_address = "2001:db8::5/64", .v6_gateway = "fe80::1"}));
}

TEST(IpConfigTest, KeysInAnyOrderWithSpaces) {
  EXPECT_EQ(Ip("gw6=2001:db8::1, ip6=2001:db8::5/64 ,gw=10.0.0.1,ip=10.0.0.5/24"),
            Ip("ip=10.0.0.5/24,gw=10.0.0.1,ip6=2001:db8::5/64,gw6=2001:db8::1"));
  EXPECT_EQ(Ip("ip6=auto,ip=dhcp"), (IpConfig{.v4 = IpMode::kDhcp, .v6 = IpMode::kAuto}));
}

TEST(IpConfigTest, ToStringIsCanonicalAndRoundTrips) {
  const char* const inputs[] = {
      "ip=dhcp",
      "ip6=auto",
      "ip=10.0.0.5/24,gw=10.0.0.1",
      "ip6=2001:db8::5/64,gw6=fe80::1",
      "ip=dhcp,ip6=dhcp",
      "ip=192.168.1.9/16,gw=192.168.200.1,ip6=2001:db8:1::9/48,gw6=2001:db8:1::1",
  };
  for (const char* input : inputs) {
    const IpConfig config = Ip(input);
    EXPECT_EQ(config.ToString(), input);
    EXPECT_EQ(Ip(config.ToString()), config) << input;
  }
  EXPECT_EQ(Ip("gw6=FE80::1,ip6=2001:DB8:0::5/64,ip=dhcp").ToString(),
            "ip=dhcp,ip6=2001:db8::5/64,gw6=fe80::1");
  EXPECT_EQ(IpConfig{}.ToString(), "");
}

TEST(IpConfigTest, StructureErrors) {
  EXPECT_EQ(IpError(""), "empty ipConfig: give ip= and/or ip6=");
  EXPECT_EQ(IpError("ip=dhcp,,ip6=auto"),
            "empty entry in 'ip=dhcp,,ip6=auto' (two commas in a row?)");
  EXPECT_EQ(IpError("ip=dhcp,"), "empty entry in 'ip=dhcp,' (two commas in a row?)");
  EXPECT_EQ(IpError("dhcp"), "'dhcp' is not key=value (keys: ip, gw, ip6, gw6)");
  EXPECT_EQ(IpError("ip=dhcp,dns=1.1.1.1"), "unknown key 'dns' (expected ip, gw, ip6 or gw6)");
  EXPECT_EQ(IpError("ip=dhcp,ip=10.0.0.5/24"), "key 'ip' is given twice");
}

TEST(IpConfigTest, AddressErrorsNameTheKeyAndValue) {
  EXPECT_EQ(IpError("ip=DHCP"), "ip=DHCP: expected dhcp or an IPv4 CIDR such as 10.0.0.5/24");
  EXPECT_EQ(IpError("ip=auto"), "ip=auto: expected dhcp or an IPv4 CIDR such as 10.0.0.5/24");
  EXPECT_EQ(IpError("ip6=slaac"),
            "ip6=slaac: expected dhcp, auto or an IPv6 CIDR such as 2001:db8::5/64");
  EXPECT_EQ(IpError("ip=10.0.0.5"),
            "ip=10.0.0.5: no prefix length (write it as 10.0.0.5/24, with the network's length)");
  EXPECT_EQ(IpError("ip=10.0.0.5/33"),
            "ip=10.0.0.5/33: prefix length 33 is out of range 0-32 for IPv4");
  EXPECT_EQ(IpError("ip=10.0.0.256/24"),
            "ip=10.0.0.256/24: '10.0.0.256' is not an IPv4 or IPv6 address");
  EXPECT_EQ(IpError("ip=2001:db8::5/64"), "ip=2001:db8::5/64: an IPv6 CIDR belongs in ip6=");
  EXPECT_EQ(IpError("ip6=10.0.0.5/24"), "ip6=10.0.0.5/24: an IPv4 CIDR belongs in ip=");
}

TEST(IpConfigTest, GatewayNeedsAStaticAddressOfItsFamily) {
  EXPECT_EQ(IpError("gw=10.0.0.1"), "gw=10.0.0.1 needs a static ip=CIDR");
  EXPECT_EQ(IpError("ip=dhcp,gw=10.0.0.1"), "gw=10.0.0.1 needs a static ip=CIDR, not ip=dhcp");
  EXPECT_EQ(IpError("ip6=auto,gw6=fe80::1"), "gw6=fe80::1 needs a static ip6=CIDR, not ip6=auto");
  EXPECT_EQ(IpError("ip=10.0.0.5/24,gw=fe80::1"), "gw=fe80::1: an IPv6 gateway belongs in gw6=");
  EXPECT_EQ(IpError("ip6=2001:db8::5/64,gw6=10.0.0.1"),
            "gw6=10.0.0.1: an IPv4 gateway belongs in gw=");
  EXPECT_EQ(IpError("ip=10.0.0.5/24,gw=router"), "gw=router: not an IPv4 address");
  EXPECT_EQ(IpError("ip6=2001:db8::5/64,gw6=router"), "gw6=router: not an IPv6 address");
}

TEST(IpConfigTest, Ipv4GatewayMustBeInsideTheNetwork) {
  EXPECT_EQ(IpError("ip=10.0.0.5/24,gw=10.0.1.1"),
            "gw=10.0.1.1 is outside 10.0.0.0/24, the network of ip=10.0.0.5/24");
  EXPECT_EQ(IpError("ip=10.0.0.130/25,gw=10.0.0.1"),
            "gw=10.0.0.1 is outside 10.0.0.128/25, the network of ip=10.0.0.130/25");
  EXPECT_EQ(Ip("ip=10.0.0.130/25,gw=10.0.0.254").v4_gateway, "10.0.0.254");
  EXPECT_EQ(Ip("ip=10.1.2.3/8,gw=10.255.0.1").v4_gateway, "10.255.0.1");
  EXPECT_EQ(Ip("ip=10.1.2.3/0,gw=192.168.0.1").v4_gateway, "192.168.0.1");
  EXPECT_EQ(IpError("ip=10.0.0.5/32,gw=10.0.0.1"),
            "gw=10.0.0.1 is outside 10.0.0.5/32, the network of ip=10.0.0.5/32");
}

TEST(IpConfigTest, GatewayCannotBeTheAddressItself) {
  EXPECT_EQ(IpError("ip=10.0.0.5/24,gw=10.0.0.5"), "gw=10.0.0.5 is the address of ip= itself");
  EXPECT_EQ(IpError("ip6=2001:db8::5/64,gw6=2001:DB8::5"),
            "gw6=2001:DB8::5 is the address of ip6= itself");
}

TEST(IpConfigTest, Ipv6GatewayMayBeLinkLocal) {
  EXPECT_EQ(Ip("ip6=2001:db8::5/64,gw6=fe80::1").v6_gateway, "fe80::1");
}

TEST(NetTest, DnsNames) {
  EXPECT_TRUE(IsDnsName("web-01"));
  EXPECT_TRUE(IsDnsName("cluster.local"));
  EXPECT_TRUE(IsDnsName("DB01.Example.COM"));
  EXPECT_TRUE(IsDnsName("1password.com"));  // RFC 1123 allows a leading digit
  EXPECT_TRUE(IsDnsName(std::string(63, 'a')));
  EXPECT_FALSE(IsDnsName(std::string(64, 'a')));
  EXPECT_FALSE(IsDnsName(""));
  EXPECT_FALSE(IsDnsName("-web"));
  EXPECT_FALSE(IsDnsName("web-"));
  EXPECT_FALSE(IsDnsName("web..local"));
  EXPECT_FALSE(IsDnsName(".local"));
  EXPECT_FALSE(IsDnsName("cluster.local."));
  EXPECT_FALSE(IsDnsName("web_01"));
  EXPECT_FALSE(IsDnsName("wéb"));
  EXPECT_FALSE(IsDnsName("web 01"));
}

TEST(NetTest, DnsNameTotalLengthLimit) {
  std::string name;
  while (name.size() + 64 <= 253)
    name.append(63, 'a').append(".");  // not operator+: GCC 12 bug 105329
  name.append(253 - name.size(), 'b');
  ASSERT_EQ(name.size(), 253u);
  EXPECT_TRUE(IsDnsName(name));
  EXPECT_FALSE(IsDnsName(name + "b"));
}

}  // namespace
}  // namespace gitvirt
