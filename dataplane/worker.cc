// The worker's loop: construction (TX buffers on the worker's own NUMA
// socket), one pass over every queue (poll_once), the lcore's loop with its
// adaptive idle (idle_governor.h decides, idle() acts), and the drop helpers
// every stage counts with. The stages themselves are in stage_*.cc
// (worker.h lists the walk).

#include "dataplane/worker.h"

#include <rte_cycles.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_pause.h>

#include <algorithm>
#include <stdexcept>

namespace lopower {
namespace {

// Frames the TX queue refused: freed and counted under the buffer's reason.
void count_unsent(rte_mbuf** pkts, std::uint16_t unsent, void* userdata) {
  static_cast<counter*>(userdata)->add(unsent);
  rte_pktmbuf_free_bulk(pkts, unsent);
}

rte_eth_dev_tx_buffer* make_tx_buffer(unsigned burst, int socket, counter& drops) {
  auto* buf = static_cast<rte_eth_dev_tx_buffer*>(
      rte_zmalloc_socket("lopower_tx_buffer", RTE_ETH_TX_BUFFER_SIZE(burst), RTE_CACHE_LINE_SIZE, socket));
  if (buf == nullptr || rte_eth_tx_buffer_init(buf, static_cast<std::uint16_t>(burst)) != 0)
    throw std::runtime_error("cannot allocate a TX buffer");
  rte_eth_tx_buffer_set_err_callback(buf, count_unsent, &drops);
  return buf;
}

// The NUMA socket of the lcore the worker will run on (the constructor runs
// on the control thread's): where its TX buffers and reassembly table go.
int socket_of(unsigned lcore_id) {
  const int socket = lcore_id < RTE_MAX_LCORE ? static_cast<int>(rte_lcore_to_socket_id(lcore_id))
                                              : static_cast<int>(rte_socket_id());
  return socket < 0 ? 0 : socket;  // SOCKET_ID_ANY (no NUMA): the first socket
}

}  // namespace

worker::worker(worker_setup setup) : setup_(std::move(setup)) {
  setup_.burst_size = std::clamp<std::uint16_t>(setup_.burst_size, 1, max_burst);
  socket_ = socket_of(setup_.lcore_id);
  classify_field_ = classify_result_field();
  handshake_load_.threshold = setup_.handshake_load_threshold;
  handshake_load_.hold = rte_get_tsc_hz();  // a second, as the control thread's
  for (const worker_port& wp : setup_.ports) {
    port_counters& pc = stats_.ports[wp.index];
    port_state ps{wp, make_tx_buffer(setup_.burst_size, socket_, pc.drops.of(drop_reason::port_tx_full)), nullptr};
    if (wp.tap_id != no_port)
      ps.tx_tap = make_tx_buffer(setup_.burst_size, socket_, pc.drops.of(drop_reason::exception_tx_full));
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
  start_uplink();
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

// Frees `n` packets of one burst, counted under `why` on the port they came in on.
void worker::drop(port_state& ps, rte_mbuf** pkts, std::uint16_t n, drop_reason why) noexcept {
  if (n == 0) return;
  stats_.ports[ps.port.index].drops.count(why, n);
  rte_pktmbuf_free_bulk(pkts, n);
}

void worker::drop_one(std::uint8_t port_index, rte_mbuf* m, drop_reason why) noexcept {
  stats_.ports[port_index].drops.count(why);
  rte_pktmbuf_free(m);
}

worker::port_state* worker::state_for_port_id(std::uint16_t port_id) noexcept {
  for (port_state& ps : ports_)
    if (ps.port.port_id == port_id) return &ps;
  return nullptr;
}

unsigned worker::poll_once() noexcept {
  const std::uint64_t start = rte_rdtsc();
  route_memo_.view = nullptr;  // a view of an earlier pass may be gone (route_memo)
  unsigned moved = 0;
  for (port_state& ps : ports_) {
    moved += poll_port(ps);
    moved += poll_tap(ps);
  }
  moved += drain_control_ring();
  moved += receive_relayed();
  take_back_ports();
  stats_.polls.add();
  const std::uint64_t now = rte_rdtsc();
  expire_fragments(now);
  if (now - last_drain_ >= drain_cycles_) flush();
  if (moved != 0) count_busy_pass(start, now);
  return moved;
}

// A pass that moved packets is busy from its start to its end, or to the end
// of its flush when it flushed (flush() stamps last_drain_ as it ends).
void worker::count_busy_pass(std::uint64_t start, std::uint64_t end) noexcept {
  stats_.busy_polls.add();
  stats_.busy_cycles.add(std::max(end, last_drain_) - start);
}

bool worker::tx_buffered() const noexcept {
  for (const port_state& ps : ports_)
    if (ps.tx_port->length != 0 || (ps.tx_tap != nullptr && ps.tx_tap->length != 0)) return true;
  return false;
}

// The flush after an empty pass sends what earlier busy passes buffered:
// their work too (on af_packet it is a sendto per burst), so when there was
// something to send, the flush counts as busy.
void worker::flush_after_empty_pass() noexcept {
  if (!tx_buffered()) return flush();
  const std::uint64_t start = rte_rdtsc();
  flush();
  stats_.busy_cycles.add(last_drain_ - start);
}

void worker::idle(idle_governor::step step) noexcept {
  if (step.what == idle_governor::action::spin) return;
  if (step.what == idle_governor::action::pause) {
    rte_pause();
    return;
  }
  stats_.sleeps.add();
  // A sleeping worker holds no references: let reclamation go on without it.
  if (setup_.qsbr != nullptr) rte_rcu_qsbr_thread_offline(setup_.qsbr, setup_.rcu_thread_id);
  rte_delay_us_sleep(step.sleep_us);
  if (setup_.qsbr != nullptr) rte_rcu_qsbr_thread_online(setup_.qsbr, setup_.rcu_thread_id);
}

void worker::run(const std::atomic<bool>& stop) noexcept {
  idle_governor governor(rte_get_tsc_hz() / 1'000'000 * setup_.idle_hold_us, setup_.idle_sleep_max_us);
  if (setup_.qsbr != nullptr) {
    rte_rcu_qsbr_thread_register(setup_.qsbr, setup_.rcu_thread_id);
    rte_rcu_qsbr_thread_online(setup_.qsbr, setup_.rcu_thread_id);
  }
  while (!stop.load(std::memory_order_relaxed)) {
    if (setup_.qsbr != nullptr) rcu_quiescent(setup_.qsbr, setup_.rcu_thread_id);
    if (poll_once() != 0) {
      if (setup_.adaptive_idle) governor.busy(rte_rdtsc());
      continue;
    }
    // The queues are empty: nothing will join the frames in the TX buffers
    // soon, and waiting for tx_drain_us only added that much to each
    // packet's latency at low and moderate rates (under load the buffers
    // fill and go out a burst at a time without this). Before a sleep too.
    flush_after_empty_pass();
    if (setup_.adaptive_idle) idle(governor.idle(rte_rdtsc()));
  }
  flush();
  if (setup_.qsbr != nullptr) {
    rte_rcu_qsbr_thread_offline(setup_.qsbr, setup_.rcu_thread_id);
    rte_rcu_qsbr_thread_unregister(setup_.qsbr, setup_.rcu_thread_id);
  }
}

}  // namespace lopower
