#include "dataplane/fragments/fragment_header.h"

#include <cstring>

#include "lopower/byte_order.h"

namespace lopower::fragments {
namespace {

// The reassembled datagram must still fit an IP length field: IPv4's total
// length counts the header too (up to 60 bytes with options), IPv6's
// payload length does not.
constexpr std::uint32_t max_ipv4_payload = 65535 - 60;
constexpr std::uint32_t max_ipv6_payload = 65535;

fragment_kind check(const fragment_view& v, std::uint32_t max_payload) {
  if (v.length == 0) return fragment_kind::malformed;
  if (v.more && v.length % 8 != 0) return fragment_kind::malformed;
  if (std::uint32_t{v.offset} + v.length > max_payload) return fragment_kind::malformed;
  return fragment_kind::fragment;
}

fragment_kind inspect_v4(const std::uint8_t* p, std::uint16_t len, fragment_view& v) {
  const std::uint16_t flags_offset = load_be16(p + 6);
  v.more = (flags_offset & 0x2000) != 0;
  v.offset = static_cast<std::uint16_t>((flags_offset & 0x1fff) * 8u);
  if (!v.more && v.offset == 0) return fragment_kind::whole;
  v.header_length = static_cast<std::uint16_t>((p[0] & 0x0f) * 4u);
  v.length = static_cast<std::uint16_t>(len - v.header_length);
  v.key = datagram_key{};
  std::memcpy(v.key.src, p + 12, 4);
  std::memcpy(v.key.dst, p + 16, 4);
  v.key.id = load_be16(p + 4);
  v.key.family = ip_family::v4;
  return check(v, max_ipv4_payload);
}

fragment_kind inspect_v6(const std::uint8_t* p, std::uint16_t len, fragment_view& v) {
  if (p[6] != ipproto_fragment) return fragment_kind::whole;
  if (len < ipv6_header_size + fragment_header_size) return fragment_kind::malformed;
  const std::uint8_t* fh = p + ipv6_header_size;
  const std::uint16_t offset_m = load_be16(fh + 2);
  v.more = (offset_m & 1) != 0;
  v.offset = static_cast<std::uint16_t>(offset_m & 0xfff8);  // in 8-byte units, 3 bits up: already bytes
  v.header_length = ipv6_header_size + fragment_header_size;
  v.length = static_cast<std::uint16_t>(len - v.header_length);
  v.key = datagram_key{};
  std::memcpy(v.key.src, p + 8, 16);
  std::memcpy(v.key.dst, p + 24, 16);
  v.key.id = load_be32(fh + 4);
  v.key.family = ip_family::v6;
  if (!v.more && v.offset == 0) return fragment_kind::atomic;
  return check(v, max_ipv6_payload);
}

}  // namespace

fragment_kind inspect(const std::uint8_t* p, std::uint16_t len, fragment_view& view) noexcept {
  return (p[0] >> 4) == 6 ? inspect_v6(p, len, view) : inspect_v4(p, len, view);
}

void strip_atomic_fragment_header(std::uint8_t* p) noexcept {
  const std::uint8_t next = p[ipv6_header_size];
  const std::uint16_t payload = static_cast<std::uint16_t>(load_be16(p + 4) - fragment_header_size);
  std::memmove(p + fragment_header_size, p, ipv6_header_size);
  std::uint8_t* h = p + fragment_header_size;
  h[4] = static_cast<std::uint8_t>(payload >> 8);
  h[5] = static_cast<std::uint8_t>(payload);
  h[6] = next;
}

}  // namespace lopower::fragments
