// The flow table's expiry (a timer wheel the control thread keeps) and its
// census (counts, no walk), on a real flow_table (rte_hash, RCU) with flows
// inserted and moved as the workers do (insert, track_tcp). Times are an
// explicit clock given to collect_expired, one call a second as lopowerd
// makes; the wheel must expire each flow at the first call at or after
// last packet + timeout, as the walk it replaced did, and never lose one.

#include <gtest/gtest.h>
#include <rte_cycles.h>

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "dataplane/flow_table.h"
#include "dataplane/splice/translate.h"
#include "tests/support/eal.h"

namespace lopower {
namespace {

using splice::tcp_state;

class flow_expiry : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ASSERT_TRUE(test_support::start_eal("flow_expiry_tests", 256)); }
  void SetUp() override {
    rcu = std::make_unique<rcu_domain>(4);
    table = std::make_unique<flow_table>(4096, *rcu);
    hz = rte_get_tsc_hz();
    t0 = rte_rdtsc() + 10000 * hz;  // ahead of the real TSC: every time here is this clock's
  }
  void TearDown() override {
    rcu->drain();    // what was retired
    table.reset();  // its flows
    rcu.reset();
  }

  flow* add(std::uint8_t protocol, std::uint16_t dst_port, std::uint64_t last, unsigned worker = 0) {
    const std::uint32_t n = next++;
    std::uint8_t src[4], dst[4], ours[4];
    const std::uint32_t s = htonl(0x0a5a0002u), d = htonl(0x64400000u | n), o = htonl(0x64400001u);
    std::memcpy(src, &s, 4);
    std::memcpy(dst, &d, 4);
    std::memcpy(ours, &o, 4);
    flow* f = table->allocate();
    if (f == nullptr) return nullptr;
    f->device_key = splice::make_flow_key(ip_family::v4, protocol, src, 40000, dst, dst_port);
    f->tailnet_key = splice::make_flow_key(ip_family::v4, protocol, dst, dst_port, ours, static_cast<std::uint16_t>(1024 + n));
    f->device = &device;
    f->created_tsc = last;
    f->last_tsc.store(last);
    f->owner_worker = static_cast<std::uint8_t>(worker);
    if (!table->insert(f)) {
      table->discard(f);
      return nullptr;
    }
    return f;
  }
  // One second's call: the flows expired, erased as dataplane::expire_flows does.
  std::vector<flow*> tick(std::uint64_t now, bool removed = false) {
    std::vector<flow*> out;
    table->collect_expired(now, hz, removed, out);
    for (flow* f : out) table->erase(f);
    rcu->reclaim();
    return out;
  }
  // What the walk counted: every flow of the table, by protocol and state.
  flow_census walked() const {
    flow_census c;
    table->for_each([&c](flow& f) {
      if (f.device_key.protocol == splice::ipproto_tcp) ++c.tcp[static_cast<unsigned>(f.state.load()) % 5];
      else if (f.device_key.protocol == splice::ipproto_udp) ++c.udp;
      else ++c.icmp;
    });
    return c;
  }
  static void expect_same(const flow_census& a, const flow_census& b) {
    for (unsigned s = 0; s < 5; ++s) EXPECT_EQ(a.tcp[s], b.tcp[s]) << "tcp state " << s;
    EXPECT_EQ(a.udp, b.udp);
    EXPECT_EQ(a.icmp, b.icmp);
  }

  std::unique_ptr<rcu_domain> rcu;
  std::unique_ptr<flow_table> table;
  wg_peer device;
  std::uint64_t hz = 0, t0 = 0;
  std::uint32_t next = 0;
};

constexpr std::uint8_t syn = splice::tcp_flag::syn, ack = splice::tcp_flag::ack, fin = splice::tcp_flag::fin,
                       rst = splice::tcp_flag::rst;

