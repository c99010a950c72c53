// MSS clamping (the option at every position, absent, malformed) and the
// TCP state tracker with its timeouts.
#include <gtest/gtest.h>

#include <string>

#include "dataplane/splice/translate.h"
#include "tests/unit/splice/packets.h"

namespace lopower::splice {
namespace {

using test::bytes;

constexpr std::uint8_t syn = tcp_flag::syn, ack = tcp_flag::ack, fin = tcp_flag::fin, rst = tcp_flag::rst;

bytes syn_with_options(bool v6, const bytes& options, std::uint8_t flags = syn, std::size_t payload = 0) {
  return test::ip_packet(v6, 6, test::device_addr(v6), test::peer_addr(v6),
                         test::tcp_segment(40000, 443, flags, options, payload));
}

std::uint32_t size32(const bytes& p) { return static_cast<std::uint32_t>(p.size()); }
std::uint16_t mss_at(const bytes& p, std::size_t option_offset) { return test::be16(&p[test::l4_at(p) + option_offset + 2]); }

void expect_checksum_recomputed(const bytes& p, const std::string& what) {
  EXPECT_EQ(test::l4_checksum(p), test::full_l4_checksum(p)) << what;
  EXPECT_TRUE(test::l4_checksum_ok(p)) << what;
}

TEST(ClampMss, MaxMssForTheTailnetMtu) {
  EXPECT_EQ(max_mss_for_mtu(ip_family::v4, tailnet_mtu), 1240);
  EXPECT_EQ(max_mss_for_mtu(ip_family::v6, tailnet_mtu), 1220);
  EXPECT_EQ(max_mss_for_mtu(ip_family::v4, 1500), 1460);
}

// The MSS option after 0 to 3 NOPs and after other options, so its value
// sits at both even and odd offsets.
TEST(ClampMss, OptionAtEveryPosition) {
  const bytes mss = {2, 4, 0x05, 0xb4};  // 1460
  const std::vector<bytes> before_mss = {
      {},
      {1},
      {1, 1},
      {1, 1, 1},
      {4, 2},                                          // SACK permitted
      {3, 3, 7},                                       // window scale
      {8, 10, 1, 2, 3, 4, 5, 6, 7, 8},                 // timestamps
      {1, 3, 3, 7, 4, 2, 8, 10, 9, 9, 9, 9, 0, 0, 0, 0},
  };
  for (bool v6 : {false, true})
    for (const bytes& prefix : before_mss) {
      bytes options = prefix;
      options.insert(options.end(), mss.begin(), mss.end());
      while (options.size() % 4) options.push_back(1);  // NOP padding after
      bytes p = syn_with_options(v6, options);
      const std::string what = (v6 ? "v6 prefix " : "v4 prefix ") + std::to_string(prefix.size());
      const std::uint16_t max = max_mss_for_mtu(v6 ? ip_family::v6 : ip_family::v4, tailnet_mtu);
      EXPECT_TRUE(clamp_tcp_mss(p.data(), size32(p), max)) << what;
      EXPECT_EQ(mss_at(p, 20 + prefix.size()), max) << what;
      expect_checksum_recomputed(p, what);
      EXPECT_FALSE(clamp_tcp_mss(p.data(), size32(p), max)) << what << ": idempotent";
    }
}

TEST(ClampMss, SynAckAndSegmentsWithDataToo) {
  bytes p = syn_with_options(false, {2, 4, 0x23, 0x28}, syn | ack, 13);  // MSS 9000, odd payload
  EXPECT_TRUE(clamp_tcp_mss(p.data(), size32(p), 1240));
  EXPECT_EQ(mss_at(p, 20), 1240);
  expect_checksum_recomputed(p, "syn-ack");
}

TEST(ClampMss, LeavesSmallerMssAndNonSynAlone) {
  bytes small = syn_with_options(false, {2, 4, 0x02, 0x18});  // 536
  const bytes small_before = small;
  EXPECT_FALSE(clamp_tcp_mss(small.data(), size32(small), 1240));
  EXPECT_EQ(small, small_before);
  bytes equal = syn_with_options(true, {2, 4, 0x04, 0xc4});  // 1220
  const bytes equal_before = equal;
  EXPECT_FALSE(clamp_tcp_mss(equal.data(), size32(equal), 1220));
  EXPECT_EQ(equal, equal_before);
  bytes not_syn = syn_with_options(false, {2, 4, 0x05, 0xb4}, ack);
  const bytes not_syn_before = not_syn;
  EXPECT_FALSE(clamp_tcp_mss(not_syn.data(), size32(not_syn), 1240));
  EXPECT_EQ(not_syn, not_syn_before);
  bytes udp = test::ip_packet(false, 17, "10.90.0.2", "100.64.0.5", test::udp_datagram(1, 2, 30));
  udp[20 + 13] = syn;  // a SYN-looking byte in a UDP payload
  const bytes udp_before = udp;
  EXPECT_FALSE(clamp_tcp_mss(udp.data(), size32(udp), 100));
  EXPECT_EQ(udp, udp_before);
}

TEST(ClampMss, AbsentOptionNeedsNothing) {
  for (const bytes& options : {bytes{}, bytes{1, 1, 1, 0}, bytes{4, 2, 3, 3, 7, 1, 1, 1}}) {
    bytes p = syn_with_options(false, options);
    const bytes before = p;
    EXPECT_FALSE(clamp_tcp_mss(p.data(), size32(p), 1240));
    EXPECT_EQ(p, before);
  }
}

TEST(ClampMss, MalformedOptionListsStopTheWalk) {
  const std::vector<std::pair<bytes, std::string>> cases = {
      {{0, 1, 1, 1, 2, 4, 0x05, 0xb4}, "MSS after end of list"},
      {{99, 0, 1, 1, 2, 4, 0x05, 0xb4}, "option length 0"},
      {{99, 1, 1, 1, 2, 4, 0x05, 0xb4}, "option length 1"},
      {{99, 40, 1, 1, 2, 4, 0x05, 0xb4}, "option length past the header"},
      {{1, 1, 1, 2}, "kind without a length byte at the end"},
      {{1, 1, 2, 4, 0x05, 0xb4, 0, 0}, "MSS past the data offset"},
  };
  for (const auto& [options, what] : cases) {
    bytes p = syn_with_options(false, options);
    if (what == "MSS past the data offset") p[20 + 12] = 0x60;  // 24-byte header: the MSS value is cut
    if (what == "MSS past the data offset") {
      // Re-make the checksum for the changed data offset.
      test::put16(&p[20 + 16], test::full_l4_checksum(p));
    }
    const bytes before = p;
    EXPECT_FALSE(clamp_tcp_mss(p.data(), size32(p), 1240)) << what;
    EXPECT_EQ(p, before) << what;
  }
}

TEST(ClampMss, AnMssOfTheWrongLengthIsSkippedLikeReceiversDo) {
  bytes p = syn_with_options(false, {2, 3, 0x09, 2, 4, 0x05, 0xb4, 1});
  EXPECT_TRUE(clamp_tcp_mss(p.data(), size32(p), 1240));
  EXPECT_EQ(p[test::l4_at(p) + 22], 0x09);  // the malformed one untouched
  EXPECT_EQ(mss_at(p, 23), 1240);
  expect_checksum_recomputed(p, "after a 3-byte MSS");
}

TEST(ClampMss, EveryMssOptionIsClamped) {
  bytes p = syn_with_options(true, {2, 4, 0x05, 0xb4, 1, 2, 4, 0x23, 0x28, 1, 1, 1});
  EXPECT_TRUE(clamp_tcp_mss(p.data(), size32(p), 1220));
  EXPECT_EQ(mss_at(p, 20), 1220);
  EXPECT_EQ(mss_at(p, 25), 1220);
  expect_checksum_recomputed(p, "two MSS options");
}

TEST(TcpFlags, ReadFromTheSegment) {
  bytes p = syn_with_options(false, {}, syn | ack);
  auto info = parse_ip(p.data(), size32(p));
  ASSERT_TRUE(info);
  EXPECT_EQ(tcp_flags(p.data(), *info), syn | ack);
  bytes udp = test::ip_packet(false, 17, "10.90.0.2", "100.64.0.5", test::udp_datagram(1, 2, 30));
  EXPECT_EQ(tcp_flags(udp.data(), *parse_ip(udp.data(), size32(udp))), 0);
  bytes short_tcp = test::ip_packet(false, 6, "10.90.0.2", "100.64.0.5", bytes(13, 0xff));
  EXPECT_EQ(tcp_flags(short_tcp.data(), *parse_ip(short_tcp.data(), size32(short_tcp))), 0);
}

TEST(TcpState, OnlyABareSynOpensAFlow) {
  EXPECT_TRUE(opens_tcp_flow(syn));
  EXPECT_TRUE(opens_tcp_flow(syn | tcp_flag::psh));
  EXPECT_FALSE(opens_tcp_flow(syn | ack));
  EXPECT_FALSE(opens_tcp_flow(ack));
  EXPECT_FALSE(opens_tcp_flow(syn | rst));
  EXPECT_FALSE(opens_tcp_flow(syn | fin));
}

constexpr auto orig = flow_direction::original, reply = flow_direction::reply;

TEST(TcpState, ANormalConnection) {
  tcp_state s = tcp_state::syn_sent;
  s = next_state(s, syn, orig);  // retransmitted SYN
  EXPECT_EQ(s, tcp_state::syn_sent);
  s = next_state(s, syn | ack, reply);
  EXPECT_EQ(s, tcp_state::established);
  s = next_state(s, ack, orig);
  EXPECT_EQ(s, tcp_state::established);
  s = next_state(s, fin | ack, orig);
  EXPECT_EQ(s, tcp_state::fin_wait_original);
  s = next_state(s, fin | ack, orig);  // retransmitted: still one side
  EXPECT_EQ(s, tcp_state::fin_wait_original);
  s = next_state(s, ack, reply);  // half-closed: the other side still sends
  EXPECT_EQ(s, tcp_state::fin_wait_original);
  s = next_state(s, fin | ack, reply);
  EXPECT_EQ(s, tcp_state::closed);
  s = next_state(s, ack, orig);  // the last ACK
  EXPECT_EQ(s, tcp_state::closed);
}

TEST(TcpState, ThePeerClosesFirst) {
  tcp_state s = next_state(tcp_state::established, fin | ack, reply);
  EXPECT_EQ(s, tcp_state::fin_wait_reply);
  EXPECT_EQ(next_state(s, fin, reply), tcp_state::fin_wait_reply);
  EXPECT_EQ(next_state(s, fin | ack, orig), tcp_state::closed);
}

TEST(TcpState, ResetClosesFromAnyState) {
  for (tcp_state s : {tcp_state::syn_sent, tcp_state::established, tcp_state::fin_wait_original,
                      tcp_state::fin_wait_reply, tcp_state::closed})
    for (flow_direction d : {orig, reply}) {
      EXPECT_EQ(next_state(s, rst, d), tcp_state::closed) << to_string(s);
      EXPECT_EQ(next_state(s, rst | ack, d), tcp_state::closed) << to_string(s);
    }
}

TEST(TcpState, OnlyTheReplySidesSynAckEstablishes) {
  EXPECT_EQ(next_state(tcp_state::syn_sent, syn | ack, orig), tcp_state::syn_sent);
  EXPECT_EQ(next_state(tcp_state::syn_sent, syn, reply), tcp_state::syn_sent);  // simultaneous open: wait
  EXPECT_EQ(next_state(tcp_state::syn_sent, ack, reply), tcp_state::syn_sent);
}

TEST(TcpState, ABareSynFromTheOriginalSideReopensAClosedFlow) {
  EXPECT_EQ(next_state(tcp_state::closed, syn, orig), tcp_state::syn_sent);
  EXPECT_EQ(next_state(tcp_state::closed, syn, reply), tcp_state::closed);
  EXPECT_EQ(next_state(tcp_state::closed, syn | ack, orig), tcp_state::closed);
  EXPECT_EQ(next_state(tcp_state::closed, ack, orig), tcp_state::closed);
}

TEST(Timeouts, ByProtocolAndState) {
  EXPECT_EQ(tcp_timeout(tcp_state::syn_sent), 30u);
  EXPECT_EQ(tcp_timeout(tcp_state::established), 7440u);  // RFC 5382: 2 h 4 min
  EXPECT_EQ(tcp_timeout(tcp_state::fin_wait_original), 240u);
  EXPECT_EQ(tcp_timeout(tcp_state::fin_wait_reply), 240u);
  EXPECT_EQ(tcp_timeout(tcp_state::closed), 10u);
  EXPECT_EQ(idle_timeout(6, 443, tcp_state::established), 7440u);
  EXPECT_EQ(idle_timeout(17, 443, tcp_state::syn_sent), 120u);  // RFC 4787: at least 2 min
  EXPECT_EQ(idle_timeout(17, 53, tcp_state::syn_sent), 30u);
  EXPECT_EQ(idle_timeout(1, 0, tcp_state::syn_sent), 60u);  // RFC 5508: at least 60 s
  EXPECT_EQ(idle_timeout(58, 0, tcp_state::syn_sent), 60u);
}

TEST(Timeouts, IdleTimeIsNeverNegative) {
  constexpr std::uint64_t hz = 2'000'000'000;
  EXPECT_EQ(seconds_since(0, 3 * hz, hz), 3u);
  EXPECT_EQ(seconds_since(hz, hz + hz - 1, hz), 0u);
  // Stamped by a worker after the expiry walk read the clock: not idle, and
  // above all not idle for 2^64 ticks (the flow would expire mid-transfer).
  EXPECT_EQ(seconds_since(5 * hz + 7, 5 * hz, hz), 0u);
  EXPECT_LT(seconds_since(5 * hz + 7, 5 * hz, hz), idle_timeout(6, 443, tcp_state::closed));
}

}  // namespace
}  // namespace lopower::splice
