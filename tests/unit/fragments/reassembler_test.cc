// A worker's reassembly on real mbufs: pieces in any order, duplicated,
// overlapping, tiny; what comes out is the datagram, byte for byte, in one
// segment with its checksum set and room for WireGuard; what does not come
// out is freed (the pool's count of buffers in use goes back), counted, and
// one device's flood leaves the others their share.
#include "dataplane/fragments/reassembler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <vector>

#include "tests/unit/fragments/mbufs.h"

namespace lopower::fragments {
namespace {

using test::bytes;
using test::cut;
using test::fragment;
using test::udp_packet;

constexpr std::uint64_t timeout = 100000;
const int device_a = 0, device_b = 0;

class Reassembly : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(test::pool(), nullptr) << "EAL and a packet pool";
    baseline_ = test::in_use();
    make(64, 4);
  }
  void TearDown() override {
    r_.reset();
    EXPECT_EQ(test::in_use(), baseline_) << "every buffer went back to the pool";
  }
  void make(std::uint32_t datagrams, std::uint32_t per_owner) {
    reassembly_limits limits;
    limits.ledger = {datagrams, per_owner, timeout};
    r_ = std::make_unique<reassembler>(limits, 9, SOCKET_ID_ANY);
  }

  // Feeds one piece; returns the datagram when it completes (owned by the test).
  reassembly_outcome add(const bytes& piece, const void* owner = &device_a, std::uint64_t now = 1) {
    rte_mbuf* m = test::mbuf_of(piece);
    EXPECT_NE(m, nullptr);
    fragment_view f;
    EXPECT_EQ(inspect(piece.data(), static_cast<std::uint16_t>(piece.size()), f), fragment_kind::fragment);
    const reassembly_outcome o = r_->add(m, f, owner, 0, now);
    if (o.kind == reassembly_outcome::dropped) ++drops_[o.why];
    return o;
  }

  // Feeds pieces in the order given; expects exactly the last to complete
  // the datagram, and checks it against `whole`.
  void expect_whole_after(const std::vector<bytes>& pieces, const bytes& whole) {
    for (std::size_t i = 0; i < pieces.size(); ++i) {
      const reassembly_outcome o = add(pieces[i]);
      if (i + 1 < pieces.size()) {
        EXPECT_NE(o.kind, reassembly_outcome::whole) << "piece " << i;
        continue;
      }
      ASSERT_EQ(o.kind, reassembly_outcome::whole);
      check_whole(o.packet, whole);
    }
  }

  static void check_whole(rte_mbuf* m, const bytes& whole) {
    EXPECT_EQ(m->nb_segs, 1) << "one segment: the path reads it with rte_pktmbuf_mtod";
    EXPECT_GE(rte_pktmbuf_headroom(m), 14 + 40 + 8 + 16) << "room for the outer headers";
    EXPECT_GE(rte_pktmbuf_tailroom(m), 32) << "room for WireGuard's padding and tag";
    const bytes got = test::bytes_of(m);
    EXPECT_EQ(got, whole);
    EXPECT_TRUE(splice::test::ip_checksum_ok(got));
    EXPECT_TRUE(splice::test::l4_checksum_ok(got));
    rte_pktmbuf_free(m);
  }

  void time_out_everything(std::uint64_t now = 2 * timeout) {
    r_->tick(now, [this](std::uint8_t, std::uint16_t n) { timed_out_ += n; });
  }

  std::unique_ptr<reassembler> r_;
  unsigned baseline_ = 0;
  std::map<drop_reason, unsigned> drops_;
  unsigned timed_out_ = 0;
};

