// Stage 2, decrypt: the wg_transport sub-burst is looked up in the session
// table in bulk (receiver index -> keypair), decrypted with one backend
// call, checked against each keypair's replay window (its lock taken once
// per run of that keypair's packets), admitted (timer stamps, traffic
// counters, keypair confirmation, roaming), stripped to the inner packets,
// whose flows are looked up in one bulk call before delivery
// (stage_deliver.cc); what delivery sends back to peers is sealed and sent
// at the end of the burst (stage_encrypt_send.cc).

#include <rte_cycles.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>

#include <cstring>

#include "dataplane/flow_packet.h"
#include "dataplane/inner_packet.h"
#include "dataplane/mbuf_edit.h"
#include "dataplane/outer_headers.h"
#include "dataplane/worker.h"
#include "lopower/wireguard_messages.h"

namespace lopower {

// Transport data a DERP relay brought (the control thread unframed it): the
// WireGuard message from its first byte, the region in hash.usr. Decrypted
// like any other, counted on the port tailnet traffic comes in on.
unsigned worker::receive_relayed() noexcept {
  if (setup_.relay_in == nullptr) return 0;
  rte_mbuf* pkts[max_burst];
  const unsigned n = rte_ring_sc_dequeue_burst(setup_.relay_in, reinterpret_cast<void**>(pkts), setup_.burst_size, nullptr);
  if (n == 0) return 0;
  port_state* ps = relay_port();
  if (ps == nullptr || setup_.sessions == nullptr) {
    rte_pktmbuf_free_bulk(pkts, n);
    return n;
  }
  // The control thread checked each message (wg::parse_message); a buffer
  // too short for a header and a tag is still never decrypted.
  std::uint16_t kept = 0;
  for (unsigned i = 0; i < n; ++i) {
    if (pkts[i]->data_len < wg::message_data_min_size) {
      drop_one(ps->port.index, pkts[i], drop_reason::wg_malformed);
      continue;
    }
    subs_.transport[kept] = classify_result{};
    subs_.transport[kept].cls = packet_class::wg_transport;
    subs_.transport[kept].payload_length = static_cast<std::uint16_t>(pkts[i]->data_len);
    pkts[kept++] = pkts[i];
  }
  if (kept != 0) receive_transport(*ps, pkts, kept, true);
  return n;
}

worker::port_state* worker::relay_port() noexcept {
  for (port_state& ps : ports_)
    if (ps.port.identity != nullptr && ps.port.identity->tailnet_port_be != 0) return &ps;
  return ports_.empty() ? nullptr : &ports_.front();
}

void worker::receive_transport(port_state& ps, rte_mbuf** pkts, std::uint16_t n, bool relayed) noexcept {
  std::uint32_t indices[max_burst];
  wg_keypair* kps[max_burst];
  crypto::aead_op ops[max_burst];
  rte_mbuf* live[max_burst];
  wg_keypair* live_kp[max_burst];
  std::uint16_t live_l4[max_burst];  // the outer UDP header: where the peer sent from
  std::uint16_t n_live = 0;
  for (std::uint16_t i = 0; i < n; ++i)
    indices[i] = rte_pktmbuf_mtod_offset(pkts[i], const wg::message_data*, subs_.transport[i].payload_offset)
                     ->receiver_index.get();
  setup_.sessions->lookup_bulk(indices, n, kps);
  const std::uint64_t now = burst_tsc_ = rte_rdtsc();
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
    const std::uint64_t counter = reinterpret_cast<const wg::message_data*>(msg)->counter.get();
    if (counter >= wg::reject_after_messages || now - kp->created_tsc > setup_.reject_after_cycles) {
      drop_one(ps.port.index, pkts[i], drop_reason::wg_keypair_expired);
      continue;
    }
    // The classifier let through only messages of at least a header and a tag.
    std::uint8_t* sealed = msg + sizeof(wg::message_data);
    const auto sealed_length = static_cast<std::uint32_t>(r.payload_length - sizeof(wg::message_data) - wg::aead_tag_size);
    ops[n_live] = crypto::aead_op{sealed, sealed_length, sealed + sealed_length, kp->receive_key, counter, false};
    live[n_live] = pkts[i];
    live_kp[n_live] = kp;
    live_l4[n_live] = r.l4_offset;
    ++n_live;
  }
  if (n_live == 0) return;
  aead_->decrypt_burst(ops, n_live);
  replay_verdict verdicts[max_burst];
  check_replay(ops, live_kp, n_live, verdicts);

