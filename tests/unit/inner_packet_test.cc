#include "dataplane/inner_packet.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "lopower/byte_order.h"
#include "tests/unit/splice/packets.h"

namespace lopower {
namespace {

using bytes = std::vector<std::uint8_t>;

// The RFC 1071 sum written out plainly (the splice tests' own): the
// independent reference the DPDK-based code is checked against.
bool checksum_ok(const std::uint8_t* p, std::size_t n, std::uint32_t pseudo = 0) {
  return splice::test::reference_sum(p, n, pseudo) == 0xffff;
}

std::uint32_t pseudo_v6(const std::uint8_t* ip, std::uint32_t l4_len, std::uint8_t proto) {
  std::uint32_t sum = 0;
  for (int i = 8; i < 40; i += 2) sum += load_be16(ip + i);
  return sum + (l4_len >> 16) + (l4_len & 0xffff) + proto;
}

bytes echo_request_v4(std::size_t payload) {
  bytes p(20 + 8 + payload, 0);
  p[0] = 0x45;
  const auto total = static_cast<std::uint16_t>(p.size());
  store_be16(&p[2], total);
  p[8] = 3;
  p[9] = 1;
  inet_pton(AF_INET, "10.90.0.2", p.data() + 12);
  inet_pton(AF_INET, "10.90.0.1", p.data() + 16);
  p[20] = 8;
  p[24] = 0x12;  // identifier
  p[26] = 0x00;
  p[27] = 0x07;  // sequence
  for (std::size_t i = 0; i < payload; ++i) p[28 + i] = static_cast<std::uint8_t>(i * 7);
  return p;
}

bytes echo_request_v6(std::size_t payload) {
  bytes p(40 + 8 + payload, 0);
  p[0] = 0x60;
  const auto plen = static_cast<std::uint16_t>(8 + payload);
  store_be16(&p[4], plen);
  p[6] = 58;
  p[7] = 2;
  inet_pton(AF_INET6, "fd7a:115c:a1e0:9909::2", p.data() + 8);
  inet_pton(AF_INET6, "fd7a:115c:a1e0:9909::1", p.data() + 24);
  p[40] = 128;
  for (std::size_t i = 0; i < payload; ++i) p[48 + i] = static_cast<std::uint8_t>(i * 3);
  return p;
}

TEST(InnerPacket, ParsesAndIgnoresWireGuardPadding) {
  bytes p = echo_request_v4(13);
  const std::size_t real = p.size();
  p.resize(real + 3, 0);  // padded to 16 as WireGuard does
  auto info = parse_inner(p.data(), static_cast<std::uint32_t>(p.size()));
  ASSERT_TRUE(info);
  EXPECT_FALSE(info->ipv6);
  EXPECT_EQ(info->length, real);
  EXPECT_EQ(info->protocol, 1);
  auto info6 = parse_inner(echo_request_v6(8).data(), 56);
  ASSERT_TRUE(info6);
  EXPECT_TRUE(info6->ipv6);
  EXPECT_EQ(info6->l4_offset, 40);
}

TEST(InnerPacket, RejectsWhatIsNotAWholePacket) {
  bytes p = echo_request_v4(8);
  EXPECT_FALSE(parse_inner(p.data(), 19));
  EXPECT_FALSE(parse_inner(p.data(), static_cast<std::uint32_t>(p.size() - 1)));  // total length beyond the data
  p[0] = 0x44;  // IHL below 5
  EXPECT_FALSE(parse_inner(p.data(), static_cast<std::uint32_t>(p.size())));
  p[0] = 0x55;  // version 5
  EXPECT_FALSE(parse_inner(p.data(), static_cast<std::uint32_t>(p.size())));
  bytes v6 = echo_request_v6(8);
  EXPECT_FALSE(parse_inner(v6.data(), static_cast<std::uint32_t>(v6.size() - 1)));
  for (std::uint32_t n = 0; n < v6.size(); ++n) (void)parse_inner(v6.data(), n);
}

TEST(InnerPacket, EchoReplyV4HasSwappedAddressesAndValidChecksums) {
  for (std::size_t payload : {0u, 1u, 56u, 1372u}) {
    bytes p = echo_request_v4(payload);
    const bytes request = p;
    auto info = parse_inner(p.data(), static_cast<std::uint32_t>(p.size()));
    ASSERT_TRUE(info && make_echo_reply(p.data(), *info));
    EXPECT_EQ(0, std::memcmp(p.data() + 12, request.data() + 16, 4));
    EXPECT_EQ(0, std::memcmp(p.data() + 16, request.data() + 12, 4));
    EXPECT_EQ(p[8], 64);
    EXPECT_EQ(p[20], 0);
    EXPECT_TRUE(checksum_ok(p.data(), 20)) << payload;
    EXPECT_TRUE(checksum_ok(p.data() + 20, p.size() - 20)) << payload;
    EXPECT_EQ(0, std::memcmp(p.data() + 24, request.data() + 24, p.size() - 24));  // id, seq, data echoed
  }
}

TEST(InnerPacket, EchoReplyV6HasAValidChecksumOverThePseudoHeader) {
  for (std::size_t payload : {0u, 7u, 56u, 1352u}) {
    bytes p = echo_request_v6(payload);
    auto info = parse_inner(p.data(), static_cast<std::uint32_t>(p.size()));
    ASSERT_TRUE(info && make_echo_reply(p.data(), *info));
    EXPECT_EQ(p[40], 129);
    const auto l4_len = static_cast<std::uint32_t>(p.size() - 40);
    EXPECT_TRUE(checksum_ok(p.data() + 40, l4_len, pseudo_v6(p.data(), l4_len, 58))) << payload;
    char dst[64];
    inet_ntop(AF_INET6, p.data() + 24, dst, sizeof dst);
    EXPECT_STREQ(dst, "fd7a:115c:a1e0:9909::2");
  }
}

TEST(InnerPacket, OnlyEchoRequestsAreAnswered) {
  bytes p = echo_request_v4(8);
  p[20] = 0;  // already a reply
  auto info = parse_inner(p.data(), static_cast<std::uint32_t>(p.size()));
  EXPECT_FALSE(make_echo_reply(p.data(), *info));
  bytes udp = echo_request_v4(8);
  udp[9] = 17;
  EXPECT_FALSE(make_echo_reply(udp.data(), *parse_inner(udp.data(), static_cast<std::uint32_t>(udp.size()))));
}

wg_endpoint sample_endpoint(bool ipv6) {
  wg_endpoint ep;
  ep.ipv6 = ipv6;
  const std::uint8_t peer_mac[6] = {2, 0, 0, 0, 0, 9}, local_mac[6] = {2, 0, 0, 0, 0, 1};
  std::memcpy(ep.peer_mac, peer_mac, 6);
  std::memcpy(ep.local_mac, local_mac, 6);
  inet_pton(ipv6 ? AF_INET6 : AF_INET, ipv6 ? "fd00:198:18::2" : "198.18.0.2", ep.peer_ip);
  inet_pton(ipv6 ? AF_INET6 : AF_INET, ipv6 ? "fd00:198:18::1" : "198.18.0.1", ep.local_ip);
  ep.peer_port_be = htons(40000);
  ep.local_port_be = htons(51820);
  return ep;
}

TEST(OuterHeaders, RoundTripThroughEndpointOfFrameWithValidChecksums) {
  for (bool ipv6 : {false, true}) {
    const wg_endpoint ep = sample_endpoint(ipv6);
    const unsigned outer = outer_header_size(ipv6);
    bytes frame(outer + 48, 0xab);
    write_outer_headers(frame.data(), ep, 48);
    // The reply direction of what we wrote is the endpoint seen from the peer:
    // parse it back as a received frame and swap.
    const wg_endpoint seen = endpoint_of_frame(frame.data(), ep.port_id, static_cast<std::uint16_t>(outer - 8));
    EXPECT_EQ(0, std::memcmp(seen.peer_ip, ep.local_ip, 16));
    EXPECT_EQ(0, std::memcmp(seen.local_ip, ep.peer_ip, 16));
    EXPECT_EQ(seen.peer_port_be, ep.local_port_be);
    EXPECT_EQ(0, std::memcmp(seen.peer_mac, ep.local_mac, 6));
    const std::uint8_t* ip = frame.data() + 14;
    const std::uint8_t* udp = frame.data() + outer - 8;
    if (!ipv6) {
      EXPECT_TRUE(checksum_ok(ip, 20));
      EXPECT_EQ(udp[6], 0);  // no UDP checksum over IPv4: the AEAD covers the payload
      EXPECT_EQ(udp[7], 0);
    } else {
      EXPECT_TRUE(checksum_ok(udp, 56, pseudo_v6(ip, 56, 17)));
    }
  }
}

// The roaming check read from the frame in place answers what building the
// frame's endpoint and comparing does: for the endpoint itself, for each
// byte of the frame the comparison reads changed in turn, for another port,
// and for a relayed endpoint.
TEST(OuterHeaders, FrameOnPathAsSamePathOfTheFramesEndpoint) {
  for (bool ipv6 : {false, true}) {
    const wg_endpoint ep = sample_endpoint(ipv6);
    const unsigned outer = outer_header_size(ipv6);
    const auto l4 = static_cast<std::uint16_t>(outer - 8);
    bytes frame(outer + 48, 0xab);
    write_outer_headers(frame.data(), ep, 48);
    const wg_endpoint known = endpoint_of_frame(frame.data(), ep.port_id, l4);
    auto agree = [&](const bytes& f, std::uint16_t port_id, const wg_endpoint& k) {
      return frame_on_path(k, f.data(), port_id, l4) == k.same_path(endpoint_of_frame(f.data(), port_id, l4));
    };
    EXPECT_TRUE(frame_on_path(known, frame.data(), ep.port_id, l4));
    unsigned mismatches = 0;
    for (unsigned i = 0; i < outer; ++i) {
      bytes changed = frame;
      changed[i] ^= 0x10;
      if (!agree(changed, ep.port_id, known)) ++mismatches;
    }
    EXPECT_EQ(mismatches, 0u) << (ipv6 ? "v6" : "v4");
    EXPECT_FALSE(frame_on_path(known, frame.data(), static_cast<std::uint16_t>(ep.port_id + 1), l4));
    wg_endpoint relayed = known;
    relayed.relay_region = 3;
    EXPECT_FALSE(frame_on_path(relayed, frame.data(), ep.port_id, l4));
    EXPECT_TRUE(agree(frame, ep.port_id, relayed));
    if (!ipv6)  // bytes past an IPv4 address are not the frame's: an endpoint with any of them set is another
      for (unsigned at = 4; at < 16; ++at)
        for (bool local : {false, true}) {
          wg_endpoint stray = known;
          (local ? stray.local_ip : stray.peer_ip)[at] = 1;
          EXPECT_FALSE(frame_on_path(stray, frame.data(), ep.port_id, l4)) << (local ? "local " : "peer ") << at;
          EXPECT_TRUE(agree(frame, ep.port_id, stray));
        }
  }
}

// ip_prefix::contains against the definition, bit by bit: for every length
// of both families, an address inside and one differing in each bit.
TEST(IpPrefix, ContainsAsItsBitsSay) {
  for (bool v6 : {false, true}) {
    const unsigned width = v6 ? 128 : 32;
    ip_address base;
    base.family = v6 ? ip_family::v6 : ip_family::v4;
    for (unsigned i = 0; i < width / 8; ++i) base.bytes[i] = static_cast<std::uint8_t>(0x5a ^ (i * 37));
    for (unsigned length = 0; length <= width; ++length) {
      const ip_prefix prefix{base, static_cast<std::uint8_t>(length)};
      EXPECT_TRUE(prefix.contains(base)) << length;
      for (unsigned bit = 0; bit < width; ++bit) {
        ip_address other = base;
        other.bytes[bit / 8] ^= static_cast<std::uint8_t>(0x80u >> (bit % 8));
        EXPECT_EQ(prefix.contains(other), bit >= length) << (v6 ? "v6 /" : "v4 /") << length << " bit " << bit;
      }
      ip_address other_family = base;
      other_family.family = v6 ? ip_family::v4 : ip_family::v6;
      EXPECT_FALSE(prefix.contains(other_family));
    }
  }
}

// IPv4 outer headers as RFC 791 and 768 lay them out, field by field, the
// header checksum by the tests' own RFC 1071 sum.
bytes reference_v4_headers(const wg_endpoint& ep, std::uint16_t payload) {
  bytes h(outer_header_size(false), 0);
  std::memcpy(h.data(), ep.peer_mac, 6);
  std::memcpy(h.data() + 6, ep.local_mac, 6);
  h[12] = 0x08;
  std::uint8_t* ip = h.data() + 14;
  ip[0] = 0x45;
  const unsigned total = 20 + 8 + payload;
  ip[2] = static_cast<std::uint8_t>(total >> 8);
  ip[3] = static_cast<std::uint8_t>(total);
  ip[6] = 0x40;  // don't fragment
  ip[8] = 64;
  ip[9] = 17;
  std::memcpy(ip + 12, ep.local_ip, 4);
  std::memcpy(ip + 16, ep.peer_ip, 4);
  const std::uint16_t sum = splice::test::reference_checksum(ip, 20);
  ip[10] = static_cast<std::uint8_t>(sum >> 8);
  ip[11] = static_cast<std::uint8_t>(sum);
  std::memcpy(ip + 20, &ep.local_port_be, 2);
  std::memcpy(ip + 22, &ep.peer_port_be, 2);
  ip[24] = static_cast<std::uint8_t>((8 + payload) >> 8);
  ip[25] = static_cast<std::uint8_t>(8 + payload);
  return h;  // UDP checksum zero: none over IPv4
}

// The writer a run of frames to one endpoint uses writes the IPv4 headers
// as the RFCs lay them out, whatever the length, also after switching
// between endpoints (its template is rebuilt for each), and leaves IPv6 to
// write_outer_headers; write_outer_headers gives the same.
TEST(OuterHeaders, WriterForARunWritesTheRfcHeaders) {
  wg_endpoint v4 = sample_endpoint(false), other = sample_endpoint(false), v6 = sample_endpoint(true);
  inet_pton(AF_INET, "203.0.113.250", other.peer_ip);
  other.peer_port_be = htons(65535);
  other.local_mac[5] = 0xff;
  outer_header_writer writer;
  for (const wg_endpoint* ep : {&v4, &v4, &other, &v6, &v4, &other}) {
    for (const std::uint16_t payload : {0, 1, 48, 80, 1328, 1500, 8000, 65535 - 28}) {
      const unsigned outer = outer_header_size(ep->ipv6);
      bytes expected(outer + payload, 0xab), got(outer + payload, 0xcd);
      std::memset(expected.data() + outer, 0x5a, payload);
      std::memset(got.data() + outer, 0x5a, payload);
      bytes direct = got;
      if (ep->ipv6) {
        write_outer_headers(expected.data(), *ep, payload);
      } else {
        const bytes h = reference_v4_headers(*ep, payload);
        std::copy(h.begin(), h.end(), expected.begin());
      }
      writer.write(got.data(), *ep, payload);
      write_outer_headers(direct.data(), *ep, payload);
      ASSERT_EQ(expected, got) << "payload " << payload << (ep->ipv6 ? " v6" : " v4");
      ASSERT_EQ(expected, direct) << "payload " << payload << (ep->ipv6 ? " v6" : " v4");
    }
  }
}

}  // namespace
}  // namespace lopower