TEST_F(Reassembly, InOrderAndOutOfOrderInBothFamilies) {
  for (bool v6 : {false, true}) {
    const bytes whole = udp_packet(v6, 1392);
    auto pieces = cut(whole, 1232);
    expect_whole_after(pieces, whole);
    pieces = cut(whole, 352, 0x4242);
    ASSERT_EQ(pieces.size(), 4u);
    expect_whole_after({pieces[3], pieces[1], pieces[0], pieces[2]}, test::with_id(whole, 0x4242));
    expect_whole_after({pieces[2], pieces[3], pieces[1], pieces[0]}, test::with_id(whole, 0x4242));  // the first piece last
  }
  EXPECT_EQ(r_->in_progress(), 0u);
}

TEST_F(Reassembly, DuplicatesAreDroppedAndTheDatagramStillComesOut) {
  for (bool v6 : {false, true}) {
    const bytes whole = udp_packet(v6, 1000);
    const auto p = cut(whole, 256);
    ASSERT_EQ(p.size(), 4u);
    // Every piece twice, the first and the last among them (DPDK's table
    // alone throws a datagram away at a second first or last piece).
    expect_whole_after({p[0], p[0], p[3], p[3], p[1], p[1], p[2]}, whole);
  }
  EXPECT_EQ(drops_[drop_reason::fragment_duplicate], 6u);
}

TEST_F(Reassembly, OverlappingPiecesNeverComeOutAndAreFreedAtTheTimeout) {
  const bytes whole = udp_packet(false, 64);
  const std::size_t h = 20;
  // Teardrop: a second piece rewrites bytes of the first with others.
  bytes other = whole;
  std::fill(other.begin() + h + 8, other.end(), 0xee);
  EXPECT_EQ(add(fragment(whole, 0, 24, true)).kind, reassembly_outcome::held);
  EXPECT_EQ(add(fragment(other, 16, 56, false)).kind, reassembly_outcome::dropped);
  EXPECT_EQ(add(fragment(whole, 24, 48, false)).kind, reassembly_outcome::dropped) << "the rest fits, but it is given up";
  EXPECT_EQ(drops_[drop_reason::fragment_overlap], 2u);
  EXPECT_EQ(test::in_use(), baseline_ + 1) << "the first piece waits in the table";
  time_out_everything();
  EXPECT_EQ(timed_out_, 1u);
  EXPECT_EQ(test::in_use(), baseline_);
  EXPECT_EQ(r_->in_progress(), 0u);
  // The same datagram again, whole this time: a new reassembly.
  expect_whole_after(cut(whole, 24), whole);
}

TEST_F(Reassembly, TinyPiecesUpToWhatTheTableHolds) {
  for (bool v6 : {false, true}) {
    const bytes eight = udp_packet(v6, 56);  // 64 bytes of payload: eight pieces of 8
    auto pieces = cut(eight, 8, 1);
    ASSERT_EQ(pieces.size(), 8u);
    std::reverse(pieces.begin(), pieces.end());
    expect_whole_after(pieces, test::with_id(eight, 1));
    const bytes nine = udp_packet(v6, 64);  // nine pieces of 8: one too many
    pieces = cut(nine, 8, 2);
    ASSERT_EQ(pieces.size(), 9u);
    for (const bytes& p : pieces) EXPECT_NE(add(p).kind, reassembly_outcome::whole);
  }
  EXPECT_GE(drops_[drop_reason::fragment_overlap], 2u);
  time_out_everything();
  EXPECT_EQ(r_->in_progress(), 0u);
}

