// The admission ledger: which fragments go to the table (in any order,
// duplicates dropped alone, overlaps giving the datagram up, at most 8),
// owners' shares, the table's bound, timeouts, and its hash table under
// churn against a plain model.
#include "dataplane/fragments/ledger.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <tuple>

namespace lopower::fragments {
namespace {

constexpr std::uint64_t timeout = 1000;

fragment_view piece(std::uint32_t id, std::uint16_t offset, std::uint16_t length, bool more, std::uint8_t src = 2) {
  fragment_view f;
  f.key.family = ip_family::v4;
  f.key.src[0] = 10;
  f.key.src[3] = src;
  f.key.dst[0] = 100;
  f.key.dst[3] = 5;
  f.key.id = id;
  f.offset = offset;
  f.length = length;
  f.more = more;
  f.header_length = 20;
  return f;
}

const int device_a = 0, device_b = 0;
const void* const a = &device_a;
const void* const b = &device_b;

ledger make(std::uint32_t datagrams = 64, std::uint32_t per_owner = 8) {
  return ledger({datagrams, per_owner, timeout}, 42);
}

admission admit(ledger& l, const fragment_view& f, const void* owner = a, std::uint64_t now = 0) {
  return l.admit(f, owner, 0, now).verdict;
}

TEST(Ledger, InOrderAndOutOfOrderPiecesComplete) {
  ledger l = make();
  EXPECT_EQ(admit(l, piece(1, 0, 1256, true)), admission::held);
  EXPECT_EQ(l.in_progress(), 1u);
  EXPECT_EQ(admit(l, piece(1, 1256, 144, false)), admission::complete);
  EXPECT_EQ(l.in_progress(), 0u) << "a complete datagram is forgotten: the table hands it over";
  // Last, middle, first.
  EXPECT_EQ(admit(l, piece(2, 16, 8, false)), admission::held);
  EXPECT_EQ(admit(l, piece(2, 8, 8, true)), admission::held);
  EXPECT_EQ(admit(l, piece(2, 0, 8, true)), admission::complete);
  EXPECT_EQ(l.held_by(a), 0u);
}

TEST(Ledger, DuplicatesAreDroppedAloneAndTheDatagramCompletes) {
  ledger l = make();
  EXPECT_EQ(admit(l, piece(3, 0, 16, true)), admission::held);
  EXPECT_EQ(admit(l, piece(3, 0, 16, true)), admission::duplicate) << "a second first piece (DPDK alone gives up here)";
  EXPECT_EQ(admit(l, piece(3, 8, 8, true)), admission::duplicate) << "inside one held";
  EXPECT_EQ(admit(l, piece(3, 24, 8, false)), admission::held);
  EXPECT_EQ(admit(l, piece(3, 24, 8, false)), admission::duplicate) << "a second last piece, the same";
  EXPECT_EQ(admit(l, piece(3, 16, 8, true)), admission::complete);
}

TEST(Ledger, OverlapsGiveTheDatagramUp) {
  ledger l = make();
  EXPECT_EQ(admit(l, piece(4, 0, 16, true)), admission::held);
  EXPECT_EQ(admit(l, piece(4, 8, 16, true)), admission::given_up) << "overlaps the first in part";
  EXPECT_EQ(admit(l, piece(4, 16, 8, false)), admission::given_up) << "fits, but the datagram is gone";
  EXPECT_EQ(l.in_progress(), 1u) << "kept until it times out, so its later pieces are dropped";
  // An overlap that would make the sizes add up (DPDK would notice only a hole).
  EXPECT_EQ(admit(l, piece(5, 0, 16, true)), admission::held);
  EXPECT_EQ(admit(l, piece(5, 24, 8, false)), admission::held);
  EXPECT_EQ(admit(l, piece(5, 12, 12, false)), admission::given_up) << "a second, different last piece";
}

TEST(Ledger, PiecesContradictingTheEndGiveTheDatagramUp) {
  ledger l = make();
  EXPECT_EQ(admit(l, piece(6, 32, 8, true)), admission::held);
  EXPECT_EQ(admit(l, piece(6, 16, 8, false)), admission::given_up) << "ends before a piece already held";
  ledger m = make();
  EXPECT_EQ(admit(m, piece(7, 16, 8, false)), admission::held);
  EXPECT_EQ(admit(m, piece(7, 24, 8, true)), admission::given_up) << "past the end the last piece gave";
  EXPECT_EQ(admit(m, piece(8, 16, 8, false)), admission::held);
  EXPECT_EQ(admit(m, piece(8, 8, 16, false)), admission::given_up) << "a second last piece ending elsewhere";
}

TEST(Ledger, EightPiecesAtMostAsTheTableHolds) {
  ledger l = make();
  // Tiny pieces: a first, six between, a last.
  EXPECT_EQ(admit(l, piece(9, 0, 8, true)), admission::held);
  for (std::uint16_t i = 1; i <= 6; ++i) EXPECT_EQ(admit(l, piece(9, static_cast<std::uint16_t>(8 * i), 8, true)), admission::held) << i;
  EXPECT_EQ(admit(l, piece(9, 56, 8, false)), admission::complete);
  // Seven between: the seventh finds no slot.
  for (std::uint16_t i = 1; i <= 6; ++i) EXPECT_EQ(admit(l, piece(10, static_cast<std::uint16_t>(8 * i), 8, true)), admission::held);
  EXPECT_EQ(admit(l, piece(10, 56, 8, true)), admission::given_up);
  EXPECT_EQ(admit(l, piece(10, 0, 8, true)), admission::given_up);
}

TEST(Ledger, EachOwnerHasItsShareAndTheTableItsBound) {
  ledger l = make(16, 4);
  for (std::uint32_t id = 0; id < 4; ++id) EXPECT_EQ(admit(l, piece(id, 0, 8, true), a), admission::held);
  EXPECT_EQ(admit(l, piece(99, 0, 8, true), a), admission::owner_limit) << "a fifth datagram from the same device";
  EXPECT_EQ(admit(l, piece(2, 8, 8, false), a), admission::complete) << "pieces of its datagrams in progress still go in";
  EXPECT_EQ(l.held_by(a), 3u);
  EXPECT_EQ(admit(l, piece(99, 0, 8, true), a), admission::held) << "a share freed is a share to use";
  // Others are not held back by a's datagrams, until the table is full.
  for (std::uint8_t src = 10; src < 22; ++src) {
    const void* owner = reinterpret_cast<const void*>(static_cast<std::uintptr_t>(0x1000 + src * 16));
    EXPECT_EQ(admit(l, piece(src, 0, 8, true, src), owner), admission::held) << int{src};
  }
  EXPECT_EQ(l.in_progress(), 16u);
  EXPECT_EQ(admit(l, piece(1, 0, 8, true, 99), b), admission::full);
}

TEST(Ledger, AnOwnerMayBeGivenAShareOfItsOwn) {
  ledger l = make(16, 2);  // a tailnet peer answering for many devices gets more than a device
  for (std::uint32_t id = 0; id < 6; ++id) EXPECT_EQ(l.admit(piece(id, 0, 8, true), b, 0, 0, 6).verdict, admission::held);
  EXPECT_EQ(l.admit(piece(6, 0, 8, true), b, 0, 0, 6).verdict, admission::owner_limit);
  EXPECT_EQ(admit(l, piece(7, 0, 8, true, 9), a), admission::held);
  EXPECT_EQ(admit(l, piece(8, 0, 8, true, 9), a), admission::held);
  EXPECT_EQ(admit(l, piece(9, 0, 8, true, 9), a), admission::owner_limit) << "the default share";
}

TEST(Ledger, DatagramsTimeOutFromTheirFirstPiece) {
  ledger l = make();
  l.admit(piece(1, 0, 8, true), a, 3, 100);
  l.admit(piece(1, 16, 8, true), a, 3, 900);
  l.admit(piece(2, 0, 8, true), b, 4, 600);
  std::vector<std::pair<int, int>> expired;
  auto note = [&](std::uint8_t port, std::uint16_t n) { expired.emplace_back(port, n); };
  l.expire(100 + timeout, note);
  EXPECT_TRUE(expired.empty()) << "not past the timeout yet (the table times out strictly after it too)";
  l.expire(101 + timeout, note);
  EXPECT_EQ(expired, (std::vector<std::pair<int, int>>{{3, 2}})) << "a later piece does not restart the clock";
  EXPECT_EQ(l.held_by(a), 0u);
  EXPECT_EQ(l.held_by(b), 1u);
  l.expire(601 + timeout, note);
  EXPECT_EQ(l.in_progress(), 0u);
}

TEST(Ledger, ATimedOutDatagramMakesWayForANewOneWithTheSameKey) {
  ledger l = make();
  EXPECT_EQ(l.admit(piece(5, 0, 8, true), a, 7, 0).verdict, admission::held);
  EXPECT_EQ(l.admit(piece(5, 8, 8, true), a, 7, 1).verdict, admission::held);
  const admission_result r = l.admit(piece(5, 0, 8, true), a, 2, 2 + timeout);
  EXPECT_EQ(r.verdict, admission::held) << "not a duplicate: the old datagram is gone";
  EXPECT_EQ(r.timed_out_port, 7);
  EXPECT_EQ(r.timed_out_fragments, 2);
  EXPECT_EQ(l.held_by(a), 1u);
}

TEST(Ledger, ForgetsWhatItIsTold) {
  ledger l = make();
  admit(l, piece(1, 0, 8, true));
  EXPECT_TRUE(l.forget(piece(1, 0, 0, false).key));
  EXPECT_FALSE(l.forget(piece(1, 0, 0, false).key));
  EXPECT_EQ(l.held_by(a), 0u);
}

// Many owners and datagrams coming and going: the ledger agrees with a
// plain map at every step (the open-addressing deletions keep every entry
// findable).
TEST(Ledger, AgreesWithAPlainModelUnderChurn) {
  constexpr std::uint32_t datagrams = 64, per_owner = 6;
  ledger l({datagrams, per_owner, timeout}, 7);
  std::map<std::tuple<std::uint8_t, std::uint32_t>, const void*> model;  // (src, id) -> owner
  std::map<const void*, std::uint32_t> counts;
  std::mt19937 rng(3);
  for (int step = 0; step < 200000; ++step) {
    const auto src = static_cast<std::uint8_t>(rng() % 16);
    const auto id = static_cast<std::uint32_t>(rng() % 12);
    const void* owner = reinterpret_cast<const void*>(static_cast<std::uintptr_t>(0x1000 + src * 64));
    const bool last = rng() % 2 != 0;
    const auto key = std::make_tuple(src, id);
    const admission got = admit(l, last ? piece(id, 8, 8, false, src) : piece(id, 0, 8, true, src), owner);
    const auto it = model.find(key);
    if (it == model.end()) {
      const admission want = model.size() >= datagrams     ? admission::full
                             : counts[owner] >= per_owner ? admission::owner_limit
                                                          : admission::held;
      ASSERT_EQ(got, want) << step;
      if (want == admission::held) {
        model.emplace(key, owner);
        ++counts[owner];
      }
    } else {
      // The other half completes it, the same half again is a duplicate.
      const bool other_half = got == admission::complete;
      ASSERT_TRUE(other_half || got == admission::duplicate) << step;
      if (other_half) {
        model.erase(it);
        --counts[owner];
      }
    }
    ASSERT_EQ(l.in_progress(), model.size()) << step;
    ASSERT_EQ(l.held_by(owner), counts[owner]) << step;
  }
}

}  // namespace
}  // namespace lopower::fragments
