#pragma once
// Test packets for the splice, built and checked with code of the tests'
// own: the RFC 1071 checksum written out plainly and header layouts from
// the RFCs, so the library is never checked against itself.

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "lopower/byte_order.h"
#include "lopower/net_addr.h"

namespace lopower::splice::test {

using bytes = std::vector<std::uint8_t>;

// Test-local names for lopower/byte_order.h.
inline std::uint16_t be16(const std::uint8_t* p) { return load_be16(p); }
inline void put16(std::uint8_t* p, std::uint16_t v) { store_be16(p, v); }

// RFC 1071: the one's-complement sum of 16-bit big-endian words, an odd last
// byte padded with zero, folded; the checksum is its complement.
inline std::uint16_t reference_sum(const std::uint8_t* p, std::size_t n, std::uint32_t sum = 0) {
  for (std::size_t i = 0; i + 1 < n; i += 2) sum += be16(p + i);
  if (n & 1) sum += static_cast<std::uint32_t>(p[n - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(sum);
}
inline std::uint16_t reference_checksum(const std::uint8_t* p, std::size_t n, std::uint32_t sum = 0) {
  return static_cast<std::uint16_t>(~reference_sum(p, n, sum));
}

// Header layout, read from the bytes.
inline bool is_v6(const bytes& p) { return (p[0] >> 4) == 6; }
inline std::size_t l4_at(const bytes& p) { return is_v6(p) ? 40 : (p[0] & 0x0f) * 4u; }
inline std::uint8_t protocol(const bytes& p) { return is_v6(p) ? p[6] : p[9]; }
inline std::size_t ip_length(const bytes& p) { return is_v6(p) ? 40u + be16(&p[4]) : be16(&p[2]); }
inline std::size_t src_at(const bytes& p) { return is_v6(p) ? 8 : 12; }
inline std::size_t dst_at(const bytes& p) { return is_v6(p) ? 24 : 16; }
inline std::size_t address_size(const bytes& p) { return is_v6(p) ? 16 : 4; }

// The pseudo-header sum (RFC 9293 §3.1, RFC 8200 §8.1), unfolded.
inline std::uint32_t pseudo_sum(const bytes& p, std::uint32_t l4_length) {
  std::uint32_t sum = 0;
  const std::size_t from = src_at(p), to = dst_at(p) + address_size(p);
  for (std::size_t i = from; i < to; i += 2) sum += be16(&p[i]);
  return sum + protocol(p) + (l4_length >> 16) + (l4_length & 0xffff);
}

inline std::size_t l4_checksum_offset(std::uint8_t proto) { return proto == 6 ? 16 : proto == 17 ? 6 : 2; }
inline bool has_pseudo_header(const bytes& p) { return protocol(p) != 1; }

// What the L4 checksum must be, computed from scratch over the packet as it
// is now (UDP: a computed zero is sent as 0xffff).
inline std::uint16_t full_l4_checksum(bytes p) {
  const std::size_t l4 = l4_at(p), at = l4 + l4_checksum_offset(protocol(p));
  const auto l4_len = static_cast<std::uint32_t>(ip_length(p) - l4);
  put16(&p[at], 0);
  const std::uint16_t c = reference_checksum(&p[l4], l4_len, has_pseudo_header(p) ? pseudo_sum(p, l4_len) : 0);
  return protocol(p) == 17 && c == 0 ? 0xffff : c;
}
inline std::uint16_t l4_checksum(const bytes& p) { return be16(&p[l4_at(p) + l4_checksum_offset(protocol(p))]); }
// Whether the L4 checksum verifies (sums to 0xffff with the field in).
inline bool l4_checksum_ok(const bytes& p) {
  const std::size_t l4 = l4_at(p);
  const auto l4_len = static_cast<std::uint32_t>(ip_length(p) - l4);
  return reference_sum(&p[l4], l4_len, has_pseudo_header(p) ? pseudo_sum(p, l4_len) : 0) == 0xffff;
}
inline std::uint16_t full_ip_checksum(bytes p) {
  put16(&p[10], 0);
  return reference_checksum(p.data(), l4_at(p));
}
inline bool ip_checksum_ok(const bytes& p) { return is_v6(p) || reference_sum(p.data(), l4_at(p)) == 0xffff; }

inline void set_address(std::uint8_t* at, bool v6, const char* text) {
  ASSERT_EQ(inet_pton(v6 ? AF_INET6 : AF_INET, text, at), 1) << text;
}
inline ip_address addr(const char* text) {
  const auto a = ip_address::parse(text);
  EXPECT_TRUE(a.has_value()) << text;
  return a.value_or(ip_address{});
}

inline bytes pattern(std::size_t n, unsigned seed = 7) {
  bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>((i * 131 + seed * 17 + (i >> 3)) & 0xff);
  return b;
}

// Transport headers with their checksum field zero.
inline bytes tcp_segment(std::uint16_t sport, std::uint16_t dport, std::uint8_t flags, const bytes& options = {},
                         std::size_t payload = 0) {
  const std::size_t header = 20 + options.size();  // options padded by the caller to a multiple of 4
  bytes s(header);
  put16(&s[0], sport);
  put16(&s[2], dport);
  put16(&s[4], 0x1234);
  put16(&s[6], 0x5678);  // sequence number
  put16(&s[10], 0x0042);  // acknowledgment number (low half)
  s[12] = static_cast<std::uint8_t>(header / 4 << 4);
  s[13] = flags;
  put16(&s[14], 64240);  // window
  std::copy(options.begin(), options.end(), s.begin() + 20);
  const bytes data = pattern(payload, sport);
  s.insert(s.end(), data.begin(), data.end());
  return s;
}

inline bytes udp_datagram(std::uint16_t sport, std::uint16_t dport, std::size_t payload) {
  bytes d(8);
  put16(&d[0], sport);
  put16(&d[2], dport);
  put16(&d[4], static_cast<std::uint16_t>(8 + payload));
  const bytes data = pattern(payload, dport);
  d.insert(d.end(), data.begin(), data.end());
  return d;
}

inline bytes icmp_echo(bool v6, bool request, std::uint16_t id, std::size_t payload) {
  bytes m(8);
  m[0] = v6 ? (request ? 128 : 129) : (request ? 8 : 0);
  put16(&m[4], id);
  put16(&m[6], 3);  // sequence
  const bytes data = pattern(payload, id);
  m.insert(m.end(), data.begin(), data.end());
  return m;
}

// An IPv4 (TTL 64, optional header options) or IPv6 packet around `l4`,
// its checksums computed by the reference; `zero_udp_checksum` leaves a
// UDP checksum at 0 ("none").
inline bytes ip_packet(bool v6, std::uint8_t proto, const char* src, const char* dst, const bytes& l4,
                       const bytes& ip_options = {}, bool zero_udp_checksum = false) {
  const std::size_t header = v6 ? 40 : 20 + ip_options.size();
  bytes p(header);
  if (v6) {
    p[0] = 0x60;
    put16(&p[4], static_cast<std::uint16_t>(l4.size()));
    p[6] = proto;
    p[7] = 64;
  } else {
    p[0] = static_cast<std::uint8_t>(0x40 | header / 4);
    put16(&p[2], static_cast<std::uint16_t>(header + l4.size()));
    put16(&p[4], 0x1c46);  // identification
    put16(&p[6], 0x4000);  // don't fragment
    p[8] = 64;
    p[9] = proto;
    std::copy(ip_options.begin(), ip_options.end(), p.begin() + 20);
  }
  set_address(&p[src_at(p)], v6, src);
  set_address(&p[dst_at(p)], v6, dst);
  p.insert(p.end(), l4.begin(), l4.end());
  if (!v6) put16(&p[10], full_ip_checksum(p));
  const bool has_checksum =
      (proto == 1 || proto == 6 || proto == 17 || proto == 58) && l4.size() >= l4_checksum_offset(proto) + 2;
  if (has_checksum && !(proto == 17 && zero_udp_checksum))
    put16(&p[l4_at(p) + l4_checksum_offset(proto)], full_l4_checksum(p));
  return p;
}

// The addresses the tests use: a device, lopower on both sides, a peer.
inline const char* device_addr(bool v6) { return v6 ? "fd7a:115c:a1e0:9909::2" : "10.90.0.2"; }
inline const char* lopower_device_side(bool v6) { return v6 ? "fd7a:115c:a1e0:9909::1" : "10.90.0.1"; }
inline const char* lopower_tailnet(bool v6) { return v6 ? "fd7a:115c:a1e0::1" : "100.64.0.1"; }
inline const char* peer_addr(bool v6) { return v6 ? "fd7a:115c:a1e0::5" : "100.64.0.5"; }

// An ICMP error (ICMP 3/11/12, ICMPv6 1-4) from `src` to `dst` quoting `quote`.
inline bytes icmp_error_packet(bool v6, const char* src, const char* dst, std::uint8_t type, std::uint8_t code,
                               std::uint32_t rest, const bytes& quote) {
  bytes m(8);
  m[0] = type;
  m[1] = code;
  put16(&m[4], static_cast<std::uint16_t>(rest >> 16));
  put16(&m[6], static_cast<std::uint16_t>(rest));
  m.insert(m.end(), quote.begin(), quote.end());
  return ip_packet(v6, v6 ? 58 : 1, src, dst, m);
}

}  // namespace lopower::splice::test
