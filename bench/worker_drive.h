#pragma once
// The timed loop the worker benchmarks share: frames circulate between a
// ring port's RX and TX rings; every `refill_every` bursts the sent frames
// are sealed afresh (counters must stay new for the replay window) outside
// the timed region.

#include <benchmark/benchmark.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <cstdint>
#include <functional>
#include <stdexcept>

#include "dataplane/worker.h"

namespace lopower::bench {

// Seals `m` as the next frame the peer sends.
using seal_fn = std::function<void(rte_mbuf* m)>;

// Fills `rx` with `frames` sealed frames from `pool`.
inline void fill(rte_mempool* pool, rte_ring* rx, unsigned frames, const seal_fn& seal) {
  for (unsigned i = 0; i < frames; ++i) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool);
    if (m == nullptr) throw std::runtime_error("mbuf pool exhausted");
    seal(m);
    rte_ring_sp_enqueue(rx, m);
  }
}

// Runs the worker for the benchmark's iterations; returns the packets moved.
inline std::uint64_t drive(benchmark::State& state, worker& w, rte_ring* rx, rte_ring* tx, rte_ring* events,
                           unsigned refill_every, const seal_fn& seal) {
  std::uint64_t moved = 0;
  unsigned bursts = 0;
  for (auto _ : state) {
    moved += w.poll_once();
    if (++bursts != refill_every) continue;
    state.PauseTiming();
    w.flush();
    void* objs[256];
    unsigned n;
    while ((n = rte_ring_sc_dequeue_burst(tx, objs, 256, nullptr)) != 0)
      for (unsigned i = 0; i < n; ++i) {
        seal(static_cast<rte_mbuf*>(objs[i]));
        rte_ring_sp_enqueue(rx, objs[i]);
      }
    wg_event ev;
    while (rte_ring_sc_dequeue_elem(events, &ev, sizeof ev) == 0) {}
    bursts = 0;
    state.ResumeTiming();
  }
  w.flush();
  return moved;
}

// Frees every frame left in the rings.
inline void drain(std::initializer_list<rte_ring*> rings) {
  void* m;
  for (rte_ring* r : rings)
    while (rte_ring_dequeue(r, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
}

}  // namespace lopower::bench
