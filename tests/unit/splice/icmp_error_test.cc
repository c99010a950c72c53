// ICMP errors lopower builds for devices (known answers, quoting limits,
// when none may be sent), and ICMP errors from the tailnet translated back
// to the device they concern.
#include <gtest/gtest.h>

#include <string>

#include "dataplane/splice/translate.h"
#include "tests/unit/splice/packets.h"

namespace lopower::splice {
namespace {

using test::bytes;

std::uint32_t size32(const bytes& p) { return static_cast<std::uint32_t>(p.size()); }

// A device's UDP datagram 10.90.0.2:40000 -> 100.64.0.5:53 with 4 bytes
// of data, and the errors answering it, byte for byte. Computed apart from
// the code under test (a few lines of Python over the RFC layouts).
const bytes original_v4 = {0x45, 0x00, 0x00, 0x20, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x11, 0xaf, 0xe6, 0x0a, 0x5a, 0x00, 0x02,
                           0x64, 0x40, 0x00, 0x05, 0x9c, 0x40, 0x00, 0x35, 0x00, 0x0c, 0x57, 0x22, 0xde, 0xad, 0xbe, 0xef};
const bytes admin_prohibited_v4 = {
    0x45, 0x00, 0x00, 0x3c, 0x00, 0x00, 0x00, 0x00, 0x40, 0x01, 0x66, 0x0b, 0x0a, 0x5a, 0x00, 0x01,  // IPv4, TTL 64
    0x0a, 0x5a, 0x00, 0x02,                                                                          // to the device
    0x03, 0x0d, 0x6b, 0xb1, 0x00, 0x00, 0x00, 0x00,                                                  // 3/13
    0x45, 0x00, 0x00, 0x20, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x11, 0xaf, 0xe6, 0x0a, 0x5a, 0x00, 0x02,  // the whole
    0x64, 0x40, 0x00, 0x05, 0x9c, 0x40, 0x00, 0x35, 0x00, 0x0c, 0x57, 0x22, 0xde, 0xad, 0xbe, 0xef}; // original
const bytes original_v6 = {0x60, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x11, 0x40, 0xfd, 0x7a, 0x11, 0x5c, 0xa1,
                           0xe0, 0x99, 0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0xfd, 0x7a,
                           0x11, 0x5c, 0xa1, 0xe0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                           0x05, 0x9c, 0x40, 0x00, 0x35, 0x00, 0x0c, 0xcb, 0x43, 0xde, 0xad, 0xbe, 0xef};
const bytes packet_too_big_v6 = {
    0x60, 0x00, 0x00, 0x00, 0x00, 0x3c, 0x3a, 0x40,                                                  // ICMPv6, 60 bytes
    0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 0x99, 0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,  // from lopower
    0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 0x99, 0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,  // to the device
    0x02, 0x00, 0xf3, 0xd4, 0x00, 0x00, 0x05, 0x00,                                                  // type 2, MTU 1280
    0x60, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x11, 0x40, 0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 0x99, 0x09, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x05, 0x9c, 0x40, 0x00, 0x35, 0x00, 0x0c, 0xcb, 0x43, 0xde, 0xad, 0xbe, 0xef};

bytes build(const bytes& original, icmp_error_kind kind, std::size_t capacity = 1600, std::uint16_t mtu = 1280,
            const char* from = nullptr) {
  const bool v6 = !original.empty() && test::is_v6(original);
  bytes out(capacity, 0xcc);
  const std::uint16_t n = build_icmp_error(out.data(), out.size(), original.data(), size32(original), kind, mtu,
                                           test::addr(from ? from : test::lopower_device_side(v6)));
  for (std::size_t i = n; i < out.size(); ++i) EXPECT_EQ(out[i], 0xcc) << "wrote past its length at " << i;
  out.resize(n);
  return out;
}

TEST(BuildIcmpError, KnownAnswers) {
  EXPECT_EQ(build(original_v4, icmp_error_kind::admin_prohibited), admin_prohibited_v4);
  EXPECT_EQ(build(original_v6, icmp_error_kind::packet_too_big), packet_too_big_v6);
}

TEST(BuildIcmpError, TypesCodesAndMtuFields) {
  struct expectation {
    icmp_error_kind kind;
    bool v6;
    std::uint8_t type, code;
    bytes rest;  // bytes 4..7
  };
  const expectation cases[] = {
      {icmp_error_kind::admin_prohibited, false, 3, 13, {0, 0, 0, 0}},
      {icmp_error_kind::host_unreachable, false, 3, 1, {0, 0, 0, 0}},
      {icmp_error_kind::packet_too_big, false, 3, 4, {0, 0, 0x04, 0xd8}},  // next-hop MTU 1240
      {icmp_error_kind::admin_prohibited, true, 1, 1, {0, 0, 0, 0}},
      {icmp_error_kind::host_unreachable, true, 1, 3, {0, 0, 0, 0}},
      {icmp_error_kind::packet_too_big, true, 2, 0, {0, 0, 0x04, 0xd8}},
  };
  for (const auto& c : cases) {
    const bytes& original = c.v6 ? original_v6 : original_v4;
    const bytes e = build(original, c.kind, 1600, 1240);
    const std::string what = std::to_string(c.type) + "/" + std::to_string(c.code);
    ASSERT_EQ(e.size(), (c.v6 ? 48 : 28) + original.size()) << what;
    const std::size_t icmp = test::l4_at(e);
    EXPECT_EQ(e[icmp], c.type) << what;
    EXPECT_EQ(e[icmp + 1], c.code) << what;
    EXPECT_EQ(bytes(e.begin() + static_cast<std::ptrdiff_t>(icmp + 4), e.begin() + static_cast<std::ptrdiff_t>(icmp + 8)),
              c.rest)
        << what;
    EXPECT_TRUE(test::l4_checksum_ok(e)) << what;
    EXPECT_TRUE(test::ip_checksum_ok(e)) << what;
    EXPECT_EQ(0, std::memcmp(&e[icmp + 8], original.data(), original.size())) << what;
    // Re-parsed: a whole packet from lopower to the device, and the quote
    // names the original's flow.
    const auto info = parse_ip(e.data(), size32(e));
    ASSERT_TRUE(info) << what;
    EXPECT_EQ(info->length, e.size());
    EXPECT_EQ(info->protocol, c.v6 ? 58 : 1);
    EXPECT_EQ(0, std::memcmp(&e[test::dst_at(e)], &original[test::src_at(original)], c.v6 ? 16 : 4)) << what;
    flow_key quoted{}, sent{};
    ASSERT_EQ(quoted_flow_key(e.data(), size32(e), quoted), translate_status::ok) << what;
    ASSERT_EQ(flow_key_of(original.data(), size32(original), sent), translate_status::ok);
    EXPECT_EQ(quoted, sent) << what;
  }
}

TEST(BuildIcmpError, QuotesUpTo576BytesForIpv4And1280ForIpv6) {
  for (bool v6 : {false, true}) {
    const bytes big = test::ip_packet(v6, 17, test::device_addr(v6), test::peer_addr(v6), test::udp_datagram(40000, 53, 1400));
    const bytes e = build(big, icmp_error_kind::packet_too_big);
    EXPECT_EQ(e.size(), v6 ? 1280u : 576u);
    EXPECT_EQ(test::ip_length(e), e.size());
    const std::size_t quote = test::l4_at(e) + 8;
    EXPECT_EQ(0, std::memcmp(&e[quote], big.data(), e.size() - quote));
    EXPECT_TRUE(test::l4_checksum_ok(e));
    EXPECT_TRUE(test::ip_checksum_ok(e));
  }
}

TEST(BuildIcmpError, QuotesNoMoreThanTheBufferHoldsAndAtLeastHeaderPlus8) {
  const bytes big = test::ip_packet(false, 6, "10.90.0.2", "100.64.0.5", test::tcp_segment(40000, 443, 0x10, {}, 300));
  const bytes e = build(big, icmp_error_kind::host_unreachable, 20 + 8 + 20 + 8 + 5);
  ASSERT_EQ(e.size(), 61u);
  EXPECT_TRUE(test::l4_checksum_ok(e));
  EXPECT_TRUE(build(big, icmp_error_kind::host_unreachable, 20 + 8 + 20 + 7).empty());  // not even the ports
  EXPECT_TRUE(build(big, icmp_error_kind::host_unreachable, 10).empty());
  // A packet shorter than header + 8 is quoted whole.
  const bytes tiny = test::ip_packet(false, 47, "10.90.0.2", "100.64.0.5", bytes{1, 2, 3});
  const bytes t = build(tiny, icmp_error_kind::admin_prohibited);
  EXPECT_EQ(t.size(), 28u + tiny.size());
  // Padding after the original's own length is not quoted.
  bytes padded = original_v4;
  padded.resize(48, 0);
  EXPECT_EQ(build(padded, icmp_error_kind::admin_prohibited), admin_prohibited_v4);
}

TEST(BuildIcmpError, NoErrorAboutAnError) {
  for (bool v6 : {false, true}) {
    const bytes error = test::icmp_error_packet(v6, test::device_addr(v6), test::peer_addr(v6), v6 ? 1 : 3, 3, 0,
                                                original_v4);
    EXPECT_TRUE(build(error, icmp_error_kind::admin_prohibited).empty()) << v6;
    const bytes echo = test::ip_packet(v6, v6 ? 58 : 1, test::device_addr(v6), test::peer_addr(v6),
                                       test::icmp_echo(v6, true, 1, 8));
    EXPECT_FALSE(build(echo, icmp_error_kind::admin_prohibited).empty()) << v6;
  }
  bytes unknown = test::ip_packet(false, 1, "10.90.0.2", "100.64.0.5", test::icmp_echo(false, true, 1, 8));
  unknown[20] = 42;  // not a query type Linux knows: treated as an error
  EXPECT_TRUE(build(unknown, icmp_error_kind::admin_prohibited).empty());
  bytes redirect = test::ip_packet(true, 58, test::device_addr(true), test::peer_addr(true), test::icmp_echo(true, true, 1, 8));
  redirect[40] = 137;
  EXPECT_TRUE(build(redirect, icmp_error_kind::admin_prohibited).empty());
  // An ICMPv6 error behind a destination options header is still an error.
  bytes behind = test::ip_packet(true, 60, test::device_addr(true), test::peer_addr(true),
                                 bytes{58, 0, 1, 4, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0});
  EXPECT_TRUE(build(behind, icmp_error_kind::admin_prohibited).empty());
  behind[48] = 128;  // an echo request there is answered
  EXPECT_FALSE(build(behind, icmp_error_kind::admin_prohibited).empty());
}

TEST(BuildIcmpError, NoErrorAboutFragmentsButTheFirst) {
  bytes first = original_v4;
  first[6] = 0x20;  // MF, offset 0
  EXPECT_FALSE(build(first, icmp_error_kind::admin_prohibited).empty());
  bytes later = original_v4;
  later[6] = 0x00;
  later[7] = 0x08;
  EXPECT_TRUE(build(later, icmp_error_kind::admin_prohibited).empty());
  const bytes v6_later = test::ip_packet(true, 44, test::device_addr(true), test::peer_addr(true),
                                         bytes{17, 0, 0x00, 0x10, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8});
  EXPECT_TRUE(build(v6_later, icmp_error_kind::admin_prohibited).empty());
  const bytes v6_first = test::ip_packet(true, 44, test::device_addr(true), test::peer_addr(true),
                                         bytes{17, 0, 0x00, 0x01, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8});
  EXPECT_FALSE(build(v6_first, icmp_error_kind::admin_prohibited).empty());
}

TEST(BuildIcmpError, NoErrorToWhatIsNotOneHost) {
  for (const char* src : {"0.0.0.0", "0.1.2.3", "127.0.0.1", "224.0.0.1", "255.255.255.255", "240.0.0.1"}) {
    const bytes p = test::ip_packet(false, 17, src, "100.64.0.5", test::udp_datagram(1, 2, 3));
    EXPECT_TRUE(build(p, icmp_error_kind::admin_prohibited).empty()) << src;
  }
  for (const char* dst : {"224.0.0.251", "255.255.255.255"}) {
    const bytes p = test::ip_packet(false, 17, "10.90.0.2", dst, test::udp_datagram(1, 2, 3));
    EXPECT_TRUE(build(p, icmp_error_kind::admin_prohibited).empty()) << dst;
  }
  for (const char* src : {"::", "::1", "ff02::1"}) {
    const bytes p = test::ip_packet(true, 17, src, test::peer_addr(true), test::udp_datagram(1, 2, 3));
    EXPECT_TRUE(build(p, icmp_error_kind::admin_prohibited).empty()) << src;
  }
  const bytes to_multicast = test::ip_packet(true, 17, test::device_addr(true), "ff02::fb", test::udp_datagram(1, 2, 3));
  EXPECT_TRUE(build(to_multicast, icmp_error_kind::admin_prohibited).empty());
  EXPECT_FALSE(build(to_multicast, icmp_error_kind::packet_too_big).empty());  // RFC 4443 §2.4 (e.3)
}

TEST(BuildIcmpError, RefusesMalformedOriginalsAndTheWrongFamily) {
  EXPECT_TRUE(build(original_v4, icmp_error_kind::admin_prohibited, 1600, 1280, "fd7a:115c:a1e0:9909::1").empty());
  EXPECT_TRUE(build(original_v6, icmp_error_kind::admin_prohibited, 1600, 1280, "10.90.0.1").empty());
  bytes bad = original_v4;
  bad[3] = 0x40;  // total length beyond the data
  EXPECT_TRUE(build(bad, icmp_error_kind::admin_prohibited).empty());
  for (std::size_t n = 0; n < original_v6.size(); ++n) {
    const bytes cut(original_v6.begin(), original_v6.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_TRUE(build(cut, icmp_error_kind::admin_prohibited, 1600, 1280, "fd7a:115c:a1e0:9909::1").empty()) << n;
  }
}

}  // namespace
}  // namespace lopower::splice

// ---- ICMP errors from the tailnet -------------------------------------------------

namespace lopower::splice {
namespace {

constexpr std::uint16_t device_port = 40000, mapped_port = 5000;

// What the device sent, and that packet as it left for the tailnet.
struct sent_pair {
  bytes device;
  bytes tailnet;
};

sent_pair sent(bool v6, std::uint8_t proto, std::size_t payload = 20) {
  bytes l4;
  if (proto == 6) l4 = test::tcp_segment(device_port, 443, tcp_flag::syn, {2, 4, 0x04, 0xd8}, payload);
  if (proto == 17) l4 = test::udp_datagram(device_port, 53, payload);
  if (proto == 1 || proto == 58) l4 = test::icmp_echo(v6, true, device_port, payload);
  sent_pair s;
  s.device = test::ip_packet(v6, proto, test::device_addr(v6), test::peer_addr(v6), l4);
  s.tailnet = s.device;
  EXPECT_EQ(rewrite_source(s.tailnet.data(), size32(s.tailnet), test::addr(test::lopower_tailnet(v6)), mapped_port),
            translate_status::ok);
  return s;
}

bytes prefix(const bytes& b, std::size_t n) { return bytes(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(std::min(n, b.size()))); }

// The error from the peer (or a router) to lopower's tailnet address.
bytes from_tailnet(bool v6, std::uint8_t type, std::uint8_t code, const bytes& quote, std::uint32_t rest = 0) {
  return test::icmp_error_packet(v6, test::peer_addr(v6), test::lopower_tailnet(v6), type, code, rest, quote);
}

void expect_delivered(bytes e, const bytes& device_packet, std::size_t quote_len, const std::string& what) {
  const bool v6 = test::is_v6(e);
  flow_key quoted{};
  ASSERT_EQ(quoted_flow_key(e.data(), size32(e), quoted), translate_status::ok) << what;
  EXPECT_EQ(quoted.src_port, mapped_port) << what;
  EXPECT_EQ(quoted.family, v6 ? ip_family::v6 : ip_family::v4);
  ASSERT_EQ(translate_icmp_error_inner(e.data(), size32(e), test::addr(test::device_addr(v6)), device_port),
            translate_status::ok)
      << what;
  // Outer: to the device now, from the same reporter, checksums recomputed.
  bytes device_address(v6 ? 16 : 4);
  test::set_address(device_address.data(), v6, test::device_addr(v6));
  EXPECT_EQ(0, std::memcmp(&e[test::dst_at(e)], device_address.data(), device_address.size())) << what;
  EXPECT_EQ(test::l4_checksum(e), test::full_l4_checksum(e)) << what;
  EXPECT_TRUE(test::l4_checksum_ok(e)) << what;
  if (!v6) {
    EXPECT_EQ(test::be16(&e[10]), test::full_ip_checksum(e)) << what;
  }
  // Inner: exactly what the device sent, as far as it is quoted (its IP
  // header checksum and, when quoted, its L4 checksum included).
  const std::size_t quote_at = test::l4_at(e) + 8;
  ASSERT_EQ(e.size() - quote_at, quote_len) << what;
  EXPECT_EQ(prefix(bytes(e.begin() + static_cast<std::ptrdiff_t>(quote_at), e.end()), quote_len),
            prefix(device_packet, quote_len))
      << what;
}

TEST(TranslateIcmpError, WholeQuotesOfEveryProtocolAndFamily) {
  for (bool v6 : {false, true})
    for (std::uint8_t proto : {std::uint8_t{6}, std::uint8_t{17}, static_cast<std::uint8_t>(v6 ? 58 : 1)})
      for (std::size_t payload : {0u, 1u, 20u, 101u}) {
        const sent_pair s = sent(v6, proto, payload);
        const bytes e = from_tailnet(v6, v6 ? 1 : 3, v6 ? 4 : 3, s.tailnet);
        expect_delivered(e, s.device, s.device.size(),
                         std::to_string(proto) + (v6 ? " v6 " : " v4 ") + std::to_string(payload));
      }
}

TEST(TranslateIcmpError, QuotesCutShortAfterEightBytes) {
  // RFC 792 routers quote the IP header and 8 bytes: no TCP checksum then.
  for (bool v6 : {false, true})
    for (std::uint8_t proto : {std::uint8_t{6}, std::uint8_t{17}, static_cast<std::uint8_t>(v6 ? 58 : 1)})
      for (std::size_t extra : {8u, 12u, 16u, 18u, 19u}) {
        const sent_pair s = sent(v6, proto);
        const std::size_t n = (v6 ? 40 : 20) + extra;
        const bytes e = from_tailnet(v6, v6 ? 3 : 11, 0, prefix(s.tailnet, n));  // time exceeded
        expect_delivered(e, s.device, n, std::to_string(proto) + (v6 ? " v6 cut " : " v4 cut ") + std::to_string(extra));
      }
}

TEST(TranslateIcmpError, HalfATcpChecksumQuotedIsLeftAsItIs) {
  // 17 bytes of TCP: the checksum's first byte alone cannot be updated.
  for (bool v6 : {false, true}) {
    const sent_pair s = sent(v6, 6);
    const std::size_t n = (v6 ? 40 : 20) + 17;
    bytes e = from_tailnet(v6, 1, 0, prefix(s.tailnet, n));
    if (!v6) e = from_tailnet(v6, 3, 1, prefix(s.tailnet, n));
    ASSERT_EQ(translate_icmp_error_inner(e.data(), size32(e), test::addr(test::device_addr(v6)), device_port),
              translate_status::ok);
    EXPECT_TRUE(test::l4_checksum_ok(e));
    EXPECT_TRUE(test::ip_checksum_ok(e));
    const std::size_t quote_at = test::l4_at(e) + 8;
    EXPECT_EQ(e[quote_at + n - 1], s.tailnet[n - 1]);  // as the tailnet saw it
    EXPECT_EQ(prefix(bytes(e.begin() + static_cast<std::ptrdiff_t>(quote_at), e.end()), n - 1), prefix(s.device, n - 1));
  }
}

TEST(TranslateIcmpError, PacketTooBigKeepsItsMtu) {
  const sent_pair s4 = sent(false, 17, 1300);
  bytes e4 = from_tailnet(false, 3, 4, prefix(s4.tailnet, 548), 1200);
  expect_delivered(e4, s4.device, 548, "frag needed");
  EXPECT_EQ(test::be16(&e4[20 + 6]), 1200);
  const sent_pair s6 = sent(true, 17, 1300);
  bytes e6 = from_tailnet(true, 2, 0, prefix(s6.tailnet, 1232), 1280);
  expect_delivered(e6, s6.device, 1232, "packet too big");
  EXPECT_EQ(test::be16(&e6[40 + 6]), 1280);
}

TEST(TranslateIcmpError, QuotedUdpWithoutChecksumStaysWithout) {
  bytes device = test::ip_packet(false, 17, "10.90.0.2", "100.64.0.5", test::udp_datagram(device_port, 53, 9), {}, true);
  bytes tailnet = device;
  ASSERT_EQ(rewrite_source(tailnet.data(), size32(tailnet), test::addr("100.64.0.1"), mapped_port), translate_status::ok);
  const bytes e = from_tailnet(false, 3, 3, tailnet);
  expect_delivered(e, device, device.size(), "udp without checksum");
}

TEST(TranslateIcmpError, TheQuotedKeyReversedIsTheFlowsReplyKey) {
  const sent_pair s = sent(true, 6);
  const bytes e = from_tailnet(true, 1, 4, s.tailnet);
  flow_key quoted{};
  ASSERT_EQ(quoted_flow_key(e.data(), size32(e), quoted), translate_status::ok);
  bytes reply = test::ip_packet(true, 6, test::peer_addr(true), test::lopower_tailnet(true),
                                test::tcp_segment(443, mapped_port, tcp_flag::syn | tcp_flag::ack));
  flow_key reply_key{};
  ASSERT_EQ(flow_key_of(reply.data(), size32(reply), reply_key), translate_status::ok);
  EXPECT_EQ(quoted.reverse(), reply_key);
}

void expect_refused(bytes e, translate_status expected, const std::string& what, const char* device = nullptr) {
  const bytes before = e;
  const bool v6 = test::is_v6(e);
  EXPECT_EQ(translate_icmp_error_inner(e.data(), size32(e), test::addr(device ? device : test::device_addr(v6)),
                                       device_port),
            expected)
      << what;
  EXPECT_EQ(e, before) << what;
  flow_key k{};
  if (expected != translate_status::family_mismatch) {
    EXPECT_EQ(quoted_flow_key(e.data(), size32(e), k), expected) << what;
  }
}

TEST(TranslateIcmpError, RefusesWhatIsNotAnErrorAboutACarriedFlow) {
  const sent_pair s = sent(false, 17);
  expect_refused(from_tailnet(false, 3, 3, s.tailnet), translate_status::family_mismatch, "v6 device for v4",
                 "fd7a:115c:a1e0:9909::2");
  const bytes echo = test::ip_packet(false, 1, "100.64.0.5", "100.64.0.1", test::icmp_echo(false, false, 1, 30));
  expect_refused(echo, translate_status::unsupported, "an echo reply is not an error");
  expect_refused(test::ip_packet(false, 17, "100.64.0.5", "100.64.0.1", test::udp_datagram(1, 2, 40)),
                 translate_status::unsupported, "not ICMP");
  expect_refused(from_tailnet(false, 5, 0, s.tailnet), translate_status::unsupported, "redirect");
  expect_refused(from_tailnet(false, 3, 3, prefix(s.tailnet, 27)), translate_status::malformed, "7 bytes of UDP");
  expect_refused(from_tailnet(false, 3, 3, prefix(s.tailnet, 19)), translate_status::malformed, "IP header cut");
  expect_refused(from_tailnet(false, 3, 3, {}), translate_status::malformed, "empty quote");
  const sent_pair s6 = sent(true, 17);
  expect_refused(from_tailnet(false, 3, 3, s6.tailnet), translate_status::malformed, "v6 quoted in v4");
  expect_refused(from_tailnet(true, 1, 3, s.tailnet), translate_status::malformed, "v4 quoted in v6");
  bytes later = s.tailnet;
  later[7] = 0x08;  // fragment offset 64
  expect_refused(from_tailnet(false, 3, 3, later), translate_status::fragment, "non-first fragment quoted");
  const bytes gre = test::ip_packet(false, 47, "100.64.0.1", "100.64.0.5", bytes(8, 0));
  expect_refused(from_tailnet(false, 3, 2, gre), translate_status::unsupported, "GRE quoted");
  const bytes quoted_error = test::icmp_error_packet(false, "100.64.0.1", "100.64.0.5", 3, 3, 0, prefix(s.tailnet, 28));
  expect_refused(from_tailnet(false, 3, 3, quoted_error), translate_status::unsupported, "an error quoting an error");
  bytes outer_fragment = from_tailnet(false, 3, 3, s.tailnet);
  outer_fragment[6] = 0x20;
  expect_refused(outer_fragment, translate_status::fragment, "outer fragment");
  bytes ihl_past = from_tailnet(false, 3, 3, s.tailnet);
  ihl_past[28] = 0x4f;  // quoted IHL 60: past the quote's 8 bytes of UDP
  expect_refused(ihl_past, translate_status::malformed, "quoted IHL beyond the quote");
}

TEST(TranslateIcmpError, EveryTruncationStaysWithinBounds) {
  for (bool v6 : {false, true}) {
    const sent_pair s = sent(v6, 6);
    const bytes whole = from_tailnet(v6, v6 ? 1 : 3, 3, s.tailnet);
    for (std::size_t n = 0; n <= whole.size(); ++n) {
      bytes cut(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(n));
      flow_key k{};
      EXPECT_EQ(quoted_flow_key(cut.data(), static_cast<std::uint32_t>(n), k) == translate_status::ok, n == whole.size());
      (void)translate_icmp_error_inner(cut.data(), static_cast<std::uint32_t>(n), test::addr(test::device_addr(v6)),
                                       device_port);
    }
  }
}

}  // namespace
}  // namespace lopower::splice
