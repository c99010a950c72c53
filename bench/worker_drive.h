#pragma once
// The timed loop the worker benchmarks share: frames circulate between a
// ring port's RX and TX rings; every `refill_every` bursts the sent frames
// are sealed afresh (counters must stay new for the replay window) outside
// the timed region. The ring ports, sessions and frames themselves come
// from tests/support/ (shared with the unit tests).

#include <benchmark/benchmark.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <cstdint>

#include "bench/cipher_bound.h"
#include "dataplane/worker.h"
#include "tests/support/ring_port.h"
#include "tests/support/worker_frames.h"

namespace lopower::bench {

// Runs the worker for the benchmark's iterations; returns the packets moved,
// and adds to `timed_seconds` (when given) the thread CPU time the timed
// part took (for rates a benchmark compares with another case's).
inline std::uint64_t drive(benchmark::State& state, worker& w, rte_ring* rx, rte_ring* tx, rte_ring* events,
                           unsigned refill_every, const test_support::seal_fn& seal, double* timed_seconds = nullptr) {
  std::uint64_t moved = 0;
  unsigned bursts = 0;
  double resumed = thread_seconds();
  for (auto _ : state) {
    moved += w.poll_once();
    if (++bursts != refill_every) continue;
    state.PauseTiming();
    if (timed_seconds != nullptr) *timed_seconds += thread_seconds() - resumed;
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
    resumed = thread_seconds();
    state.ResumeTiming();
  }
  if (timed_seconds != nullptr) *timed_seconds += thread_seconds() - resumed;
  w.flush();
  return moved;
}

}  // namespace lopower::bench
