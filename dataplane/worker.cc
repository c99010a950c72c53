#include "dataplane/worker.h"

#include <rte_cycles.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_pause.h>
#include <rte_prefetch.h>

#include <algorithm>
#include <stdexcept>

namespace lopower {
namespace {

constexpr unsigned prefetch_ahead = 4;
// Adaptive idle: spin this many empty passes, then pause, then sleep with a
// doubling interval up to the configured maximum (after DPDK's l3fwd-power).
constexpr unsigned spin_passes = 64;
constexpr unsigned pause_passes = 256;

// Frames the TX queue refused: freed and counted under the buffer's reason.
void count_unsent(rte_mbuf** pkts, std::uint16_t unsent, void* userdata) {
  static_cast<counter*>(userdata)->add(unsent);
  rte_pktmbuf_free_bulk(pkts, unsent);
}

rte_eth_dev_tx_buffer* make_tx_buffer(unsigned burst, unsigned socket, counter& drops) {
  auto* buf = static_cast<rte_eth_dev_tx_buffer*>(
      rte_zmalloc_socket("lopower_tx_buffer", RTE_ETH_TX_BUFFER_SIZE(burst), RTE_CACHE_LINE_SIZE, static_cast<int>(socket)));
  if (buf == nullptr || rte_eth_tx_buffer_init(buf, static_cast<std::uint16_t>(burst)) != 0)
    throw std::runtime_error("cannot allocate a TX buffer");
  rte_eth_tx_buffer_set_err_callback(buf, count_unsent, &drops);
  return buf;
}

counter& drop_counter(port_counters& pc, drop_reason why) { return pc.drops[static_cast<unsigned>(why)]; }

}  // namespace

worker::worker(worker_setup setup) : setup_(std::move(setup)) {
  setup_.burst_size = std::clamp<std::uint16_t>(setup_.burst_size, 1, max_burst);
  const int socket_id = static_cast<int>(rte_socket_id());
  const unsigned socket = socket_id == SOCKET_ID_ANY ? 0u : static_cast<unsigned>(socket_id);
  for (const worker_port& wp : setup_.ports) {
    port_counters& pc = stats_.ports[wp.index];
    port_state ps{wp, make_tx_buffer(setup_.burst_size, socket, drop_counter(pc, drop_reason::port_tx_full)), nullptr};
    if (wp.tap_id != no_port)
      ps.tx_tap = make_tx_buffer(setup_.burst_size, socket, drop_counter(pc, drop_reason::exception_tx_full));
    ports_.push_back(ps);
  }
  if (setup_.flows != nullptr) {
    splice::port_allocator_config pc;
    pc.worker_index = static_cast<std::uint16_t>(setup_.worker_index);
    pc.worker_count = static_cast<std::uint16_t>(setup_.worker_count);
    pc.max_flows = setup_.max_flows;
    pc.seed = setup_.port_seed;
    ports_alloc_ = std::make_unique<splice::port_allocator>(pc);
  }
  start_reassembly();
  if (setup_.sessions != nullptr) {
    aead_ = setup_.crypto_backend == "auto" ? crypto::make_fastest_backend() : crypto::make_backend(setup_.crypto_backend);
    if (!aead_) throw std::runtime_error("crypto backend \"" + setup_.crypto_backend + "\" is not available on this machine");
  }
  drain_cycles_ = rte_get_tsc_hz() / 1'000'000 * setup_.tx_drain_us;
  last_drain_ = rte_rdtsc();
}

worker::~worker() {
  for (port_state& ps : ports_) {
    rte_free(ps.tx_port);
    rte_free(ps.tx_tap);
  }
}

void worker::classify_burst(port_state& ps, rte_mbuf** pkts, std::uint16_t n, sub_bursts& out) noexcept {
  std::fill(std::begin(out.count), std::end(out.count), 0);
  port_counters& pc = stats_.ports[ps.port.index];
  for (unsigned i = 0; i < n && i < prefetch_ahead; ++i) rte_prefetch0(rte_pktmbuf_mtod(pkts[i], void*));
  std::uint64_t bytes = 0;
  for (std::uint16_t i = 0; i < n; ++i) {
    if (i + prefetch_ahead < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + prefetch_ahead], void*));
    rte_mbuf* m = pkts[i];
    bytes += m->pkt_len;
    // Only the first segment is parsed: headers always fit in it.
    const classify_result r = classify_frame(rte_pktmbuf_mtod(m, const std::uint8_t*), m->data_len, *ps.port.identity);
    const auto cls = static_cast<unsigned>(r.cls);
    if (r.cls == packet_class::drop) reasons_[out.count[cls]] = r.reason;
    if (r.cls == packet_class::wg_transport) out.transport[out.count[cls]] = r;
    out.pkts[cls][out.count[cls]++] = m;
  }
  pc.rx_packets.add(n);
  pc.rx_bytes.add(bytes);
  for (unsigned c = 0; c < packet_class_count; ++c) pc.by_class[c].add(out.count[c]);
}

