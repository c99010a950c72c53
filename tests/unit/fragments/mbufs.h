#pragma once
// DPDK for the reassembly and fragmenting tests: EAL without hugepages,
// PCI or shared files (no privileges needed), and a small packet pool
// without a per-lcore cache, so that the buffers in use are counted exactly
// and a leak shows.

#include <rte_eal.h>
#include <rte_mbuf.h>

#include <cstring>
#include <iterator>

#include "tests/unit/fragments/fragment_packets.h"

namespace lopower::fragments::test {

inline rte_mempool* pool() {
  static rte_mempool* p = [] {
    const char* argv[] = {"fragments_tests", "-l", "0", "--no-huge", "--no-pci", "--no-shconf", "--no-telemetry",
                          "-m", "128", "--log-level=lib.eal:error", "--log-level=user1:error"};
    if (rte_eal_init(static_cast<int>(std::size(argv)), const_cast<char**>(argv)) < 0) return static_cast<rte_mempool*>(nullptr);
    return rte_pktmbuf_pool_create("fragments_test", 2047, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
  }();
  return p;
}

inline unsigned in_use() { return rte_mempool_in_use_count(pool()); }

// What a decrypted inner packet looks like: the outer headers and the
// WireGuard header stripped off the front (so the headroom is larger than
// the pool's), the packet in one segment.
constexpr std::uint16_t stripped_in_front = 14 + 20 + 8 + 16;

inline rte_mbuf* mbuf_of(const bytes& packet) {
  rte_mbuf* m = rte_pktmbuf_alloc(pool());
  if (m == nullptr) return nullptr;
  auto* at = rte_pktmbuf_append(m, static_cast<std::uint16_t>(stripped_in_front + packet.size()));
  if (at == nullptr) {
    rte_pktmbuf_free(m);
    return nullptr;
  }
  rte_pktmbuf_adj(m, stripped_in_front);
  std::memcpy(rte_pktmbuf_mtod(m, void*), packet.data(), packet.size());
  return m;
}

inline bytes bytes_of(const rte_mbuf* m) {
  bytes b(m->pkt_len);
  for (std::uint32_t at = 0; m != nullptr; at += m->data_len, m = m->next)
    std::memcpy(b.data() + at, rte_pktmbuf_mtod(m, const void*), m->data_len);
  return b;
}

}  // namespace lopower::fragments::test
