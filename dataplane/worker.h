#pragma once
// A worker lcore: polls its queue on every port, classifies each burst into
// typed sub-bursts and processes each sub-burst as a vector. It owns its
// queues, TX buffers and counters outright: no locks, no system calls except
// the adaptive idle sleep when every queue is empty.

#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <atomic>
#include <cstdint>
#include <vector>

#include "dataplane/classifier.h"
#include "dataplane/lcore_stats.h"

namespace lopower {

inline constexpr std::uint16_t no_port = 0xffff;
inline constexpr unsigned max_burst = 256;

struct worker_port {
  std::uint8_t index = 0;               // position in the config, indexes lcore_stats::ports
  std::uint16_t port_id = no_port;      // DPDK port
  std::uint16_t tap_id = no_port;       // its exception-path TAP, or no_port
  const port_identity* identity = nullptr;
};

struct worker_setup {
  unsigned lcore_id = 0;
  std::uint16_t queue = 0;              // this worker's queue index on every port
  std::uint16_t burst_size = 32;
  std::uint32_t tx_drain_us = 100;
  bool adaptive_idle = true;
  std::uint32_t idle_sleep_max_us = 1000;
  std::vector<worker_port> ports;
  rte_ring* to_control = nullptr;       // mbufs for the control plane (handshakes, disco, STUN)
  rte_ring* from_control = nullptr;     // mbufs to transmit; mbuf->port names the DPDK port
  rte_ring* neighbours = nullptr;       // neighbour_note elements
};

class worker {
 public:
  explicit worker(worker_setup setup);
  ~worker();
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  // One pass over every queue; returns the packets moved. Public so the
  // benchmarks drive exactly the loop the lcore runs.
  unsigned poll_once() noexcept;
  // Sends every buffered frame now.
  void flush() noexcept;
  // The lcore's loop, until `stop` becomes true.
  void run(const std::atomic<bool>& stop) noexcept;

  const lcore_stats& stats() const noexcept { return stats_; }
  const worker_setup& setup() const noexcept { return setup_; }

 private:
  struct port_state {
    worker_port port;
    rte_eth_dev_tx_buffer* tx_port = nullptr;
    rte_eth_dev_tx_buffer* tx_tap = nullptr;
  };
  // Sub-bursts of one RX burst, by class.
  struct sub_bursts {
    rte_mbuf* pkts[packet_class_count][max_burst];
    std::uint16_t count[packet_class_count];
  };

  unsigned poll_port(port_state& ps) noexcept;
  unsigned poll_tap(port_state& ps) noexcept;
  unsigned drain_control_ring() noexcept;
  void classify_burst(port_state& ps, rte_mbuf** pkts, std::uint16_t n, sub_bursts& out) noexcept;
  void to_control(port_state& ps, rte_mbuf** pkts, std::uint16_t n) noexcept;
  void to_kernel(port_state& ps, rte_mbuf** pkts, std::uint16_t n) noexcept;
  void learn_neighbours(port_state& ps, rte_mbuf** pkts, std::uint16_t n) noexcept;
  void drop(port_state& ps, rte_mbuf** pkts, std::uint16_t n, drop_reason why) noexcept;
  void transmit(port_state& ps, rte_mbuf* m) noexcept;
  port_state* state_for_port_id(std::uint16_t port_id) noexcept;
  void idle(unsigned& empty_polls, std::uint32_t& sleep_us) noexcept;

  worker_setup setup_;
  std::vector<port_state> ports_;
  std::uint64_t drain_cycles_ = 0;
  std::uint64_t last_drain_ = 0;
  lcore_stats stats_;
  sub_bursts subs_;
  drop_reason reasons_[max_burst];
};

}  // namespace lopower
