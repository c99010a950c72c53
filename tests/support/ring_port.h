#pragma once
// An ethdev port over two rte_rings (RX reads one, TX writes the other),
// started with one queue pair: a worker's port with no kernel in the way.
// What a test (or a benchmark) enqueues on `rx` the worker receives; what
// the worker transmits lands on `tx`. Shared by tests/ and bench/.

#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>

namespace lopower::test_support {

// A single-producer single-consumer ring of `size` (a power of two) slots.
inline rte_ring* make_ring(const std::string& name, unsigned size = 8192) {
  rte_ring* r = rte_ring_create(name.c_str(), size, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
  if (r == nullptr) throw std::runtime_error("cannot create ring " + name);
  return r;
}

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

// The same device, created but neither configured nor started: for a
// `dataplane` to open as a [[port]] whose device is "net_ring_" + `name`
// (the ring PMD puts that prefix on the ethdev's name; the dataplane finds
// it by name and sets it up with its own pool and queues).
inline std::uint16_t ring_device(const std::string& name, rte_ring* rx, rte_ring* tx) {
  const int id = rte_eth_from_rings(name.c_str(), &rx, 1, &tx, 1, 0);
  if (id < 0) throw std::runtime_error("cannot create ring device " + name);
  return static_cast<std::uint16_t>(id);
}

// Stops and closes a ring port (its rings stay: they are the caller's).
inline void close_ring_port(std::uint16_t port) {
  rte_eth_dev_stop(port);
  rte_eth_dev_close(port);
}

// Frees every frame left in the rings.
inline void drain(std::initializer_list<rte_ring*> rings) {
  void* m;
  for (rte_ring* r : rings)
    while (rte_ring_dequeue(r, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
}

}  // namespace lopower::test_support
