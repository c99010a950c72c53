#include "dataplane/tailnet_view.h"

#include <cstring>

namespace lopower {

namespace {

constexpr std::uint8_t ipproto_tcp = 6, ipproto_udp = 17, ipproto_sctp = 132;

}  // namespace

wg_peer* tailnet_view::route(bool ipv6, const std::uint8_t* dst) const noexcept {
  const ip_address a = ip_address::from_bytes(ipv6, dst);
  for (const tailnet_route& r : routes)
    if (r.prefix.contains(a)) return r.peer;
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
