// Stage 1, receive and classify: a burst from a port's RX queue is
// classified frame by frame (classify_frame, dataplane/classifier.h) into
// typed sub-bursts, and each sub-burst goes on to its stage as a vector:
// handshakes, disco and STUN to the control plane; transport data to the
// decrypt stage (stage_decrypt.cc); ARP/ND and everything else to the
// exception path (stage_exception.cc); replies on an uplink port to
// receive_uplink (stage_uplink.cc); malformed input is dropped.

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_prefetch.h>

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "dataplane/control_frame.h"
#include "dataplane/worker.h"

namespace lopower {
namespace {

constexpr unsigned prefetch_ahead = 4;

// The classes the control thread handles: their frames carry their verdict up.
constexpr bool control_bound(packet_class c) {
  return c == packet_class::wg_handshake || c == packet_class::disco || c == packet_class::stun;
}

}  // namespace

int classify_result_field() {
  static const int offset = [] {
    rte_mbuf_dynfield desc{};
    std::snprintf(desc.name, sizeof desc.name, "%s", "lopower_classify_result");
    desc.size = sizeof(classify_result);
    desc.align = alignof(classify_result);
    const int off = rte_mbuf_dynfield_register(&desc);
    if (off < 0) throw std::runtime_error("cannot register an mbuf field: " + std::string(rte_strerror(rte_errno)));
    return off;
  }();
  return offset;
}

unsigned worker::poll_port(port_state& ps) noexcept {
  rte_mbuf* pkts[max_burst];
  const std::uint16_t n = rte_eth_rx_burst(ps.port.port_id, setup_.queue, pkts, setup_.burst_size);
  if (n == 0) return 0;
  classify_burst(ps, pkts, n, subs_);
  auto sub = [&](packet_class c) { return std::pair{subs_.pkts[static_cast<unsigned>(c)], subs_.count[static_cast<unsigned>(c)]}; };

  auto [hs, n_hs] = sub(packet_class::wg_handshake);
  handshakes_to_control(ps, hs, n_hs);
  auto [disco, n_disco] = sub(packet_class::disco);
  to_control(ps, up_ring::path, disco, n_disco);
  auto [stun, n_stun] = sub(packet_class::stun);
  to_control(ps, up_ring::path, stun, n_stun);
  auto [data, n_data] = sub(packet_class::wg_transport);
  if (setup_.sessions != nullptr && n_data != 0) receive_transport(ps, data, n_data);
  else drop(ps, data, n_data, drop_reason::wg_unknown_receiver);
  auto [nb, n_nb] = sub(packet_class::neighbour);
  learn_neighbours(ps, nb, n_nb);
  to_kernel(ps, nb, n_nb);
  auto [nat, n_nat] = sub(packet_class::uplink_nat);
  receive_uplink(ps, nat, n_nat);
  auto [exc, n_exc] = sub(packet_class::exception);
  to_kernel(ps, exc, n_exc);
  auto [bad, n_bad] = sub(packet_class::drop);
  for (std::uint16_t i = 0; i < n_bad; ++i) drop(ps, &bad[i], 1, reasons_[i]);
  return n;
}

void worker::classify_burst(port_state& ps, rte_mbuf** pkts, std::uint16_t n, sub_bursts& out) noexcept {
  std::fill(std::begin(out.count), std::end(out.count), 0);
  port_counters& pc = stats_.ports[ps.port.index];
  // Two steps ahead: the mbuf itself (the data's address is read from it),
  // then its first data line. A PMD that writes no mbuf field on RX (the
  // net_ring port the benchmarks use; a NIC's PMD writes them) hands over
  // cold mbufs, and reading one to prefetch its data was a third of this
  // function's time in the 64-byte splice profile.
  for (unsigned i = 0; i < n && i < 2 * prefetch_ahead; ++i) rte_prefetch0(pkts[i]);
  for (unsigned i = 0; i < n && i < prefetch_ahead; ++i) rte_prefetch0(rte_pktmbuf_mtod(pkts[i], void*));
  std::uint64_t bytes = 0;
  for (std::uint16_t i = 0; i < n; ++i) {
    if (i + 2 * prefetch_ahead < n) rte_prefetch0(pkts[i + 2 * prefetch_ahead]);
    if (i + prefetch_ahead < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + prefetch_ahead], void*));
    rte_mbuf* m = pkts[i];
    bytes += m->pkt_len;
    // Only the first segment is parsed: headers always fit in it. Into the
    // transport sub-burst's next slot: kept there if it is transport data.
    classify_result& r = out.transport[out.count[static_cast<unsigned>(packet_class::wg_transport)]];
    classify_frame(rte_pktmbuf_mtod(m, const std::uint8_t*), m->data_len, *ps.port.identity, r);
    const auto cls = static_cast<unsigned>(r.cls);
    if (r.cls == packet_class::drop) reasons_[out.count[cls]] = r.reason;
    if (control_bound(r.cls)) store_classify_result(m, classify_field_, r);  // classified once
    out.pkts[cls][out.count[cls]++] = m;
  }
  pc.rx_packets.add(n);
  pc.rx_bytes.add(bytes);
  for (unsigned c = 0; c < packet_class_count; ++c) pc.by_class[c].add(out.count[c]);
}

