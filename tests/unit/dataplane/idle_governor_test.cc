// The adaptive idle policy's decisions (dataplane/idle_governor.h) against
// a made-up TSC: spin, then pause, then sleep with a doubling interval up
// to the longest, and never sleep within the hold after the last packet.

#include "dataplane/idle_governor.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace lopower {
namespace {

using action = idle_governor::action;

constexpr std::uint64_t hold = 1000;  // cycles
constexpr std::uint32_t longest = 8;  // µs

// Empty passes at `now` until the first sleep; returns how many came before it.
unsigned passes_before_sleep(idle_governor& g, std::uint64_t now, unsigned limit = 100000) {
  for (unsigned i = 0; i < limit; ++i)
    if (g.idle(now).what == action::sleep) return i;
  return limit;
}

TEST(IdleGovernor, SpinsThenPausesThenSleeps) {
  idle_governor g(hold, longest);
  const std::uint64_t quiet = 1'000'000;  // long after any packet
  for (unsigned i = 1; i < idle_governor::spin_passes; ++i) EXPECT_EQ(g.idle(quiet).what, action::spin) << i;
  for (unsigned i = idle_governor::spin_passes; i < idle_governor::pause_passes; ++i)
    EXPECT_EQ(g.idle(quiet).what, action::pause) << i;
  EXPECT_EQ(g.idle(quiet).what, action::sleep);
}

TEST(IdleGovernor, SleepsDoubleUpToTheLongest) {
  idle_governor g(hold, longest);
  const std::uint64_t quiet = 1'000'000;
  passes_before_sleep(g, quiet);  // the first sleep: 1 µs
  std::vector<std::uint32_t> sleeps;
  for (int i = 0; i < 5; ++i) sleeps.push_back(g.idle(quiet).sleep_us);
  EXPECT_EQ(sleeps, (std::vector<std::uint32_t>{2, 4, 8, 8, 8}));
}

TEST(IdleGovernor, NoSleepWithinTheHoldOfTheLastPacket) {
  idle_governor g(hold, longest);
  const std::uint64_t packet_at = 1'000'000;
  g.busy(packet_at);
  EXPECT_EQ(passes_before_sleep(g, packet_at + hold - 1), 100000u);  // a flow between its packets: polled
  EXPECT_EQ(g.idle(packet_at + hold).what, action::sleep);           // then quiet: sleeps at once
}

TEST(IdleGovernor, TrafficStartsTheSleepsAgainShort) {
  idle_governor g(hold, longest);
  std::uint64_t now = 1'000'000;
  for (int i = 0; i < 6; ++i) passes_before_sleep(g, now);  // sleeping 8 µs by now
  g.busy(now);
  now += hold;
  passes_before_sleep(g, now);
  EXPECT_EQ(g.idle(now).sleep_us, 2u);  // the one before was 1 µs
}

}  // namespace
}  // namespace lopower
