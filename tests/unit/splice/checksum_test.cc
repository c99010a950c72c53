// The checksum helpers against the reference written out in packets.h, the
// RFC 1071 and RFC 1624 worked examples, and random data with words
// replaced at every alignment.
#include "dataplane/splice/checksum.h"

#include <gtest/gtest.h>

#include <random>

#include "tests/unit/splice/packets.h"

namespace lopower::splice {
namespace {

using test::bytes;

bytes random_bytes(std::mt19937& rng, std::size_t n) {
  bytes b(n);
  for (auto& x : b) x = static_cast<std::uint8_t>(rng());
  return b;
}

TEST(Checksum, Rfc1071WorkedExample) {
  // RFC 1071 §3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
  const std::uint8_t data[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  EXPECT_EQ(fold(sum_bytes(data, sizeof data)), 0xddf2);
  EXPECT_EQ(checksum(data, sizeof data), 0x220d);
}

TEST(Checksum, MatchesTheReferenceAtEveryLengthIncludingOdd) {
  std::mt19937 rng(1);
  for (std::size_t n = 0; n < 200; ++n) {
    const bytes b = random_bytes(rng, n);
    EXPECT_EQ(checksum(b.data(), n), test::reference_checksum(b.data(), n)) << n;
    EXPECT_EQ(checksum(b.data(), n, 0x1234567), test::reference_checksum(b.data(), n, 0x1234567)) << n;
  }
  EXPECT_EQ(checksum(nullptr, 0), 0xffff);  // nothing summed: ~0
}

TEST(Checksum, PseudoHeaderSumMatchesTheReference) {
  for (bool v6 : {false, true}) {
    const bytes p = test::ip_packet(v6, 17, test::device_addr(v6), test::peer_addr(v6), test::udp_datagram(1, 2, 3));
    const auto l4_len = static_cast<std::uint32_t>(p.size() - test::l4_at(p));
    EXPECT_EQ(fold(pseudo_header_sum(v6, &p[test::src_at(p)], &p[test::dst_at(p)], 17, l4_len)),
              test::reference_sum(nullptr, 0, test::pseudo_sum(p, l4_len)));
  }
}

TEST(Checksum, Rfc1624Equation3GivesZeroWhereEquation2GaveMinusZero) {
  // RFC 1624 §4: HC 0xdd2f, m 0x5555 -> m' 0x3285, the other words summing
  // to 0xcd7a: the new checksum is ~(0xcd7a + 0x3285) = 0x0000 (eqn. 2 of
  // RFC 1141 gave 0xffff).
  EXPECT_EQ(update16(0xdd2f, 0x5555, 0x3285), 0x0000);
  // And back again.
  EXPECT_EQ(update16(0x0000, 0x3285, 0x5555), 0xdd2f);
}

TEST(Checksum, UdpSendsAComputedZeroAsAllOnes) {
  EXPECT_EQ(udp_checksum_field(0), 0xffff);
  EXPECT_EQ(udp_checksum_field(0x1234), 0x1234);
  EXPECT_EQ(udp_checksum_field(0xffff), 0xffff);
}

// Replaces `n` bytes at `at` of random data and compares the incremental
// update with a full recomputation, bit for bit.
void check_replacement(std::mt19937& rng, std::size_t size, std::size_t at, std::size_t n) {
  bytes data = random_bytes(rng, size);
  const std::uint16_t before = test::reference_checksum(data.data(), size);
  const bytes fresh = random_bytes(rng, n);
  std::uint16_t updated = 0;
  if (n == 2 && at % 2 == 0) {
    updated = update16(before, test::be16(&data[at]), test::be16(fresh.data()));
  } else if (n == 2) {
    updated = update_at(before, at, test::be16(&data[at]), test::be16(fresh.data()));
  } else if (n == 4) {
    updated = update32(before, &data[at], fresh.data());
  } else {
    updated = update128(before, &data[at], fresh.data());
  }
  std::memcpy(&data[at], fresh.data(), n);
  ASSERT_EQ(updated, test::reference_checksum(data.data(), size)) << "size " << size << " at " << at << " n " << n;
}

TEST(Checksum, IncrementalUpdatesEqualAFullRecomputation) {
  std::mt19937 rng(2);
  for (int round = 0; round < 2000; ++round) {
    const std::size_t size = 17 + rng() % 100;  // odd and even sizes
    for (std::size_t n : {2u, 4u, 16u}) {
      std::size_t at = rng() % (size - n + 1);
      if (n != 2) at &= ~std::size_t{1};  // addresses sit at even offsets
      check_replacement(rng, size, at, n);
    }
  }
}

TEST(Checksum, AValueAtAnOddOffsetFeedsTheByteSwappedWords) {
  std::mt19937 rng(3);
  for (std::size_t at = 1; at + 2 <= 41; at += 2) check_replacement(rng, 41, at, 2);
  // The wrong parity would give a different answer for almost any value:
  // the test above can fail.
  bytes data = random_bytes(rng, 40);
  data[21] = 0x05;
  data[22] = 0xb4;
  const std::uint16_t before = test::reference_checksum(data.data(), 40);
  data[21] = 0x04;
  data[22] = 0xd8;
  const std::uint16_t truth = test::reference_checksum(data.data(), 40);
  EXPECT_EQ(update_at(before, 21, 0x05b4, 0x04d8), truth);
  EXPECT_NE(update_at(before, 20, 0x05b4, 0x04d8), truth);
}

TEST(Checksum, DeltaAppliesToSeveralChecksumsAndIsOrderFree) {
  std::mt19937 rng(4);
  bytes data = random_bytes(rng, 64);
  const std::uint16_t before = test::reference_checksum(data.data(), 64);
  const bytes a = random_bytes(rng, 16), b = random_bytes(rng, 2);
  checksum_delta d1, d2;
  d1.replace(&data[8], a.data(), 16);
  d1.replace(&data[30], b.data(), 2);
  d2.replace(&data[30], b.data(), 2);
  d2.replace(&data[8], a.data(), 16);
  std::memcpy(&data[8], a.data(), 16);
  std::memcpy(&data[30], b.data(), 2);
  const std::uint16_t truth = test::reference_checksum(data.data(), 64);
  EXPECT_EQ(d1.apply(before), truth);
  EXPECT_EQ(d2.apply(before), truth);
}

TEST(Checksum, ReplacingAWordByItselfChangesNothing) {
  for (std::uint32_t hc : {0x0000u, 0x0001u, 0x1234u, 0xfffeu})
    EXPECT_EQ(update16(static_cast<std::uint16_t>(hc), 0xabcd, 0xabcd), hc);
  // 0xffff is the other representation of zero: it may come back as 0x0000,
  // which verifies the same (UDP maps it back with udp_checksum_field).
  const std::uint16_t r = update16(0xffff, 0xabcd, 0xabcd);
  EXPECT_TRUE(r == 0xffff || r == 0x0000);
}

}  // namespace
}  // namespace lopower::splice
