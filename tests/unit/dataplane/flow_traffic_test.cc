// A flow's traffic counters (flow_traffic, flow_table.h): each worker adds
// to its own slot, both directions apart, workers beyond the slots and the
// control thread to the shared one; the sums `lopower-ctl flows` reads see
// every add. And the flow's layout the fast path's prefetches rely on.

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>

#include "dataplane/flow_table.h"

namespace lopower {
namespace {

TEST(flow_traffic, sums_every_workers_slot_by_direction) {
  flow_traffic t;
  t.add(0, false, 100);
  t.add(0, false, 20);
  t.add(1, true, 1000);
  t.add(counter_worker_slots - 1, false, 3);
  t.add(counter_worker_slots, true, 7);       // beyond the slots: the shared one
  t.add(counter_worker_slots + 5, false, 9);
  EXPECT_EQ(t.packets_out(), 4u);
  EXPECT_EQ(t.bytes_out(), 132u);
  EXPECT_EQ(t.packets_in(), 2u);
  EXPECT_EQ(t.bytes_in(), 1007u);
}

TEST(flow_traffic, a_workers_slot_is_within_one_line_of_the_flow) {
  flow f;
  const auto* base = reinterpret_cast<const char*>(&f);
  for (unsigned w = 0; w <= counter_worker_slots; ++w) {
    const auto* slot = static_cast<const char*>(f.traffic.slot_of(w));
    const auto offset = static_cast<std::size_t>(slot - base);
    EXPECT_GE(offset, 2 * 64u) << w;               // after the two lines of keys and state
    EXPECT_LT(offset + 32, sizeof(flow) + 1) << w;  // inside the flow
    EXPECT_EQ(offset / 64, (offset + 31) / 64) << w;  // four counters on one line
  }
  for (unsigned w = 0; w <= counter_worker_slots; ++w)  // a slot each
    for (unsigned v = 0; v < w; ++v) EXPECT_NE(f.traffic.slot_of(w), f.traffic.slot_of(v)) << w << " " << v;
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(&f) % 64, 0u);
}

}  // namespace
}  // namespace lopower
