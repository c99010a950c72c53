// A worker splicing on net_ring ports, with real sessions on both sides:
//   device -> tailnet  a device's UDP datagrams to a tailnet peer are looked
//                      up in bulk, decrypted in one call, spliced (flow
//                      lookup, source rewritten to lopower's tailnet address
//                      and the flow's port, checksums updated), re-encrypted
//                      toward the peer in one call and transmitted;
//   tailnet -> device  the peer's replies on flows the device opened:
//                      decrypted, found by their tailnet-side key, rewritten
//                      back to the device, encrypted to it;
//   many devices       1000 flows of one device against one flow for each of
//                      1000 devices with sessions of their own, both ways;
//   new flows          device -> tailnet, every packet a new flow's first, of
//                      one device or of 1 000;
//   tailnet peers      device -> tailnet on a tailnet of 1, 1 000 and 5 000
//                      peers (each its /32 and /128 in the view the worker
//                      routes by), one flow to the rig's peer.
// One frame in, one frame out. Frames are re-sealed outside the timed region
// (the replay window wants fresh counters). A run takes them from the pool
// shuffled first (bench::scatter_pool): scattered over its memory as a
// gateway's are, the same for every case whatever ran before it. Each run
// also measures its cipher bound in step with it (bench/cipher_bound.h,
// bound_in_step: the backend alone opening and sealing packets of that
// size, as many as the path moved, between the path's timed stretches) and
// reports the share of it the path reaches (share_of_bound); and the same
// bound over as many of the pool's buffers as the run circulates, the
// frames' own memory (share_of_pool_bound). Ratios between cases
// (vs_one_flow, ...) are ratios of these shares.
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
#include <map>
#include <memory>
#include <random>
#include <string>
#include <stdexcept>
#include <vector>

#include "bench/bench_main.h"
#include "bench/cipher_bound.h"
#include "bench/splice_traffic.h"
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

rig& the_rig() {
  static rig g("sp", pool());
  return g;
}

// A thousand more devices with sessions of their own, made once.
bench::device_fleet& fleet() {
  static bench::device_fleet f(the_rig(), 1000);
  return f;
}

enum class direction { device_to_tailnet, tailnet_to_device };

// `frames` mbufs of the benchmark's pool held for a run: the data rooms the
// pool's bound runs over (on the pages the frames live in, as cold as they
// are), apart from the frames that circulate.
class pool_buffers {
 public:
  std::vector<std::uint8_t*> buffers;

  pool_buffers() : buffers(frames), mbufs_(frames) {
    if (rte_pktmbuf_alloc_bulk(pool(), mbufs_.data(), frames) != 0) throw std::runtime_error("splice_pool is short of mbufs");
    for (unsigned i = 0; i < frames; ++i) buffers[i] = rte_pktmbuf_mtod(mbufs_[i], std::uint8_t*);
  }
  ~pool_buffers() { rte_pktmbuf_free_bulk(mbufs_.data(), frames); }
  pool_buffers(const pool_buffers&) = delete;
  pool_buffers& operator=(const pool_buffers&) = delete;

 private:
  std::vector<rte_mbuf*> mbufs_;
};

// The two bounds a run is held against, taken in step with it
// (bench::bound_in_step): the cipher over 32 hot buffers (the issue's
// bound), and over as many of the pool's buffers as the run circulates (the
// frames' memory costs the cipher too).
struct bounds_in_step {
  pool_buffers pool_data;
  bench::bound_in_step hot, pool;
  bounds_in_step(const char* backend, std::uint32_t sealed) : hot(backend, sealed), pool(backend, sealed, pool_data.buffers) {}

  // Prints the bounds and the shares of them the path reached moving
  // `packets` in `seconds`; returns the share of the hot bound.
  double report(benchmark::State& state, std::uint64_t packets, double seconds) const {
    bench::report_in_step(state, packets, seconds, pool, "_pool");
    return bench::report_in_step(state, packets, seconds, hot);
  }
};

// The share of its bound in step each case's base (one flow, one device)
// reached, by backend, direction and size, remembered so the larger cases
// that follow it in the same run print their ratio to it (registration
// order runs the base first). Shares, not rates: each was taken in step with
// its own bound, so the ratio of two holds where the host's speed drifted
// between the two runs.
std::map<std::string, double>& base_shares() {
  static std::map<std::string, double> shares;
  return shares;
}

