// Cutting packets up for a smaller MTU: every piece within the MTU, in one
// segment with room for WireGuard around it, offsets and flags as RFC 791 /
// RFC 8200 say, our identification, checksums set; the pieces put back
// together (by the tests' own code, and by the reassembler) are the packet.
#include "dataplane/fragments/fragmenter.h"

#include <gtest/gtest.h>

#include "dataplane/fragments/reassembler.h"
#include "tests/unit/fragments/mbufs.h"

namespace lopower::fragments {
namespace {

using test::bytes;
using test::udp_packet;

class Fragmenting : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(test::pool(), nullptr) << "EAL and a packet pool";
    baseline_ = test::in_use();
  }
  void TearDown() override { EXPECT_EQ(test::in_use(), baseline_) << "every buffer went back to the pool"; }

  // Cuts `whole` for `mtu`; checks each piece and returns them as bytes.
  std::vector<bytes> cut_up(const bytes& whole, std::uint16_t mtu, std::uint32_t id) {
    rte_mbuf* m = test::mbuf_of(whole);
    rte_mbuf* pieces[max_pieces];
    const unsigned n = fragment_packet(m, splice::test::is_v6(whole), mtu, id, pieces, max_pieces);
    EXPECT_GE(n, 2u);
    std::vector<bytes> out;
    for (unsigned i = 0; i < n; ++i) {
      EXPECT_EQ(pieces[i]->nb_segs, 1) << i;
      EXPECT_GE(rte_pktmbuf_headroom(pieces[i]), 14 + 40 + 8 + 16) << i;
      EXPECT_GE(rte_pktmbuf_tailroom(pieces[i]), 32) << i;
      EXPECT_LE(pieces[i]->pkt_len, mtu) << i;
      out.push_back(test::bytes_of(pieces[i]));
      rte_pktmbuf_free(pieces[i]);
    }
    return out;
  }

  // The pieces' payloads, laid end to end by their offsets, after the first
  // piece's header: what the receiver puts together.
  static bytes joined(const std::vector<bytes>& pieces, std::uint32_t id) {
    bytes payload;
    std::size_t expect_offset = 0;
    for (std::size_t i = 0; i < pieces.size(); ++i) {
      const auto f = test::fields_of(pieces[i]);
      EXPECT_EQ(f.offset, expect_offset) << i;
      EXPECT_EQ(f.more, i + 1 < pieces.size()) << i;
      EXPECT_EQ(f.id, id) << i;
      if (f.more) {
        EXPECT_EQ(f.length % 8, 0u) << i;
      }
      EXPECT_TRUE(splice::test::ip_checksum_ok(pieces[i])) << i;
      payload.insert(payload.end(), pieces[i].end() - static_cast<std::ptrdiff_t>(f.length), pieces[i].end());
      expect_offset += f.length;
    }
    return payload;
  }

  unsigned baseline_ = 0;
};

TEST_F(Fragmenting, Ipv4ForTheTailnet) {
  const bytes whole = udp_packet(false, 1392);  // what an ESP32 sends: 1420 bytes, DF clear
  const auto pieces = cut_up(whole, 1280, 0x12345);
  ASSERT_EQ(pieces.size(), 2u);
  EXPECT_EQ(pieces[0].size(), 1276u) << "20 + 1256: the most a multiple of 8 allows under 1280";
  const bytes payload = joined(pieces, 0x2345);  // IPv4 carries the low 16 bits
  EXPECT_EQ(payload, bytes(whole.begin() + 20, whole.end()));
  // The header is the packet's, length, flags, identification and checksum aside.
  EXPECT_TRUE(std::equal(whole.begin() + 8, whole.begin() + 10, pieces[0].begin() + 8)) << "TTL and protocol";
  EXPECT_TRUE(std::equal(whole.begin() + 12, whole.begin() + 20, pieces[1].begin() + 12)) << "addresses";
}

