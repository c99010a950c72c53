// Source/destination rewrites, flow keys and parsing: every rewritten
// checksum is compared with a full recomputation by the tests' own RFC 1071
// code (packets.h), in both families, for TCP, UDP and ICMP echo.
#include "dataplane/splice/translate.h"

#include <gtest/gtest.h>

#include <string>

#include "tests/unit/splice/packets.h"

namespace lopower::splice {
namespace {

using test::bytes;

constexpr std::uint16_t device_port = 40000, service_port = 443, mapped_port = 5000;

std::uint32_t size32(const bytes& p) { return static_cast<std::uint32_t>(p.size()); }

enum class proto { tcp, udp, icmp };
std::string name(proto p) { return p == proto::tcp ? "tcp" : p == proto::udp ? "udp" : "icmp"; }

// A packet from the device to the peer (`to_device`: from the peer to
// lopower's tailnet address and the mapped port, as a reply arrives).
bytes flow_packet(bool v6, proto pr, std::size_t payload, bool to_device = false) {
  const char* src = to_device ? test::peer_addr(v6) : test::device_addr(v6);
  const char* dst = to_device ? test::lopower_tailnet(v6) : test::peer_addr(v6);
  const std::uint16_t sport = to_device ? service_port : device_port;
  const std::uint16_t dport = to_device ? mapped_port : service_port;
  switch (pr) {
    case proto::tcp:
      return test::ip_packet(v6, 6, src, dst, test::tcp_segment(sport, dport, tcp_flag::ack, {}, payload));
    case proto::udp: return test::ip_packet(v6, 17, src, dst, test::udp_datagram(sport, dport, payload));
    case proto::icmp:
      return test::ip_packet(v6, v6 ? 58 : 1, src, dst,
                             test::icmp_echo(v6, !to_device, to_device ? mapped_port : device_port, payload));
  }
  return {};
}

std::size_t port_offset(const bytes& p, bool source) {
  const std::size_t l4 = test::l4_at(p);
  if (test::protocol(p) == 1 || test::protocol(p) == 58) return l4 + 4;  // identifier
  return l4 + (source ? 0 : 2);
}

// The checksums after a rewrite: exactly what a full recomputation gives,
// and they verify.
void expect_checksums_recomputed(const bytes& p, const std::string& what) {
  EXPECT_EQ(test::l4_checksum(p), test::full_l4_checksum(p)) << what;
  EXPECT_TRUE(test::l4_checksum_ok(p)) << what;
  if (!test::is_v6(p)) {
    EXPECT_EQ(test::be16(&p[10]), test::full_ip_checksum(p)) << what;
    EXPECT_TRUE(test::ip_checksum_ok(p)) << what;
  }
}

TEST(RewriteSource, EveryProtocolAndFamilyAtOddAndEvenLengths) {
  for (bool v6 : {false, true})
    for (proto pr : {proto::tcp, proto::udp, proto::icmp})
      for (std::size_t payload : {0u, 1u, 7u, 64u, 333u, 1001u, 1232u}) {
        const std::string what = name(pr) + (v6 ? "6 " : "4 ") + std::to_string(payload);
        bytes p = flow_packet(v6, pr, payload);
        const bytes before = p;
        ASSERT_EQ(rewrite_source(p.data(), size32(p), test::addr(test::lopower_tailnet(v6)), mapped_port),
                  translate_status::ok)
            << what;
        bytes expected_src(test::address_size(p));
        test::set_address(expected_src.data(), v6, test::lopower_tailnet(v6));
        EXPECT_EQ(0, std::memcmp(&p[test::src_at(p)], expected_src.data(), expected_src.size())) << what;
        EXPECT_EQ(test::be16(&p[port_offset(p, true)]), mapped_port) << what;
        expect_checksums_recomputed(p, what);
        // Nothing else moved: destination, other ports, payload.
        bytes masked = p, masked_before = before;
        for (bytes* b : {&masked, &masked_before}) {
          std::memset(&(*b)[test::src_at(p)], 0, test::address_size(p));
          test::put16(&(*b)[port_offset(p, true)], 0);
          test::put16(&(*b)[test::l4_at(p) + test::l4_checksum_offset(test::protocol(p))], 0);
          if (!v6) test::put16(&(*b)[10], 0);
        }
        EXPECT_EQ(masked, masked_before) << what;
      }
}

// The workers rewrite with the fields flow_key_of found (nothing parsed
// again): the same bytes as parsing, and the family still checked.
TEST(RewriteSource, WithTheFieldsFlowKeyOfFoundWritesWhatParsingDoes) {
  for (bool v6 : {false, true})
    for (proto pr : {proto::tcp, proto::udp, proto::icmp})
      for (bool source : {true, false}) {
        const std::string what = name(pr) + (v6 ? "6 " : "4 ") + (source ? "source" : "destination");
        const bytes packet = flow_packet(v6, pr, 101);
        bytes parsed = packet, viewed = packet;
        flow_key key{};
        flow_fields fields;
        ASSERT_EQ(flow_key_of(viewed.data(), size32(viewed), key, fields), translate_status::ok) << what;
        const ip_address a = test::addr(test::lopower_tailnet(v6));
        ASSERT_EQ(source ? rewrite_source(parsed.data(), size32(parsed), a, mapped_port)
                         : rewrite_destination(parsed.data(), size32(parsed), a, mapped_port),
                  translate_status::ok)
            << what;
        ASSERT_EQ(source ? rewrite_source(viewed.data(), fields, a, mapped_port)
                         : rewrite_destination(viewed.data(), fields, a, mapped_port),
                  translate_status::ok)
            << what;
        EXPECT_EQ(viewed, parsed) << what;
        bytes other = packet;
        EXPECT_EQ(rewrite_source(other.data(), fields, test::addr(test::lopower_tailnet(!v6)), mapped_port),
                  translate_status::family_mismatch)
            << what;
        EXPECT_EQ(other, packet) << what << ": refused, untouched";
      }
}

// A flow's rewrite with the checksum differences taken when it was made
// (rewrite_deltas_of): the same bytes as parsing and reading the old header,
// for every new port, so every value the checksums can end on (0x0000 and
// 0xffff included) is met; and the family still checked.
TEST(RewriteSource, WithTheFlowsDifferencesWritesWhatParsingDoes) {
  for (bool v6 : {false, true})
    for (proto pr : {proto::tcp, proto::udp, proto::icmp})
      for (bool source : {true, false}) {
        const std::string what = name(pr) + (v6 ? "6 " : "4 ") + (source ? "source" : "destination");
        const bytes packet = flow_packet(v6, pr, 101, !source);
        flow_key key{};
        flow_fields fields;
        ASSERT_EQ(flow_key_of(packet.data(), size32(packet), key, fields), translate_status::ok) << what;
        const ip_address to = test::addr(source ? test::lopower_tailnet(v6) : test::device_addr(v6));
        const std::uint8_t* old_addr = source ? key.src : key.dst;
        const std::uint16_t old_port = source ? key.src_port : key.dst_port;
        unsigned differing = 0, unverified = 0;
        for (unsigned port = 0; port <= 0xffff; ++port) {
          const auto new_port = static_cast<std::uint16_t>(port);
          const rewrite_deltas d =
              rewrite_deltas_of(key.family, key.protocol, old_addr, old_port, to.bytes.data(), new_port);
          bytes parsed = packet, kept = packet;
          ASSERT_EQ(source ? rewrite_source(parsed.data(), size32(parsed), to, new_port)
                           : rewrite_destination(parsed.data(), size32(parsed), to, new_port),
                    translate_status::ok)
              << what;
          ASSERT_EQ(source ? rewrite_source(kept.data(), fields, to.family, to.bytes.data(), new_port, d)
                           : rewrite_destination(kept.data(), fields, to.family, to.bytes.data(), new_port, d),
                    translate_status::ok)
              << what;
          differing += kept != parsed;
          unverified += !test::l4_checksum_ok(kept) || !test::ip_checksum_ok(kept);
        }
        EXPECT_EQ(differing, 0u) << what << ": new ports whose rewrite differs from parsing's";
        EXPECT_EQ(unverified, 0u) << what << ": new ports whose checksums fail to verify";
        bytes other = packet;
        const ip_address wrong = test::addr(test::lopower_tailnet(!v6));
        EXPECT_EQ(rewrite_source(other.data(), fields, wrong.family, wrong.bytes.data(), mapped_port, {}),
                  translate_status::family_mismatch)
            << what;
        EXPECT_EQ(other, packet) << what << ": refused, untouched";
      }
}

// A UDP datagram sent without a checksum (zero, RFC 768) keeps none.
TEST(RewriteSource, WithTheFlowsDifferencesAZeroUdpChecksumStaysZero) {
  for (bool v6 : {false, true}) {
    bytes p = flow_packet(v6, proto::udp, 40);
    test::put16(&p[test::l4_at(p) + 6], 0);
    flow_key key{};
    flow_fields fields;
    ASSERT_EQ(flow_key_of(p.data(), size32(p), key, fields), translate_status::ok);
    const ip_address to = test::addr(test::lopower_tailnet(v6));
    const rewrite_deltas d = rewrite_deltas_of(key.family, key.protocol, key.src, key.src_port, to.bytes.data(), mapped_port);
    ASSERT_EQ(rewrite_source(p.data(), fields, to.family, to.bytes.data(), mapped_port, d), translate_status::ok);
    EXPECT_EQ(test::be16(&p[test::l4_at(p) + 6]), 0) << (v6 ? "v6" : "v4");
    EXPECT_EQ(test::be16(&p[port_offset(p, true)]), mapped_port);
    EXPECT_TRUE(test::ip_checksum_ok(p));
  }
}

TEST(RewriteDestination, RepliesGoBackToTheDevice) {
  for (bool v6 : {false, true})
    for (proto pr : {proto::tcp, proto::udp, proto::icmp})
      for (std::size_t payload : {0u, 3u, 100u, 1199u}) {
        const std::string what = name(pr) + (v6 ? "6 " : "4 ") + std::to_string(payload);
        bytes p = flow_packet(v6, pr, payload, true);
        ASSERT_EQ(rewrite_destination(p.data(), size32(p), test::addr(test::device_addr(v6)), device_port),
                  translate_status::ok)
            << what;
        bytes expected_dst(test::address_size(p));
        test::set_address(expected_dst.data(), v6, test::device_addr(v6));
        EXPECT_EQ(0, std::memcmp(&p[test::dst_at(p)], expected_dst.data(), expected_dst.size())) << what;
        EXPECT_EQ(test::be16(&p[port_offset(p, false)]), device_port) << what;
        if (pr != proto::icmp) {
          EXPECT_EQ(test::be16(&p[test::l4_at(p)]), service_port) << what;
        }
        expect_checksums_recomputed(p, what);
      }
}

TEST(RewriteSource, RoundTripGivesBackTheSameBytes) {
  for (bool v6 : {false, true})
    for (proto pr : {proto::tcp, proto::udp, proto::icmp}) {
      bytes p = flow_packet(v6, pr, 77);
      const bytes before = p;
      ASSERT_EQ(rewrite_source(p.data(), size32(p), test::addr(test::lopower_tailnet(v6)), mapped_port),
                translate_status::ok);
      ASSERT_NE(p, before);
      ASSERT_EQ(rewrite_source(p.data(), size32(p), test::addr(test::device_addr(v6)), device_port),
                translate_status::ok);
      EXPECT_EQ(p, before) << name(pr) << v6;
    }
}

TEST(RewriteSource, IpOptionsAreCoveredByTheHeaderChecksum) {
  const bytes options = {0x94, 0x04, 0x00, 0x00};  // router alert, RFC 2113
  bytes p = test::ip_packet(false, 17, "10.90.0.2", "100.64.0.5", test::udp_datagram(40000, 53, 21), options);
  ASSERT_EQ(test::l4_at(p), 24u);
  ASSERT_EQ(rewrite_source(p.data(), size32(p), test::addr("100.64.0.1"), 1234), translate_status::ok);
  EXPECT_EQ(test::be16(&p[24]), 1234);
  expect_checksums_recomputed(p, "options");
}

TEST(RewriteSource, Icmpv4ChecksumHasNoPseudoHeaderIcmpv6Does) {
  // Same identifier: only the address changes. ICMPv4's checksum does not
  // cover it; ICMPv6's does.
  for (bool v6 : {false, true}) {
    bytes p = flow_packet(v6, proto::icmp, 32);
    const std::uint16_t before = test::l4_checksum(p);
    ASSERT_EQ(rewrite_source(p.data(), size32(p), test::addr(test::lopower_tailnet(v6)), device_port),
              translate_status::ok);
    if (v6)
      EXPECT_NE(test::l4_checksum(p), before);
    else
      EXPECT_EQ(test::l4_checksum(p), before);
    expect_checksums_recomputed(p, v6 ? "icmp6" : "icmp4");
  }
}

TEST(RewriteSource, UdpWithoutChecksumStaysWithout) {
  for (bool v6 : {false, true}) {
    bytes p = test::ip_packet(v6, 17, test::device_addr(v6), test::peer_addr(v6), test::udp_datagram(40000, 53, 30),
                              {}, true);
    ASSERT_EQ(test::l4_checksum(p), 0);
    ASSERT_EQ(rewrite_source(p.data(), size32(p), test::addr(test::lopower_tailnet(v6)), mapped_port),
              translate_status::ok);
    EXPECT_EQ(test::l4_checksum(p), 0) << v6;
    EXPECT_TRUE(test::ip_checksum_ok(p));
  }
}

// A UDP datagram whose checksum after translation computes to zero: it must
// go out as 0xffff, never 0x0000 ("no checksum").
TEST(RewriteSource, UdpChecksumComputingToZeroIsSentAsAllOnes) {
  for (bool v6 : {false, true}) {
    // Build it as it will look after translation, with two payload bytes
    // chosen so the checksum computes to zero...
    bytes p = test::ip_packet(v6, 17, test::lopower_tailnet(v6), test::peer_addr(v6), test::udp_datagram(mapped_port, 53, 10));
    const std::size_t l4 = test::l4_at(p), filler = l4 + 8;
    test::put16(&p[filler], 0);
    test::put16(&p[l4 + 6], 0);
    const auto l4_len = static_cast<std::uint32_t>(p.size() - l4);
    const std::uint16_t sum = test::reference_sum(&p[l4], l4_len, test::pseudo_sum(p, l4_len));
    test::put16(&p[filler], static_cast<std::uint16_t>(~sum));  // now everything sums to 0xffff: checksum 0
    ASSERT_EQ(test::full_l4_checksum(p), 0xffff);
    // ...then turn it back into what the device sent.
    bytes device = p;
    test::set_address(&device[test::src_at(device)], v6, test::device_addr(v6));
    test::put16(&device[l4], device_port);
    test::put16(&device[l4 + 6], test::full_l4_checksum(device));
    if (!v6) test::put16(&device[10], test::full_ip_checksum(device));
    ASSERT_NE(test::l4_checksum(device), 0xffff);

    ASSERT_EQ(rewrite_source(device.data(), size32(device), test::addr(test::lopower_tailnet(v6)), mapped_port),
              translate_status::ok);
    EXPECT_EQ(test::l4_checksum(device), 0xffff) << v6;
    EXPECT_TRUE(test::l4_checksum_ok(device));
  }
}

// TCP has no reserved zero: a checksum computing to 0x0000 stays 0x0000,
// exactly what a full computation gives.
TEST(RewriteSource, TcpChecksumComputingToZero) {
  bytes p = test::ip_packet(false, 6, "100.64.0.1", "100.64.0.5", test::tcp_segment(mapped_port, 443, tcp_flag::ack, {}, 10));
  const std::size_t l4 = test::l4_at(p), filler = l4 + 20;
  test::put16(&p[filler], 0);
  test::put16(&p[l4 + 16], 0);
  const auto l4_len = static_cast<std::uint32_t>(p.size() - l4);
  test::put16(&p[filler], static_cast<std::uint16_t>(~test::reference_sum(&p[l4], l4_len, test::pseudo_sum(p, l4_len))));
  ASSERT_EQ(test::full_l4_checksum(p), 0x0000);
  bytes device = p;
  test::set_address(&device[12], false, "10.90.0.2");
  test::put16(&device[l4], device_port);
  test::put16(&device[l4 + 16], test::full_l4_checksum(device));
  test::put16(&device[10], test::full_ip_checksum(device));
  ASSERT_EQ(rewrite_source(device.data(), size32(device), test::addr("100.64.0.1"), mapped_port), translate_status::ok);
  EXPECT_EQ(test::l4_checksum(device), 0x0000);
  EXPECT_TRUE(test::l4_checksum_ok(device));
}

TEST(RewriteSource, ACorruptChecksumStaysCorrupt) {
  bytes p = flow_packet(false, proto::tcp, 50);
  p[60] ^= 0x40;  // a payload bit flipped on the way to lopower
  ASSERT_FALSE(test::l4_checksum_ok(p));
  ASSERT_EQ(rewrite_source(p.data(), size32(p), test::addr("100.64.0.1"), mapped_port), translate_status::ok);
  EXPECT_FALSE(test::l4_checksum_ok(p));
  p[60] ^= 0x40;
  EXPECT_TRUE(test::l4_checksum_ok(p));  // exactly the same error, no more
}

TEST(RewriteSource, WireGuardPaddingIsLeftAlone) {
  bytes p = flow_packet(true, proto::udp, 5);
  const std::size_t real = p.size();
  p.resize(real + 11, 0xee);
  ASSERT_EQ(rewrite_source(p.data(), size32(p), test::addr(test::lopower_tailnet(true)), mapped_port),
            translate_status::ok);
  for (std::size_t i = real; i < p.size(); ++i) EXPECT_EQ(p[i], 0xee);
  p.resize(real);
  expect_checksums_recomputed(p, "padded");
}

// Each refusal leaves the buffer as it was.
void expect_refused(bytes p, std::uint32_t len, translate_status expected, const std::string& what,
                    const ip_address& a = test::addr("100.64.0.1")) {
  const bytes before = p;
  EXPECT_EQ(rewrite_source(p.data(), len, a, mapped_port), expected) << what;
  EXPECT_EQ(rewrite_destination(p.data(), len, a, mapped_port), expected) << what;
  EXPECT_EQ(p, before) << what;
  flow_key k{};
  EXPECT_EQ(flow_key_of(p.data(), len, k), expected == translate_status::family_mismatch ? translate_status::ok : expected)
      << what;
}

TEST(RewriteSource, RefusesWhatItCannotTranslate) {
  const bytes udp4 = flow_packet(false, proto::udp, 20);
  expect_refused(udp4, size32(udp4) - 1, translate_status::malformed, "total length beyond the buffer");
  expect_refused(udp4, 19, translate_status::malformed, "shorter than a header");
  expect_refused(udp4, size32(udp4), translate_status::family_mismatch, "v6 address for a v4 packet",
                 test::addr("fd7a:115c:a1e0::1"));
  bytes more_fragments = udp4;
  more_fragments[6] = 0x20;  // MF
  expect_refused(more_fragments, size32(more_fragments), translate_status::fragment, "first fragment");
  bytes later_fragment = udp4;
  later_fragment[6] = 0;
  later_fragment[7] = 0x10;  // offset 128
  expect_refused(later_fragment, size32(later_fragment), translate_status::fragment, "later fragment");
  bytes bad_ihl = udp4;
  bad_ihl[0] = 0x44;
  expect_refused(bad_ihl, size32(bad_ihl), translate_status::malformed, "IHL 4");
  bytes version5 = udp4;
  version5[0] = 0x55;
  expect_refused(version5, size32(version5), translate_status::malformed, "version 5");

  const bytes short_udp = test::ip_packet(false, 17, "10.90.0.2", "100.64.0.5", bytes(7, 0));
  expect_refused(short_udp, size32(short_udp), translate_status::malformed, "7-byte UDP");
  const bytes short_tcp = test::ip_packet(false, 6, "10.90.0.2", "100.64.0.5", bytes(19, 0));
  expect_refused(short_tcp, size32(short_tcp), translate_status::malformed, "19-byte TCP");
  bytes doff_big = flow_packet(false, proto::tcp, 4);
  doff_big[20 + 12] = 0x70;  // 28-byte header in a 24-byte segment
  expect_refused(doff_big, size32(doff_big), translate_status::malformed, "data offset past the segment");
  bytes doff_small = flow_packet(false, proto::tcp, 4);
  doff_small[20 + 12] = 0x40;
  expect_refused(doff_small, size32(doff_small), translate_status::malformed, "data offset 4");

  const bytes gre = test::ip_packet(false, 47, "10.90.0.2", "100.64.0.5", bytes(8, 0));
  expect_refused(gre, size32(gre), translate_status::unsupported, "GRE");
  bytes unreachable = test::ip_packet(false, 1, "10.90.0.2", "100.64.0.5", test::icmp_echo(false, true, 1, 8));
  unreachable[20] = 3;
  expect_refused(unreachable, size32(unreachable), translate_status::unsupported, "ICMP error");
  const bytes icmp4_in_v6 = test::ip_packet(true, 1, test::device_addr(true), test::peer_addr(true),
                                            test::icmp_echo(false, true, 1, 8));
  expect_refused(icmp4_in_v6, size32(icmp4_in_v6), translate_status::unsupported, "ICMPv4 over IPv6",
                 test::addr("fd7a:115c:a1e0::1"));
  const bytes short_echo = test::ip_packet(false, 1, "10.90.0.2", "100.64.0.5", bytes{8, 0, 0, 0, 0, 1, 0});
  expect_refused(short_echo, size32(short_echo), translate_status::malformed, "7-byte echo");

  bytes v6_fragment = flow_packet(true, proto::udp, 8);
  v6_fragment[6] = 44;
  expect_refused(v6_fragment, size32(v6_fragment), translate_status::fragment, "IPv6 fragment header",
                 test::addr("fd7a:115c:a1e0::1"));
  bytes hop_by_hop = flow_packet(true, proto::udp, 8);
  hop_by_hop[6] = 0;
  expect_refused(hop_by_hop, size32(hop_by_hop), translate_status::unsupported, "IPv6 hop-by-hop header",
                 test::addr("fd7a:115c:a1e0::1"));
  const bytes udp6 = flow_packet(true, proto::udp, 8);
  expect_refused(udp6, size32(udp6) - 1, translate_status::malformed, "IPv6 payload beyond the buffer",
                 test::addr("fd7a:115c:a1e0::1"));
  expect_refused(udp6, 39, translate_status::malformed, "IPv6 header cut", test::addr("fd7a:115c:a1e0::1"));
}

// Every prefix of valid packets, each in a buffer of exactly that size (the
// sanitize suite turns any read past it into a failure).
TEST(RewriteSource, EveryTruncationIsRefusedOrTranslatedWithinBounds) {
  for (bool v6 : {false, true})
    for (proto pr : {proto::tcp, proto::udp, proto::icmp}) {
      const bytes whole = flow_packet(v6, pr, 9);
      for (std::size_t n = 0; n <= whole.size(); ++n) {
        bytes cut(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(n));
        const auto st = rewrite_source(cut.data(), static_cast<std::uint32_t>(n),
                                       test::addr(test::lopower_tailnet(v6)), mapped_port);
        EXPECT_EQ(st == translate_status::ok, n == whole.size()) << name(pr) << v6 << " " << n;
        (void)clamp_tcp_mss(cut.data(), static_cast<std::uint32_t>(n), 1000);
      }
    }
}

TEST(FlowKey, OfAPacket) {
  for (bool v6 : {false, true}) {
    const bytes p = flow_packet(v6, proto::tcp, 0);
    flow_key k{};
    ASSERT_EQ(flow_key_of(p.data(), size32(p), k), translate_status::ok);
    EXPECT_EQ(k.family, v6 ? ip_family::v6 : ip_family::v4);
    EXPECT_EQ(k.protocol, 6);
    EXPECT_EQ(k.src_port, device_port);
    EXPECT_EQ(k.dst_port, service_port);
    EXPECT_EQ(0, std::memcmp(k.src, &p[test::src_at(p)], test::address_size(p)));
    EXPECT_EQ(0, std::memcmp(k.dst, &p[test::dst_at(p)], test::address_size(p)));
    const std::uint8_t zero[16] = {};
    if (!v6) {
      EXPECT_EQ(0, std::memcmp(k.src + 4, zero, 12));  // the rest stays zero for rte_hash
    }
    EXPECT_EQ(k.pad[0] | k.pad[1], 0);
  }
}

TEST(FlowKey, AnEchoRequestReversedIsItsReply) {
  for (bool v6 : {false, true}) {
    const bytes request = test::ip_packet(v6, v6 ? 58 : 1, test::device_addr(v6), test::peer_addr(v6),
                                          test::icmp_echo(v6, true, 0x4242, 16));
    const bytes reply = test::ip_packet(v6, v6 ? 58 : 1, test::peer_addr(v6), test::device_addr(v6),
                                        test::icmp_echo(v6, false, 0x4242, 16));
    flow_key a{}, b{};
    ASSERT_EQ(flow_key_of(request.data(), size32(request), a), translate_status::ok);
    ASSERT_EQ(flow_key_of(reply.data(), size32(reply), b), translate_status::ok);
    EXPECT_EQ(a.src_port, 0x4242);
    EXPECT_EQ(a.dst_port, 0x4242);
    EXPECT_EQ(a.reverse(), b);
  }
}

TEST(FlowKey, ItsReverseIsAnotherKeyThatReversesBack) {
  const bytes p = flow_packet(true, proto::udp, 0);
  flow_key k{};
  ASSERT_EQ(flow_key_of(p.data(), size32(p), k), translate_status::ok);
  EXPECT_EQ(k.reverse().reverse(), k);
  EXPECT_NE(k.reverse(), k);
}

// Keys compare as rte_hash compares them: every byte counts, the last
// address byte, each port, the family, the protocol and the padding alike.
TEST(FlowKey, KeysDifferingInAnyOneByteAreUnequal) {
  const bytes p = flow_packet(true, proto::tcp, 0);
  flow_key k{};
  ASSERT_EQ(flow_key_of(p.data(), size32(p), k), translate_status::ok);
  flow_key same = k;
  EXPECT_EQ(same, k);
  for (std::size_t i = 0; i < sizeof(flow_key); ++i) {
    flow_key other = k;
    reinterpret_cast<std::uint8_t*>(&other)[i] ^= 0x01;
    EXPECT_NE(other, k) << "byte " << i;
    EXPECT_FALSE(other == k) << "byte " << i;
  }
}

TEST(ParseIp, ReportsFragmentsAndLengths) {
  bytes p = flow_packet(false, proto::udp, 10);
  p.resize(p.size() + 6);  // padding
  auto info = parse_ip(p.data(), size32(p));
  ASSERT_TRUE(info);
  EXPECT_EQ(info->length, 20 + 8 + 10);
  EXPECT_EQ(info->l4_length(), 18);
  EXPECT_FALSE(info->fragment);
  p[6] = 0x20;
  EXPECT_TRUE(parse_ip(p.data(), size32(p))->fragment);
  p[6] = 0x40;  // DF alone is not a fragment
  EXPECT_FALSE(parse_ip(p.data(), size32(p))->fragment);
  EXPECT_FALSE(parse_ip(p.data(), 0));
}

}  // namespace
}  // namespace lopower::splice
