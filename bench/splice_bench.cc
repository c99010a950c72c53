// The device -> tailnet path of a worker on net_ring ports, with real
// sessions on both sides: a device's UDP datagrams to a tailnet peer are
// looked up in bulk, decrypted in one call, spliced (flow lookup, source
// rewritten to lopower's tailnet address and the flow's port, checksums
// updated), re-encrypted toward the peer in one call and transmitted. One
// frame in, one frame out. Frames are re-sealed outside the timed region
// (the replay window wants fresh counters).
//
// And the flow table alone among 1 M flows: single lookups, and bulk
// lookups of a sub-burst's 32 keys (what the worker does).
//
// Inner sizes are 64, 512 and 1280 bytes: the tailnet MTU is 1280, so a
// device's 1420-byte packet would be answered with ICMP too-big, not spliced.

#include <benchmark/benchmark.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <sodium.h>

#include <arpa/inet.h>

#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include "bench/bench_main.h"
#include "bench/worker_drive.h"
#include "tests/support/splice_rig.h"
#include "dataplane/inner_packet.h"
#include "dataplane/worker.h"

namespace {

using namespace lopower;

constexpr unsigned frames = 4096;
constexpr unsigned refill_every = frames / 32;

rte_mempool* pool() {
  static rte_mempool* p = rte_pktmbuf_pool_create("splice_pool", 16383, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
  return p;
}


// A device and a tailnet peer on one ring port, sessions up both ways.
using rig = test_support::splice_rig;

// A device datagram of `inner` bytes to 100.64.0.5:9000, sealed; from
// source port 5555, or spread over `flows` source ports (one flow each).
void seal_datagram(rig& g, rte_mbuf* m, std::uint16_t inner, unsigned flows) {
  const std::vector<std::uint8_t> payload(inner - 28u, 0x5a);
  const auto src_port = static_cast<std::uint16_t>(flows <= 1 ? 5555 : 10000 + g.device_counter % flows);
  test_support::seal_frame(
      m, inner,
      [&payload, src_port](std::uint8_t* ip) {
        write_udp_packet(ip, *ip_address::parse("10.90.0.2"), src_port, *ip_address::parse("100.64.0.5"), 9000, payload);
      },
      g.device_key, g.device_counter++, rig::device_index, g.device_ep);
}

rig& the_rig() {
  static rig g("sp", pool());
  return g;
}

void splice_out(benchmark::State& state, const char* backend) {
  rig& g = the_rig();
  const auto inner = static_cast<std::uint16_t>(state.range(0));
  const auto flows = static_cast<unsigned>(state.range(1));
  // A table of its own for each run: a new worker's port allocator starts
  // afresh and would meet the ports of an earlier run's flows.
  flow_table table{1u << 16, g.rcu};
  worker_setup s = g.setup(table, backend);
  s.max_flows_per_device = table.capacity();  // one device stands for many here
  g.device.flows.store(0);  // the flows it had were in the last run's table
  worker w(s);
  const test_support::seal_fn seal = [&g, inner, flows](rte_mbuf* m) { seal_datagram(g, m, inner, flows); };
  test_support::fill(pool(), g.rx, frames, seal);
  const std::uint64_t moved = bench::drive(state, w, g.rx, g.tx, g.events, refill_every, seal);
  state.SetItemsProcessed(static_cast<std::int64_t>(moved));
  state.SetBytesProcessed(static_cast<std::int64_t>(moved) * inner);
  std::uint64_t dropped = 0;
  for (unsigned r = 0; r < drop_reason_count; ++r) dropped += w.stats().ports[0].drops[r].get();
  state.counters["dropped"] = static_cast<double>(dropped);
  state.counters["flows"] = static_cast<double>(table.size());
  test_support::drain({g.rx, g.tx});
}

void BM_SpliceDeviceToTailnet_ipsec_mb(benchmark::State& state) { splice_out(state, "ipsec-mb"); }
void BM_SpliceDeviceToTailnet_libsodium(benchmark::State& state) { splice_out(state, "libsodium"); }
// One flow, and 50 000 flows (packets round-robin over them: the flow table
// no longer fits the caches, as on a busy gateway).
BENCHMARK(BM_SpliceDeviceToTailnet_ipsec_mb)
    ->ArgNames({"inner", "flows"})
    ->ArgsProduct({{64, 512, 1280}, {1}})
    ->Args({64, 50000});
BENCHMARK(BM_SpliceDeviceToTailnet_libsodium)->ArgNames({"inner", "flows"})->ArgsProduct({{64, 512, 1280}, {1}});

// The flow table with 1 M flows, keys in random order.
flow_table& table_1m() {
  static rcu_domain rcu{1};
  static flow_table table{1u << 20, rcu};
  return table;
}

std::vector<splice::flow_key>& keys_1m() {
  static std::vector<splice::flow_key> keys;
  return keys;
}

void fill_1m() {
  constexpr unsigned n = 1u << 20;
  auto& keys = keys_1m();
  keys.reserve(n);
  std::uint8_t dev[4] = {10, 90, 0, 0}, peer[4] = {100, 64, 0, 5}, ours[4] = {100, 64, 0, 1};
  for (unsigned i = 0; i < n; ++i) {
    dev[2] = static_cast<std::uint8_t>(i >> 16);
    dev[3] = static_cast<std::uint8_t>(i >> 8);
    auto* f = new flow;
    f->device_key = splice::make_flow_key(ip_family::v4, 17, dev, static_cast<std::uint16_t>(i), peer, 9000);
    f->tailnet_key = splice::make_flow_key(ip_family::v4, 17, peer, 9000, ours, static_cast<std::uint16_t>(i));
    f->tailnet_key.src[2] = static_cast<std::uint8_t>(i >> 16);  // unique per flow
    if (!table_1m().insert(f)) throw std::runtime_error("flow table refused an insert");
    keys.push_back(f->device_key);
  }
  std::shuffle(keys.begin(), keys.end(), std::mt19937(1));
}

// One lookup per iteration.
void BM_FlowLookup1M(benchmark::State& state) {
  constexpr unsigned n = 1u << 20;
  if (keys_1m().empty()) fill_1m();
  const auto& keys = keys_1m();
  std::size_t i = 0, hits = 0;
  for (auto _ : state) {
    hits += table_1m().find(keys[i]) != nullptr;
    i = (i + 1) & (n - 1);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.counters["hit_ratio"] = static_cast<double>(hits) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_FlowLookup1M);

// The same table, 32 lookups per call (a sub-burst): per lookup.
void BM_FlowLookupBulk1M(benchmark::State& state) {
  constexpr unsigned n = 1u << 20, burst = 32;
  if (keys_1m().empty()) fill_1m();
  const auto& keys = keys_1m();
  const splice::flow_key* ptrs[burst];
  flow* found[burst];
  std::size_t i = 0, hits = 0;
  for (auto _ : state) {
    for (unsigned k = 0; k < burst; ++k) ptrs[k] = &keys[(i + k) & (n - 1)];
    table_1m().find_bulk(ptrs, burst, found);
    for (unsigned k = 0; k < burst; ++k) hits += found[k] != nullptr;
    i = (i + burst) & (n - 1);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * burst);
  state.counters["hit_ratio"] = static_cast<double>(hits) / static_cast<double>(state.iterations() * burst);
}
BENCHMARK(BM_FlowLookupBulk1M);

}  // namespace

int main(int argc, char** argv) { return lopower::bench::run_benchmarks(argc, argv, "splice_bench", 2048); }
