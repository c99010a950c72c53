#include "dataplane/packet_filter.h"

#include <algorithm>

namespace lopower {

bool filter_allows(const std::vector<filter_match>& matches, std::uint8_t ip_proto, const ip_address& src,
                   const ip_address& dst, std::optional<std::uint16_t> dst_port) {
  for (const auto& m : matches) {
    if (std::find(m.ip_proto.begin(), m.ip_proto.end(), ip_proto) == m.ip_proto.end()) continue;
    if (std::none_of(m.srcs.begin(), m.srcs.end(), [&](const ip_prefix& p) { return p.contains(src); })) continue;
    for (const auto& d : m.dsts) {
      if (d.net.contains(dst) && (!dst_port || d.ports.contains(*dst_port))) return true;
    }
  }
  return false;
}

}  // namespace lopower
