// The handshake rate limiter: 20/s per source, burst 5, IPv6 per /64,
// bounded table, idle sources forgotten after a second.

#include "control/wireguard/engine/ratelimiter.h"

#include <gtest/gtest.h>

#include <array>
#include <random>

namespace lopower::wg {
namespace {

constexpr std::uint64_t ms = 1'000'000;
constexpr std::uint64_t t0 = 1'000'000 * ms;

std::array<std::uint8_t, 4> v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) { return {a, b, c, d}; }

TEST(ratelimiter, burst_then_limited) {
  ratelimiter r;
  const auto ip = v4(192, 0, 2, 1);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(r.allow(ip.data(), false, t0)) << i;
  EXPECT_FALSE(r.allow(ip.data(), false, t0));
  EXPECT_FALSE(r.allow(ip.data(), false, t0 + 10 * ms));
}

TEST(ratelimiter, refills_with_time) {
  ratelimiter r;
  const auto ip = v4(192, 0, 2, 1);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(r.allow(ip.data(), false, t0));
  ASSERT_FALSE(r.allow(ip.data(), false, t0));
  // One packet's worth every 50 ms.
  EXPECT_FALSE(r.allow(ip.data(), false, t0 + 49 * ms));
  EXPECT_TRUE(r.allow(ip.data(), false, t0 + 50 * ms));
  EXPECT_FALSE(r.allow(ip.data(), false, t0 + 51 * ms));
  // A steady 20/s is sustained indefinitely.
  std::uint64_t now = t0 + 50 * ms;
  for (int i = 0; i < 100; ++i) {
    now += 50 * ms;
    ASSERT_TRUE(r.allow(ip.data(), false, now)) << i;
  }
  // Credit is capped at the burst, however long the pause (under 1 s idle).
  now += 900 * ms;
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(r.allow(ip.data(), false, now)) << i;
  EXPECT_FALSE(r.allow(ip.data(), false, now));
}

TEST(ratelimiter, sources_are_independent) {
  ratelimiter r;
  const auto a = v4(192, 0, 2, 1), b = v4(192, 0, 2, 2);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(r.allow(a.data(), false, t0));
  ASSERT_FALSE(r.allow(a.data(), false, t0));
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(r.allow(b.data(), false, t0)) << i;
  EXPECT_FALSE(r.allow(b.data(), false, t0));
  EXPECT_EQ(r.size(), 2u);
}

TEST(ratelimiter, ipv6_is_grouped_per_64) {
  ratelimiter r;
  std::array<std::uint8_t, 16> host1{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1};
  auto host2 = host1;
  host1[15] = 1;
  host2[15] = 2;
  host2[9] = 0xff;
  auto other64 = host1;
  other64[7] = 2;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(r.allow(host1.data(), true, t0));
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(r.allow(host2.data(), true, t0));
  EXPECT_FALSE(r.allow(host1.data(), true, t0));  // the /64 shares one bucket
  EXPECT_FALSE(r.allow(host2.data(), true, t0));
  EXPECT_TRUE(r.allow(other64.data(), true, t0));
  // An IPv4 address whose bytes equal the start of the IPv6 one is another source.
  const auto v4_lookalike = v4(0x20, 0x01, 0x0d, 0xb8);
  EXPECT_TRUE(r.allow(v4_lookalike.data(), false, t0));
  EXPECT_EQ(r.size(), 3u);
}

TEST(ratelimiter, table_is_bounded_and_idle_entries_expire) {
  ratelimiter r(4);
  EXPECT_EQ(r.max_entries(), 4u);
  for (std::uint8_t i = 1; i <= 4; ++i) ASSERT_TRUE(r.allow(v4(10, 0, 0, i).data(), false, t0));
  EXPECT_EQ(r.size(), 4u);
  // Full: a new source is refused; known ones still get their buckets.
  EXPECT_FALSE(r.allow(v4(10, 0, 0, 5).data(), false, t0 + 1 * ms));
  EXPECT_TRUE(r.allow(v4(10, 0, 0, 1).data(), false, t0 + 1 * ms));
  EXPECT_EQ(r.size(), 4u);
  // Once idle for over a second, they are forgotten and room is made.
  EXPECT_TRUE(r.allow(v4(10, 0, 0, 5).data(), false, t0 + 1200 * ms));
  EXPECT_EQ(r.size(), 1u);
}

TEST(ratelimiter, expire_keeps_active_sources) {
  ratelimiter r(1000);
  for (int i = 0; i < 500; ++i) {
    const auto ip = v4(10, 1, static_cast<std::uint8_t>(i >> 8), static_cast<std::uint8_t>(i));
    ASSERT_TRUE(r.allow(ip.data(), false, t0));
  }
  // Half of them stay active.
  for (int i = 0; i < 500; i += 2) {
    const auto ip = v4(10, 1, static_cast<std::uint8_t>(i >> 8), static_cast<std::uint8_t>(i));
    ASSERT_TRUE(r.allow(ip.data(), false, t0 + 800 * ms));
  }
  r.expire(t0 + 1500 * ms);
  EXPECT_EQ(r.size(), 250u);
  // The survivors kept their (drained) buckets: each has 3 more in its burst
  // plus refill; the forgotten ones start afresh.
  for (int i = 0; i < 500; ++i) {
    const auto ip = v4(10, 1, static_cast<std::uint8_t>(i >> 8), static_cast<std::uint8_t>(i));
    ASSERT_TRUE(r.allow(ip.data(), false, t0 + 1500 * ms)) << i;
  }
  EXPECT_EQ(r.size(), 500u);
}

TEST(ratelimiter, churn_keeps_the_table_consistent) {
  // Many sources coming and going: every lookup must find its own bucket
  // after arbitrary deletions (linear probing with backward shifts).
  ratelimiter r(256);
  std::mt19937 rng(3);
  std::uint64_t now = t0;
  for (int round = 0; round < 50; ++round) {
    now += 300 * ms;
    for (int k = 0; k < 200; ++k) {
      const std::uint32_t id = rng() % 400;
      const auto ip = v4(172, 16, static_cast<std::uint8_t>(id >> 8), static_cast<std::uint8_t>(id));
      r.allow(ip.data(), false, now);
      ASSERT_LE(r.size(), 256u);
    }
    // Drain one source: exactly 5 (or fewer if already used) then refusals,
    // which shows its entry is unique and found.
    const auto probe = v4(192, 168, 0, static_cast<std::uint8_t>(round));
    const bool room = r.size() < 256;
    int allowed = 0;
    for (int k = 0; k < 10; ++k) allowed += r.allow(probe.data(), false, now) ? 1 : 0;
    ASSERT_EQ(allowed, room ? 5 : 0) << round;
  }
  r.expire(now + 2000 * ms);
  EXPECT_EQ(r.size(), 0u);
}

TEST(ratelimiter, null_address_is_refused) {
  ratelimiter r;
  EXPECT_FALSE(r.allow(nullptr, false, t0));
}

}  // namespace
}  // namespace lopower::wg
