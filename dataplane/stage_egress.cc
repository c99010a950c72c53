// Stage 4, splice (continued): a device packet whose destination no tailnet
// route covers. Inside the tailnet's own ranges it is an address no peer
// has (unreachable, as before egress existed); beyond them the device's
// egress mode decides: through the chosen exit node (spliced like any
// tailnet flow), refused by policy, or out of the uplink. Only packets that
// missed every tailnet route come here: one relaxed load of the device's
// mode, no lock, no system call.

#include <algorithm>

#include "dataplane/worker.h"

namespace lopower {

namespace {

// 100.64.0.0/10 and fd7a:115c:a1e0::/48: where tailnet nodes live. A miss
// there is a peer that is not (or no longer) in the netmap, never egress.
bool in_tailnet_ranges(bool ipv6, const std::uint8_t* dst) noexcept {
  static constexpr std::uint8_t ula[6] = {0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0};
  if (ipv6) return std::equal(ula, ula + 6, dst);
  return dst[0] == 100 && (dst[1] & 0xc0) == 64;
}

}  // namespace

wg_peer* worker::egress_peer(port_state& ps, rte_mbuf* m, const inner_info& info, wg_peer* device,
                             const tailnet_view* view, const flow_lookup& flow_hint, outbound& out) noexcept {
  using splice::icmp_error_kind;
  if (in_tailnet_ranges(info.ipv6, info.dst)) {
    refuse_to_device(ps, m, info, device, icmp_error_kind::host_unreachable, drop_reason::splice_no_route, out);
    return nullptr;
  }
  switch (device->egress.load(std::memory_order_relaxed)) {
    case egress_mode::exit:
      if (view != nullptr && view->exit_node != nullptr) return view->exit_node;
      // None online: said at once, so the device's connection fails now
      // rather than after its timeout.
      refuse_to_device(ps, m, info, device, icmp_error_kind::host_unreachable, drop_reason::egress_no_exit_node, out);
      return nullptr;
    case egress_mode::uplink:
      if (uplink_ && setup_.flows != nullptr) {
        uplink_out(ps, m, info, device, flow_hint, out);
        return nullptr;
      }
      // Set on a device while lopower has no uplink port (config refuses
      // it globally; a test rig may have none).
      refuse_to_device(ps, m, info, device, icmp_error_kind::host_unreachable, drop_reason::egress_no_uplink, out);
      return nullptr;
    case egress_mode::none:
      break;
  }
  refuse_to_device(ps, m, info, device, icmp_error_kind::admin_prohibited, drop_reason::egress_refused, out);
  return nullptr;
}

}  // namespace lopower