  rte_mbuf* inner[max_burst];
  wg_peer* from[max_burst];
  std::uint16_t n_inner = 0;
  admitted_run run;
  for (std::uint16_t i = 0; i < n_live; ++i) {
    if (!ops[i].ok) {
      drop_one(ps.port.index, live[i], drop_reason::wg_decrypt_failed);
      continue;
    }
    if (verdicts[i] != replay_verdict::fresh) {
      drop_one(ps.port.index, live[i],
               verdicts[i] == replay_verdict::replayed ? drop_reason::wg_replay : drop_reason::wg_replay_handover);
      continue;
    }
    rte_mbuf* m = live[i];
    if (live_kp[i] != run.kp) {
      admit_decrypted(ps, run, relayed);
      run = admitted_run{live_kp[i]};
    }
    run.last = m;
    run.last_frame = rte_pktmbuf_mtod(m, const std::uint8_t*);
    run.last_l4 = live_l4[i];
    ++run.packets;
    run.bytes += m->pkt_len;
    // Strip outer headers and the WireGuard header: the inner packet remains
    // (the outer bytes stay in the buffer until delivery writes there).
    const std::uint16_t start = static_cast<std::uint16_t>(ops[i].data - rte_pktmbuf_mtod(m, std::uint8_t*));
    rte_pktmbuf_adj(m, start);
    cut_to(m, static_cast<std::uint16_t>(ops[i].length));
    inner[n_inner] = m;
    from[n_inner++] = live_kp[i]->peer;
  }
  admit_decrypted(ps, run, relayed);
  look_up_flows(inner, from, n_inner, lookups_);
  outbound out;
  for (std::uint16_t i = 0; i < n_inner; ++i)
    deliver_inner(ps, inner[i], from[i], lookups_.infos[i], lookups_.flows[i], out);
  encrypt_and_send(ps.port.index, out);
}

// The replay window, after authentication, a run of consecutive packets of
// one keypair at a time (with RSS, a burst from one peer is one run): every
// authenticated packet of the run checked in order, without a lock by the
// worker that owns the keypair's window, else under its lock taken once for
// the run (replay_guard.h). verdicts[i]: packet i authenticated and not seen
// before (fresh), or not; or the run dropped while the window changes hands.
void worker::check_replay(const crypto::aead_op* ops, wg_keypair* const* kps, std::uint16_t n,
                          replay_verdict* verdicts) noexcept {
  auto validate = [&](wg_keypair& kp, std::uint16_t i) {
    verdicts[i] = ops[i].ok && kp.replay.validate(ops[i].counter) ? replay_verdict::fresh : replay_verdict::replayed;
  };
  for (std::uint16_t i = 0; i < n;) {
    wg_keypair* kp = kps[i];
    std::uint16_t end = static_cast<std::uint16_t>(i + 1);
    while (end < n && kps[end] == kp) ++end;
    switch (kp->replay_owner.enter(setup_.worker_index, setup_.qsbr)) {
      case replay_guard::access::unlocked:
        for (; i < end; ++i) validate(*kp, i);
        break;
      case replay_guard::access::locked:
        rte_spinlock_lock(&kp->replay_lock);
        for (; i < end; ++i) validate(*kp, i);
        rte_spinlock_unlock(&kp->replay_lock);
        break;
      case replay_guard::access::handover:
        for (; i < end; ++i) verdicts[i] = replay_verdict::handover;
        break;
    }
  }
}

// Parses the inner packets and looks their flows up in one bulk call: the
// flow table's cache misses overlap instead of coming one per packet. Each
// key computed, and where the packet's fields lie, is kept for the stages
// after.
void worker::look_up_flows(rte_mbuf* const* pkts, wg_peer* const* from, std::uint16_t n, burst_lookups& out) noexcept {
  const splice::flow_key* key_ptrs[max_burst];
  std::uint16_t key_of[max_burst];  // which packet each key is from
  std::uint16_t n_keys = 0;
  for (std::uint16_t i = 0; i < n; ++i) {
    out.infos[i].reset();
    out.flows[i] = flow_lookup{};
    if (pkts[i]->data_len == 0) continue;  // keepalive
    const auto* p = rte_pktmbuf_mtod(pkts[i], const std::uint8_t*);
    inner_info& info = out.infos[i].emplace();  // parsed in place (inner_packet.h says why)
    if (!parse_inner(p, pkts[i]->data_len, info)) {
      out.infos[i].reset();
      continue;
    }
    if (setup_.flows == nullptr) continue;
    if (splice::flow_key_of(p, packet_info_of(p, info), out.keys[n_keys], out.fields[n_keys]) !=
        splice::translate_status::ok)
      continue;
    key_ptrs[n_keys] = &out.keys[n_keys];
    key_of[n_keys++] = i;
  }
  if (n_keys == 0) return;
  flow* found[max_burst];
  setup_.flows->find_bulk(key_ptrs, n_keys, found);
  for (std::uint16_t k = 0; k < n_keys; ++k) {
    out.flows[key_of[k]] = {true, found[k], &out.keys[k], &out.fields[k]};
    if (found[k] != nullptr) prefetch_flow(*found[k], setup_.worker_index, from[key_of[k]]->tailnet);
  }
}

