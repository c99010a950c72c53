// The WireGuard data path of a worker: a transport sub-burst is looked up in
// bulk, decrypted with one backend call, checked (replay window, cryptokey
// routing), handed to the inner destination, and whatever goes back out to
// peers is encrypted with one more call and sent.

#include <rte_cycles.h>
#include <rte_mbuf.h>

#include <cstring>

#include "dataplane/fragments/fragment_header.h"
#include "dataplane/inner_packet.h"
#include "dataplane/worker.h"

namespace lopower {
namespace {

constexpr unsigned wg_header = 16;  // type, reserved, receiver index, counter
constexpr unsigned wg_tag = 16;
// Whitepaper §6.1: no message may use a counter at or beyond this.
constexpr std::uint64_t reject_after_messages = UINT64_MAX - (1ull << 13);

std::uint32_t load_le32(const std::uint8_t* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return rte_le_to_cpu_32(v);
}
std::uint64_t load_le64(const std::uint8_t* p) {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return rte_le_to_cpu_64(v);
}

}  // namespace

void worker::drop_one(std::uint8_t port_index, rte_mbuf* m, drop_reason why) noexcept {
  stats_.ports[port_index].drops[static_cast<unsigned>(why)].add();
  rte_pktmbuf_free(m);
}

void worker::post_event(port_state& ps, const wg_event& ev) noexcept {
  if (rte_ring_sp_enqueue_elem(setup_.wg_events, const_cast<wg_event*>(&ev), sizeof ev) != 0)
    stats_.ports[ps.port.index].drops[static_cast<unsigned>(drop_reason::wg_event_ring_full)].add();
}

// The control thread keeps the packet while it finds a path and completes a
// handshake, and sends it then; the ring and its queues are bounded.
void worker::stage(std::uint8_t port_index, rte_mbuf* m, const wg_peer* peer) noexcept {
  staged_packet sp{m, peer->id, 0};
  if (setup_.staged == nullptr || rte_ring_sp_enqueue_elem(setup_.staged, &sp, sizeof sp) != 0)
    drop_one(port_index, m, drop_reason::wg_stage_ring_full);
}

void worker::receive_transport(port_state& ps, rte_mbuf** pkts, std::uint16_t n) noexcept {
  std::uint32_t indices[max_burst];
  wg_keypair* kps[max_burst];
  crypto::aead_op ops[max_burst];
  rte_mbuf* live[max_burst];
  wg_keypair* live_kp[max_burst];
  std::uint16_t n_live = 0;
  for (std::uint16_t i = 0; i < n; ++i)
    indices[i] = load_le32(rte_pktmbuf_mtod_offset(pkts[i], const std::uint8_t*, subs_.transport[i].payload_offset + 4));
  setup_.sessions->lookup_bulk(indices, n, kps);
  const std::uint64_t now = rte_rdtsc();
  for (std::uint16_t i = 0; i < n; ++i) {
    const classify_result& r = subs_.transport[i];
    wg_keypair* kp = kps[i];
    if (kp == nullptr) {
      drop_one(ps.port.index, pkts[i], drop_reason::wg_unknown_receiver);
      continue;
    }
    if (pkts[i]->nb_segs != 1) {
      drop_one(ps.port.index, pkts[i], drop_reason::multi_segment);
      continue;
    }
    auto* msg = rte_pktmbuf_mtod_offset(pkts[i], std::uint8_t*, r.payload_offset);
    const std::uint64_t counter = load_le64(msg + 8);
    if (counter >= reject_after_messages || now - kp->created_tsc > setup_.reject_after_cycles) {
      drop_one(ps.port.index, pkts[i], drop_reason::wg_keypair_expired);
      continue;
    }
    const std::uint32_t sealed = r.payload_length - wg_header - wg_tag;
    ops[n_live] = crypto::aead_op{msg + wg_header, sealed, msg + wg_header + sealed, kp->receive_key, counter, false};
    live[n_live] = pkts[i];
    live_kp[n_live] = kp;
    ++n_live;
  }
  if (n_live == 0) return;
  aead_->decrypt_burst(ops, n_live);

  rte_mbuf* inner[max_burst];
  wg_peer* from[max_burst];
  std::uint16_t n_inner = 0;
  for (std::uint16_t i = 0; i < n_live; ++i) {
    if (!ops[i].ok) {
      drop_one(ps.port.index, live[i], drop_reason::wg_decrypt_failed);
      continue;
    }
    if (!admit_decrypted(ps, live[i], live_kp[i], ops[i].counter)) continue;
    // Strip outer headers and the WireGuard header: the inner packet remains.
    rte_mbuf* m = live[i];
    const std::uint16_t start = static_cast<std::uint16_t>(ops[i].data - rte_pktmbuf_mtod(m, std::uint8_t*));
    rte_pktmbuf_adj(m, start);
    rte_pktmbuf_trim(m, static_cast<std::uint16_t>(m->data_len - ops[i].length));
    inner[n_inner] = m;
    from[n_inner++] = live_kp[i]->peer;
  }
  std::optional<inner_info> infos[max_burst];
  flow_lookup flows[max_burst];
  look_up_flows(inner, n_inner, infos, flows);
  outbound out;
  for (std::uint16_t i = 0; i < n_inner; ++i) deliver_inner(ps, inner[i], from[i], infos[i], flows[i], out);
  encrypt_and_send(ps.port.index, out);
}

// Parses the inner packets and looks their flows up in one bulk call: the
// flow table's cache misses overlap instead of coming one per packet.
void worker::look_up_flows(rte_mbuf* const* pkts, std::uint16_t n, std::optional<inner_info>* infos,
                           flow_lookup* flows) noexcept {
  splice::flow_key keys[max_burst];
  const splice::flow_key* key_ptrs[max_burst];
  std::uint16_t key_of[max_burst];  // which packet each key is from
  std::uint16_t n_keys = 0;
  for (std::uint16_t i = 0; i < n; ++i) {
    if (pkts[i]->data_len == 0) continue;  // keepalive
    const auto* p = rte_pktmbuf_mtod(pkts[i], const std::uint8_t*);
    infos[i] = parse_inner(p, pkts[i]->data_len);
    if (!infos[i] || setup_.flows == nullptr) continue;
    if (splice::flow_key_of(p, infos[i]->length, keys[n_keys]) != splice::translate_status::ok) continue;
    key_ptrs[n_keys] = &keys[n_keys];
    key_of[n_keys++] = i;
  }
  if (n_keys == 0) return;
  flow* found[max_burst];
  setup_.flows->find_bulk(key_ptrs, n_keys, found);
  for (std::uint16_t k = 0; k < n_keys; ++k) flows[key_of[k]] = {true, found[k]};
}

// After authentication: replay window, keypair confirmation, roaming, timer
// stamps, keepalives. False when the packet was consumed (dropped or done).
bool worker::admit_decrypted(port_state& ps, rte_mbuf* m, wg_keypair* kp, std::uint64_t counter) noexcept {
  rte_spinlock_lock(&kp->replay_lock);
  const bool fresh = kp->replay.validate(counter);
  rte_spinlock_unlock(&kp->replay_lock);
  if (!fresh) {
    drop_one(ps.port.index, m, drop_reason::wg_replay);
    return false;
  }
  wg_peer* peer = kp->peer;
  const std::uint64_t now = rte_rdtsc();
  peer->last_rx_tsc.store(now, std::memory_order_relaxed);
  peer->rx_packets.fetch_add(1, std::memory_order_relaxed);
  peer->rx_bytes.fetch_add(m->pkt_len, std::memory_order_relaxed);
  if (!kp->initiator && !kp->confirmed.load(std::memory_order_relaxed)) {
    // The initiator has our response: this keypair may now carry our data too.
    kp->confirmed.store(true, std::memory_order_relaxed);
    wg_event ev{};
    ev.kind = wg_event::keypair_confirmed;
    ev.local_index = kp->local_index;
    post_event(ps, ev);
  }
  note_endpoint(ps, m, kp);
  return true;
}

// Roaming: a peer's endpoint follows its latest authenticated packet. The
// control thread owns the endpoint; we only tell it.
void worker::note_endpoint(port_state& ps, rte_mbuf* m, wg_keypair* kp) noexcept {
  const std::uint8_t* frame = rte_pktmbuf_mtod(m, const std::uint8_t*);
  const std::uint16_t l4 = (frame[14] >> 4) == 6 ? 14 + 40 : static_cast<std::uint16_t>(14 + (frame[14] & 0x0f) * 4);
  const wg_endpoint seen = endpoint_of_frame(frame, ps.port.port_id, l4);
  const wg_endpoint* known = kp->peer->endpoint.load(std::memory_order_acquire);
  if (known != nullptr && known->same_path(seen)) return;
  wg_event ev{};
  ev.kind = wg_event::endpoint_changed;
  ev.local_index = kp->local_index;
  ev.endpoint = seen;
  post_event(ps, ev);
}

void worker::deliver_inner(port_state& ps, rte_mbuf* m, wg_peer* peer, const std::optional<inner_info>& info,
                           flow_lookup flow_hint, outbound& out) noexcept {
  if (m->data_len == 0) {  // keepalive: its job (timers, roaming) is done
    rte_pktmbuf_free(m);
    return;
  }
  peer->last_data_rx_tsc.store(rte_rdtsc(), std::memory_order_relaxed);
  auto* p = rte_pktmbuf_mtod(m, std::uint8_t*);
  if (!info) return drop_one(ps.port.index, m, drop_reason::inner_malformed);
  if (peer->tailnet) return deliver_from_tailnet(ps, m, *info, peer, flow_hint, out);
  std::uint32_t src_v4;
  std::memcpy(&src_v4, info->src, 4);
  const bool allowed = info->ipv6 ? peer->source_allowed_v6(info->src) : peer->source_allowed_v4(src_v4);
  if (!allowed) return drop_one(ps.port.index, m, drop_reason::wg_source_not_allowed);
  rte_pktmbuf_trim(m, static_cast<std::uint16_t>(m->data_len - info->length));  // WireGuard's padding
  if (fragments::is_fragment(p, info->ipv6)) return deliver_fragment(ps, m, *info, peer, out);  // whole first
  const bool to_us = info->ipv6 ? setup_.has_local_v6 && std::memcmp(info->dst, setup_.local_v6, 16) == 0
                                : setup_.has_local_v4 && std::memcmp(info->dst, &setup_.local_v4_be, 4) == 0;
  if (to_us) {
    if (setup_.inner_up_flag != 0 && is_dns_query(p, *info)) {  // lopower's DNS server: the control thread
      m->ol_flags |= setup_.inner_up_flag;
      m->port = ps.port.port_id;
      return to_control(ps, &m, 1);
    }
    if (!make_echo_reply(p, *info)) return drop_one(ps.port.index, m, drop_reason::inner_no_route);
    return send_inner(ps, m, *info, peer, setup_.device_mtu, out);
  }
  splice_out(ps, m, *info, peer, flow_hint, out);
}

// From a tailnet peer: its AllowedIPs, then lopower's own addresses, where
// TSMP pings are answered before the packet filter (as tailscale does: they
// are its own protocol, not traffic) and ICMP echo after it. Splicing replies
// back to devices plugs in at "not for us".
void worker::deliver_from_tailnet(port_state& ps, rte_mbuf* m, const inner_info& info, wg_peer* peer,
                                  flow_lookup flow_hint, outbound& out) noexcept {
  const allowed_prefixes* allowed = peer->allowed.load(std::memory_order_acquire);
  if (allowed == nullptr || !allowed->contains(info.ipv6, info.src))
    return drop_one(ps.port.index, m, drop_reason::wg_source_not_allowed);
  rte_pktmbuf_trim(m, static_cast<std::uint16_t>(m->data_len - info.length));  // WireGuard's padding
  const tailnet_view* view = setup_.tailnet ? setup_.tailnet->load(std::memory_order_acquire) : nullptr;
  if (view == nullptr || !view->owns(info.ipv6, info.dst))
    return drop_one(ps.port.index, m, drop_reason::tailnet_not_for_us);
  if (fragments::is_fragment(rte_pktmbuf_mtod(m, const std::uint8_t*), info.ipv6))
    return deliver_fragment(ps, m, info, peer, out);  // whole first: only the first piece has ports
  // Replies on a device's flow: the flow is the permission (the filter
  // governs what may open one toward us, not answers to what we opened).
  if (splice_in(ps, m, info, flow_hint, out)) return;
  auto* p = rte_pktmbuf_mtod(m, std::uint8_t*);
  if (is_tsmp_ping(p, info)) {
    const std::uint16_t pong = static_cast<std::uint16_t>(info.l4_offset + tsmp_pong_l4_size);
    if (pong > m->data_len && rte_pktmbuf_append(m, static_cast<std::uint16_t>(pong - m->data_len)) == nullptr)
      return drop_one(ps.port.index, m, drop_reason::multi_segment);
    make_tsmp_pong(p, info);
    rte_pktmbuf_trim(m, static_cast<std::uint16_t>(m->data_len - pong));
    return push_out(ps, m, peer, out);
  }
  if (info.protocol == ipproto_tsmp) return drop_one(ps.port.index, m, drop_reason::tailnet_tsmp_ignored);
  if (!view->allows(p, info)) return drop_one(ps.port.index, m, drop_reason::tailnet_filtered);
  if (setup_.inner_up_flag != 0 && is_lopower_echo_reply(p, info)) {
    m->ol_flags |= setup_.inner_up_flag;
    m->port = ps.port.port_id;
    return to_control(ps, &m, 1);
  }
  if (make_echo_reply(p, info)) return send_inner(ps, m, info, peer, splice::tailnet_mtu, out);
  drop_one(ps.port.index, m, drop_reason::tailnet_not_for_us);
}

// Drops are counted on `port_index`, the port the triggering traffic came in on.
void worker::encrypt_and_send(std::uint8_t port_index, outbound& out) noexcept {
  crypto::aead_op ops[max_burst];
  const wg_endpoint* eps[max_burst];
  rte_mbuf* ready[max_burst];
  std::uint16_t n = 0;
  wg_keypair* run_kp = nullptr;
  std::uint64_t run_next = 0, run_end = 0;
  for (std::uint16_t i = 0; i < out.count; ++i) {
    rte_mbuf* m = out.pkts[i];
    wg_peer* peer = out.peers[i];
    wg_keypair* kp = peer->current.load(std::memory_order_acquire);
    const wg_endpoint* ep = peer->endpoint.load(std::memory_order_acquire);
    if (kp == nullptr || ep == nullptr) {  // held until a handshake completes: nothing here waits
      stage(port_index, m, peer);
      continue;
    }
    // Counters for a run of packets to the same keypair come from one atomic add.
    if (kp != run_kp || run_next == run_end) {
      unsigned run = 1;
      while (i + run < out.count && out.peers[i + run]->current.load(std::memory_order_relaxed) == kp) ++run;
      run_next = kp->send_counter.fetch_add(run, std::memory_order_relaxed);
      run_end = run_next + run;
      run_kp = kp;
    }
    const std::uint16_t plain = static_cast<std::uint16_t>(m->data_len);
    const std::uint16_t padded = static_cast<std::uint16_t>((plain + 15u) & ~15u);
    auto* tail = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(m, static_cast<std::uint16_t>(padded - plain + wg_tag)));
    auto* head = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_prepend(m, static_cast<std::uint16_t>(outer_header_size(ep->ipv6) + wg_header)));
    if (tail == nullptr || head == nullptr) {
      drop_one(port_index, m, drop_reason::multi_segment);
      continue;
    }
    std::memset(tail, 0, padded - plain);
    std::uint8_t* msg = head + outer_header_size(ep->ipv6);
    const std::uint32_t receiver = rte_cpu_to_le_32(kp->remote_index);
    const std::uint64_t counter = run_next++;
    const std::uint64_t counter_le = rte_cpu_to_le_64(counter);
    msg[0] = 4;
    msg[1] = msg[2] = msg[3] = 0;
    std::memcpy(msg + 4, &receiver, 4);
    std::memcpy(msg + 8, &counter_le, 8);
    ops[n] = crypto::aead_op{msg + wg_header, padded, msg + wg_header + padded, kp->send_key, counter, false};
    eps[n] = ep;
    ready[n++] = m;
    peer->last_tx_tsc.store(rte_rdtsc(), std::memory_order_relaxed);
    peer->tx_packets.fetch_add(1, std::memory_order_relaxed);
    peer->tx_bytes.fetch_add(plain, std::memory_order_relaxed);
  }
  if (n == 0) return;
  aead_->encrypt_burst(ops, n);
  for (std::uint16_t i = 0; i < n; ++i) {
    if (!ops[i].ok) {  // the library refused the job: a bug, not traffic; never send plaintext
      drop_one(port_index, ready[i], drop_reason::wg_encrypt_failed);
      continue;
    }
    const std::uint16_t payload = static_cast<std::uint16_t>(wg_header + ops[i].length + wg_tag);
    write_outer_headers(rte_pktmbuf_mtod(ready[i], std::uint8_t*), *eps[i], payload);
    port_state* ps = state_for_port_id(eps[i]->port_id);
    if (ps == nullptr) {
      rte_pktmbuf_free(ready[i]);
      continue;
    }
    transmit(*ps, ready[i]);
  }
}

}  // namespace lopower
