#pragma once
// What the workers need to know of the tailnet, published by the control
// thread whenever the netmap changes it: lopower's own tailnet addresses
// (local services answer there) and the packet filter inbound tailnet
// traffic must pass. Immutable once published; replaced as a whole (RCU).

#include <cstdint>
#include <vector>

#include "dataplane/inner_packet.h"
#include "dataplane/packet_filter.h"

namespace lopower {

// Where a spliced flow goes: the tailnet peer whose AllowedIPs hold the
// destination (the peer's lifetime: RCU, retired no sooner than the view).
struct tailnet_route {
  ip_prefix prefix;
  wg_peer* peer = nullptr;
  // The prefix as two masked 64-bit words (bytes as packets carry them; IPv4
  // in the first four), built once by the control thread, so that the
  // worker's per-packet lookup compares two words instead of walking the
  // prefix byte by byte through an ip_address copy.
  std::uint64_t masked[2]{}, mask[2]{};

  tailnet_route(const ip_prefix& p, wg_peer* to) noexcept;
  bool holds(bool ipv6, const std::uint64_t dst[2]) const noexcept {
    return ipv6 == (prefix.address.family == ip_family::v6) && (dst[0] & mask[0]) == masked[0] &&
           (dst[1] & mask[1]) == masked[1];
  }
};

struct tailnet_view {
  bool has_v4 = false, has_v6 = false;
  std::uint32_t v4_be = 0;
  std::uint8_t v6[16]{};
  std::vector<filter_match> filter;  // empty: nothing is allowed in
  // Longest prefixes first, so the first match is the most specific. A
  // linear scan: tailnets of a few hundred peers; an rte_lpm would take over
  // beyond that.
  std::vector<tailnet_route> routes;  // never a default route: that is `exit_node`'s
  // The chosen exit node (its 0.0.0.0/0 and ::/0): where devices whose
  // egress is "exit" send what no route above takes. Null: none available.
  wg_peer* exit_node = nullptr;

  wg_peer* route(bool ipv6, const std::uint8_t* dst) const noexcept;
  // lopower's tailnet address of a family, or nullptr when it has none.
  const std::uint8_t* own(bool ipv6) const noexcept { return ipv6 ? (has_v6 ? v6 : nullptr) : (has_v4 ? reinterpret_cast<const std::uint8_t*>(&v4_be) : nullptr); }

  bool owns(bool ipv6, const std::uint8_t* dst) const noexcept;
  // The tailnet's ACLs for a packet coming in from a peer (`p` holds it).
  bool allows(const std::uint8_t* p, const inner_info& info) const noexcept;
};

}  // namespace lopower