namespace lopower {
namespace {

// A TSMP ping as tailscale's `tailscale ping --tsmp` sends it: 'p' and 8 data bytes.
std::vector<std::uint8_t> tsmp_ping(bool v6) {
  std::vector<std::uint8_t> p(v6 ? 40 + 9 : 20 + 9, 0);
  const std::size_t l4 = v6 ? 40 : 20;
  if (v6) {
    p[0] = 0x60;
    p[5] = 9;
    p[6] = ipproto_tsmp;
    p[7] = 64;
    inet_pton(AF_INET6, "fd7a:115c:a1e0::5", p.data() + 8);
    inet_pton(AF_INET6, "fd7a:115c:a1e0::1", p.data() + 24);
  } else {
    p[0] = 0x45;
    p[3] = static_cast<std::uint8_t>(p.size());
    p[8] = 64;
    p[9] = ipproto_tsmp;
    inet_pton(AF_INET, "100.64.0.5", p.data() + 12);
    inet_pton(AF_INET, "100.64.0.1", p.data() + 16);
  }
  p[l4] = 'p';
  for (int i = 1; i <= 8; ++i) p[l4 + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(0xa0 + i);
  return p;
}

TEST(Tsmp, PingBecomesAPongWithTheSameDataBack) {
  for (bool v6 : {false, true}) {
    auto p = tsmp_ping(v6);
    const auto request = p;
    p.resize(p.size() + 2);  // the pong is 2 bytes longer (peerAPI port)
    auto info = parse_inner(p.data(), static_cast<std::uint32_t>(request.size()));
    ASSERT_TRUE(info);
    ASSERT_TRUE(is_tsmp_ping(p.data(), *info));
    const std::uint16_t len = make_tsmp_pong(p.data(), *info);
    const std::size_t l4 = v6 ? 40 : 20;
    EXPECT_EQ(len, l4 + 11);
    EXPECT_EQ(p[l4], 'o');
    EXPECT_EQ(0, std::memcmp(p.data() + l4 + 1, request.data() + l4 + 1, 8));
    EXPECT_EQ(p[l4 + 9], 0);
    EXPECT_EQ(p[l4 + 10], 0);
    auto back = parse_inner(p.data(), len);
    ASSERT_TRUE(back) << "the pong is a whole packet of its stated length";
    EXPECT_EQ(back->length, len);
    if (v6) {
      EXPECT_EQ(0, std::memcmp(p.data() + 8, request.data() + 24, 16));
    } else {
      EXPECT_EQ(0, std::memcmp(p.data() + 12, request.data() + 16, 4));
      EXPECT_TRUE(checksum_ok(p.data(), 20));
    }
  }
}

TEST(Tsmp, OnlyPingsAreAnswered) {
  auto p = tsmp_ping(false);
  auto info = parse_inner(p.data(), static_cast<std::uint32_t>(p.size()));
  ASSERT_TRUE(info);
  p[20] = 'a';  // a disco key advertisement
  EXPECT_FALSE(is_tsmp_ping(p.data(), *info));
  p[20] = 'p';
  info->length = 20 + 8;  // one data byte short
  EXPECT_FALSE(is_tsmp_ping(p.data(), *info));
  auto echo = echo_request_v4(8);
  auto e = parse_inner(echo.data(), static_cast<std::uint32_t>(echo.size()));
  ASSERT_TRUE(e);
  EXPECT_FALSE(is_tsmp_ping(echo.data(), *e));
}

TEST(AllowedPrefixes, ContainsOnlyTheirNetworks) {
  allowed_prefixes a;
  a.prefixes = {*ip_prefix::parse("100.64.0.5/32"), *ip_prefix::parse("fd7a:115c:a1e0::5/128"),
                *ip_prefix::parse("192.168.7.0/24")};
  std::uint8_t addr[16];
  inet_pton(AF_INET, "100.64.0.5", addr);
  EXPECT_TRUE(a.contains(false, addr));
  inet_pton(AF_INET, "100.64.0.6", addr);
  EXPECT_FALSE(a.contains(false, addr));
  inet_pton(AF_INET, "192.168.7.200", addr);
  EXPECT_TRUE(a.contains(false, addr));
  inet_pton(AF_INET6, "fd7a:115c:a1e0::5", addr);
  EXPECT_TRUE(a.contains(true, addr));
  inet_pton(AF_INET6, "fd7a:115c:a1e0::6", addr);
  EXPECT_FALSE(a.contains(true, addr));
}

TEST(EndpointString, BothFamilies) {
  wg_endpoint ep;
  inet_pton(AF_INET, "198.18.40.11", ep.peer_ip);
  ep.peer_port_be = htons(41641);
  EXPECT_EQ(endpoint_string(ep), "198.18.40.11:41641");
  ep.ipv6 = true;
  inet_pton(AF_INET6, "fd00:198:18:40::11", ep.peer_ip);
  EXPECT_EQ(endpoint_string(ep), "[fd00:198:18:40::11]:41641");
}

}  // namespace
}  // namespace lopower
