#pragma once
// Benchmark rigs: an ethdev port over two rte_rings (RX reads one, TX writes
// the other), started with one queue pair. No kernel in the way.

#include <rte_eth_ring.h>
#include <rte_ethdev.h>

#include <stdexcept>
#include <string>

namespace lopower::bench {

inline std::uint16_t ring_port(const std::string& name, rte_ring* rx, rte_ring* tx, rte_mempool* pool) {
  const int id = rte_eth_from_rings(name.c_str(), &rx, 1, &tx, 1, 0);
  if (id < 0) throw std::runtime_error("cannot create ring port " + name);
  const auto port = static_cast<std::uint16_t>(id);
  rte_eth_conf conf{};
  if (rte_eth_dev_configure(port, 1, 1, &conf) != 0 || rte_eth_rx_queue_setup(port, 0, 1024, 0, nullptr, pool) != 0 ||
      rte_eth_tx_queue_setup(port, 0, 1024, 0, nullptr) != 0 || rte_eth_dev_start(port) != 0)
    throw std::runtime_error("cannot start ring port " + name);
  return port;
}

}  // namespace lopower::bench
