// The worker's RX -> classify -> TX loop, measured on net_ring ports so no
// kernel is in the way. Packets circulate: the port's TX ring feeds its RX
// ring again, and the exception-path port's TX ring feeds its own RX ring, so
// every frame crosses the worker twice per lap (classified on the port,
// forwarded from the TAP), as the exception path does on a real box.

#include <benchmark/benchmark.h>
#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <arpa/inet.h>

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/bench_main.h"
#include "tests/support/ring_port.h"
#include "dataplane/worker.h"

namespace {

using namespace lopower;

constexpr unsigned frames_in_flight = 1024;

rte_mempool* pool() {
  static rte_mempool* p = rte_pktmbuf_pool_create("bench_pool", 8191, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
  return p;
}

rte_ring* make_ring(const std::string& name) {
  rte_ring* r = rte_ring_create(name.c_str(), 4096, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
  if (r == nullptr) throw std::runtime_error("ring " + name);
  return r;
}


// An Ethernet/IPv4/TCP frame of `size` bytes to the port's address: the
// exception path's traffic (SSH, the control plane's own TCP).
rte_mbuf* tcp_frame(std::uint16_t size) {
  rte_mbuf* m = rte_pktmbuf_alloc(pool());
  if (m == nullptr) throw std::runtime_error("mbuf pool exhausted");
  auto* d = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(m, size));
  if (d == nullptr) throw std::runtime_error("frame larger than an mbuf");
  std::memset(d, 0, size);
  d[12] = 0x08;
  d[14] = 0x45;
  const std::uint16_t total = htons(static_cast<std::uint16_t>(size - 14));
  std::memcpy(d + 16, &total, 2);
  d[22] = 64;
  d[23] = 6;
  const std::uint32_t dst = htonl(0xc6120001);
  std::memcpy(d + 30, &dst, 4);
  return m;
}

struct ring_rig {
  rte_ring *port_rx, *port_tx, *tap_rx, *tap_tx;
  std::uint16_t port_id, tap_id;
  port_identity identity;
};

ring_rig& rig() {
  static ring_rig r = [] {
    ring_rig g;
    g.port_rx = make_ring("p_rx");
    g.port_tx = make_ring("p_tx");
    g.tap_rx = make_ring("t_rx");
    g.tap_tx = make_ring("t_tx");
    g.port_id = test_support::ring_port("net_ring_port", g.port_rx, g.port_tx, pool());
    g.tap_id = test_support::ring_port("net_ring_tap", g.tap_rx, g.tap_tx, pool());
    g.identity.add_address(ip_address::v4(0xc6120001));
    g.identity.device_port_be = htons(51820);
    g.identity.tailnet_port_be = htons(41641);
    return g;
  }();
  return r;
}

// Moves everything from one ring to another: the "wire" of the benchmark.
void recirculate(rte_ring* from, rte_ring* to) {
  void* objs[256];
  unsigned n;
  while ((n = rte_ring_sc_dequeue_burst(from, objs, 256, nullptr)) != 0) rte_ring_sp_enqueue_burst(to, objs, n, nullptr);
}

void drain(rte_ring* r) {
  void* m;
  while (rte_ring_dequeue(r, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
}

void BM_WorkerExceptionPathLoop(benchmark::State& state) {
  ring_rig& g = rig();
  worker_setup s;
  s.burst_size = static_cast<std::uint16_t>(state.range(1));
  s.adaptive_idle = false;
  s.ports.push_back(worker_port{0, g.port_id, g.tap_id, &g.identity});
  worker w(s);
  for (unsigned i = 0; i < frames_in_flight; ++i) {
    rte_mbuf* m = tcp_frame(static_cast<std::uint16_t>(state.range(0)));
    rte_ring_sp_enqueue(g.port_rx, m);
  }
  std::uint64_t moved = 0;
  for (auto _ : state) {
    moved += w.poll_once();
    w.flush();
    recirculate(g.port_tx, g.port_rx);
    recirculate(g.tap_tx, g.tap_rx);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(moved));
  state.SetBytesProcessed(static_cast<std::int64_t>(moved * static_cast<std::uint64_t>(state.range(0))));
  for (rte_ring* r : {g.port_rx, g.port_tx, g.tap_rx, g.tap_tx}) drain(r);
}
BENCHMARK(BM_WorkerExceptionPathLoop)->ArgNames({"frame", "burst"})->Args({64, 32})->Args({512, 32})->Args({1500, 32})->Args({64, 64});

// The classifier alone over a mix of listener and kernel traffic.
void BM_ClassifyFrame(benchmark::State& state) {
  ring_rig& g = rig();
  std::vector<rte_mbuf*> frames;
  for (int i = 0; i < 64; ++i) frames.push_back(tcp_frame(128));
  for (int i = 0; i < 64; i += 2) {  // every other frame: WireGuard transport to the device port
    auto* d = rte_pktmbuf_mtod(frames[static_cast<std::size_t>(i)], std::uint8_t*);
    d[23] = 17;
    const std::uint16_t port = htons(51820), len = htons(128 - 34);
    std::memcpy(d + 36, &port, 2);
    std::memcpy(d + 38, &len, 2);
    d[42] = 4;
  }
  std::size_t i = 0;
  for (auto _ : state) {
    rte_mbuf* m = frames[i++ & 63];
    benchmark::DoNotOptimize(classify_frame(rte_pktmbuf_mtod(m, const std::uint8_t*), m->data_len, g.identity));
  }
  state.SetItemsProcessed(state.iterations());
  for (rte_mbuf* m : frames) rte_pktmbuf_free(m);
}
BENCHMARK(BM_ClassifyFrame);

}  // namespace

int main(int argc, char** argv) { return lopower::bench::run_benchmarks(argc, argv, "worker_loop_bench", 256); }
