#pragma once
// The timed loop the worker benchmarks share: frames circulate between a
// ring port's RX and TX rings; every `refill_every` bursts the sent frames
// are sealed afresh (counters must stay new for the replay window) outside
// the timed region. The ring ports, sessions and frames themselves come
// from tests/support/ (shared with the unit tests).

#include <benchmark/benchmark.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <random>
#include <vector>

#include "bench/cipher_bound.h"
#include "dataplane/worker.h"
#include "tests/support/ring_port.h"
#include "tests/support/worker_frames.h"

#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#endif

namespace lopower::bench {

// Under callgrind (tools/bench instructions), instructions are counted in
// the timed regions only (not the flows opened before them, nor the frames
// sealed afresh between them), and the packets the worker moved in them are
// printed at exit for bench/instructions.py to divide by (callgrind's call
// counts include the untimed parts). A test and a branch when not under
// valgrind; nothing without its header.
class instruction_count {
 public:
  static void start() noexcept { toggle(true); }
  static void stop(std::uint64_t packets) noexcept {
    if (toggle(false)) totals().packets += packets;
  }

 private:
  struct total {
    bool counting = false;
    std::uint64_t packets = 0;
    ~total() {
#ifdef CALLGRIND_TOGGLE_COLLECT
      if (RUNNING_ON_VALGRIND) std::fprintf(stderr, "instruction_count: %llu packets counted\n", static_cast<unsigned long long>(packets));
#endif
    }
  };
  static total& totals() noexcept {
    static total t;
    return t;
  }
  // True when it turned counting on or off.
  static bool toggle(bool on) noexcept {
#ifdef CALLGRIND_TOGGLE_COLLECT
    total& t = totals();
    if (!RUNNING_ON_VALGRIND || on == t.counting) return false;
    CALLGRIND_TOGGLE_COLLECT;
    t.counting = on;
    return true;
#else
    (void)on;
    return false;
#endif
  }
};

// Takes every free mbuf of `pool` and gives them back shuffled (a fixed
// seed): the frames a run takes next lie scattered over the pool, as a
// gateway's do after hours of traffic, not one after another as a fresh pool
// hands them out. A case then reads the same whichever cases ran before it
// in the process: they gave their frames back in their own order, and a
// 1280-byte case read 0.87 of the bound first in its process and 0.83 after
// a case that opened 50 000 flows (bench/RESULTS.md, 2026-12-07 (sixth)).
inline void scatter_pool(rte_mempool* pool, unsigned seed = 1) {
  std::vector<rte_mbuf*> all;
  while (rte_mbuf* m = rte_pktmbuf_alloc(pool)) all.push_back(m);
  std::shuffle(all.begin(), all.end(), std::mt19937(seed));
  for (rte_mbuf* m : all) rte_pktmbuf_free(m);
}

// Runs the worker for the benchmark's iterations; returns the packets moved,
// and adds to `timed_seconds` (when given) the thread CPU time the timed
// part took (for rates a benchmark compares with another case's). Each
// bound `in_step` runs as many packets as the path moved after each timed
// stretch, untimed by the benchmark (bound_in_step).
inline std::uint64_t drive(benchmark::State& state, worker& w, rte_ring* rx, rte_ring* tx, rte_ring* events,
                           unsigned refill_every, const test_support::seal_fn& seal, double* timed_seconds = nullptr,
                           std::initializer_list<bound_in_step*> in_step = {}) {
  std::uint64_t moved = 0;
  unsigned bursts = 0;
  double resumed = thread_seconds();
  std::uint64_t moved_at_start = 0;
  instruction_count::start();
  for (auto _ : state) {
    moved += w.poll_once();
    if (++bursts != refill_every) continue;
    instruction_count::stop(moved - moved_at_start);
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
    for (bound_in_step* b : in_step) b->run(moved - moved_at_start);
    bursts = 0;
    resumed = thread_seconds();
    state.ResumeTiming();
    moved_at_start = moved;
    instruction_count::start();
  }
  instruction_count::stop(moved - moved_at_start);
  if (timed_seconds != nullptr) *timed_seconds += thread_seconds() - resumed;
  w.flush();
  for (bound_in_step* b : in_step) b->run(moved - moved_at_start);
  return moved;
}

}  // namespace lopower::bench
