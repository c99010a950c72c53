#include "control/enrollment/address_allocator.h"

#include <gtest/gtest.h>

namespace lopower::enrollment {
namespace {

ip_prefix prefix(const char* text) { return ip_prefix::parse(text).value(); }
ip_address addr(const char* text) { return ip_address::parse(text).value(); }

address_allocator defaults() {
  auto a = address_allocator::create(prefix("10.90.0.0/24"), prefix("fd7a:115c:a1e0:9909::/64"));
  EXPECT_TRUE(a.ok());
  return std::move(a).value();
}

TEST(AddressAllocator, LopowerIsTheFirstHost) {
  const auto a = defaults();
  EXPECT_EQ(a.server_ipv4(), addr("10.90.0.1"));
  EXPECT_EQ(a.server_ipv6(), addr("fd7a:115c:a1e0:9909::1"));
  EXPECT_EQ(a.capacity(ip_family::v4), 253u);  // .2 .. .254
}

TEST(AddressAllocator, DevicesGetTwoThreeAndSoOn) {
  auto a = defaults();
  for (const char* want : {"10.90.0.2", "10.90.0.3", "10.90.0.4"}) {
    auto got = a.allocate(ip_family::v4);
    ASSERT_TRUE(got.ok()) << got.message();
    EXPECT_EQ(*got, addr(want));
  }
  for (const char* want : {"fd7a:115c:a1e0:9909::2", "fd7a:115c:a1e0:9909::3"}) {
    auto got = a.allocate(ip_family::v6);
    ASSERT_TRUE(got.ok()) << got.message();
    EXPECT_EQ(*got, addr(want));
  }
  EXPECT_EQ(a.used(ip_family::v4), 3u);
  EXPECT_EQ(a.used(ip_family::v6), 2u);
}

TEST(AddressAllocator, NextFreeDoesNotTake) {
  auto a = defaults();
  EXPECT_EQ(*a.next_free(ip_family::v4), addr("10.90.0.2"));
  EXPECT_EQ(*a.next_free(ip_family::v4), addr("10.90.0.2"));
  EXPECT_EQ(a.used(ip_family::v4), 0u);
}

TEST(AddressAllocator, FreedAddressesAreReusedLowestFirst) {
  auto a = defaults();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(a.allocate(ip_family::v4).ok());  // .2 .. .6
  a.release(addr("10.90.0.5"));
  a.release(addr("10.90.0.3"));
  EXPECT_FALSE(a.in_use(addr("10.90.0.3")));
  EXPECT_EQ(*a.allocate(ip_family::v4), addr("10.90.0.3"));
  EXPECT_EQ(*a.allocate(ip_family::v4), addr("10.90.0.5"));
  EXPECT_EQ(*a.allocate(ip_family::v4), addr("10.90.0.7"));
}

TEST(AddressAllocator, ExhaustedPrefixIsAnError) {
  auto a = defaults();
  for (int i = 0; i < 253; ++i) {
    auto got = a.allocate(ip_family::v4);
    ASSERT_TRUE(got.ok()) << i << ": " << got.message();
  }
  EXPECT_TRUE(a.in_use(addr("10.90.0.254")));
  EXPECT_FALSE(a.in_use(addr("10.90.0.255")));  // broadcast never handed out
  auto none = a.allocate(ip_family::v4);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.message(), "no free IPv4 address left in 10.90.0.0/24");
  a.release(addr("10.90.0.77"));
  EXPECT_EQ(*a.allocate(ip_family::v4), addr("10.90.0.77"));
}

TEST(AddressAllocator, SlashThirtyHoldsOneDevice) {
  auto made = address_allocator::create(prefix("192.0.2.8/30"), prefix("fd00::/126"));
  ASSERT_TRUE(made.ok()) << made.message();
  auto a = std::move(made).value();
  EXPECT_EQ(a.server_ipv4(), addr("192.0.2.9"));
  EXPECT_EQ(*a.allocate(ip_family::v4), addr("192.0.2.10"));
  auto none = a.allocate(ip_family::v4);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.message(), "no free IPv4 address left in 192.0.2.8/30");
  // IPv6 /126: ::1 lopower, ::2 and ::3 devices (no broadcast in IPv6).
  EXPECT_EQ(*a.allocate(ip_family::v6), addr("fd00::2"));
  EXPECT_EQ(*a.allocate(ip_family::v6), addr("fd00::3"));
  EXPECT_EQ(a.allocate(ip_family::v6).message(), "no free IPv6 address left in fd00::/126");
}