std::string base_key(const char* backend, direction dir, std::int64_t inner, const char* kind) {
  return std::string(backend) + (dir == direction::device_to_tailnet ? "/out/" : "/in/") + std::to_string(inner) + "/" + kind;
}

// Records `share` as the base when `is_base`, else prints its ratio to the
// base measured earlier in this run (`kind`: what the ratio is over).
void report_against_base(benchmark::State& state, const std::string& key, bool is_base, double share, const char* counter) {
  if (is_base) {
    base_shares()[key] = share;
    return;
  }
  const auto found = base_shares().find(key);
  if (found != base_shares().end()) state.counters[counter] = share / found->second;
}

// A worker with a flow table of its own, for one run: a new worker's port
// allocator starts afresh and would meet the ports of an earlier run's
// flows in a shared table. One device stands for many here: no flow limit
// per device below the table's.
struct run_worker {
  flow_table table;
  worker w;
  run_worker(rig& g, const char* backend) : table{1u << 16, g.rcu}, w(setup_of(g, table, backend)) {}

 private:
  static worker_setup setup_of(rig& g, flow_table& table, const char* backend) {
    worker_setup s = g.setup(table, backend);
    s.max_flows_per_device = table.capacity();
    return s;
  }
};

// One run over `flows`, on a run_worker. The devices open the flows first, untimed, in both
// directions: the timed packets all meet flows that exist, so a run
// measures the steady state among that many flows, not as many flow
// creations as there are flows (among 50 000 flows, 2–7 % of a run's
// packets were once creations, depending on how long it ran). Then the
// devices' datagrams, or the peer's replies, circulate.
// Returns the share of the cipher bound in step the worker reached (its
// packets over its timed CPU time, over the bound's).
double splice_run(benchmark::State& state, const char* backend, direction dir, std::vector<bench::flow_end> flows) {
  rig& g = the_rig();
  const auto inner = static_cast<std::uint16_t>(state.range(0));
  bench::splice_traffic traffic(g, std::move(flows), inner);
  traffic.forget_flow_counts();
  run_worker run(g, backend);
  worker& w = run.w;
  flow_table& table = run.table;
  traffic.open(w, table);
  const test_support::seal_fn seal = dir == direction::device_to_tailnet
                                         ? test_support::seal_fn([&traffic](rte_mbuf* m) { traffic.seal_out(m); })
                                         : test_support::seal_fn([&traffic](rte_mbuf* m) { traffic.seal_in(m); });
  bench::scatter_pool(pool());
  bounds_in_step bounds(backend, bench::sealed_length(inner));
  test_support::fill(pool(), g.rx, frames, seal);
  double timed_seconds = 0;
  const std::uint64_t moved =
      bench::drive(state, w, g.rx, g.tx, g.events, refill_every, seal, &timed_seconds, {&bounds.hot, &bounds.pool});
  state.SetItemsProcessed(static_cast<std::int64_t>(moved));
  state.SetBytesProcessed(static_cast<std::int64_t>(moved) * inner);
  const double share = bounds.report(state, moved, timed_seconds);
  std::uint64_t dropped = 0;
  for (unsigned r = 0; r < drop_reason_count; ++r) dropped += w.stats().ports[0].drops[r].get();
  state.counters["dropped"] = static_cast<double>(dropped);
  state.counters["flows"] = static_cast<double>(table.size());
  test_support::drain({g.rx, g.tx});
  return share;
}

// `flows` flows of the rig's one device.
// Prints "vs_one_flow": its share of the bound over the one-flow case's in this run.
void one_device(benchmark::State& state, const char* backend, direction dir) {
  const auto flows = static_cast<unsigned>(state.range(1));
  const double share = splice_run(state, backend, dir, bench::flows_of(bench::rig_device(the_rig()), flows));
  report_against_base(state, base_key(backend, dir, state.range(0), "flows"), flows == 1, share, "vs_one_flow");
}

