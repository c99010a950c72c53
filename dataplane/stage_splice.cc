// Stage 4, splice: a device's decrypted packet to a tailnet address is
// rewritten to come from lopower's tailnet address and a port allocated for
// its flow, and goes out to the tailnet peer that serves the destination
// (splice_out); the peer's replies are found by their tuple and rewritten
// back to the device (splice_in). Runs between the decrypt and encrypt
// calls of a sub-burst: no system calls; flow lookups are lock-free, a lock
// only when a flow is created (rte_hash's writers); a flow's counters are
// per worker (flow_traffic), its stamp a relaxed store, a change of its TCP
// state a compare-and-swap (flow_table::track_tcp; per connection, not per
// packet).

#include <rte_cycles.h>
#include <rte_mbuf.h>

#include <algorithm>
#include <cstring>

#include "dataplane/flow_table.h"
#include "dataplane/inner_packet.h"
#include "dataplane/fragments/fragment_header.h"
#include "dataplane/splice/translate.h"
#include "dataplane/flow_packet.h"
#include "dataplane/worker.h"

namespace lopower {

namespace {

bool is_icmp_echo(std::uint8_t protocol) { return protocol == splice::ipproto_icmp || protocol == splice::ipproto_icmpv6; }

// The far end a port is unique toward: where a reply-direction key (the one
// holding the allocated port as its destination port) comes from.
splice::destination remote_of(const splice::flow_key& reply_key) { return splice::destination_of(reply_key.reverse()); }

ip_address device_address_of(const flow& f) {
  return ip_address::from_bytes(f.device_key.family == ip_family::v6, f.device_key.src);
}

// A device's packet (of flow key `key`) on flow `f` rewritten to come from
// our address and the flow's port: where the bulk lookup found its fields,
// with the flow's checksum differences (nothing parsed or read again); else
// where parsing it finds them: a packet reassembled since, a flow make_flow
// did not make (no differences kept), or a packet that found the flow under
// its other key (not from the device's address and port the differences
// were taken from; the table answers under either key).
splice::translate_status rewrite_source_of(std::uint8_t* p, const inner_info& info, const splice::flow_fields* fields,
                                           const splice::flow_key& key, const flow& f) {
  const splice::flow_key& reply = f.tailnet_key;
  if (fields != nullptr && f.kind == flow_kind::spliced && !(reply == key))
    return splice::rewrite_source(p, *fields, reply.family, reply.dst, reply.dst_port, f.out_deltas);
  return splice::rewrite_source(p, info.length, ip_address::from_bytes(info.ipv6, reply.dst), reply.dst_port);
}
// A reply on spliced flow `f` rewritten to go to the device, the same way.
splice::translate_status rewrite_destination_of(std::uint8_t* p, const inner_info& info,
                                                const splice::flow_fields* fields, const flow& f) {
  const splice::flow_key& device = f.device_key;
  if (fields != nullptr)
    return splice::rewrite_destination(p, *fields, device.family, device.src, device.src_port, f.in_deltas);
  return splice::rewrite_destination(p, info.length, device_address_of(f), device.src_port);
}

}  // namespace

// An ICMP error back to the device in place of its packet (from lopower's
// device-side address of that family), in the packet's own mbuf: no
// allocation on the fast path, and a refusal still answers when the pool
// runs dry. The error quotes the packet, so it is built aside and copied
// over it.
void worker::refuse_to_device(port_state& ps, rte_mbuf* m, const inner_info& info, wg_peer* device,
                              splice::icmp_error_kind kind, drop_reason why, outbound& out,
                              std::uint16_t mtu) noexcept {
  stats_.ports[ps.port.index].drops.count(why);
  const bool have = info.ipv6 ? setup_.has_local_v6 : setup_.has_local_v4;
  if (!have) return rte_pktmbuf_free(m);
  const ip_address from = info.ipv6 ? ip_address::from_bytes(true, setup_.local_v6)
                                    : ip_address::from_bytes(false, reinterpret_cast<const std::uint8_t*>(&setup_.local_v4_be));
  std::uint8_t error[std::max(splice::icmp_error_max_v4, splice::icmp_error_max_v6)];
  const std::uint16_t len =
      splice::build_icmp_error(error, sizeof error, rte_pktmbuf_mtod(m, const std::uint8_t*), info.length, kind, mtu, from);
  if (len == 0 || !reuse_for(m, error, len)) return rte_pktmbuf_free(m);
  push_out(ps, m, device, out);
}

// `m` emptied (its chained segments freed) and holding `len` bytes of
// `data`, with room behind them for WireGuard's padding and tag; false (m
// untouched but for its chain) when its buffer is too small for that.
bool worker::reuse_for(rte_mbuf* m, const std::uint8_t* data, std::uint16_t len) noexcept {
  constexpr std::uint16_t seal_room = 64;  // padding to 16 and the tag
  if (m->next != nullptr) {
    rte_pktmbuf_free(m->next);
    m->next = nullptr;
    m->nb_segs = 1;
  }
  rte_pktmbuf_reset_headroom(m);
  m->data_len = 0;
  m->pkt_len = 0;
  if (rte_pktmbuf_tailroom(m) < len + seal_room) return false;
  std::memcpy(rte_pktmbuf_append(m, len), data, len);
  return true;
}

// A port for the flow from `alloc` (this worker's slice of lopower's
// tailnet-side ports, or of the uplink's NAT ports), unique toward the far
// end of `reply_key` (splice::port_allocator: RFC 6056's double-hash
// selection), written into it as its destination port (ICMP echo: the
// identifier, both fields). Spliced and uplink flows take it in their
// reply-side key, inbound flows with SNAT in their device-side key.
std::optional<drop_reason> worker::allocate_port(splice::flow_key& reply_key, splice::port_allocator& alloc) noexcept {
  const auto a = alloc.allocate(remote_of(reply_key));
  if (a.status == splice::allocation_status::full) return drop_reason::splice_flow_limit;
  if (a.status != splice::allocation_status::ok) return drop_reason::splice_ports_exhausted;
  reply_key.dst_port = a.port;
  if (is_icmp_echo(reply_key.protocol)) reply_key.src_port = a.port;
  return std::nullopt;
}

// A spliced flow's port on lopower's tailnet address, never a forwarded
// one: a peer's new connection to a forward would otherwise look like a
// reply on the flow (the same 5-tuple when its source port is the flow's
// destination port). A forwarded port drawn is held until another is found.
std::optional<drop_reason> worker::allocate_tailnet_port(flow& f) noexcept {
  const forward_table* table = forwards();
  splice::flow_key drawn[4];
  unsigned held = 0;
  std::optional<drop_reason> refused = drop_reason::splice_ports_exhausted;  // four forwarded ports in a row
  while (held < 4 && !(refused = allocate_port(f.tailnet_key, *ports_alloc_))) {
    if (is_icmp_echo(f.tailnet_key.protocol) || table == nullptr ||
        table->find(f.tailnet_key.protocol, f.tailnet_key.dst_port) == nullptr)
      break;
    drawn[held++] = f.tailnet_key;
    refused = drop_reason::splice_ports_exhausted;
  }
  for (unsigned i = 0; i < held; ++i) release_port(drawn[i]);
  return refused;
}

// Back to the allocator that gave it (the uplink's for a key to the uplink
// address).
void worker::release_port(const splice::flow_key& reply_key) noexcept {
  if (splice::port_allocator* alloc = allocator_for(reply_key)) alloc->release(remote_of(reply_key), reply_key.dst_port);
}

unsigned worker::take_back_ports() noexcept {
  if (setup_.released_ports == nullptr) return 0;
  splice::flow_key keys[32];
  const unsigned n = rte_ring_sc_dequeue_burst_elem(setup_.released_ports, keys, sizeof(splice::flow_key), 32, nullptr);
  for (unsigned i = 0; i < n; ++i) release_port(keys[i]);
  return n;
}

worker::made_flow worker::create_flow(const splice::flow_key& key, const tailnet_view& view, wg_peer* device) noexcept {
  if (!ports_alloc_) return {};
  return make_flow(key, view.own(key.family == ip_family::v6), device, *ports_alloc_, false);
}

// A flow from the device's packet `key`, whose replies come to `ours` (of
// the key's family) and a port from `alloc`.
worker::made_flow worker::make_flow(const splice::flow_key& key, const std::uint8_t* ours, wg_peer* device,
                                    splice::port_allocator& alloc, bool uplink) noexcept {
  if (device->flows.load(std::memory_order_relaxed) >= setup_.max_flows_per_device ||
      device->removed.load(std::memory_order_relaxed))
    return {nullptr, drop_reason::splice_flow_limit};
  if (ours == nullptr) return {nullptr, drop_reason::splice_no_tailnet_address};
  flow* f = setup_.flows->allocate();
  if (f == nullptr) return {nullptr, drop_reason::splice_flow_pool_empty};
  f->device_key = key;
  // As replies arrive: from the peer's address and port, to ours. Written
  // in place: a key built on the stack with narrow stores and copied out
  // with 16-byte loads stalled on store forwarding (two fifths of this
  // function's samples when every packet made a flow).
  splice::set_flow_key(f->tailnet_key, key.family, key.protocol, key.dst, key.dst_port, ours, 0);
  f->device = device;
  f->created_tsc = burst_tsc_;  // the burst's clock, as its packets' stamps (rdtsc was a fifth of this function)
  f->last_tsc.store(f->created_tsc, std::memory_order_relaxed);
  f->owner_worker = static_cast<std::uint8_t>(setup_.worker_index);
  f->uplink = uplink;
  if (const auto refused = uplink ? allocate_port(f->tailnet_key, alloc) : allocate_tailnet_port(*f)) {
    setup_.flows->discard(f);
    return {nullptr, *refused};
  }
  // The device's address and port <-> ours and the port just allocated.
  const splice::flow_key& reply = f->tailnet_key;
  f->out_deltas = splice::rewrite_deltas_of(key.family, key.protocol, key.src, key.src_port, reply.dst, reply.dst_port);
  f->in_deltas = splice::rewrite_deltas_of(key.family, key.protocol, reply.dst, reply.dst_port, key.src, key.src_port);
  if (!setup_.flows->insert(f)) {  // the table at max_flows
    release_port(f->tailnet_key);
    setup_.flows->discard(f);
    return {nullptr, drop_reason::splice_flow_limit};
  }
  device->flows.fetch_add(1, std::memory_order_relaxed);
  return {f, {}};
}

void worker::splice_out(port_state& ps, rte_mbuf* m, const inner_info& info, wg_peer* device, const flow_lookup& flow_hint,
                        outbound& out) noexcept {
  const tailnet_view* view = setup_.tailnet ? setup_.tailnet->load(std::memory_order_acquire) : nullptr;
  wg_peer* peer = view && setup_.flows ? route_toward(*view, info) : nullptr;
  // Beyond the tailnet: the device's egress decides (stage_egress.cc).
  if (peer == nullptr && (peer = egress_peer(ps, m, info, device, view, flow_hint, out)) == nullptr) return;
  auto* p = rte_pktmbuf_mtod(m, std::uint8_t*);
  // Too big: cut up on the way out where a router may, else refused.
  if (info.length > splice::tailnet_mtu && !fragments::may_fragment(p, info.ipv6, info.reassembled))
    return refuse_to_device(ps, m, info, device, splice::icmp_error_kind::packet_too_big, drop_reason::splice_too_big, out);
  splice::flow_key parsed;
  const splice::flow_key* packet_key = flow_key_of(flow_hint, p, info.length, parsed);
  if (packet_key == nullptr)
    return drop_one(ps.port.index, m, drop_reason::splice_unsupported);
  const splice::flow_key& key = *packet_key;
  // A miss is looked up again: an earlier packet of this burst may have
  // created the flow (only new flows pay for it).
  flow* f = flow_hint.found != nullptr ? flow_hint.found : setup_.flows->find(key);
  if (f == nullptr) {
    if (info.protocol == splice::ipproto_tcp && !splice::opens_tcp_flow(splice::tcp_flags(p, packet_info_of(info))))
      return drop_one(ps.port.index, m, drop_reason::splice_no_flow);
    const made_flow made = create_flow(key, *view, device);
    if ((f = made.f) == nullptr) return drop_one(ps.port.index, m, made.refused);
  }
  if (rewrite_source_of(p, info, flow_hint.fields, key, *f) != splice::translate_status::ok)
    return drop_one(ps.port.index, m, drop_reason::splice_unsupported);
  if (info.protocol == splice::ipproto_tcp)
    splice::clamp_tcp_mss(p, info.length, splice::max_mss_for_mtu(key.family, splice::tailnet_mtu));
  track_tcp(*setup_.flows, *f, p, info, splice::flow_direction::original, setup_.worker_index);
  count_flow_packet(*f, false, setup_.worker_index, info.length, burst_tsc_);
  // With no session yet, encrypt_and_send stages it for the control thread.
  send_inner(ps, m, info, peer, splice::tailnet_mtu, out);
}

bool worker::splice_in(port_state& ps, rte_mbuf* m, const inner_info& info, const flow_lookup& flow_hint,
                       outbound& out) noexcept {
  if (setup_.flows == nullptr) return false;
  auto* p = rte_pktmbuf_mtod(m, std::uint8_t*);
  splice::flow_key parsed;
  const splice::flow_key* key = flow_key_of(flow_hint, p, info.length, parsed);
  const bool icmp_error = key == nullptr;
  if (icmp_error) {
    // An ICMP error about one of our flows quotes what we sent.
    splice::flow_key quoted{};
    if (splice::quoted_flow_key(p, info.length, quoted) != splice::translate_status::ok) return false;
    parsed = quoted.reverse();
    key = &parsed;
  }
  // Replies never meet a flow made in their own burst: a miss stands.
  // (An ICMP error has no flow key of its own: never looked up ahead.)
  flow* f = flow_hint.done ? flow_hint.found : setup_.flows->find(*key);
  // An inbound flow's tailnet key is the peer's own packets (a forward's
  // go to lopower's tailnet address too): not replies.
  if (f == nullptr || f->kind != flow_kind::spliced || !(f->tailnet_key == *key)) return false;
  const splice::translate_status st =
      icmp_error ? splice::translate_icmp_error_inner(p, info.length, device_address_of(*f), f->device_key.src_port)
                 : rewrite_destination_of(p, info, flow_hint.fields, *f);
  if (st != splice::translate_status::ok) {
    drop_one(ps.port.index, m, drop_reason::splice_unsupported);
    return true;
  }
  if (!icmp_error) track_tcp(*setup_.flows, *f, p, info, splice::flow_direction::reply, setup_.worker_index);
  count_flow_packet(*f, true, setup_.worker_index, info.length, burst_tsc_);
  send_inner(ps, m, info, f->device, setup_.device_mtu, out);  // reassembled, it may exceed the tunnel's MTU
  return true;
}

}  // namespace lopower