// A flow the burst's delivery will read and stamp: among many flows it is
// not in the cache, so it is fetched now, while the burst's other packets
// are looked up and delivered, instead of stalling each packet in turn.
// Only the lines the packet's direction reads (struct flow's layout): a
// device's packet its first line and this worker's counters; a tailnet
// peer's (a reply) the device-side key's line too. Every line more is a
// fill buffer more, and among 50 000 flows the burst's prefetches were
// seen to stall on them.
void worker::prefetch_flow(const flow& f, unsigned worker_index, bool from_tailnet) noexcept {
  const auto* p = reinterpret_cast<const char*>(&f);
  rte_prefetch0(p);
  if (from_tailnet) rte_prefetch0(p + RTE_CACHE_LINE_SIZE);
  rte_prefetch0(f.traffic.slot_of(worker_index));
}

// A run of authenticated, fresh packets: timer stamps, traffic counters
// (this worker's slot), keypair confirmation, roaming.
void worker::admit_decrypted(port_state& ps, const admitted_run& run, bool relayed) noexcept {
  if (run.packets == 0) return;
  wg_keypair* kp = run.kp;
  wg_peer* peer = kp->peer;
  peer->last_rx_tsc.store(burst_tsc_, std::memory_order_relaxed);
  peer->rx_packets.add(setup_.worker_index, run.packets);
  peer->rx_bytes.add(setup_.worker_index, run.bytes);
  if (!kp->initiator && !kp->confirmed.load(std::memory_order_relaxed)) {
    // The initiator has our response: this keypair may now carry our data too.
    kp->confirmed.store(true, std::memory_order_relaxed);
    wg_event ev{};
    ev.kind = wg_event::keypair_confirmed;
    ev.local_index = kp->local_index;
    post_event(ps, ev);
  }
  // Nothing is built while the peer stays where it was (nearly always).
  const wg_endpoint* known = peer->endpoint.load(std::memory_order_acquire);
  if (!relayed && known != nullptr && frame_on_path(*known, run.last_frame, ps.port.port_id, run.last_l4)) return;
  note_endpoint(ps, run, relayed, known);
}

// Roaming: a peer's endpoint follows its latest authenticated packet (the
// last of the run). The control thread owns the endpoint; we only tell it.
// A packet through DERP does not move a peer off a direct path: tailscaled
// sends over both while it is unsure of the direct one, and the control
// thread falls back to the relay itself when the direct path stops
// answering disco.
void worker::note_endpoint(port_state& ps, const admitted_run& run, bool relayed, const wg_endpoint* known) noexcept {
  auto changed = [&](const wg_endpoint& seen) {
    wg_event ev{};
    ev.kind = wg_event::endpoint_changed;
    ev.local_index = run.kp->local_index;
    ev.endpoint = seen;
    post_event(ps, ev);
  };
  if (relayed) {
    const auto region = static_cast<std::uint16_t>(run.last->hash.usr);
    if (known != nullptr && (known->relay_region == 0 || known->relay_region == region)) return;
    wg_endpoint seen;
    seen.port_id = ps.port.port_id;
    seen.relay_region = region;
    return changed(seen);
  }
  changed(endpoint_of_frame(run.last_frame, ps.port.port_id, run.last_l4));
}

void worker::post_event(port_state& ps, const wg_event& ev) noexcept {
  if (rte_ring_sp_enqueue_elem(setup_.wg_events, const_cast<wg_event*>(&ev), sizeof ev) != 0)
    stats_.ports[ps.port.index].drops.count(drop_reason::wg_event_ring_full);
}

wg_endpoint endpoint_of_frame(const std::uint8_t* frame, std::uint16_t port_id, std::uint16_t l4_offset) noexcept {
  wg_endpoint ep;
  ep.port_id = port_id;
  std::memcpy(ep.peer_mac, frame + 6, 6);
  std::memcpy(ep.local_mac, frame, 6);
  const std::uint8_t* ip = frame + 14;
  ep.ipv6 = (ip[0] >> 4) == 6;
  if (ep.ipv6) {
    std::memcpy(ep.peer_ip, ip + 8, 16);
    std::memcpy(ep.local_ip, ip + 24, 16);
  } else {
    std::memcpy(ep.peer_ip, ip + 12, 4);
    std::memcpy(ep.local_ip, ip + 16, 4);
  }
  const std::uint8_t* udp = frame + l4_offset;
  std::memcpy(&ep.peer_port_be, udp, 2);
  std::memcpy(&ep.local_port_be, udp + 2, 2);
  return ep;
}

}  // namespace lopower