// 1000 flows either way: of one device, or one for each of 1000 devices
// (each its own session: what many devices cost beyond their flows).
// Prints "vs_one_device": its share of the bound over the one-device case's in this run.
void many_devices(benchmark::State& state, direction dir) {
  constexpr unsigned flows = 1000;
  const bool one = state.range(1) == 1;
  const double share = splice_run(state, "ipsec-mb", dir,
                                  one ? bench::flows_of(bench::rig_device(the_rig()), flows) : bench::flows_of(fleet(), flows));
  report_against_base(state, base_key("ipsec-mb", dir, state.range(0), "devices"), one, share, "vs_one_device");
}

// The rig's view with `peers - 1` more tailnet peers' host routes, half
// added before the rig's peer and half after (where it lands among them is
// what a scan of the routes would pay for).
class larger_tailnet {
 public:
  larger_tailnet(rig& g, unsigned peers) : rig_(g), others_(std::make_unique<wg_peer[]>(peers)) {
    auto* v = new tailnet_view(*g.view.load());
    v->routes = {};
    const unsigned before = (peers - 1) / 2;
    for (unsigned i = 0; i < before; ++i) add_peer(*v, i);
    add_route(*v, *ip_prefix::parse("fd7a:115c:a1e0::5/128"), &g.ts_peer);
    add_route(*v, *ip_prefix::parse("100.64.0.5/32"), &g.ts_peer);
    for (unsigned i = before; i + 1 < peers; ++i) add_peer(*v, i);
    finish_routes(*v);
    rigs_view_ = g.view.exchange(v);
  }
  ~larger_tailnet() { delete rig_.view.exchange(rigs_view_); }
  larger_tailnet(const larger_tailnet&) = delete;
  larger_tailnet& operator=(const larger_tailnet&) = delete;

 private:
  // 100.96.0.0/11 and fd7a:115c:a1e0:1::/64: clear of the rig's addresses.
  void add_peer(tailnet_view& v, unsigned i) {
    add_route(v, {ip_address::v4(0x64600000u + i), 32}, &others_[i]);
    ip_address six = *ip_address::parse("fd7a:115c:a1e0:1::");
    six.bytes[14] = static_cast<std::uint8_t>(i >> 8);
    six.bytes[15] = static_cast<std::uint8_t>(i);
    add_route(v, {six, 128}, &others_[i]);
  }
  static void add_route(tailnet_view& v, const ip_prefix& p, wg_peer* peer) { v.routes.add(p, peer); }
  static void finish_routes(tailnet_view& v) { v.routes.finish(); }

  rig& rig_;
  std::unique_ptr<wg_peer[]> others_;
  const tailnet_view* rigs_view_ = nullptr;
};

// One flow of the rig's device to its peer, on a tailnet of `peers` peers.
// Prints "vs_one_peer": its share of the bound over the one-peer case's in this run.
void BM_SpliceTailnetPeers_ipsec_mb(benchmark::State& state) {
  const auto peers = static_cast<unsigned>(state.range(1));
  const larger_tailnet tailnet(the_rig(), peers);
  const double share = splice_run(state, "ipsec-mb", direction::device_to_tailnet, bench::flows_of(bench::rig_device(the_rig()), 1));
  report_against_base(state, base_key("ipsec-mb", direction::device_to_tailnet, state.range(0), "peers"), peers == 1, share,
                      "vs_one_peer");
}

void BM_SpliceDeviceToTailnet_ipsec_mb(benchmark::State& state) { one_device(state, "ipsec-mb", direction::device_to_tailnet); }
void BM_SpliceDeviceToTailnet_libsodium(benchmark::State& state) { one_device(state, "libsodium", direction::device_to_tailnet); }
void BM_SpliceTailnetToDevice_ipsec_mb(benchmark::State& state) { one_device(state, "ipsec-mb", direction::tailnet_to_device); }
void BM_SpliceTailnetToDevice_libsodium(benchmark::State& state) { one_device(state, "libsodium", direction::tailnet_to_device); }
void BM_SpliceManyDevicesOut_ipsec_mb(benchmark::State& state) { many_devices(state, direction::device_to_tailnet); }
void BM_SpliceManyDevicesIn_ipsec_mb(benchmark::State& state) { many_devices(state, direction::tailnet_to_device); }

