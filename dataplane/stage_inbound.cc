// Stage 4, inbound: flows a tailnet peer opens toward a device (route mode:
// lopower advertises the device prefixes as subnet routes). The first
// packet, from a peer whose AllowedIPs hold its source and that the
// tailnet's packet filter allows, opens an inbound flow in the flow table
// (flow_kind): with SNAT its source becomes lopower's device-side address
// and a port allocated for the flow, so the device needs no route back to
// the tailnet; without, it goes to the device unchanged. The device's
// replies are found by their tuple and translated back. And device-to-device
// traffic: refused by policy, or delivered to the other device as it is.
// Same rules as the splice (stage_splice.cc): lock-free lookups, a lock only
// when a flow is created, no system calls.

#include <rte_cycles.h>
#include <rte_mbuf.h>

#include <cstring>

#include "dataplane/flow_table.h"
#include "dataplane/fragments/fragment_header.h"
#include "dataplane/inner_packet.h"
#include "dataplane/splice/translate.h"
#include "dataplane/flow_packet.h"
#include "dataplane/worker.h"

namespace lopower {

namespace {

bool same_address(const std::uint8_t* a, const std::uint8_t* b, bool v6) { return std::memcmp(a, b, v6 ? 16 : 4) == 0; }

ip_address address_of(const std::uint8_t* a, bool v6) { return ip_address::from_bytes(v6, a); }

}  // namespace

// A tailnet packet to an address lopower does not own: a device's, in route
// mode (fragments are made whole first: only the first piece has ports).
void worker::inbound_from_tailnet(port_state& ps, rte_mbuf* m, const inner_info& info, wg_peer* peer,
                                  const tailnet_view& view, const flow_lookup& flow_hint, outbound& out) noexcept {
  const device_directory* dir = device_dir();
  if (!setup_.inbound_routes || dir == nullptr || setup_.flows == nullptr || !dir->covers(info.ipv6, info.dst))
    return drop_one(ps.port.index, m, drop_reason::tailnet_not_for_us);
  auto* p = rte_pktmbuf_mtod(m, std::uint8_t*);
  if (fragments::is_fragment(p, info.ipv6)) return deliver_fragment(ps, m, info, peer, out);
  splice::flow_key parsed;
  const splice::flow_key* packet_key = flow_key_of(flow_hint, p, info.length, parsed);
  if (packet_key == nullptr)
    return drop_one(ps.port.index, m, drop_reason::splice_unsupported);
  const splice::flow_key& key = *packet_key;
  flow* f = flow_hint.done ? flow_hint.found : setup_.flows->find(key);
  // The flow is the permission for what follows its first packet, as for
  // the splice's replies.
  if (f != nullptr && f->kind != flow_kind::spliced && f->tailnet_key == key) return inbound_on_flow(ps, m, info, *f, out);
  if (!view.allows(p, info)) return drop_one(ps.port.index, m, drop_reason::tailnet_filtered);
  wg_peer* device = dir->find(info.ipv6, info.dst);
  if (device == nullptr) return drop_one(ps.port.index, m, drop_reason::inbound_no_device);
  if (info.protocol == splice::ipproto_tcp && !splice::opens_tcp_flow(splice::tcp_flags(p, packet_info_of(info))))
    return drop_one(ps.port.index, m, drop_reason::splice_no_flow);
  const made_flow made = create_inbound_flow(key, device, info.dst, key.dst_port, setup_.inbound_snat);
  if (made.f == nullptr) return drop_one(ps.port.index, m, made.refused);
  inbound_on_flow(ps, m, info, *made.f, out);
}

// An inbound flow opened by `opened` (peer -> device address:port, as the
// peer sent it) toward `device` at `device_addr`:`device_port`. With SNAT
// the device sees it come from lopower's device-side address and a port
// allocated here; without, from the peer.
worker::made_flow worker::create_inbound_flow(const splice::flow_key& opened, wg_peer* device,
                                              const std::uint8_t* device_addr, std::uint16_t device_port,
                                              bool snat) noexcept {
  if (setup_.flows == nullptr || device->flows.load(std::memory_order_relaxed) >= setup_.max_flows_per_device ||
      device->removed.load(std::memory_order_relaxed))
    return {nullptr, drop_reason::splice_flow_limit};
  const bool v6 = opened.family == ip_family::v6;
  if (snat && !(v6 ? setup_.has_local_v6 : setup_.has_local_v4)) return {nullptr, drop_reason::splice_no_tailnet_address};
  const auto* lopower = v6 ? setup_.local_v6 : reinterpret_cast<const std::uint8_t*>(&setup_.local_v4_be);
  flow* f = setup_.flows->allocate();
  if (f == nullptr) return {nullptr, drop_reason::splice_flow_pool_empty};
  f->kind = snat ? flow_kind::inbound_ported : flow_kind::inbound;
  f->tailnet_key = opened;
  // As the device replies: to lopower's address and the port allocated
  // below, or to the peer as it is.
  f->device_key = splice::make_flow_key(opened.family, opened.protocol, device_addr, device_port, snat ? lopower : opened.src,
                                        snat ? 0 : opened.src_port);
  f->device = device;
  f->created_tsc = rte_rdtsc();
  f->last_tsc.store(f->created_tsc, std::memory_order_relaxed);
  f->owner_worker = static_cast<std::uint8_t>(setup_.worker_index);
  const std::optional<drop_reason> refused =
      !snat ? std::nullopt : ports_alloc_ ? allocate_port(f->device_key, *ports_alloc_) : drop_reason::splice_flow_limit;
  if (refused) {
    setup_.flows->discard(f);
    return {nullptr, *refused};
  }
  if (!setup_.flows->insert(f)) {  // the table at max_flows
    if (snat) release_port(f->device_key);
    setup_.flows->discard(f);
    return {nullptr, drop_reason::splice_flow_limit};
  }
  device->flows.fetch_add(1, std::memory_order_relaxed);
  return {f, {}};
}

// A forward: the flow goes to the device's address (of the packet's family)
// and port, always from lopower's device-side address (the device has no
// route to the tailnet for it). The filter governs what opens one, as for
// any packet to lopower.
bool worker::forward_in(port_state& ps, rte_mbuf* m, const inner_info& info, const tailnet_view& view,
                        const flow_lookup& flow_hint, outbound& out) noexcept {
  if (info.protocol != splice::ipproto_tcp && info.protocol != splice::ipproto_udp) return false;
  const forward_table* table = forwards();
  if (table == nullptr || setup_.flows == nullptr || info.length < info.l4_offset + 4u) return false;
  auto* p = rte_pktmbuf_mtod(m, std::uint8_t*);
  const std::uint16_t port = static_cast<std::uint16_t>(p[info.l4_offset + 2] << 8 | p[info.l4_offset + 3]);
  const forward_entry* fw = table->find(info.protocol, port);
  if (fw == nullptr) return false;
  splice::flow_key parsed;
  const splice::flow_key* packet_key = flow_key_of(flow_hint, p, info.length, parsed);
  if (packet_key == nullptr) {
    drop_one(ps.port.index, m, drop_reason::splice_unsupported);
    return true;
  }
  const splice::flow_key& key = *packet_key;
  flow* f = flow_hint.done ? flow_hint.found : setup_.flows->find(key);
  if (f != nullptr && f->kind != flow_kind::spliced && f->tailnet_key == key) {
    inbound_on_flow(ps, m, info, *f, out);
    return true;
  }
  const bool v6 = info.ipv6;
  const auto* device_addr = v6 ? fw->device_v6 : reinterpret_cast<const std::uint8_t*>(&fw->device_v4_be);
  const device_directory* dir = device_dir();
  wg_peer* device = (v6 ? fw->has_v6 : fw->has_v4) && dir != nullptr ? dir->find(v6, device_addr) : nullptr;
  drop_reason why = drop_reason::splice_flow_limit;
  if (!view.allows(p, info)) why = drop_reason::tailnet_filtered;
  else if (device == nullptr) why = drop_reason::inbound_no_device;
  else if (info.protocol == splice::ipproto_tcp && !splice::opens_tcp_flow(splice::tcp_flags(p, packet_info_of(info))))
    why = drop_reason::splice_no_flow;
  else if (const made_flow made = create_inbound_flow(key, device, device_addr, fw->device_port, true); made.f != nullptr) {
    inbound_on_flow(ps, m, info, *made.f, out);
    return true;
  } else why = made.refused;
  drop_one(ps.port.index, m, why);
  return true;
}

// Peer -> device on an inbound flow: the packet is made what the device's
// side of the flow expects (whatever of its destination and source differs).
void worker::inbound_on_flow(port_state& ps, rte_mbuf* m, const inner_info& info, flow& f, outbound& out) noexcept {
  auto* p = rte_pktmbuf_mtod(m, std::uint8_t*);
  const bool v6 = info.ipv6;
  const splice::flow_key& to = f.device_key;  // reversed: the device's end is its source
  splice::translate_status st = splice::translate_status::ok;
  if (!same_address(f.tailnet_key.dst, to.src, v6) || f.tailnet_key.dst_port != to.src_port)
    st = splice::rewrite_destination(p, info.length, address_of(to.src, v6), to.src_port);
  if (st == splice::translate_status::ok && (!same_address(f.tailnet_key.src, to.dst, v6) || f.tailnet_key.src_port != to.dst_port))
    st = splice::rewrite_source(p, info.length, address_of(to.dst, v6), to.dst_port);
  if (st != splice::translate_status::ok) return drop_one(ps.port.index, m, drop_reason::splice_unsupported);
  track_tcp(*setup_.flows, f, p, info, splice::flow_direction::original, setup_.worker_index);
  count_flow_packet(f, true, setup_.worker_index, info.length, burst_tsc_);
  send_inner(ps, m, info, f.device, setup_.device_mtu, out);
}

// A device's packet that may be a reply on an inbound flow (or an ICMP
// error about one): translated back and sent to the peer; false when it is
// not one. deliver_inner does not ask for a spliced flow's packets.
bool worker::inbound_reply(port_state& ps, rte_mbuf* m, const inner_info& info, wg_peer* device, const flow_lookup& flow_hint,
                           outbound& out) noexcept {
  if (setup_.flows == nullptr) return false;
  auto* p = rte_pktmbuf_mtod(m, std::uint8_t*);
  splice::flow_key parsed;
  const splice::flow_key* packet_key = flow_key_of(flow_hint, p, info.length, parsed);
  const bool icmp_error = packet_key == nullptr;
  if (icmp_error) {
    // An ICMP error about a flow quotes what the device received on it.
    splice::flow_key quoted{};
    if (splice::quoted_flow_key(p, info.length, quoted) != splice::translate_status::ok) return false;
    parsed = quoted.reverse();
    packet_key = &parsed;
  }
  const splice::flow_key& key = *packet_key;
  flow* f = flow_hint.done ? flow_hint.found : setup_.flows->find(key);
  if (f == nullptr || f->kind == flow_kind::spliced || f->device != device || !(f->device_key == key)) return false;
  const bool v6 = info.ipv6;
  const splice::flow_key& to = f->tailnet_key;  // reversed: the peer's end is its source
  const bool source_kept = same_address(key.src, to.dst, v6) && key.src_port == to.dst_port;
  splice::translate_status st = splice::translate_status::ok;
  if (icmp_error) {
    // The quote's destination (the device) stands: only where the peer
    // addressed the device itself (route mode).
    st = source_kept ? splice::translate_icmp_error_inner(p, info.length, address_of(to.src, v6), to.src_port)
                     : splice::translate_status::unsupported;
  } else {
    if (!same_address(key.dst, to.src, v6) || key.dst_port != to.src_port)
      st = splice::rewrite_destination(p, info.length, address_of(to.src, v6), to.src_port);
    if (st == splice::translate_status::ok && !source_kept)
      st = splice::rewrite_source(p, info.length, address_of(to.dst, v6), to.dst_port);
  }
  const tailnet_view* view = setup_.tailnet ? setup_.tailnet->load(std::memory_order_acquire) : nullptr;
  wg_peer* peer = view ? view->route(v6, to.src) : nullptr;
  if (st != splice::translate_status::ok || peer == nullptr) {
    drop_one(ps.port.index, m, st != splice::translate_status::ok ? drop_reason::splice_unsupported : drop_reason::splice_no_route);
    return true;
  }
  if (info.protocol == splice::ipproto_tcp && !icmp_error) {
    splice::clamp_tcp_mss(p, info.length, splice::max_mss_for_mtu(key.family, splice::tailnet_mtu));
    track_tcp(*setup_.flows, *f, p, info, splice::flow_direction::reply, setup_.worker_index);
  }
  count_flow_packet(*f, false, setup_.worker_index, info.length, burst_tsc_);
  send_inner(ps, m, info, peer, splice::tailnet_mtu, out);
  return true;
}

// Devices are isolated from each other unless the configuration allows
// otherwise (IoT: a compromised device must not reach its neighbours).
void worker::device_to_device(port_state& ps, rte_mbuf* m, const inner_info& info, wg_peer* from, wg_peer* to,
                              outbound& out) noexcept {
  if (!setup_.device_to_device)
    return refuse_to_device(ps, m, info, from, splice::icmp_error_kind::admin_prohibited,
                            drop_reason::device_to_device_denied, out);
  if (to == nullptr)
    return refuse_to_device(ps, m, info, from, splice::icmp_error_kind::host_unreachable, drop_reason::inbound_no_device,
                            out);
  stats_.ports[ps.port.index].device_to_device.add();
  send_inner(ps, m, info, to, setup_.device_mtu, out);
}

}  // namespace lopower
