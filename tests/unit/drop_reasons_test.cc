#include "lopower/drop_reasons.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "dataplane/lcore_stats.h"

namespace lopower {
namespace {

TEST(DropReasons, EveryReasonHasAUniqueSnakeCaseNameAndADescription) {
  std::set<std::string_view> seen;
  for (std::size_t i = 0; i < drop_reason_count; ++i) {
    const std::string_view name = drop_reason_names[i];
    EXPECT_TRUE(seen.insert(name).second) << name;
    EXPECT_FALSE(drop_reason_descriptions[i].empty()) << name;
    for (char c : name) EXPECT_TRUE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_') << name;
  }
  EXPECT_EQ(name_of(drop_reason::wg_unknown_receiver), "wg_unknown_receiver");
  EXPECT_EQ(static_cast<std::size_t>(drop_reason::malformed_ethernet), 0u);
}

TEST(Counters, AddAndReadBack) {
  lcore_stats s;
  s.ports[3].drops[static_cast<unsigned>(drop_reason::malformed_udp)].add(5);
  s.ports[3].drops[static_cast<unsigned>(drop_reason::malformed_udp)].add();
  EXPECT_EQ(s.ports[3].drops[static_cast<unsigned>(drop_reason::malformed_udp)].get(), 6u);
  EXPECT_EQ(s.ports[2].drops[static_cast<unsigned>(drop_reason::malformed_udp)].get(), 0u);
}

TEST(Counters, PerLcoreBlocksDoNotShareCacheLines) {
  static_assert(alignof(lcore_stats) == 64);
  lcore_stats two[2];
  const auto a = reinterpret_cast<std::uintptr_t>(&two[0]);
  const auto b = reinterpret_cast<std::uintptr_t>(&two[1]);
  EXPECT_EQ(a % 64, 0u);
  EXPECT_GE(b - a, sizeof(lcore_stats));
}

}  // namespace
}  // namespace lopower
