// Flow expiry on the control thread, at 10 k, 100 k and 1 M flows: one
// dataplane::expire_flows call (with the census the metrics take), as
// lopowerd makes once a second, when
//   (a) nothing expires, and
//   (b) 1 % of the table expires (idle past its timeout).
// The table is a dataplane's own (max_flows = the size measured), filled
// through flow_table::insert with flows made as worker::create_flow makes
// them: 60 % TCP (established), 35 % UDP, 5 % ICMP echo, over 1000 devices.
//
// and, for the timer wheel, (c) 1 % of the table reaches the deadline the
// wheel had for it but had packets since (checked and moved on: what a busy
// table costs, each flow checked about once per timeout).
//
// `legacy_walk` is the expiry lopower had before the timer wheel
// (dataplane.cc until issue 12): every flow visited once a second through
// flow_table::for_each, its idle time and state read, the census counted on
// the way. It is kept here, on the same table, so before and after are
// measured in the same run.
//
// Reported: the time of one call (manual time, the call alone), ns_per_flow
// (that time over the table's flows) and ctl_us_per_s (the control thread's
// microseconds per second at one call a second).

#include <benchmark/benchmark.h>
#include <rte_cycles.h>
#include <rte_ring.h>

#include <arpa/inet.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench_main.h"
#include "dataplane/dataplane.h"
#include "dataplane/splice/translate.h"
#include "tests/support/dataplane_rig.h"
#include "tests/support/ring_port.h"

namespace {

using namespace lopower;

constexpr unsigned device_count = 1000;

// A dataplane with a flow table of `capacity`, one worker (not launched),
// on a net_ring device.
struct table_rig {
  static inline unsigned serial = 0;  // each rig's ring device is named anew
  std::string name;
  rte_ring *rx = nullptr, *tx = nullptr;
  std::unique_ptr<dataplane> dp;
  std::vector<std::unique_ptr<wg_peer>> devices;
  std::vector<std::pair<flow*, std::uint32_t>> live;  // every flow in the table and its serial
  std::uint32_t next = 0;   // the next flow's serial
  std::uint8_t ours[4];

  explicit table_rig(unsigned capacity) : name("fx" + std::to_string(serial++)) {
    rx = test_support::make_ring(name + "_rx", 1024);
    tx = test_support::make_ring(name + "_tx", 1024);
    test_support::ring_device(name, rx, tx);
    dataplane_settings s = test_support::ring_dataplane_settings(name, "bench.toml");
    s.dataplane.max_flows = capacity;
    s.dataplane.max_flows_per_device = capacity;
    dp = std::make_unique<dataplane>(s, std::vector<unsigned>{1});
    for (unsigned d = 0; d < device_count; ++d) {
      auto peer = std::make_unique<wg_peer>();
      peer->id = d + 1;
      peer->has_v4 = true;
      peer->v4_be = htonl(0x0a5a0000u | (d + 2));
      devices.push_back(std::move(peer));
    }
    inet_pton(AF_INET, "100.64.0.1", ours);
  }
  ~table_rig() {
    live.clear();
    dp.reset();  // frees its flows
    rte_ring_free(rx);
    rte_ring_free(tx);
  }