TEST(AddressAllocator, PrefixesTooSmallAreRefused) {
  EXPECT_FALSE(address_allocator::create(prefix("192.0.2.8/31"), prefix("fd00::/64")).ok());
  EXPECT_FALSE(address_allocator::create(prefix("192.0.2.8/32"), prefix("fd00::/64")).ok());
  EXPECT_FALSE(address_allocator::create(prefix("10.0.0.0/24"), prefix("fd00::/127")).ok());
  EXPECT_FALSE(address_allocator::create(prefix("fd00::/64"), prefix("fd00::/64")).ok());  // wrong family
}

TEST(AddressAllocator, HostBitsInThePrefixAreIgnored) {
  auto a = std::move(address_allocator::create(prefix("10.90.0.77/24"), prefix("fd00::99/64"))).value();
  EXPECT_EQ(a.ipv4_prefix()->to_string(), "10.90.0.0/24");
  EXPECT_EQ(*a.allocate(ip_family::v4), addr("10.90.0.2"));
  EXPECT_EQ(*a.allocate(ip_family::v6), addr("fd00::2"));
}

TEST(AddressAllocator, Ipv4Off) {
  auto a = std::move(address_allocator::create(std::nullopt, prefix("fd7a:115c:a1e0:9909::/64"))).value();
  EXPECT_FALSE(a.ipv4_enabled());
  EXPECT_FALSE(a.server_ipv4().has_value());
  EXPECT_EQ(a.capacity(ip_family::v4), 0u);
  EXPECT_FALSE(a.allocate(ip_family::v4).ok());
  EXPECT_FALSE(a.reserve(addr("10.90.0.2")).ok());
  EXPECT_EQ(*a.allocate(ip_family::v6), addr("fd7a:115c:a1e0:9909::2"));
}

TEST(AddressAllocator, Reserve) {
  auto a = defaults();
  EXPECT_TRUE(a.reserve(addr("10.90.0.2")).ok());
  EXPECT_TRUE(a.reserve(addr("10.90.0.4")).ok());
  EXPECT_FALSE(a.reserve(addr("10.90.0.4")).ok());    // taken
  EXPECT_FALSE(a.reserve(addr("10.90.0.1")).ok());    // lopower's
  EXPECT_FALSE(a.reserve(addr("10.90.0.0")).ok());    // network
  EXPECT_FALSE(a.reserve(addr("10.90.0.255")).ok());  // broadcast
  EXPECT_FALSE(a.reserve(addr("10.91.0.2")).ok());    // outside
  EXPECT_FALSE(a.reserve(addr("fd7a:115c:a1e0:9909::1")).ok());
  EXPECT_FALSE(a.reserve(addr("fd7a:115c:a1e0:9909::")).ok());
  EXPECT_TRUE(a.reserve(addr("fd7a:115c:a1e0:9909:ffff:ffff:ffff:ffff")).ok());
  EXPECT_EQ(*a.allocate(ip_family::v4), addr("10.90.0.3"));
  EXPECT_EQ(*a.allocate(ip_family::v4), addr("10.90.0.5"));
}

TEST(AddressAllocator, ShortIpv6PrefixUsesItsLowAddresses) {
  auto a = std::move(address_allocator::create(std::nullopt, prefix("fd00:1::/48"))).value();
  EXPECT_EQ(a.server_ipv6(), addr("fd00:1::1"));
  EXPECT_EQ(*a.allocate(ip_family::v6), addr("fd00:1::2"));
  EXPECT_FALSE(a.is_device_address(addr("fd00:1:0:1::2")));  // beyond the low 2^64
  EXPECT_TRUE(a.is_device_address(addr("fd00:1::ffff:0:0:5")));
}

}  // namespace
}  // namespace lopower::enrollment