void worker::to_control(port_state& ps, rte_mbuf** pkts, std::uint16_t n) noexcept {
  if (n == 0) return;
  const unsigned sent = rte_ring_sp_enqueue_burst(setup_.to_control, reinterpret_cast<void**>(pkts), n, nullptr);
  stats_.ports[ps.port.index].to_control.add(sent);
  if (sent < n) drop(ps, pkts + sent, static_cast<std::uint16_t>(n - sent), drop_reason::control_ring_full);
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

void worker::learn_neighbours(port_state& ps, rte_mbuf** pkts, std::uint16_t n) noexcept {
  for (std::uint16_t i = 0; i < n; ++i) {
    auto note = neighbour_from_frame(rte_pktmbuf_mtod(pkts[i], const std::uint8_t*), pkts[i]->data_len);
    if (!note) continue;
    note->port = ps.port.port_id;
    if (rte_ring_sp_enqueue_elem(setup_.neighbours, &*note, sizeof *note) != 0)
      drop_counter(stats_.ports[ps.port.index], drop_reason::neighbour_ring_full).add();
    else
      stats_.neighbour_notes.add();
  }
}

void worker::drop(port_state& ps, rte_mbuf** pkts, std::uint16_t n, drop_reason why) noexcept {
  if (n == 0) return;
  drop_counter(stats_.ports[ps.port.index], why).add(n);
  rte_pktmbuf_free_bulk(pkts, n);
}

unsigned worker::poll_port(port_state& ps) noexcept {
  rte_mbuf* pkts[max_burst];
  const std::uint16_t n = rte_eth_rx_burst(ps.port.port_id, setup_.queue, pkts, setup_.burst_size);
  if (n == 0) return 0;
  classify_burst(ps, pkts, n, subs_);
  auto sub = [&](packet_class c) { return std::pair{subs_.pkts[static_cast<unsigned>(c)], subs_.count[static_cast<unsigned>(c)]}; };

  auto [hs, n_hs] = sub(packet_class::wg_handshake);
  to_control(ps, hs, n_hs);
  auto [disco, n_disco] = sub(packet_class::disco);
  to_control(ps, disco, n_disco);
  auto [stun, n_stun] = sub(packet_class::stun);
  to_control(ps, stun, n_stun);
  auto [data, n_data] = sub(packet_class::wg_transport);
  if (setup_.sessions != nullptr && n_data != 0) receive_transport(ps, data, n_data);
  else drop(ps, data, n_data, drop_reason::wg_unknown_receiver);
  auto [nb, n_nb] = sub(packet_class::neighbour);
  learn_neighbours(ps, nb, n_nb);
  to_kernel(ps, nb, n_nb);
  auto [exc, n_exc] = sub(packet_class::exception);
  to_kernel(ps, exc, n_exc);
  auto [bad, n_bad] = sub(packet_class::drop);
  for (std::uint16_t i = 0; i < n_bad; ++i) drop(ps, &bad[i], 1, reasons_[i]);
  return n;
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

worker::port_state* worker::state_for_port_id(std::uint16_t port_id) noexcept {
  for (port_state& ps : ports_)
    if (ps.port.port_id == port_id) return &ps;
  return nullptr;
}

void worker::transmit(port_state& ps, rte_mbuf* m) noexcept { rte_eth_tx_buffer(ps.port.port_id, setup_.queue, ps.tx_port, m); }

unsigned worker::drain_control_ring() noexcept {
  if (setup_.from_control == nullptr) return 0;
  rte_mbuf* pkts[max_burst];
  const unsigned n = rte_ring_sc_dequeue_burst(setup_.from_control, reinterpret_cast<void**>(pkts), setup_.burst_size, nullptr);
  for (unsigned i = 0; i < n; ++i) {
    port_state* ps = state_for_port_id(pkts[i]->port);
    if (ps == nullptr) {
      rte_pktmbuf_free(pkts[i]);  // the control plane named a port this worker does not serve
      continue;
    }
    transmit(*ps, pkts[i]);
  }
  return n;
}

void worker::flush() noexcept {
  for (port_state& ps : ports_) {
    rte_eth_tx_buffer_flush(ps.port.port_id, setup_.queue, ps.tx_port);
    if (ps.tx_tap != nullptr) rte_eth_tx_buffer_flush(ps.port.tap_id, setup_.queue, ps.tx_tap);
  }
  last_drain_ = rte_rdtsc();
}

unsigned worker::poll_once() noexcept {
  unsigned moved = 0;
  for (port_state& ps : ports_) {
    moved += poll_port(ps);
    moved += poll_tap(ps);
  }
  moved += drain_control_ring();
  take_back_ports();
  stats_.polls.add();
  if (moved != 0) stats_.busy_polls.add();
  const std::uint64_t now = rte_rdtsc();
  expire_fragments(now);
  if (now - last_drain_ >= drain_cycles_) flush();
  return moved;
}

void worker::idle(unsigned& empty_polls, std::uint32_t& sleep_us) noexcept {
  ++empty_polls;
  if (empty_polls < spin_passes) return;
  if (empty_polls < pause_passes) {
    rte_pause();
    return;
  }
  flush();  // nothing may wait in a buffer while we sleep
  stats_.sleeps.add();
  // A sleeping worker holds no references: let reclamation go on without it.
  if (setup_.qsbr != nullptr) rte_rcu_qsbr_thread_offline(setup_.qsbr, setup_.rcu_thread_id);
  rte_delay_us_sleep(sleep_us);
  if (setup_.qsbr != nullptr) rte_rcu_qsbr_thread_online(setup_.qsbr, setup_.rcu_thread_id);
  sleep_us = std::min(sleep_us * 2, setup_.idle_sleep_max_us);
}

void worker::run(const std::atomic<bool>& stop) noexcept {
  unsigned empty_polls = 0;
  std::uint32_t sleep_us = 1;
  if (setup_.qsbr != nullptr) {
    rte_rcu_qsbr_thread_register(setup_.qsbr, setup_.rcu_thread_id);
    rte_rcu_qsbr_thread_online(setup_.qsbr, setup_.rcu_thread_id);
  }
  while (!stop.load(std::memory_order_relaxed)) {
    if (setup_.qsbr != nullptr) rcu_quiescent(setup_.qsbr, setup_.rcu_thread_id);
    if (poll_once() != 0) {
      empty_polls = 0;
      sleep_us = 1;
    } else if (setup_.adaptive_idle) {
      idle(empty_polls, sleep_us);
    }
  }
  flush();
  if (setup_.qsbr != nullptr) {
    rte_rcu_qsbr_thread_offline(setup_.qsbr, setup_.rcu_thread_id);
    rte_rcu_qsbr_thread_unregister(setup_.qsbr, setup_.rcu_thread_id);
  }
}

}  // namespace lopower