// Every kind of flow, idle from t0, is expired at the first call at or after
// t0 + its timeout -- not one call earlier, not one later -- whatever the
// calls' phase within the second.
TEST_F(flow_expiry, idle_flow_is_expired_at_the_first_call_past_its_timeout) {
  struct kind {
    std::uint8_t protocol;
    std::uint16_t port;
    std::uint32_t timeout;
  };
  const kind kinds[] = {{splice::ipproto_udp, 443, splice::idle_timeout(splice::ipproto_udp, 443, tcp_state::syn_sent)},
                        {splice::ipproto_udp, 53, splice::idle_timeout(splice::ipproto_udp, 53, tcp_state::syn_sent)},
                        {splice::ipproto_icmp, 7, splice::idle_timeout(splice::ipproto_icmp, 7, tcp_state::syn_sent)},
                        {splice::ipproto_tcp, 80, splice::tcp_timeout(tcp_state::syn_sent)}};
  for (const std::uint64_t phase : {std::uint64_t{0}, hz / 3, hz - 1}) {
    std::vector<std::pair<flow*, std::uint32_t>> flows;
    for (const kind& k : kinds) flows.emplace_back(add(k.protocol, k.port, t0 + hz / 7), k.timeout);
    const std::uint64_t start = t0 + hz / 7;
    std::size_t gone = 0;
    for (std::uint64_t s = 0; s <= 130; ++s) {
      const std::uint64_t now = t0 + s * hz + phase;
      for (flow* f : tick(now)) {
        ++gone;
        auto it = std::find_if(flows.begin(), flows.end(), [f](const auto& e) { return e.first == f; });
        ASSERT_NE(it, flows.end());
        EXPECT_GE(now, start + std::uint64_t{it->second} * hz) << "expired early";
        EXPECT_LT(now - hz, start + std::uint64_t{it->second} * hz) << "expired a call late";
      }
    }
    EXPECT_EQ(gone, flows.size()) << "an idle flow was never expired (phase " << phase << ")";
    t0 += 200 * hz;
  }
  EXPECT_EQ(table->size(), 0u);
  EXPECT_EQ(table->scheduled(), 0u);
}

// A flow with packets is checked at its deadline, found busy and moved on;
// idle again, it goes one timeout after its last packet.
TEST_F(flow_expiry, busy_flow_stays_and_goes_one_timeout_after_its_last_packet) {
  flow* f = add(splice::ipproto_udp, 443, t0);
  const std::uint32_t timeout = splice::idle_timeout(splice::ipproto_udp, 443, tcp_state::syn_sent);
  std::uint64_t s = 0;
  for (; s < 3 * timeout; ++s) {
    f->last_tsc.store(t0 + s * hz);  // a packet every second
    ASSERT_TRUE(tick(t0 + s * hz + hz / 2).empty()) << "second " << s;
  }
  const std::uint64_t last = t0 + (s - 1) * hz;
  for (;; ++s) {
    const auto out = tick(t0 + s * hz + hz / 2);
    if (!out.empty()) {
      EXPECT_EQ(out[0], f);
      EXPECT_GE(t0 + s * hz + hz / 2, last + std::uint64_t{timeout} * hz);
      EXPECT_LT(t0 + (s - 1) * hz + hz / 2, last + std::uint64_t{timeout} * hz);
      break;
    }
    ASSERT_LT(s, 10 * timeout) << "the idle flow was never expired";
  }
}

// An established TCP flow (2 h 4 min) that sees a RST must go 10 s later, a
// FIN 4 min later: the shorter timeout reaches the wheel (the worker's move
// queues the flow), not only at the established deadline.
TEST_F(flow_expiry, tcp_flow_closing_is_expired_on_its_shorter_timeout) {
  flow* reset = add(splice::ipproto_tcp, 443, t0);
  flow* finished = add(splice::ipproto_tcp, 443, t0);
  for (flow* f : {reset, finished}) table->track_tcp(*f, syn | ack, splice::flow_direction::reply, 0);
  ASSERT_TRUE(tick(t0 + hz / 2).empty());  // in the wheel, due in 2 h 4 min
  const std::uint64_t closing = t0 + 100 * hz;
  for (std::uint64_t s = 1; s < 100; ++s) ASSERT_TRUE(tick(t0 + s * hz + hz / 2).empty());
  reset->last_tsc.store(closing);
  table->track_tcp(*reset, rst, splice::flow_direction::reply, 1);
  finished->last_tsc.store(closing);
  table->track_tcp(*finished, fin, splice::flow_direction::original, 0);
  EXPECT_EQ(reset->state.load(), tcp_state::closed);
  EXPECT_EQ(finished->state.load(), tcp_state::fin_wait_original);
  std::uint64_t reset_gone = 0, finished_gone = 0;
  for (std::uint64_t s = 100; s < 100 + 300 && !(reset_gone && finished_gone); ++s)
    for (flow* f : tick(t0 + s * hz + hz / 2)) (f == reset ? reset_gone : finished_gone) = s;
  EXPECT_EQ(reset_gone, 100 + splice::tcp_timeout(tcp_state::closed));
  EXPECT_EQ(finished_gone, 100 + splice::tcp_timeout(tcp_state::fin_wait_original));
}

