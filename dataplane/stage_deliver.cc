// Stage 3, deliver: where a decrypted inner packet goes. From a device:
// cryptokey routing (its source must be the device's address), then
// lopower's own services (DNS to the control thread, ICMP echo answered
// here), else the splice onto the tailnet (stage_splice.cc); replies on a
// tailnet peer's inbound flow and packets to another device go through
// stage_inbound.cc. From a tailnet peer: its AllowedIPs, lopower's tailnet
// addresses, replies on a device's flow spliced back (stage_splice.cc), TSMP
// and echo answered here, port forwards, the tailnet's packet filter, DNS
// queries (UDP) to the control thread; device addresses in route mode
// (stage_inbound.cc). Fragments are made
// whole first (stage_fragments.cc).

#include <rte_mbuf.h>

#include <cstring>

#include "dataplane/fragments/fragment_header.h"
#include "dataplane/inner_packet.h"
#include "dataplane/mbuf_edit.h"
#include "dataplane/worker.h"

namespace lopower {

void worker::deliver_inner(port_state& ps, rte_mbuf* m, wg_peer* peer, const std::optional<inner_info>& info,
                           const flow_lookup& flow_hint, outbound& out) noexcept {
  if (m->data_len == 0) {  // keepalive: its job (timers, roaming) is done
    rte_pktmbuf_free(m);
    return;
  }
  const std::uint64_t rx_tsc = burst_tsc_;
  peer->last_data_rx_tsc.store(rx_tsc, std::memory_order_relaxed);
  auto* p = rte_pktmbuf_mtod(m, std::uint8_t*);
  if (!info) return drop_one(ps.port.index, m, drop_reason::inner_malformed);
  if (peer->tailnet) return deliver_from_tailnet(ps, m, *info, peer, flow_hint, out);
  std::uint32_t src_v4;
  std::memcpy(&src_v4, info->src, 4);
  const bool allowed = info->ipv6 ? peer->source_allowed_v6(info->src) : peer->source_allowed_v4(src_v4);
  if (!allowed) return drop_one(ps.port.index, m, drop_reason::wg_source_not_allowed);
  cut_to(m, info->length);  // WireGuard's padding
  if (fragments::is_fragment(p, info->ipv6)) return deliver_fragment(ps, m, *info, peer, out);  // whole first
  // A reply to a tailnet peer's flow (route mode): only a packet of an
  // inbound flow, or one not looked up, may be one (a spliced flow's, the
  // common case, is not asked).
  const bool may_be_inbound = !flow_hint.done || (flow_hint.found != nullptr && flow_hint.found->kind != flow_kind::spliced);
  if (may_be_inbound && inbound_reply(ps, m, *info, peer, flow_hint, out)) return;
  const bool to_us = info->ipv6 ? setup_.has_local_v6 && std::memcmp(info->dst, setup_.local_v6, 16) == 0
                                : setup_.has_local_v4 && std::memcmp(info->dst, &setup_.local_v4_be, 4) == 0;
  if (to_us) {
    if (setup_.inner_up_flag != 0 && is_dns_query(p, *info)) {  // lopower's DNS server: the control thread
      if (!peer->allow_dns_query(rx_tsc, setup_.dns_query_interval_cycles, setup_.dns_query_burst))
        return drop_one(ps.port.index, m, drop_reason::dns_device_rate);
      return inner_to_control(ps, m);
    }
    if (!make_echo_reply(p, *info)) return drop_one(ps.port.index, m, drop_reason::inner_no_route);
    return send_inner(ps, m, *info, peer, setup_.device_mtu, out);
  }
  // Another device's address: looked at for packets of no flow only, so a
  // spliced flow's packets pay nothing for it.
  if (flow_hint.found == nullptr) {
    const device_directory* dir = device_dir();
    if (dir != nullptr && dir->covers(info->ipv6, info->dst))
      return device_to_device(ps, m, *info, peer, dir->find(info->ipv6, info->dst), out);
  }
  splice_out(ps, m, *info, peer, flow_hint, out);
}

// From a tailnet peer: its AllowedIPs, then lopower's own addresses, where
// TSMP pings are answered before the packet filter (as tailscale does: they
// are its own protocol, not traffic) and ICMP echo after it. Replies on a
// device's flow are spliced back before the filter.
void worker::deliver_from_tailnet(port_state& ps, rte_mbuf* m, const inner_info& info, wg_peer* peer,
                                  const flow_lookup& flow_hint, outbound& out) noexcept {
  const allowed_prefixes* allowed = peer->allowed.load(std::memory_order_acquire);
  if (allowed == nullptr || !allowed->contains(info.ipv6, info.src))
    return drop_one(ps.port.index, m, drop_reason::wg_source_not_allowed);
  cut_to(m, info.length);  // WireGuard's padding
  const tailnet_view* view = setup_.tailnet ? setup_.tailnet->load(std::memory_order_acquire) : nullptr;
  if (view == nullptr) return drop_one(ps.port.index, m, drop_reason::tailnet_not_for_us);
  if (!view->owns(info.ipv6, info.dst)) return inbound_from_tailnet(ps, m, info, peer, *view, flow_hint, out);
  if (fragments::is_fragment(rte_pktmbuf_mtod(m, const std::uint8_t*), info.ipv6))
    return deliver_fragment(ps, m, info, peer, out);  // whole first: only the first piece has ports
  // Replies on a device's flow: the flow is the permission (the filter
  // governs what may open one toward us, not answers to what we opened).
  if (splice_in(ps, m, info, flow_hint, out)) return;
  auto* p = rte_pktmbuf_mtod(m, std::uint8_t*);
  if (is_tsmp_ping(p, info)) {
    const std::uint16_t pong = static_cast<std::uint16_t>(info.l4_offset + tsmp_pong_l4_size);
    if (pong > m->data_len && rte_pktmbuf_append(m, static_cast<std::uint16_t>(pong - m->data_len)) == nullptr)
      return drop_one(ps.port.index, m, drop_reason::no_headroom);
    make_tsmp_pong(p, info);
    rte_pktmbuf_trim(m, static_cast<std::uint16_t>(m->data_len - pong));
    return push_out(ps, m, peer, out);
  }
  if (info.protocol == ipproto_tsmp) return drop_one(ps.port.index, m, drop_reason::tailnet_tsmp_ignored);
  if (forward_in(ps, m, info, *view, flow_hint, out)) return;  // a forwarded port: to its device
  if (!view->allows(p, info)) return drop_one(ps.port.index, m, drop_reason::tailnet_filtered);
  if (setup_.inner_up_flag != 0 && info.protocol == IPPROTO_UDP && is_dns_query(p, info)) {
    // lopower as the peer's split-DNS resolver for the device domain: paced
    // per peer as devices are, so one peer cannot fill the ring. A peer's
    // packets reach one worker, except while it moves between a direct path
    // and a relay: then a racing update lets a query or two more through.
    const std::uint64_t rx_tsc = peer->last_data_rx_tsc.load(std::memory_order_relaxed);  // stamped on arrival
    if (!peer->allow_dns_query(rx_tsc, setup_.dns_query_interval_cycles, setup_.dns_query_burst))
      return drop_one(ps.port.index, m, drop_reason::dns_tailnet_rate);
    m->hash.usr = peer->id;  // whom the control thread answers
    return inner_to_control(ps, m);
  }
  if (setup_.inner_up_flag != 0 && is_lopower_echo_reply(p, info)) return inner_to_control(ps, m);
  if (make_echo_reply(p, info)) return send_inner(ps, m, info, peer, splice::tailnet_mtu, out);
  drop_one(ps.port.index, m, drop_reason::tailnet_not_for_us);
}

void worker::inner_to_control(port_state& ps, rte_mbuf* m) noexcept {
  m->ol_flags |= setup_.inner_up_flag;
  m->port = ps.port.port_id;
  to_control(ps, up_ring::inner, &m, 1);
}

}  // namespace lopower
