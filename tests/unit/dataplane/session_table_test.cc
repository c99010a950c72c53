// session_table: a keypair is found by its receiver index whether it holds
// its direct slot or only sits in the hash behind it (another keypair took
// the slot first); an index whose slot holds another keypair is a miss, not
// that keypair; erasing the slot's holder leaves the other findable; and
// thousands of random indices, inserted and erased in turn, against a map.
#include "dataplane/session_table.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <vector>

#include "tests/support/eal.h"

namespace lopower {
namespace {

class SessionTable : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ASSERT_TRUE(test_support::start_eal("session_table_tests", 256)); }
  void TearDown() override {
    table.reset();
    rcu->drain();
  }

  wg_keypair* add(std::uint32_t index) {
    auto* kp = new wg_keypair;
    kp->local_index = index;
    return table->insert(kp) ? kp : nullptr;
  }
  std::vector<wg_keypair*> look_up(const std::vector<std::uint32_t>& indices) const {
    std::vector<wg_keypair*> out(indices.size(), reinterpret_cast<wg_keypair*>(1));
    table->lookup_bulk(indices.data(), static_cast<unsigned>(indices.size()), out.data());
    return out;
  }

  std::unique_ptr<rcu_domain> rcu = std::make_unique<rcu_domain>(2);
  // 64 keypairs: 128 direct slots, so indices 128 apart share one.
  std::unique_ptr<session_table> table = std::make_unique<session_table>(64, *rcu);
};

TEST_F(SessionTable, keypairs_sharing_a_slot_are_each_found_by_their_own_index) {
  wg_keypair* first = add(0x1000'0005);
  wg_keypair* second = add(0x2000'0005);  // the same slot: behind it, in the hash
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  const auto found = look_up({0x1000'0005, 0x2000'0005, 0x3000'0005, 0x1000'0006});
  EXPECT_EQ(found[0], first);
  EXPECT_EQ(found[1], second);
  EXPECT_EQ(found[2], nullptr) << "the slot's keypair answered for an index that is not its own";
  EXPECT_EQ(found[3], nullptr);
}

TEST_F(SessionTable, erasing_a_slots_holder_leaves_the_keypair_behind_it_findable) {
  add(0x1000'0005);
  wg_keypair* second = add(0x2000'0005);
  table->erase(0x1000'0005);
  const auto found = look_up({0x1000'0005, 0x2000'0005});
  EXPECT_EQ(found[0], nullptr);
  EXPECT_EQ(found[1], second);
  wg_keypair* third = add(0x3000'0005);  // takes the freed slot
  EXPECT_EQ(look_up({0x3000'0005})[0], third);
  EXPECT_FALSE(table->insert(new wg_keypair{.local_index = 0x2000'0005})) << "an index taken is refused";
}

TEST_F(SessionTable, random_indices_inserted_and_erased_agree_with_a_map) {
  std::mt19937 rng(7);
  std::map<std::uint32_t, wg_keypair*> expected;
  std::vector<std::uint32_t> probes;
  for (int round = 0; round < 2000; ++round) {
    // Some indices from a narrow range, so slots are shared often.
    const std::uint32_t index = round % 3 == 0 ? rng() % 512 : rng();
    if (expected.size() < 48 && !expected.count(index)) {  // a cuckoo hash may refuse before it is full
      wg_keypair* kp = add(index);
      ASSERT_NE(kp, nullptr) << "round " << round << ", index " << index;
      expected[index] = kp;
    } else if (!expected.empty()) {
      auto victim = std::next(expected.begin(), static_cast<long>(rng() % expected.size()));
      table->erase(victim->first);
      expected.erase(victim);
      rcu->drain();
    }
    probes.assign({index, static_cast<std::uint32_t>(rng() % 512), static_cast<std::uint32_t>(rng())});
    for (const auto& [i, kp] : expected) probes.push_back(i);
    const auto found = look_up(probes);
    for (std::size_t p = 0; p < probes.size(); ++p) {
      const auto e = expected.find(probes[p]);
      ASSERT_EQ(found[p], e == expected.end() ? nullptr : e->second) << "round " << round << ", index " << probes[p];
    }
  }
}

}  // namespace
}  // namespace lopower