// New flows: every timed packet is a flow's first (lookup misses, a port is
// allocated, the flow inserted under both keys, then spliced as any other):
// what a gateway pays when its devices open connections, which the cases
// above leave out by opening their flows untimed. Each iteration a fresh
// flow table and worker take the first datagrams of 1 000 flows, of the
// rig's device (1 000 source ports) or one for each device of the fleet;
// building them and sealing the frames is untimed. Prints the cipher bound
// in step and the share of it, and "vs_established": that share over the
// one-flow case's of this size in this run (flows created per second over
// the packets per second of established traffic, on the same machine).
void BM_SpliceFlowCreation_ipsec_mb(benchmark::State& state) {
  constexpr unsigned per_round = 1000;
  rig& g = the_rig();
  const auto inner = static_cast<std::uint16_t>(state.range(0));
  const bool one_device = state.range(1) == 1;
  bench::bound_in_step bound("ipsec-mb", bench::sealed_length(inner));
  bench::scatter_pool(pool());
  std::uint64_t created = 0;
  double timed_seconds = 0;
  for (auto _ : state) {
    state.PauseTiming();
    {
      bench::splice_traffic traffic(g, one_device ? bench::flows_of(bench::rig_device(g), per_round)
                                                  : bench::flows_of(fleet(), per_round), inner);
      traffic.forget_flow_counts();
      run_worker run(g, "ipsec-mb");
      test_support::fill(pool(), g.rx, per_round, [&traffic](rte_mbuf* m) { traffic.seal_out(m); });
      const double start = bench::thread_seconds();
      state.ResumeTiming();
      bench::instruction_count::start();
      std::uint64_t moved = 0;
      while (rte_ring_count(g.rx) != 0) moved += run.w.poll_once();
      run.w.flush();
      bench::instruction_count::stop(moved);
      state.PauseTiming();
      timed_seconds += bench::thread_seconds() - start;
      created += run.table.size();
      bound.run(moved);
      test_support::drain({g.rx, g.tx});
      wg_event ev;
      while (rte_ring_sc_dequeue_elem(g.events, &ev, sizeof ev) == 0) {}
    }
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(created));
  const double share = bench::report_in_step(state, created, timed_seconds, bound);
  state.counters["missed"] = static_cast<double>(per_round * state.iterations() - created);
  const auto base = base_shares().find(base_key("ipsec-mb", direction::device_to_tailnet, inner, "flows"));
  if (base != base_shares().end()) state.counters["vs_established"] = share / base->second;
}

// One flow, and 50 000 flows (packets round-robin over them: the flow table
// no longer fits the caches, as on a busy gateway), both ways.
BENCHMARK(BM_SpliceDeviceToTailnet_ipsec_mb)
    ->ArgNames({"inner", "flows"})
    ->ArgsProduct({{64, 512, 1280}, {1}})
    ->Args({64, 50000})
    ->Args({1280, 50000});
BENCHMARK(BM_SpliceDeviceToTailnet_libsodium)->ArgNames({"inner", "flows"})->ArgsProduct({{64, 512, 1280}, {1}});
// The tailnet peer's replies on flows the device opened, spliced back to it.
BENCHMARK(BM_SpliceTailnetToDevice_ipsec_mb)
    ->ArgNames({"inner", "flows"})
    ->ArgsProduct({{64, 512, 1280}, {1}})
    ->Args({64, 50000})
    ->Args({1280, 50000});
BENCHMARK(BM_SpliceTailnetToDevice_libsodium)->ArgNames({"inner", "flows"})->ArgsProduct({{64, 512, 1280}, {1}});
BENCHMARK(BM_SpliceFlowCreation_ipsec_mb)->ArgNames({"inner", "devices"})->ArgsProduct({{64, 1280}, {1, 1000}});
BENCHMARK(BM_SpliceManyDevicesOut_ipsec_mb)->ArgNames({"inner", "devices"})->ArgsProduct({{64, 1280}, {1, 1000}});
BENCHMARK(BM_SpliceManyDevicesIn_ipsec_mb)->ArgNames({"inner", "devices"})->ArgsProduct({{64, 1280}, {1, 1000}});
BENCHMARK(BM_SpliceTailnetPeers_ipsec_mb)->ArgNames({"inner", "peers"})->ArgsProduct({{64}, {1, 1000, 5000}});

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
    flow* f = table_1m().allocate();
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
