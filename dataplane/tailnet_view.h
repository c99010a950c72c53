#pragma once
// What the workers need to know of the tailnet, published by the control
// thread whenever the netmap changes it: lopower's own tailnet addresses
// (local services answer there) and the packet filter inbound tailnet
// traffic must pass. Immutable once published; replaced as a whole (RCU).

#include <cstdint>
#include <vector>

#include "control/tailnet/netmap/packet_filter.h"
#include "dataplane/inner_packet.h"

namespace lopower {

struct tailnet_view {
  bool has_v4 = false, has_v6 = false;
  std::uint32_t v4_be = 0;
  std::uint8_t v6[16]{};
  std::vector<tailnet::filter_match> filter;  // empty: nothing is allowed in

  bool owns(bool ipv6, const std::uint8_t* dst) const noexcept;
  // The tailnet's ACLs for a packet coming in from a peer (`p` holds it).
  bool allows(const std::uint8_t* p, const inner_info& info) const noexcept;
};

}  // namespace lopower
