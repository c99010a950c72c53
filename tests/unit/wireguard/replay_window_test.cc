// The transport replay window: 8192 bits, window 8128, counters below
// REJECT_AFTER_MESSAGES only.

#include "lopower/replay_window.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

namespace lopower {
namespace {

constexpr std::uint64_t W = replay_window::window_size;

TEST(replay_window, counter_zero_is_accepted_once) {
  replay_window w;
  EXPECT_TRUE(w.empty());
  EXPECT_TRUE(w.validate(0));
  EXPECT_FALSE(w.validate(0));
  EXPECT_FALSE(w.empty());
  EXPECT_EQ(w.highest(), 0u);
}

TEST(replay_window, in_order_and_duplicates) {
  replay_window w;
  for (std::uint64_t i = 0; i < 20000; ++i) ASSERT_TRUE(w.validate(i)) << i;
  for (std::uint64_t i = 20000 - W; i < 20000; ++i) ASSERT_FALSE(w.validate(i)) << i;
  EXPECT_EQ(w.highest(), 19999u);
}

TEST(replay_window, window_boundary) {
  replay_window w;
  const std::uint64_t top = 3 * W + 17;
  ASSERT_TRUE(w.validate(top));
  // Exactly window_size behind the highest: still accepted; one more: too old.
  EXPECT_FALSE(w.validate(top - W - 1));
  EXPECT_TRUE(w.validate(top - W));
  EXPECT_FALSE(w.validate(top - W));
  EXPECT_TRUE(w.validate(top - 1));
  EXPECT_TRUE(w.validate(top + 1));
  EXPECT_FALSE(w.validate(top + 1 - W - 1));
}

TEST(replay_window, boundaries_at_every_alignment) {
  // The ring is word-granular: check the edge for tops at all bit offsets.
  for (std::uint64_t top = W; top < W + 130; ++top) {
    replay_window w;
    ASSERT_TRUE(w.validate(top));
    ASSERT_TRUE(w.validate(top - W)) << top;
    ASSERT_FALSE(w.validate(top - W - 1)) << top;
    ASSERT_TRUE(w.validate(top - W + 1)) << top;
  }
}

TEST(replay_window, reordering_within_the_window) {
  replay_window w;
  std::vector<std::uint64_t> order(W);
  std::iota(order.begin(), order.end(), 1000);
  std::mt19937_64 rng(7);
  std::shuffle(order.begin(), order.end(), rng);
  // Start with the highest so every other one is within the window.
  ASSERT_TRUE(w.validate(1000 + W - 1));
  for (auto c : order) {
    if (c == 1000 + W - 1) continue;
    ASSERT_TRUE(w.validate(c)) << c;
  }
  for (auto c : order) ASSERT_FALSE(w.validate(c)) << c;
}

TEST(replay_window, jump_beyond_the_window_clears_it) {
  replay_window w;
  for (std::uint64_t i = 0; i < 100; ++i) ASSERT_TRUE(w.validate(i));
  const std::uint64_t jump = 100 + 5 * replay_window::bits_total + 3;
  ASSERT_TRUE(w.validate(jump));
  // Everything before the new window is too old, everything inside it new,
  // including counters whose bits aliased old ones in the ring.
  EXPECT_FALSE(w.validate(50));
  EXPECT_FALSE(w.validate(jump - W - 1));
  for (std::uint64_t c = jump - W; c < jump; c += 61) EXPECT_TRUE(w.validate(c)) << c;
  EXPECT_FALSE(w.validate(jump));
}

TEST(replay_window, jump_of_less_than_a_ring_clears_only_what_it_passed) {
  replay_window w;
  for (std::uint64_t i = 0; i < 8192; ++i) ASSERT_TRUE(w.validate(i));
  ASSERT_TRUE(w.validate(8192 + 1000));
  // Counters seen and still in the window remain rejected.
  for (std::uint64_t c = 8192 + 1000 - W; c < 8192; ++c) ASSERT_FALSE(w.validate(c)) << c;
  // Counters skipped over are new.
  for (std::uint64_t c = 8192; c < 8192 + 1000; ++c) ASSERT_TRUE(w.validate(c)) << c;
}

TEST(replay_window, reject_after_messages_limit) {
  replay_window w;
  const std::uint64_t limit = wg::reject_after_messages;
  EXPECT_EQ(limit, ~std::uint64_t{0} - 8192);  // 2^64 - 2^13 - 1
  EXPECT_FALSE(w.validate(limit));
  EXPECT_FALSE(w.validate(~std::uint64_t{0}));
  EXPECT_TRUE(w.validate(limit - 1));
  EXPECT_FALSE(w.validate(limit - 1));
  EXPECT_TRUE(w.validate(limit - 2));
  EXPECT_FALSE(w.validate(limit));
  EXPECT_TRUE(w.validate(limit - 1 - W));
  EXPECT_FALSE(w.validate(limit - 2 - W));
}

TEST(replay_window, reset) {
  replay_window w;
  ASSERT_TRUE(w.validate(5));
  w.reset();
  EXPECT_TRUE(w.empty());
  EXPECT_TRUE(w.validate(5));
}

TEST(replay_window, matches_a_model) {
  // Random walk against a set-based model of the same rule.
  replay_window w;
  std::vector<bool> seen(200000);
  std::uint64_t highest = 0;
  bool any = false;
  std::mt19937_64 rng(42);
  std::uint64_t base = 0;
  for (int i = 0; i < 200000; ++i) {
    base = std::min<std::uint64_t>(base + rng() % 3, seen.size() - 1);
    const std::uint64_t span = rng() % 4 == 0 ? 20000 : 300;
    const std::uint64_t c = std::min<std::uint64_t>(base + rng() % span, seen.size() - 1) ;
    const std::uint64_t candidate = (rng() % 2 && c > 9000) ? c - 9000 + rng() % 200 : c;
    const bool expected = !seen[candidate] && (!any || candidate + W >= highest);
    ASSERT_EQ(w.validate(candidate), expected) << "counter " << candidate << " step " << i;
    if (expected) {
      seen[candidate] = true;
      if (!any || candidate > highest) highest = candidate;
      any = true;
    }
  }
}

static_assert(noexcept(std::declval<replay_window&>().validate(0)));

}  // namespace
}  // namespace lopower
