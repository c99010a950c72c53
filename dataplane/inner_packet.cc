#include "dataplane/inner_packet.h"

#include <rte_ip.h>

#include <algorithm>
#include <cstring>

#include "lopower/byte_order.h"

namespace lopower {
namespace {

// DPDK's checksum helpers sum 16-bit words as they lie in memory, so their
// result is stored as is, not byte-swapped.
void store_checksum(std::uint8_t* p, std::uint16_t sum) { std::memcpy(p, &sum, 2); }

constexpr std::uint8_t ipproto_icmp = 1, ipproto_icmpv6 = 58, ipproto_udp = 17;
constexpr std::uint8_t default_ttl = 64;

}  // namespace

std::optional<inner_info> parse_inner(const std::uint8_t* p, std::uint32_t len) noexcept {
  inner_info info;
  if (!parse_inner(p, len, info)) return std::nullopt;
  return info;
}

bool parse_inner(const std::uint8_t* p, std::uint32_t len, inner_info& info) noexcept {
  info = inner_info{};
  if (len < 20) return false;
  if ((p[0] >> 4) == 4) {
    const unsigned ihl = (p[0] & 0x0f) * 4u;
    const std::uint16_t total = load_be16(p + 2);
    if (ihl < 20 || total < ihl || total > len) return false;
    info.length = total;
    info.l4_offset = static_cast<std::uint16_t>(ihl);
    info.protocol = p[9];
    info.src = p + 12;
    info.dst = p + 16;
    return true;
  }
  if ((p[0] >> 4) == 6 && len >= 40) {
    const std::uint32_t total = 40u + load_be16(p + 4);
    if (total > len) return false;
    info.ipv6 = true;
    info.length = static_cast<std::uint16_t>(total);
    info.l4_offset = 40;
    info.protocol = p[6];
    info.src = p + 8;
    info.dst = p + 24;
    return true;
  }
  return false;
}

bool make_echo_reply(std::uint8_t* p, const inner_info& info) noexcept {
  std::uint8_t* l4 = p + info.l4_offset;
  const std::uint32_t l4_len = info.length - info.l4_offset;
  if (l4_len < 8) return false;
  if (!info.ipv6) {
    if (info.protocol != ipproto_icmp || l4[0] != 8 || l4[1] != 0) return false;
    std::swap_ranges(p + 12, p + 16, p + 16);  // source <-> destination
    p[8] = default_ttl;
    l4[0] = 0;  // echo reply
    store_be16(l4 + 2, 0);
    store_checksum(l4 + 2, static_cast<std::uint16_t>(~rte_raw_cksum(l4, l4_len)));
    store_be16(p + 10, 0);
    store_checksum(p + 10, static_cast<std::uint16_t>(~rte_raw_cksum(p, info.l4_offset)));
    return true;
  }
  if (info.protocol != ipproto_icmpv6 || l4[0] != 128 || l4[1] != 0) return false;
  std::swap_ranges(p + 8, p + 24, p + 24);  // source <-> destination
  p[7] = default_ttl;
  l4[0] = 129;  // echo reply
  store_be16(l4 + 2, 0);
  const auto* ip6 = reinterpret_cast<const rte_ipv6_hdr*>(p);
  store_checksum(l4 + 2, rte_ipv6_udptcp_cksum(ip6, l4));
  return true;
}

bool is_tsmp_ping(const std::uint8_t* p, const inner_info& info) noexcept {
  return info.protocol == ipproto_tsmp && info.length >= info.l4_offset + 9u && p[info.l4_offset] == 'p';
}

std::uint16_t make_tsmp_pong(std::uint8_t* p, const inner_info& info) noexcept {
  std::uint8_t* l4 = p + info.l4_offset;
  const auto length = static_cast<std::uint16_t>(info.l4_offset + tsmp_pong_l4_size);
  l4[0] = 'o';  // the 8 data bytes stay where they are
  store_be16(l4 + 9, 0);
  if (!info.ipv6) {
    std::swap_ranges(p + 12, p + 16, p + 16);
    p[8] = default_ttl;
    store_be16(p + 2, length);
    store_be16(p + 10, 0);
    store_checksum(p + 10, static_cast<std::uint16_t>(~rte_raw_cksum(p, info.l4_offset)));
  } else {
    std::swap_ranges(p + 8, p + 24, p + 24);
    p[7] = default_ttl;
    store_be16(p + 4, static_cast<std::uint16_t>(length - 40));
  }
  return length;
}

}  // namespace lopower