// Initiations and responses are judged here (handshake_guard.h), once per
// frame, so junk never costs the control thread a thing and, under load,
// messages without a cookie cannot crowd out those with one.
void worker::handshakes_to_control(port_state& ps, rte_mbuf** pkts, std::uint16_t n) noexcept {
  if (n == 0) return;
  const handshake_guard* guard = setup_.guard ? setup_.guard->load(std::memory_order_acquire) : nullptr;
  const bool control_says = setup_.handshakes_under_load && setup_.handshakes_under_load->load(std::memory_order_relaxed);
  const std::uint64_t now = rte_rdtsc();
  const std::size_t queued = rte_ring_count(setup_.to_control[static_cast<std::size_t>(up_ring::handshakes)]) +
                             rte_ring_count(setup_.to_control[static_cast<std::size_t>(up_ring::unproven)]);
  rte_mbuf* proven[max_burst];
  rte_mbuf* unproven[max_burst];
  std::uint16_t n_proven = 0, n_unproven = 0;
  for (std::uint16_t i = 0; i < n; ++i) {
    const classify_result r = stored_classify_result(pkts[i], classify_field_);
    const bool under_load = handshake_load_.under_load(now, queued + n_proven + n_unproven, control_says);
    switch (judge_handshake(rte_pktmbuf_mtod(pkts[i], const std::uint8_t*), r, guard, under_load)) {
      case handshake_verdict::junk: drop(ps, &pkts[i], 1, drop_reason::wg_bad_mac1); break;
      case handshake_verdict::unproven: unproven[n_unproven++] = pkts[i]; break;
      case handshake_verdict::proven: proven[n_proven++] = pkts[i]; break;
    }
  }
  to_control(ps, up_ring::handshakes, proven, n_proven);
  to_control(ps, up_ring::unproven, unproven, n_unproven);
}

// Frames (and decrypted packets for lopower itself, marked with
// inner_up_flag) to the control thread's ring for their class.
void worker::to_control(port_state& ps, up_ring ring, rte_mbuf** pkts, std::uint16_t n) noexcept {
  static constexpr drop_reason full[up_ring_count] = {drop_reason::control_ring_full, drop_reason::unproven_ring_full,
                                                      drop_reason::path_ring_full, drop_reason::inner_ring_full};
  if (n == 0) return;
  const auto index = static_cast<std::size_t>(ring);
  const unsigned sent = rte_ring_sp_enqueue_burst(setup_.to_control[index], reinterpret_cast<void**>(pkts), n, nullptr);
  stats_.ports[ps.port.index].to_control.add(sent);
  if (sent < n) drop(ps, pkts + sent, static_cast<std::uint16_t>(n - sent), full[index]);
}

}  // namespace lopower
