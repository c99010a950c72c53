// The exception path: what the dataplane does not own goes to the host
// kernel through the port's TAP (ARP and ND after the neighbour table has
// learned from them), and what the kernel sends on the TAP leaves through
// the port it mirrors.

#include "dataplane/worker.h"

namespace lopower {

void worker::learn_neighbours(port_state& ps, rte_mbuf** pkts, std::uint16_t n) noexcept {
  for (std::uint16_t i = 0; i < n; ++i) {
    auto note = neighbour_from_frame(rte_pktmbuf_mtod(pkts[i], const std::uint8_t*), pkts[i]->data_len);
    if (!note) continue;
    note->port = ps.port.port_id;
    if (rte_ring_sp_enqueue_elem(setup_.neighbours, &*note, sizeof *note) != 0)
      stats_.ports[ps.port.index].drops.count(drop_reason::neighbour_ring_full);
    else
      stats_.neighbour_notes.add();
  }
}

void worker::to_kernel(port_state& ps, rte_mbuf** pkts, std::uint16_t n) noexcept {
  if (n == 0) return;
  if (ps.tx_tap == nullptr) {
    drop(ps, pkts, n, drop_reason::no_exception_path);
    return;
  }
  for (std::uint16_t i = 0; i < n; ++i) rte_eth_tx_buffer(ps.port.tap_id, setup_.queue, ps.tx_tap, pkts[i]);
  stats_.ports[ps.port.index].to_kernel.add(n);
}

// Frames the kernel sends on the TAP leave through the port it mirrors.
unsigned worker::poll_tap(port_state& ps) noexcept {
  if (ps.port.tap_id == no_port) return 0;
  rte_mbuf* pkts[max_burst];
  const std::uint16_t n = rte_eth_rx_burst(ps.port.tap_id, setup_.queue, pkts, setup_.burst_size);
  for (std::uint16_t i = 0; i < n; ++i) rte_eth_tx_buffer(ps.port.port_id, setup_.queue, ps.tx_port, pkts[i]);
  stats_.ports[ps.port.index].from_kernel.add(n);
  return n;
}

}  // namespace lopower
