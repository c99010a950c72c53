#include "dataplane/tailnet_view.h"

#include <cstring>

namespace lopower {

namespace {

constexpr std::uint8_t ipproto_tcp = 6, ipproto_udp = 17, ipproto_sctp = 132;

}  // namespace

tailnet_route::tailnet_route(const ip_prefix& p, wg_peer* to) noexcept : prefix(p), peer(to) {
  std::uint8_t mask_bytes[16]{}, masked_bytes[16]{};
  unsigned bits = p.length;
  for (std::size_t i = 0; i < 16 && bits > 0; ++i) {
    const unsigned take = bits >= 8 ? 8 : bits;
    mask_bytes[i] = static_cast<std::uint8_t>(0xff00u >> take);
    masked_bytes[i] = static_cast<std::uint8_t>(p.address.bytes[i] & mask_bytes[i]);
    bits -= take;
  }
  std::memcpy(mask, mask_bytes, sizeof mask);
  std::memcpy(masked, masked_bytes, sizeof masked);
}

wg_peer* tailnet_view::route(bool ipv6, const std::uint8_t* dst) const noexcept {
  std::uint64_t words[2]{};  // an IPv4 address in the first four bytes, the rest zero (and masked off)
  std::memcpy(words, dst, ipv6 ? 16 : 4);
  for (const tailnet_route& r : routes)
    if (r.holds(ipv6, words)) return r.peer;
  return nullptr;
}

bool tailnet_view::owns(bool ipv6, const std::uint8_t* dst) const noexcept {
  return ipv6 ? has_v6 && std::memcmp(dst, v6, 16) == 0 : has_v4 && std::memcmp(dst, &v4_be, 4) == 0;
}

bool tailnet_view::allows(const std::uint8_t* p, const inner_info& info) const noexcept {
  std::optional<std::uint16_t> port;
  const bool has_ports = info.protocol == ipproto_tcp || info.protocol == ipproto_udp || info.protocol == ipproto_sctp;
  if (has_ports) {
    if (info.length < info.l4_offset + 4u) return false;
    port = static_cast<std::uint16_t>(p[info.l4_offset + 2] << 8 | p[info.l4_offset + 3]);
  }
  return filter_allows(filter, info.protocol, ip_address::from_bytes(info.ipv6, info.src),
                       ip_address::from_bytes(info.ipv6, info.dst), port);
}

}  // namespace lopower
