// Stage 4, the internet: a device's packet for an address the tailnet does
// not serve leaves out of the uplink port source-NATed to lopower's address
// there, as a home router does (uplink_out); replies and ICMP errors about
// those flows come back on the uplink port, are found by their tuple and go
// back to the device through its WireGuard session (receive_uplink). The
// flows are the splice's (same table, same expiry, flow::uplink set), their
// ports from a second allocator of this worker's, over the uplink's NAT
// range. Next hops' MACs are read from the neighbour table (lock-free); an
// unknown one drops the packet, counted, while the control thread asks for
// the gateway's (dataplane::solicit_uplink_gateways). No system calls, no
// locks but rte_hash's writer lock when a flow is made.

#include <rte_cycles.h>
#include <rte_ether.h>
#include <rte_mbuf.h>

#include <algorithm>
#include <cstring>

#include "dataplane/flow_table.h"
#include "dataplane/inner_packet.h"
#include "dataplane/mbuf_edit.h"
#include "dataplane/neighbour_table.h"
#include "dataplane/splice/translate.h"
#include "dataplane/flow_packet.h"
#include "dataplane/worker.h"
#include "lopower/byte_order.h"

namespace lopower {

namespace {

bool same_address(const std::optional<ip_address>& ours, const splice::flow_key& k) {
  return ours && ours->family == k.family && std::memcmp(ours->bytes.data(), k.dst, ours->family == ip_family::v6 ? 16 : 4) == 0;
}

}  // namespace

void worker::start_uplink() {
  if (!setup_.uplink || setup_.flows == nullptr) return;
  const port_config& cfg = *setup_.uplink;
  uplink_state u;
  for (port_state& ps : ports_)
    if (ps.port.identity != nullptr && ps.port.identity->uplink) u.port = &ps;
  if (u.port == nullptr) return;
  for (const ip_prefix& a : cfg.addresses) {
    std::optional<ip_address>& slot = a.address.family == ip_family::v6 ? u.v6 : u.v4;
    if (!slot) slot = a.address;
    u.on_link.push_back(a);
  }
  u.gateway4 = cfg.gateway4;
  u.gateway6 = cfg.gateway6;
  u.mtu = cfg.mtu;
  uplink_ = std::move(u);
  splice::port_allocator_config pc;
  pc.first_port = cfg.nat_first_port;
  pc.last_port = cfg.nat_last_port;
  pc.worker_index = static_cast<std::uint16_t>(setup_.worker_index);
  pc.worker_count = static_cast<std::uint16_t>(setup_.worker_count);
  pc.max_flows = setup_.max_flows;
  pc.seed = setup_.port_seed ^ 0x75706c696e6bULL;  // "uplink": its own choices, not the splice's
  uplink_ports_alloc_ = std::make_unique<splice::port_allocator>(pc);
}

// An expired flow's port goes back to the allocator it came from: the
// uplink's when its reply side is addressed to the uplink.
splice::port_allocator* worker::allocator_for(const splice::flow_key& released) noexcept {
  if (uplink_ && (same_address(uplink_->v4, released) || same_address(uplink_->v6, released)))
    return uplink_ports_alloc_.get();
  return ports_alloc_.get();
}

// The MAC of `dst`'s next hop on the uplink: `dst` itself on the port's
// link, else the gateway of its family.
bool worker::next_hop_mac(const ip_address& dst, rte_ether_addr& mac) noexcept {
  uplink_state& u = *uplink_;
  const bool on_link = std::any_of(u.on_link.begin(), u.on_link.end(), [&](const ip_prefix& a) { return a.contains(dst); });
  const std::optional<ip_address>& gateway = dst.family == ip_family::v6 ? u.gateway6 : u.gateway4;
  if (!on_link && !gateway) return false;
  const ip_address& hop = on_link ? dst : *gateway;
  const std::uint64_t now = rte_rdtsc();
  if (now < u.hop_until_tsc && hop == u.hop) {
    mac = u.hop_mac;
    return true;
  }
  if (setup_.neighbour_macs == nullptr || !setup_.neighbour_macs->lookup(u.port->port.port_id, hop, &mac)) return false;
  u.hop = hop;
  u.hop_mac = mac;
  u.hop_until_tsc = now + rte_get_tsc_hz() / 1000;
  return true;
}

void worker::uplink_out(port_state& ps, rte_mbuf* m, const inner_info& info, wg_peer* device, const flow_lookup& flow_hint,
                        outbound& out) noexcept {
  uplink_state& u = *uplink_;
  const std::optional<ip_address>& ours = info.ipv6 ? u.v6 : u.v4;
  if (!ours)
    return refuse_to_device(ps, m, info, device, splice::icmp_error_kind::host_unreachable, drop_reason::splice_no_route, out);
  auto* p = rte_pktmbuf_mtod(m, std::uint8_t*);
  // The uplink does not cut packets up: a reassembled one larger than its MTU is refused.
  if (info.length > u.mtu || m->nb_segs != 1)
    return refuse_to_device(ps, m, info, device, splice::icmp_error_kind::packet_too_big, drop_reason::uplink_too_big, out,
                            u.mtu);
  const ip_address dst = ip_address::from_bytes(info.ipv6, info.dst);
  rte_ether_addr hop_mac;
  if (!next_hop_mac(dst, hop_mac)) return drop_one(ps.port.index, m, drop_reason::uplink_no_neighbour);
  splice::flow_key parsed;
  const splice::flow_key* packet_key = flow_key_of(flow_hint, p, info.length, parsed);
  if (packet_key == nullptr)
    return icmp_error_out(m, info, device, *ours, hop_mac, ps.port.index);
  const splice::flow_key& key = *packet_key;
  // The TTL runs out here, before a flow is made for it (traceroute's probes).
  if (!splice::decrement_hop_limit(p, info.length))
    return refuse_to_device(ps, m, info, device, splice::icmp_error_kind::time_exceeded, drop_reason::uplink_ttl_expired, out);
  flow* f = flow_hint.found != nullptr ? flow_hint.found : setup_.flows->find(key);
  if (f != nullptr && !f->uplink)  // a spliced flow whose tailnet route is gone
    return refuse_to_device(ps, m, info, device, splice::icmp_error_kind::host_unreachable, drop_reason::splice_no_route, out);
  if (f == nullptr) {
    if (info.protocol == splice::ipproto_tcp && !splice::opens_tcp_flow(splice::tcp_flags(p, packet_info_of(info))))
      return drop_one(ps.port.index, m, drop_reason::splice_no_flow);
    const made_flow made = make_flow(key, ours->bytes.data(), device, *uplink_ports_alloc_, true);
    if ((f = made.f) == nullptr) return drop_one(ps.port.index, m, made.refused);
  }
  if (splice::rewrite_source(p, info.length, *ours, f->tailnet_key.dst_port) != splice::translate_status::ok)
    return drop_one(ps.port.index, m, drop_reason::uplink_unsupported);
  if (info.protocol == splice::ipproto_tcp)
    splice::clamp_tcp_mss(p, info.length, splice::max_mss_for_mtu(key.family, u.mtu));
  track_tcp(*setup_.flows, *f, p, info, splice::flow_direction::original, setup_.worker_index);
  count_flow_packet(*f, false, setup_.worker_index, info.length, burst_tsc_);
  send_on_uplink(m, info.ipv6, hop_mac, ps.port.index);
}

// The IP packet in `m` out of the uplink port, in an Ethernet frame to `hop_mac`.
void worker::send_on_uplink(rte_mbuf* m, bool ipv6, const rte_ether_addr& hop_mac, std::uint8_t port_index) noexcept {
  auto* eth = reinterpret_cast<rte_ether_hdr*>(rte_pktmbuf_prepend(m, sizeof(rte_ether_hdr)));
  if (eth == nullptr) return drop_one(port_index, m, drop_reason::no_headroom);
  eth->dst_addr = hop_mac;
  eth->src_addr = setup_.uplink_mac;
  eth->ether_type = rte_cpu_to_be_16(ipv6 ? RTE_ETHER_TYPE_IPV6 : RTE_ETHER_TYPE_IPV4);
  transmit(*uplink_->port, m);
}

// A device's ICMP error about an answer on one of its uplink flows (its
// socket closed: port unreachable): it quotes remote -> device, the answer
// as the device got it; out it goes from the uplink address, quoting the
// flow's NAT port, as the remote sent to it. Errors make no flow.
void worker::icmp_error_out(rte_mbuf* m, const inner_info& info, wg_peer* device, const ip_address& ours,
                            const rte_ether_addr& hop_mac, std::uint8_t port_index) noexcept {
  auto* p = rte_pktmbuf_mtod(m, std::uint8_t*);
  splice::flow_key quoted{};
  if (splice::quoted_flow_key(p, info.length, quoted) != splice::translate_status::ok)
    return drop_one(port_index, m, drop_reason::uplink_unsupported);
  const splice::flow_key key = quoted.reverse();  // the flow's device-side key
  const flow* f = setup_.flows->find(key);
  if (f == nullptr || !f->uplink || f->device != device || !(f->device_key == key) ||
      splice::translate_icmp_error_outbound(p, info.length, ours, f->tailnet_key.dst_port) != splice::translate_status::ok)
    return drop_one(port_index, m, drop_reason::uplink_unsupported);
  if (!splice::decrement_hop_limit(p, info.length)) return drop_one(port_index, m, drop_reason::uplink_ttl_expired);
  send_on_uplink(m, info.ipv6, hop_mac, port_index);
}

// The uplink_nat sub-burst: replies on uplink flows back to their devices,
// sealed together; the rest (the kernel's own traffic on the uplink
// address, anything unknown) to the exception path as before.
void worker::receive_uplink(port_state& ps, rte_mbuf** pkts, std::uint16_t n) noexcept {
  if (n == 0) return;
  if (!uplink_) return to_kernel(ps, pkts, n);
  burst_tsc_ = rte_rdtsc();
  outbound out;
  rte_mbuf* kernel[max_burst];
  std::uint16_t n_kernel = 0;
  for (std::uint16_t i = 0; i < n; ++i)
    if (!uplink_in(ps, pkts[i], out)) kernel[n_kernel++] = pkts[i];
  encrypt_and_send(ps.port.index, out);
  to_kernel(ps, kernel, n_kernel);
}

// False: not an uplink flow's (the frame is left as it came, for the kernel).
bool worker::uplink_in(port_state& ps, rte_mbuf* m, outbound& out) noexcept {
  constexpr std::uint16_t eth = sizeof(rte_ether_hdr);
  if (m->nb_segs != 1 || m->data_len <= eth) return false;
  auto* p = rte_pktmbuf_mtod_offset(m, std::uint8_t*, eth);
  const std::uint32_t len = m->data_len - eth;  // Ethernet padding included: the IP header says where the packet ends
  splice::flow_key key{};
  bool icmp_error = false;
  if (splice::flow_key_of(p, len, key) != splice::translate_status::ok) {
    // An ICMP error about one of our flows quotes what we sent.
    splice::flow_key quoted{};
    if (splice::quoted_flow_key(p, len, quoted) != splice::translate_status::ok) return false;
    key = quoted.reverse();
    icmp_error = true;
  }
  flow* f = setup_.flows->find(key);
  if (f == nullptr || !f->uplink || !(f->tailnet_key == key)) return false;
  const bool v6 = f->device_key.family == ip_family::v6;
  const ip_address device_addr = ip_address::from_bytes(v6, f->device_key.src);
  const splice::translate_status st =
      icmp_error ? splice::translate_icmp_error_inner(p, len, device_addr, f->device_key.src_port)
                 : splice::rewrite_destination(p, len, device_addr, f->device_key.src_port);
  if (st != splice::translate_status::ok) {
    drop_one(ps.port.index, m, drop_reason::uplink_unsupported);
    return true;
  }
  if (!splice::decrement_hop_limit(p, len)) {
    drop_one(ps.port.index, m, drop_reason::uplink_ttl_expired);
    return true;
  }
  rte_pktmbuf_adj(m, eth);
  const std::optional<inner_info> info = parse_inner(p, len);
  if (!info) {
    drop_one(ps.port.index, m, drop_reason::uplink_unsupported);
    return true;
  }
  cut_to(m, info->length);  // Ethernet padding
  if (!icmp_error) track_tcp(*setup_.flows, *f, p, *info, splice::flow_direction::reply, setup_.worker_index);
  count_flow_packet(*f, true, setup_.worker_index, info->length, burst_tsc_);
  send_inner(ps, m, *info, f->device, setup_.device_mtu, out);
  return true;
}

}  // namespace lopower