// The census (counts kept by insert, track_tcp and erase) is what a walk of
// the table counts, through random inserts, TCP moves on several workers,
// expiry and erasure.
TEST_F(flow_expiry, census_stays_what_a_walk_counts) {
  std::mt19937 rng(12);
  std::vector<flow*> live;
  const std::uint8_t flag_sets[] = {syn, static_cast<std::uint8_t>(syn | ack), ack, fin, static_cast<std::uint8_t>(fin | ack), rst};
  std::uint64_t s = 0;
  for (int round = 0; round < 300; ++round, ++s) {
    const std::uint64_t now = t0 + s * hz + hz / 2;
    for (int i = 0; i < 8; ++i) {
      const unsigned r = rng() % 10;
      const std::uint8_t protocol = r < 6 ? splice::ipproto_tcp : r < 9 ? splice::ipproto_udp : splice::ipproto_icmp;
      if (flow* f = add(protocol, r == 7 ? 53 : 443, now, rng() % 3)) live.push_back(f);
    }
    for (int i = 0; i < 16 && !live.empty(); ++i) {
      flow* f = live[rng() % live.size()];
      if (f->device_key.protocol != splice::ipproto_tcp) continue;
      if (rng() % 2) f->last_tsc.store(now);
      table->track_tcp(*f, flag_sets[rng() % 6], rng() % 2 ? splice::flow_direction::reply : splice::flow_direction::original,
                       rng() % 3);
    }
    if (round % 50 == 49 && !live.empty()) {  // an operator's erase (a removed device, say) in between
      flow* f = live[rng() % live.size()];
      std::erase(live, f);
      table->erase(f);
    }
    for (flow* f : tick(now)) std::erase(live, f);
    expect_same(table->census(), walked());
    ASSERT_EQ(live.size(), table->size());
    if (HasFailure()) return;
  }
  EXPECT_GT(table->census().tcp[static_cast<unsigned>(tcp_state::established)] + table->census().udp, 0u);
}

// A removed device's flows go at the next call that is told of a removal,
// however far their deadlines; so do flows it made in that moment (queued,
// not yet in the wheel).
TEST_F(flow_expiry, removed_device_flows_go_at_the_next_call) {
  for (int i = 0; i < 10; ++i) add(splice::ipproto_udp, 443, t0);
  ASSERT_TRUE(tick(t0 + hz / 2).empty());
  device.removed.store(true);
  flow* late = add(splice::ipproto_tcp, 443, t0 + hz);  // made as the device went
  ASSERT_NE(late, nullptr);
  EXPECT_EQ(tick(t0 + hz + hz / 2, true).size(), 11u);
  EXPECT_EQ(table->size(), 0u);
  expect_same(table->census(), flow_census{});
}

// A flow erased while a worker's move has it queued stays allocated until
// the control thread takes it out of the ring (no freed flow in the ring),
// then is retired.
TEST_F(flow_expiry, flow_erased_while_queued_is_retired_after_its_ring_entry) {
  flow* f = add(splice::ipproto_tcp, 443, t0);
  ASSERT_TRUE(tick(t0 + hz / 2).empty());
  table->track_tcp(*f, syn | ack, splice::flow_direction::reply, 0);
  table->track_tcp(*f, rst, splice::flow_direction::reply, 0);  // shorter: queued
  ASSERT_TRUE(f->queued.load());
  table->erase(f);
  table->track_tcp(*f, syn, splice::flow_direction::original, 0);  // a worker still holding it: no move, no queueing
  rcu->drain();
  EXPECT_TRUE(f->erased);  // still allocated (ASan would say otherwise)
  EXPECT_TRUE(tick(t0 + hz + hz / 2).empty());
  rcu->drain();
  expect_same(table->census(), flow_census{});
}

// The pool holds the table's capacity and headroom for flows in their
// grace period; an erased flow's storage comes back to it once released.
TEST_F(flow_expiry, flow_storage_comes_back_after_the_grace_period) {
  std::vector<flow*> taken;
  for (flow* f; (f = table->allocate()) != nullptr;) taken.push_back(f);
  ASSERT_GE(taken.size(), table->capacity() + table->capacity() / 8);
  for (flow* t : taken) ASSERT_EQ(reinterpret_cast<std::uintptr_t>(t) % 64, 0u) << "flow::traffic's lines assume it";
  table->discard(taken.back());
  taken.pop_back();
  flow* f = add(splice::ipproto_udp, 53, t0);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(table->allocate(), nullptr);
  table->erase(f);
  ASSERT_TRUE(tick(t0 + hz / 2).empty());  // takes its ring entry out: retired
  rcu->drain();
  flow* again = table->allocate();
  EXPECT_NE(again, nullptr);
  if (again != nullptr) table->discard(again);
  for (flow* t : taken) table->discard(t);
}

}  // namespace
}  // namespace lopower