TEST_F(Reassembly, AFloodFromOneDeviceLeavesTheOthersTheirShare) {
  make(8, 3);
  const bytes whole = udp_packet(false, 1392);
  // Device a: first pieces of datagrams it never finishes.
  for (std::uint32_t id = 0; id < 100; ++id) add(fragment(whole, 0, 256, true, id), &device_a);
  EXPECT_EQ(r_->held_by(&device_a), 3u);
  EXPECT_EQ(drops_[drop_reason::fragment_peer_limit], 97u);
  EXPECT_EQ(test::in_use(), baseline_ + 3) << "held buffers stay bounded by the share";
  // Device b's datagrams still go through, several at once.
  const bytes other = udp_packet(false, 1300, 7777);
  const auto x = cut(other, 640, 1001), y = cut(other, 640, 1002);
  const bytes x_whole = test::with_id(other, 1001), y_whole = test::with_id(other, 1002);
  EXPECT_EQ(add(x[0], &device_b).kind, reassembly_outcome::held);
  EXPECT_EQ(add(y[0], &device_b).kind, reassembly_outcome::held);
  EXPECT_EQ(add(x[1], &device_b).kind, reassembly_outcome::held);
  reassembly_outcome o = add(x[2], &device_b);
  ASSERT_EQ(o.kind, reassembly_outcome::whole);
  check_whole(o.packet, x_whole);
  add(y[1], &device_b);
  o = add(y[2], &device_b);
  ASSERT_EQ(o.kind, reassembly_outcome::whole);
  check_whole(o.packet, y_whole);
  time_out_everything();
  EXPECT_EQ(timed_out_, 3u);
  EXPECT_EQ(r_->held_by(&device_a), 0u);
}

TEST_F(Reassembly, TheTableIsBoundedForEveryoneTogether) {
  make(4, 4);
  const bytes whole = udp_packet(true, 1392);
  const int owners[6] = {};
  for (std::uint32_t i = 0; i < 6; ++i) add(fragment(whole, 0, 256, true, i), &owners[i]);
  EXPECT_EQ(r_->in_progress(), 4u);
  EXPECT_EQ(drops_[drop_reason::fragment_table_full], 2u);
  time_out_everything();
}

TEST_F(Reassembly, PiecesHeldAreFreedAtTheTimeoutAndCounted) {
  const bytes whole = udp_packet(false, 1392);
  const auto p = cut(whole, 464);
  add(p[0], &device_a, 10);
  add(p[1], &device_a, 20);
  add(cut(whole, 464, 9)[2], &device_b, 30);
  EXPECT_EQ(test::in_use(), baseline_ + 3);
  time_out_everything(10 + timeout);
  EXPECT_EQ(timed_out_, 0u) << "not yet";
  time_out_everything(2 * timeout);
  EXPECT_EQ(timed_out_, 3u);
  EXPECT_EQ(test::in_use(), baseline_);
  EXPECT_EQ(r_->in_progress(), 0u);
}

TEST_F(Reassembly, ALateDuplicateKeyStartsAfresh) {
  const bytes whole = udp_packet(false, 1392);
  const auto p = cut(whole, 704);
  EXPECT_EQ(add(p[0], &device_a, 1).kind, reassembly_outcome::held);
  // The sweep has not come by; the same datagram is sent again later.
  reassembly_outcome o = add(p[0], &device_a, 2 + timeout);
  EXPECT_EQ(o.kind, reassembly_outcome::held);
  EXPECT_EQ(o.timed_out, 1u);
  o = add(p[1], &device_a, 3 + timeout);
  ASSERT_EQ(o.kind, reassembly_outcome::whole);
  check_whole(o.packet, whole);
}

TEST_F(Reassembly, ADatagramBiggerThanABufferIsDropped) {
  const bytes whole = udp_packet(false, 1980);  // 2008 bytes: no room behind the first piece's headroom
  for (const bytes& p : cut(whole, 1000)) add(p);
  EXPECT_EQ(drops_[drop_reason::fragment_too_big], 1u);
  EXPECT_EQ(r_->in_progress(), 0u);
}

TEST_F(Reassembly, DestroyingTheTableFreesWhatItHolds) {
  const bytes whole = udp_packet(true, 1392);
  for (std::uint32_t id = 0; id < 4; ++id) add(cut(whole, 464, id)[1]);
  EXPECT_EQ(test::in_use(), baseline_ + 4);
  // TearDown destroys it and checks.
}

}  // namespace
}  // namespace lopower::fragments
