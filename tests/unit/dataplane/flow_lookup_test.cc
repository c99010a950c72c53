// flow_table::find_bulk: a flow is found under either of its keys whether
// the key holds its direct slot or only its rte_hash entry (another flow's
// key took the slot first); a key not in the table is a miss even when its
// slot holds a flow; an erased flow is found under neither key, and the
// flows that shared its slots still are. Random flows inserted and erased
// in a small table (slots shared often), against a map.
#include <gtest/gtest.h>
#include <rte_cycles.h>

#include <arpa/inet.h>

#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <vector>

#include "dataplane/flow_table.h"
#include "tests/support/eal.h"

namespace lopower {
namespace {

class flow_lookup : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ASSERT_TRUE(test_support::start_eal("flow_lookup_tests", 256)); }
  void TearDown() override {
    rcu->drain();
    table.reset();
    rcu.reset();
  }

  static splice::flow_key key(std::uint32_t src, std::uint16_t src_port, std::uint32_t dst, std::uint16_t dst_port) {
    const std::uint32_t s = htonl(src), d = htonl(dst);
    std::uint8_t sb[4], db[4];
    std::memcpy(sb, &s, 4);
    std::memcpy(db, &d, 4);
    return splice::make_flow_key(ip_family::v4, splice::ipproto_udp, sb, src_port, db, dst_port);
  }
  // A device's flow from port `n` to a peer, NATed to lopower's port `n`.
  flow* add(std::uint16_t n) {
    flow* f = table->allocate();
    if (f == nullptr) return nullptr;
    f->device_key = key(0x0a5a0002u, n, 0x64400005u, 9000);
    f->tailnet_key = key(0x64400005u, 9000, 0x64400001u, n);
    f->device = &device;
    if (!table->insert(f)) {
      table->discard(f);
      return nullptr;
    }
    return f;
  }
  std::vector<flow*> find(const std::vector<splice::flow_key>& keys) const {
    std::vector<const splice::flow_key*> ptrs;
    for (const auto& k : keys) ptrs.push_back(&k);
    std::vector<flow*> out(keys.size(), reinterpret_cast<flow*>(1));
    for (std::size_t at = 0; at < keys.size(); at += 32)
      table->find_bulk(ptrs.data() + at, static_cast<unsigned>(std::min<std::size_t>(32, keys.size() - at)), out.data() + at);
    return out;
  }

  std::unique_ptr<rcu_domain> rcu = std::make_unique<rcu_domain>(2);
  // 64 flows: 256 direct slots for up to 128 keys.
  std::unique_ptr<flow_table> table = std::make_unique<flow_table>(64, *rcu);
  wg_peer device;
};

TEST_F(flow_lookup, random_flows_inserted_and_erased_agree_with_a_map) {
  std::mt19937 rng(11);
  std::map<std::uint16_t, flow*> live;  // by the flow's port
  for (int round = 0; round < 3000; ++round) {
    const auto port = static_cast<std::uint16_t>(1024 + rng() % 400);
    if (live.size() < 48 && !live.count(port)) {
      flow* f = add(port);
      ASSERT_NE(f, nullptr) << "round " << round;
      live[port] = f;
    } else if (!live.empty()) {
      auto victim = std::next(live.begin(), static_cast<long>(rng() % live.size()));
      table->erase(victim->second);
      live.erase(victim);
      // Its entries come free once the control thread has taken it out of
      // the table's ring (expiry's first step) and the grace period passed.
      std::vector<flow*> idle;
      table->collect_expired(rte_rdtsc(), rte_get_tsc_hz(), false, idle);
      rcu->drain();
    }
    std::vector<splice::flow_key> keys;
    std::vector<flow*> expected;
    for (std::uint16_t p = 1024; p < 1424; p += 1 + static_cast<std::uint16_t>(rng() % 7)) {
      const auto it = live.find(p);
      flow* want = it == live.end() ? nullptr : it->second;
      keys.push_back(key(0x0a5a0002u, p, 0x64400005u, 9000));
      keys.push_back(key(0x64400005u, 9000, 0x64400001u, p));
      expected.insert(expected.end(), {want, want});
    }
    const auto found = find(keys);
    for (std::size_t i = 0; i < keys.size(); ++i)
      ASSERT_EQ(found[i], expected[i]) << "round " << round << ", key " << i << (i % 2 ? " (tailnet side)" : " (device side)");
  }
}

}  // namespace
}  // namespace lopower