namespace lopower {

bool is_lopower_echo_reply(const std::uint8_t* p, const inner_info& info) noexcept {
  if (info.length < info.l4_offset + 8u) return false;
  const std::uint8_t* l4 = p + info.l4_offset;
  const bool reply = info.ipv6 ? info.protocol == ipproto_icmpv6 && l4[0] == 129 : info.protocol == ipproto_icmp && l4[0] == 0;
  return reply && l4[1] == 0 && (l4[4] << 8 | l4[5]) == lopower_echo_ident;
}

std::uint16_t write_echo_request(std::uint8_t* out, const ip_address& src, const ip_address& dst, std::uint16_t seq,
                                 std::uint16_t payload_len) noexcept {
  const bool v6 = src.family == ip_family::v6;
  const std::uint16_t l3 = v6 ? 40 : 20;
  const auto length = static_cast<std::uint16_t>(l3 + 8 + payload_len);
  std::memset(out, 0, length);
  std::uint8_t* l4 = out + l3;
  l4[0] = v6 ? 128 : 8;
  store_be16(l4 + 4, lopower_echo_ident);
  store_be16(l4 + 6, seq);
  for (std::uint16_t i = 0; i < payload_len; ++i) l4[8 + i] = static_cast<std::uint8_t>('a' + i % 26);
  if (!v6) {
    out[0] = 0x45;
    store_be16(out + 2, length);
    out[8] = default_ttl;
    out[9] = ipproto_icmp;
    std::memcpy(out + 12, src.bytes.data(), 4);
    std::memcpy(out + 16, dst.bytes.data(), 4);
    store_checksum(out + 10, static_cast<std::uint16_t>(~rte_raw_cksum(out, 20)));
    store_checksum(l4 + 2, static_cast<std::uint16_t>(~rte_raw_cksum(l4, 8u + payload_len)));
  } else {
    out[0] = 0x60;
    store_be16(out + 4, static_cast<std::uint16_t>(8 + payload_len));
    out[6] = ipproto_icmpv6;
    out[7] = default_ttl;
    std::memcpy(out + 8, src.bytes.data(), 16);
    std::memcpy(out + 24, dst.bytes.data(), 16);
    store_checksum(l4 + 2, rte_ipv6_udptcp_cksum(reinterpret_cast<const rte_ipv6_hdr*>(out), l4));
  }
  return length;
}

}  // namespace lopower

namespace lopower {

bool is_dns_query(const std::uint8_t* p, const inner_info& info) noexcept {
  constexpr std::uint8_t ipproto_tcp = 6;
  if ((info.protocol != ipproto_udp && info.protocol != ipproto_tcp) || info.length < info.l4_offset + 8u) return false;
  const std::uint8_t* l4 = p + info.l4_offset;
  return (l4[2] << 8 | l4[3]) == 53;
}

std::uint16_t write_udp_packet(std::uint8_t* out, const ip_address& src, std::uint16_t src_port, const ip_address& dst,
                               std::uint16_t dst_port, std::span<const std::uint8_t> payload) noexcept {
  if (src.family != dst.family) return 0;
  const bool v6 = src.family == ip_family::v6;
  const std::size_t l3 = v6 ? 40 : 20, total = l3 + 8 + payload.size();
  if (total > 65535) return 0;
  std::memset(out, 0, l3 + 8);
  std::uint8_t* udp = out + l3;
  store_be16(udp, src_port);
  store_be16(udp + 2, dst_port);
  store_be16(udp + 4, static_cast<std::uint16_t>(8 + payload.size()));
  std::memcpy(udp + 8, payload.data(), payload.size());
  if (!v6) {
    out[0] = 0x45;
    store_be16(out + 2, static_cast<std::uint16_t>(total));
    out[8] = default_ttl;
    out[9] = ipproto_udp;
    std::memcpy(out + 12, src.bytes.data(), 4);
    std::memcpy(out + 16, dst.bytes.data(), 4);
    store_checksum(out + 10, static_cast<std::uint16_t>(~rte_raw_cksum(out, 20)));
    store_checksum(udp + 6, rte_ipv4_udptcp_cksum(reinterpret_cast<const rte_ipv4_hdr*>(out), udp));
  } else {
    out[0] = 0x60;
    store_be16(out + 4, static_cast<std::uint16_t>(8 + payload.size()));
    out[6] = ipproto_udp;
    out[7] = default_ttl;
    std::memcpy(out + 8, src.bytes.data(), 16);
    std::memcpy(out + 24, dst.bytes.data(), 16);
    store_checksum(udp + 6, rte_ipv6_udptcp_cksum(reinterpret_cast<const rte_ipv6_hdr*>(out), udp));
  }
  return static_cast<std::uint16_t>(total);
}

}  // namespace lopower
