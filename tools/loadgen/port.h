#pragma once
// The loadgen's one DPDK port: set up with one queue pair, and the ARP
// that makes the devices' outer address reachable on it (IPv4 only).

#include <rte_ether.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <cstdint>

namespace lopower::loadgen {

inline constexpr unsigned burst_size = 32;

struct link_port {
  std::uint16_t id = 0;
  rte_ether_addr mac{};
  rte_mempool* pool = nullptr;
};

// Configures and starts port `id` (one RX and one TX queue) and waits up to
// `link_timeout_s` for its link (a memif link is up once both sides connect).
// Throws std::runtime_error.
link_port open_port(std::uint16_t id, rte_mempool* pool, double link_timeout_s);
void close_port(const link_port& port);

// Sends what tx_burst takes; frees the rest and returns how many went.
unsigned send_burst(const link_port& port, rte_mbuf** frames, unsigned n);

// An ARP request for `target_be` from `self_be`.
rte_mbuf* arp_request(const link_port& port, std::uint32_t self_be, std::uint32_t target_be);

// If `m` is an ARP request for `self_be`, turns it into the reply (in
// place) and returns true; the caller sends it.
bool answer_arp(rte_mbuf* m, const link_port& port, std::uint32_t self_be);

// If `m` is an ARP packet from `sender_be` (request or reply), its MAC.
bool arp_sender_mac(const rte_mbuf* m, std::uint32_t sender_be, rte_ether_addr& mac);

}  // namespace lopower::loadgen