  // A flow as worker::create_flow makes it, added through the table's API
  // (a TCP flow then moved to established as the worker's track_tcp does on
  // the SYN-ACK), its last packet at stamp(flow, serial).
  template <typename Stamp>
  flow* add(const Stamp& stamp) {
    const std::uint32_t n = next++;
    const std::uint32_t kind = n % 20;
    const std::uint8_t protocol = kind == 0 ? splice::ipproto_icmp : kind < 8 ? splice::ipproto_udp : splice::ipproto_tcp;
    wg_peer* device = devices[n % device_count].get();
    std::uint8_t src[4], dst[4];
    std::memcpy(src, &device->v4_be, 4);
    const std::uint32_t dst_host = 0x64400000u | (n >> 10);  // 100.64.x.y: a thousand flows per peer address
    const std::uint32_t dst_be = htonl(dst_host);
    std::memcpy(dst, &dst_be, 4);
    const auto device_port = static_cast<std::uint16_t>(1024 + (n & 1023));
    const std::uint16_t peer_port = protocol == splice::ipproto_icmp ? device_port : 443;
    flow* f = dp->flows().allocate();
    if (f == nullptr) return nullptr;
    f->device_key = splice::make_flow_key(ip_family::v4, protocol, src, device_port, dst, peer_port);
    const auto our_port = static_cast<std::uint16_t>(1024 + (n & 1023));
    f->tailnet_key = splice::make_flow_key(ip_family::v4, protocol, dst, protocol == splice::ipproto_icmp ? our_port : peer_port,
                                           ours, our_port);
    f->device = device;
    const std::uint64_t last_tsc = stamp(*f, n);
    f->created_tsc = last_tsc;
    f->last_tsc.store(last_tsc, std::memory_order_relaxed);
    f->owner_worker = 0;
    if (!dp->flows().insert(f)) {
      dp->flows().discard(f);
      return nullptr;
    }
    device->flows.fetch_add(1, std::memory_order_relaxed);
    if (protocol == splice::ipproto_tcp)
      dp->flows().track_tcp(*f, splice::tcp_flag::syn | splice::tcp_flag::ack, splice::flow_direction::reply, 0);
    live.emplace_back(f, n);
    return f;
  }

  template <typename Stamp>
  void fill(unsigned flows, const Stamp& stamp) {
    while (live.size() < flows)
      if (add(stamp) == nullptr) throw std::runtime_error("the flow table refused a flow at " + std::to_string(live.size()));
  }
};

// The expiry lopower had before the timer wheel (dataplane::expire_flows
// until issue 12), on the public API it used: a walk of the whole table
// every second.
unsigned legacy_walk(dataplane& dp, flow_census* census, std::uint64_t now) {
  const std::uint64_t hz = rte_get_tsc_hz();
  std::vector<flow*> done;
  flow_census counted;
  dp.flows().for_each([&](flow& f) {
    const std::uint64_t idle = splice::seconds_since(f.last_tsc.load(std::memory_order_relaxed), now, hz);
    const splice::tcp_state state = f.state.load(std::memory_order_relaxed);
    const auto timeout = splice::idle_timeout(f.device_key.protocol, f.device_key.dst_port, state);
    if (f.device->removed.load(std::memory_order_relaxed) || idle >= timeout) return done.push_back(&f);
    if (f.device_key.protocol == splice::ipproto_tcp) ++counted.tcp[static_cast<unsigned>(state) % 5];
    else if (f.device_key.protocol == splice::ipproto_udp) ++counted.udp;
    else ++counted.icmp;
  });
  if (census != nullptr) *census = counted;
  for (flow* f : done) {
    f->device->flows.fetch_sub(1, std::memory_order_relaxed);
    dp.flows().erase(f);
  }
  return static_cast<unsigned>(done.size());
}

enum class how { expire_flows, legacy_walk };
enum class load {
  none_due,     // (a) nothing expires: every flow fresh
  one_pct_idle, // (b) 1 % of the table reaches its timeout each second, idle: expired
  one_pct_busy, // (c) 1 % reaches the deadline it was scheduled for, but had packets since: rescheduled
};

std::uint64_t census_total(const flow_census& c) {
  return c.tcp[0] + c.tcp[1] + c.tcp[2] + c.tcp[3] + c.tcp[4] + c.udp + c.icmp;
}

// Each iteration is one second of a virtual clock (ahead of the real TSC:
// nothing here reads the real one), one call a second as in lopowerd. For
// (b) and (c) the flows' last packets are spread so that the flows of
// serial n reach their timeout at second n % 100 + 1; in (b) the expired
// ones are replaced by fresh flows (untimed), so the table stays full.
void expiry(benchmark::State& state, how which, load kind) {
  const auto flows = static_cast<unsigned>(state.range(0));
  table_rig g(flows);
  dataplane& dp = *g.dp;
  const std::uint64_t hz = rte_get_tsc_hz();
  const std::uint64_t t0 = rte_rdtsc() + 8000 * hz;
  const bool spread = kind != load::none_due;
  g.fill(flows, [&](const flow& f, std::uint32_t n) {
    if (!spread) return t0;
    const std::uint32_t timeout = splice::idle_timeout(f.device_key.protocol, f.device_key.dst_port, splice::tcp_state::established);
    return t0 + (n % 100 + 1) * hz - std::uint64_t{timeout} * hz;
  });
  dp.expire_flows(nullptr, t0);  // takes the new flows into the wheel (workers' inserts queue them): untimed
  dp.rcu().reclaim();
  auto call = [&](flow_census* c, std::uint64_t now) {
    return which == how::expire_flows ? dp.expire_flows(c, now) : legacy_walk(dp, c, now);
  };
  const std::size_t batch = spread ? flows / 100 : 0;
  flow_census census;
  unsigned expired = 0;
  std::uint64_t second = 0, wrong_census = 0;
  double total_s = 0;
  for (auto _ : state) {
    ++second;
    const std::uint64_t now = t0 + second * hz + hz / 2;
    if (kind == load::one_pct_busy)  // their packets, as workers stamp them
      for (std::size_t i = second - 1; i < flows; i += 100) g.live[i].first->last_tsc.store(now - hz / 4, std::memory_order_relaxed);
    const auto t1 = std::chrono::steady_clock::now();
    expired = call(&census, now);
    const auto t2 = std::chrono::steady_clock::now();
    const double s = std::chrono::duration<double>(t2 - t1).count();
    state.SetIterationTime(s);
    total_s += s;
    const std::size_t want = kind == load::one_pct_idle ? batch : 0;
    if (expired != want) state.SkipWithError("the expired count is not the batch's");
    if (census_total(census) != g.live.size() - expired) ++wrong_census;
    if (expired != 0) {  // fresh flows for the expired ones (serials of the first fill due this second; new ones due far later)
      std::erase_if(g.live, [&](const auto& e) { return e.second < flows && e.second % 100 == second - 1; });
      dp.rcu().reclaim();
      g.fill(flows, [&](const flow&, std::uint32_t) { return now; });
    }
  }
  if (wrong_census != 0) state.SkipWithError("the census does not add up to the table");
  const double per_call_ns = total_s * 1e9 / static_cast<double>(state.iterations());
  state.counters["ns_per_flow"] = per_call_ns / flows;
  state.counters["ctl_us_per_s"] = per_call_ns / 1000;
  state.counters["expired"] = expired;
}

void expire_flows_none(benchmark::State& s) { expiry(s, how::expire_flows, load::none_due); }
void expire_flows_1pct(benchmark::State& s) { expiry(s, how::expire_flows, load::one_pct_idle); }
void expire_flows_1pct_busy(benchmark::State& s) { expiry(s, how::expire_flows, load::one_pct_busy); }
void legacy_walk_none(benchmark::State& s) { expiry(s, how::legacy_walk, load::none_due); }
void legacy_walk_1pct(benchmark::State& s) { expiry(s, how::legacy_walk, load::one_pct_idle); }

}  // namespace

