// The latency a worker adds to one packet, under the idle policies
// (`[dataplane] idle`): a worker runs its own loop (worker::run) on lcore 1
// and splices device -> tailnet on a ring port; the benchmark thread, on
// lcore 0, puts one sealed frame on the port's RX ring every `gap_us`
// microseconds, reads the TSC, and spins on the TX ring until the spliced
// frame comes out. One packet in flight at a time, so each sample is the
// time one packet spends in lopower (receive, decrypt, splice, encrypt, the
// TX buffer, and whatever the idle policy slept), not a queue's.
//
//   gap_us 0        back to back: the worker is never idle (high rate)
//   gap_us 20..200  a busy flow's packet spacing
//   gap_us 1000+    a quiet link: the adaptive policy is asleep when the
//                   packet comes
//
// One sample an iteration, as many as --benchmark_min_time allows (wall
// time: the gap counts): 2 s gives 200 samples at 10 ms, the brief smoke
// run of tools/test a handful. Counters: p50_us, p99_us, p999_us, max_us
// over `samples`, and
// worker_cpu (the worker thread's CPU seconds over the run's wall seconds:
// what the policy costs in power while it waits).

#include <benchmark/benchmark.h>
#include <rte_cycles.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_pause.h>
#include <rte_ring.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "bench/bench_main.h"
#include "bench/cipher_bound.h"
#include "bench/splice_traffic.h"
#include "dataplane/worker.h"
#include "tests/support/splice_rig.h"

namespace {

using namespace lopower;

constexpr std::uint16_t inner = 64;

rte_mempool* pool() {
  static rte_mempool* p = rte_pktmbuf_pool_create("lat_pool", 4095, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
  return p;
}

test_support::splice_rig& the_rig() {
  static test_support::splice_rig g("lat", pool());
  return g;
}

// The worker's lcore loop, and its thread's CPU time over the run.
struct running_worker {
  worker* w = nullptr;
  std::atomic<bool> stop{false};
  double cpu_seconds = 0;
};

int run_worker(void* arg) {
  auto& r = *static_cast<running_worker*>(arg);
  const double start = bench::thread_seconds();
  r.w->run(r.stop);
  r.cpu_seconds = bench::thread_seconds() - start;
  return 0;
}

// Microseconds one packet took from RX ring to TX ring; negative when it
// never came out (dropped) within a second. The worker sends the frame in
// the mbuf it came in (decrypted, spliced and sealed in place): anything
// else on the TX ring is an earlier packet that came out after its
// second, freed and not taken for this one's.
double one_packet(bench::splice_traffic& traffic, test_support::splice_rig& g) {
  rte_mbuf* m = rte_pktmbuf_alloc(pool());
  if (m == nullptr) throw std::runtime_error("mbuf pool exhausted");
  traffic.seal_out(m);
  const std::uint64_t hz = rte_get_tsc_hz();
  const std::uint64_t sent = rte_rdtsc();
  if (rte_ring_sp_enqueue(g.rx, m) != 0) throw std::runtime_error("RX ring full");
  void* out = nullptr;
  for (;;) {
    if (rte_ring_sc_dequeue(g.tx, &out) == 0) {
      const std::uint64_t now = rte_rdtsc();
      rte_pktmbuf_free(static_cast<rte_mbuf*>(out));
      if (out == m) return static_cast<double>(now - sent) * 1e6 / static_cast<double>(hz);
      continue;
    }
    rte_pause();
    if (rte_rdtsc() - sent > hz) return -1;
  }
}

double percentile(std::vector<double>& sorted, double p) {
  const auto at = static_cast<std::size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(at, sorted.size() - 1)];
}

// Sleeps through most of a long gap (the machine has 2 cores: a spinning
// sender would take CPU time the worker's lcore thread may need), spins
// through the rest so the packet leaves on time.
void wait_until(std::uint64_t tsc) {
  const std::uint64_t us = rte_get_tsc_hz() / 1'000'000, now = rte_rdtsc();
  if (tsc > now + 300 * us) rte_delay_us_sleep(static_cast<unsigned>((tsc - now) / us - 200));
  while (rte_rdtsc() < tsc) rte_pause();
}

// range(0): 0 = poll, 1 = adaptive; range(1): the gap between packets.
void BM_IdleLatency(benchmark::State& state) {
  if (rte_lcore_count() < 2) {
    state.SkipWithError("EAL has fewer than 2 lcores");
    return;
  }
  test_support::splice_rig& g = the_rig();
  flow_table table{1024, g.rcu};
  worker_setup s = g.setup(table);
  s.lcore_id = rte_get_next_lcore(-1, 1, 0);
  s.adaptive_idle = state.range(0) == 1;
  s.max_flows_per_device = table.capacity();
  bench::splice_traffic traffic(g, bench::flows_of(bench::rig_device(g), 1), inner);
  traffic.forget_flow_counts();
  worker w(s);
  running_worker r;
  r.w = &w;
  if (rte_eal_remote_launch(run_worker, &r, s.lcore_id) != 0) throw std::runtime_error("cannot launch the worker");
  one_packet(traffic, g);  // the flow's first packet makes the flow: not a sample

  const std::uint64_t gap = rte_get_tsc_hz() / 1'000'000 * static_cast<std::uint64_t>(state.range(1));
  std::vector<double> us;
  unsigned lost = 0;
  const double wall_start = static_cast<double>(rte_rdtsc());
  for (auto _ : state) {
    wait_until(rte_rdtsc() + gap);
    const double t = one_packet(traffic, g);
    if (t < 0) ++lost; else us.push_back(t);
  }
  const double wall = (static_cast<double>(rte_rdtsc()) - wall_start) / static_cast<double>(rte_get_tsc_hz());
  r.stop.store(true);
  rte_eal_wait_lcore(s.lcore_id);
  test_support::drain({g.rx, g.tx});
  wg_event ev;
  while (rte_ring_sc_dequeue_elem(g.events, &ev, sizeof ev) == 0) {}

  std::sort(us.begin(), us.end());
  if (us.empty()) {
    state.SkipWithError("no packet came out");
    return;
  }
  state.counters["samples"] = static_cast<double>(us.size());
  state.counters["lost"] = lost;
  state.counters["p50_us"] = percentile(us, 0.50);
  state.counters["p99_us"] = percentile(us, 0.99);
  state.counters["p999_us"] = percentile(us, 0.999);
  state.counters["max_us"] = us.back();
  state.counters["worker_cpu"] = r.cpu_seconds / wall;
}
BENCHMARK(BM_IdleLatency)
    ->ArgNames({"adaptive", "gap_us"})
    ->ArgsProduct({{0, 1}, {0, 20, 200, 1000, 10000}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) { return lopower::bench::run_benchmarks(argc, argv, "idle_latency_bench", 1024, "0-1"); }