TEST_F(Fragmenting, Ipv6WithAFragmentHeaderAndOurIdentification) {
  const bytes whole = udp_packet(true, 1392);  // 1440 bytes
  for (std::uint16_t mtu : {std::uint16_t{1280}, std::uint16_t{1420}}) {
    const auto pieces = cut_up(whole, mtu, 0xdeadbeef);
    ASSERT_EQ(pieces.size(), 2u) << mtu;
    for (const bytes& p : pieces) {
      EXPECT_EQ(p[6], 44) << "a Fragment header follows the fixed header";
      EXPECT_EQ(p[40], 17) << "and names UDP";
      EXPECT_EQ(test::be16(&p[4]), p.size() - 40);
    }
    EXPECT_EQ(joined(pieces, 0xdeadbeef), bytes(whole.begin() + 40, whole.end())) << mtu;
  }
}

TEST_F(Fragmenting, Ipv4OptionsGoWhereRfc791SaysTheyAreCopied) {
  // Router alert (copied), then no-ops and end of list (not copied).
  const bytes options = {0x94, 0x04, 0x00, 0x00, 0x01, 0x01, 0x01, 0x00};
  bytes whole = splice::test::ip_packet(false, 17, "10.90.0.2", "100.64.0.5", splice::test::udp_datagram(1, 2, 1392), options);
  test::set_ipv4_field(whole, 6, 0);  // DF clear
  const auto pieces = cut_up(whole, 1280, 1);
  ASSERT_GE(pieces.size(), 2u);
  EXPECT_EQ(pieces[0][0] & 0x0f, 7) << "the first piece keeps every option";
  EXPECT_EQ(pieces[1][0] & 0x0f, 6) << "later pieces only the copied one";
  EXPECT_EQ(pieces[1][20], 0x94);
  EXPECT_EQ(joined(pieces, 1), bytes(whole.begin() + 28, whole.end()));
}

TEST_F(Fragmenting, WhatMayNotBeCutIsLeftAlone) {
  bytes df = udp_packet(false, 1392);
  df[6] = 0x40;
  rte_mbuf* m = test::mbuf_of(df);
  rte_mbuf* pieces[max_pieces];
  EXPECT_EQ(fragment_packet(m, false, 1280, 1, pieces, max_pieces), 0u) << "DF set";
  EXPECT_EQ(test::bytes_of(m), df) << "untouched, still the caller's";
  EXPECT_EQ(fragment_packet(m, false, 1280, 1, pieces, 1), 0u) << "more pieces than room for them";
  rte_pktmbuf_free(m);
  m = test::mbuf_of(udp_packet(true, 1392));
  EXPECT_EQ(fragment_packet(m, true, 1280, 1, pieces, 1), 0u);
  rte_pktmbuf_free(m);
}

// Out through lopower's fragmenting, back through its reassembly: the same
// packet (IPv4 with our identification in place of the sender's).
TEST_F(Fragmenting, PiecesReassembleToThePacket) {
  reassembly_limits limits;
  limits.ledger = {16, 16, 1000};
  reassembler r(limits, 1, SOCKET_ID_ANY);
  const int owner = 0;
  for (bool v6 : {false, true}) {
    const bytes whole = udp_packet(v6, 1392);
    rte_mbuf* pieces[max_pieces];
    const unsigned n = fragment_packet(test::mbuf_of(whole), v6, 1280, 0x777, pieces, max_pieces);
    ASSERT_EQ(n, 2u);
    reassembly_outcome o;
    for (unsigned i = n; i-- > 0;) {  // the last first
      fragment_view f;
      const bytes piece = test::bytes_of(pieces[i]);
      ASSERT_EQ(inspect(piece.data(), static_cast<std::uint16_t>(piece.size()), f), fragment_kind::fragment);
      o = r.add(pieces[i], f, &owner, 0, 1);
    }
    ASSERT_EQ(o.kind, reassembly_outcome::whole) << v6;
    bytes want = whole;
    if (!v6) test::set_ipv4_field(want, 4, 0x777);
    EXPECT_EQ(test::bytes_of(o.packet), want) << v6;
    rte_pktmbuf_free(o.packet);
  }
}

}  // namespace
}  // namespace lopower::fragments