#define FLOW_EXPIRY(fn, n, iterations) \
  BENCHMARK(fn)->Arg(n)->UseManualTime()->Unit(benchmark::kMicrosecond)->Iterations(iterations)

FLOW_EXPIRY(legacy_walk_none, 10000, 20);
FLOW_EXPIRY(legacy_walk_1pct, 10000, 20);
FLOW_EXPIRY(expire_flows_none, 10000, 20);
FLOW_EXPIRY(expire_flows_1pct, 10000, 20);
FLOW_EXPIRY(expire_flows_1pct_busy, 10000, 20);
FLOW_EXPIRY(legacy_walk_none, 100000, 10);
FLOW_EXPIRY(legacy_walk_1pct, 100000, 10);
FLOW_EXPIRY(expire_flows_none, 100000, 20);
FLOW_EXPIRY(expire_flows_1pct, 100000, 20);
FLOW_EXPIRY(expire_flows_1pct_busy, 100000, 20);
FLOW_EXPIRY(legacy_walk_none, 1000000, 3);
FLOW_EXPIRY(legacy_walk_1pct, 1000000, 3);
FLOW_EXPIRY(expire_flows_none, 1000000, 20);
FLOW_EXPIRY(expire_flows_1pct, 1000000, 20);
FLOW_EXPIRY(expire_flows_1pct_busy, 1000000, 20);

int main(int argc, char** argv) { return lopower::bench::run_benchmarks(argc, argv, "flow_expiry_bench", 2048); }
