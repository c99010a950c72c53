// One worker against two, splicing for 1000 devices on one net_ring port
// with two RX/TX queue pairs (EAL on lcores 0 and 1), in either direction.
// Each frame goes on the queue RSS would give it (Toeplitz over the outer
// IPv4/UDP 4-tuple with the common default key, the redirection table
// filled round-robin), so a device's packets stay on one worker, as on a
// NIC. The tailnet side has two peers (the rig's, and 100.64.0.6 at an
// endpoint RSS puts on the other queue); a device talks to the peer on its
// own queue, so the replies spread over both workers as many tailnet peers'
// would, and each peer's replay window is seen by one worker.
//
// The one-worker rounds run on a rig of their own (the same devices, peers
// and traffic, built alike): as in lopowerd, where the number of workers
// does not change while it runs, every keypair is then only ever received
// by one worker, which owns its replay window and checks it without the
// lock (replay_guard.h) in both kinds of round. One rig for both would hand
// half the windows from the one worker to the second and check them under
// the lock for good.
//
// The machine has 2 cores and the bench's own driver would share them with
// the workers, so nothing drives while the workers run: each round the
// queues are filled with sealed frames first, then the workers start
// together and run until their queue is empty. Each worker reads its own
// thread CPU time: packets over CPU seconds is what a worker does with a
// core (preemption by other processes on the shared machine does not count
// against it), and the sum over both workers is what two cores would do.
// Wall time (first start to last finish) is reported beside it; it suffers
// whatever else the machine runs. One round of each kind alternates within
// the same iteration, so both see the same machine.

#include <benchmark/benchmark.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_thash.h>

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/bench_main.h"
#include "bench/cipher_bound.h"
#include "bench/splice_traffic.h"
#include "bench/worker_drive.h"
#include "dataplane/tailnet_view.h"
#include "dataplane/worker.h"
#include "tests/support/ring_port.h"
#include "tests/support/splice_rig.h"

namespace {

using namespace lopower;

constexpr unsigned queues = 2;
constexpr unsigned devices = 1000;
// Frames per worker per round (~5 ms of work): the same for one worker as
// for each of two, so each works on as many frames (and cache lines) as
// the other; what differs is only that two run at once.
constexpr unsigned frames_per_round = 8192;
constexpr unsigned ring_slots = 16384;  // a round's frames fit a queue whatever the RSS split

rte_mempool* pool() {
  static rte_mempool* p =
      rte_pktmbuf_pool_create("mw_pool", queues * frames_per_round + 8191, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
  return p;
}

// The Toeplitz key most NICs (and DPDK's examples) default to.
constexpr std::array<std::uint8_t, 40> default_rss_key = {
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
    0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
    0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa};

// The queue RSS gives the frames a peer at `ep` sends to lopower.
unsigned rss_queue(const wg_endpoint& ep) {
  rte_ipv4_tuple t{};
  std::uint32_t src = 0, dst = 0;
  std::memcpy(&src, ep.peer_ip, 4);
  std::memcpy(&dst, ep.local_ip, 4);
  t.src_addr = ntohl(src);
  t.dst_addr = ntohl(dst);
  t.sport = ntohs(ep.peer_port_be);
  t.dport = ntohs(ep.local_port_be);
  const std::uint32_t hash =
      rte_softrss(reinterpret_cast<std::uint32_t*>(&t), RTE_THASH_V4_L4_LEN, default_rss_key.data());
  return hash % queues;
}

// Names unique in the process: each benchmark run builds its rig afresh
// (a closed ring port keeps its name).
std::string unique_name(const char* prefix) {
  static unsigned made = 0;
  return prefix + std::to_string(made++);
}

// A ring port with a queue pair per worker.
struct rss_port {
  std::array<rte_ring*, queues> rx{}, tx{};
  std::uint16_t id = 0;

  rss_port() {
    const std::string name = unique_name("mw");
    for (unsigned q = 0; q < queues; ++q) {
      rx[q] = test_support::make_ring(name + "rx" + std::to_string(q), ring_slots);
      tx[q] = test_support::make_ring(name + "tx" + std::to_string(q), ring_slots);
    }
    const int port = rte_eth_from_rings(name.c_str(), rx.data(), queues, tx.data(), queues, 0);
    if (port < 0) throw std::runtime_error("cannot create the two-queue ring port");
    id = static_cast<std::uint16_t>(port);
    rte_eth_conf conf{};
    if (rte_eth_dev_configure(id, queues, queues, &conf) != 0) throw std::runtime_error("cannot configure the port");
    for (std::uint16_t q = 0; q < queues; ++q)
      if (rte_eth_rx_queue_setup(id, q, 1024, 0, nullptr, pool()) != 0 || rte_eth_tx_queue_setup(id, q, 1024, 0, nullptr) != 0)
        throw std::runtime_error("cannot set up the port's queues");
    if (rte_eth_dev_start(id) != 0) throw std::runtime_error("cannot start the port");
  }
  ~rss_port() {
    test_support::close_ring_port(id);
    for (unsigned q = 0; q < queues; ++q) {
      test_support::drain({rx[q], tx[q]});
      rte_ring_free(rx[q]);
      rte_ring_free(tx[q]);
    }
  }
  rss_port(const rss_port&) = delete;
  rss_port& operator=(const rss_port&) = delete;
};

// The rig's device and tailnet peer, reached through `port` instead of
// the rig's own one-queue port (the fleet copies the device's endpoint).
void move_rig_to(test_support::splice_rig& g, std::uint16_t port) {
  g.device_ep.port_id = port;
  g.peer_ep.port_id = port;
  delete g.device.endpoint.exchange(new wg_endpoint(g.device_ep));
  delete g.ts_peer.endpoint.exchange(new wg_endpoint(g.peer_ep));
}

// A second tailnet peer (100.64.0.6, lopower's receiver index 9) on the
// rig's port, at an endpoint (198.18.0.4) whose port makes RSS put its
// frames on the queue the rig's tailnet peer's do not go to.
class second_tailnet_peer {
 public:
  static constexpr std::uint32_t index = 9;

  explicit second_tailnet_peer(test_support::splice_rig& g) : rig_(g), endpoint_(g.peer_ep) {
    inet_pton(AF_INET, "198.18.0.4", endpoint_.peer_ip);
    const unsigned other = (rss_queue(g.peer_ep) + 1) % queues;
    std::uint16_t port = 41641;
    do endpoint_.peer_port_be = htons(port++);
    while (rss_queue(endpoint_) != other);
    peer_.id = 3;
    peer_.tailnet = true;
    peer_.endpoint.store(new wg_endpoint(endpoint_));
    peer_.allowed.store(new allowed_prefixes{{*ip_prefix::parse("100.64.0.6/32")}});
    if (!g.sessions.insert(test_support::make_keypair(peer_, index, key_))) throw std::runtime_error("session table full");
    auto* v = new tailnet_view(*g.view.load());
    v->routes.add(*ip_prefix::parse("100.64.0.6/32"), &peer_);  // overlaps no route there
    v->routes.finish();
    rigs_view_ = g.view.exchange(v);
  }
  ~second_tailnet_peer() {
    rig_.sessions.erase(index);
    delete rig_.view.exchange(rigs_view_);  // the rig deletes its own
    delete peer_.endpoint.load();
    peer_.current.store(nullptr);
  }
  second_tailnet_peer(const second_tailnet_peer&) = delete;
  second_tailnet_peer& operator=(const second_tailnet_peer&) = delete;

  bench::tailnet_side side() { return {ip_address::v4(0x64400006), key_, &counter_, index, &endpoint_}; }

 private:
  test_support::splice_rig& rig_;
  wg_peer peer_;
  wg_endpoint endpoint_;
  std::uint8_t key_[32];
  std::uint64_t counter_ = 0;
  const tailnet_view* rigs_view_ = nullptr;
};

enum class way { device_to_tailnet, tailnet_to_device };

// One worker's queue: its worker, its private rings and what a round measured.
struct lane {
  rte_ring *rx = nullptr, *tx = nullptr, *events = nullptr, *staged = nullptr, *relay_out = nullptr, *relay_in = nullptr;
  std::unique_ptr<worker> w;
  std::unique_ptr<bench::splice_traffic> traffic;  // the devices RSS puts here
  unsigned device_count = 0;
  // one round
  std::uint64_t moved = 0, start_tsc = 0, end_tsc = 0;
  double cpu_seconds = 0;
};

std::atomic<bool> go{false};

// Runs `l`'s worker until its queue is empty; on its own lcore.
int run_lane(void* arg) {
  lane& l = *static_cast<lane*>(arg);
  while (!go.load(std::memory_order_acquire)) rte_pause();
  const double cpu0 = bench::thread_seconds();
  l.start_tsc = rte_rdtsc();
  std::uint64_t moved = 0;
  while (rte_ring_count(l.rx) != 0) moved += l.w->poll_once();
  l.w->flush();
  l.end_tsc = rte_rdtsc();
  l.cpu_seconds = bench::thread_seconds() - cpu0;
  l.moved = moved;
  return 0;
}

class two_worker_rig {
 public:
  explicit two_worker_rig(std::uint16_t inner) : rig_(unique_name("mwr"), pool()) {
    move_rig_to(rig_, port_.id);
    second_ = std::make_unique<second_tailnet_peer>(rig_);
    std::array<bench::tailnet_side, queues> peer_on;
    peer_on[rss_queue(rig_.peer_ep)] = bench::rig_peer(rig_);
    peer_on[rss_queue(*second_->side().endpoint)] = second_->side();
    fleet_ = std::make_unique<bench::device_fleet>(rig_, devices);
    std::array<std::vector<bench::flow_end>, queues> by_queue;
    std::vector<bench::flow_end> all;
    for (unsigned i = 0; i < devices; ++i) {
      const bench::device_side d = fleet_->side(i);
      const unsigned q = rss_queue(*d.endpoint);
      by_queue[q].push_back({d, 5555, 0, peer_on[q]});
      all.push_back({d, 5555, 0, peer_on[q]});
    }
    for (unsigned q = 0; q < queues; ++q) {
      lane& l = lanes_[q];
      l.device_count = static_cast<unsigned>(by_queue[q].size());
      l.traffic = std::make_unique<bench::splice_traffic>(rig_, std::move(by_queue[q]), inner);
      make_worker(l, q);
    }
    all_ = std::make_unique<bench::splice_traffic>(rig_, std::move(all), inner);
    all_->forget_flow_counts();
  }
  ~two_worker_rig() {
    for (lane& l : lanes_) {
      l.w.reset();
      drain_side_rings(l);
      test_support::drain({l.relay_in});
      for (rte_ring* r : {l.events, l.staged, l.relay_out, l.relay_in}) rte_ring_free(r);
    }
  }
  two_worker_rig(const two_worker_rig&) = delete;
  two_worker_rig& operator=(const two_worker_rig&) = delete;

  lane& lane_of(unsigned q) { return lanes_[q]; }
  // Frames both workers dropped so far (for any reason): 0 when every frame was spliced.
  std::uint64_t dropped() const {
    std::uint64_t n = 0;
    for (const lane& l : lanes_)
      for (unsigned r = 0; r < drop_reason_count; ++r) n += l.w->stats().ports[0].drops[r].get();
    return n;
  }
  unsigned devices_on(unsigned q) const { return lanes_[q].device_count; }

  // After a device -> tailnet round: the ports lopower gave the flows, for
  // the replies.
  void learn_ports() {
    for (lane& l : lanes_) l.traffic->learn_ports(table_);
    all_->learn_ports(table_);
  }

  // One round with every frame on queue 0 (one worker), or each frame on
  // its RSS queue (two workers, each on its own lcore).
  void round(unsigned workers, way w) {
    fill(workers, w);
    go.store(false);
    if (workers == 2 && rte_eal_remote_launch(run_lane, &lanes_[1], rte_get_next_lcore(-1, 1, 0)) != 0)
      throw std::runtime_error("cannot launch the second worker");
    go.store(true, std::memory_order_release);
    run_lane(&lanes_[0]);
    if (workers == 2) rte_eal_mp_wait_lcore();
    for (lane& l : lanes_) {
      test_support::drain({l.tx});
      drain_side_rings(l);
    }
  }

  std::uint64_t wall_tsc(unsigned workers) const {
    std::uint64_t start = lanes_[0].start_tsc, end = lanes_[0].end_tsc;
    if (workers == 2) {
      start = std::min(start, lanes_[1].start_tsc);
      end = std::max(end, lanes_[1].end_tsc);
    }
    return end - start;
  }

 private:
  void make_worker(lane& l, unsigned q) {
    const std::string n = unique_name("mwl");
    l.rx = port_.rx[q];
    l.tx = port_.tx[q];
    l.events = rte_ring_create_elem((n + "ev").c_str(), sizeof(wg_event), 4096, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    l.staged = rte_ring_create_elem((n + "st").c_str(), sizeof(staged_packet), 4096, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    l.relay_out = rte_ring_create_elem((n + "ro").c_str(), sizeof(relay_packet), 4096, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    l.relay_in = test_support::make_ring(n + "ri");
    if (l.events == nullptr || l.staged == nullptr || l.relay_out == nullptr) throw std::runtime_error("cannot create a lane's rings");
    worker_setup s = rig_.setup(table_);
    s.ports[0].port_id = port_.id;
    s.queue = static_cast<std::uint16_t>(q);
    s.lcore_id = q;
    s.worker_index = q;
    s.worker_count = queues;
    // The rig's RCU domain, as lopowerd's workers have theirs: a window's
    // first worker owns it. These workers, driven by poll_once, report no
    // quiescent states; none is waited for, as no keypair of this rig meets
    // a second worker (its one-worker rounds run on another rig).
    s.qsbr = rig_.rcu.qsbr();
    s.max_flows_per_device = table_.capacity();
    s.wg_events = l.events;
    s.staged = l.staged;
    s.relay_out = l.relay_out;
    s.relay_in = l.relay_in;
    l.w = std::make_unique<worker>(s);
  }

  // Sealed frames on the queues, outside any timing.
  void fill(unsigned workers, way w) {
    const auto seal = [w](bench::splice_traffic& t, rte_mbuf* m) {
      if (w == way::device_to_tailnet) t.seal_out(m); else t.seal_in(m);
    };
    bench::scatter_pool(pool());  // frames as a gateway's lie after hours (worker_drive.h)
    if (workers == 1) {
      test_support::fill(pool(), lanes_[0].rx, frames_per_round, [this, &seal](rte_mbuf* m) { seal(*all_, m); });
      return;
    }
    for (lane& l : lanes_) {
      const unsigned n = queues * frames_per_round * l.device_count / devices;
      test_support::fill(pool(), l.rx, n, [&l, &seal](rte_mbuf* m) { seal(*l.traffic, m); });
    }
  }

  static void drain_side_rings(lane& l) {
    wg_event ev;
    while (rte_ring_sc_dequeue_elem(l.events, &ev, sizeof ev) == 0) {}
    staged_packet sp;
    while (rte_ring_sc_dequeue_elem(l.staged, &sp, sizeof sp) == 0) rte_pktmbuf_free(sp.mbuf);
    relay_packet rp;
    while (rte_ring_sc_dequeue_elem(l.relay_out, &rp, sizeof rp) == 0) rte_pktmbuf_free(rp.mbuf);
  }

  rss_port port_;
  test_support::splice_rig rig_;
  std::unique_ptr<second_tailnet_peer> second_;  // before the table: flows point at it
  flow_table table_{1u << 16, rig_.rcu};
  std::unique_ptr<bench::device_fleet> fleet_;
  std::array<lane, queues> lanes_;
  std::unique_ptr<bench::splice_traffic> all_;
};

// Per iteration: a round with one worker, then one with two. Counters:
//   one_worker_Mpps, two_workers_Mpps          wall-clock rates
//   speedup_wall                               two over one, by the wall
//   w0_Mpps_cpu, w1_Mpps_cpu, one_Mpps_cpu     each worker's packets per CPU second
//   speedup_cpu                                (w0 + w1) over one, by CPU time
//   share_of_bound_w0/_w1/_one                 each per CPU second over the cipher bound
void two_workers(benchmark::State& state, way w) {
  if (rte_lcore_count() < 2) {
    state.SkipWithError("EAL has fewer than 2 lcores");
    return;
  }
  const auto inner = static_cast<std::uint16_t>(state.range(0));
  two_worker_rig rig(inner);   // two workers: each keypair received by its RSS queue's
  two_worker_rig solo(inner);  // one worker: every keypair received by it
  const double bound = bench::cipher_bound_pps("ipsec-mb", bench::sealed_length(inner));
  rig.round(2, way::device_to_tailnet);  // the flows' first packets (inserts) stay out of the numbers
  solo.round(1, way::device_to_tailnet);
  if (w == way::tailnet_to_device) {
    rig.learn_ports();
    solo.learn_ports();
  }
  solo.round(1, w);
  struct totals {
    double packets = 0, cpu = 0;
  } one, w0, w1;
  double one_wall = 0, two_wall = 0, two_packets = 0;
  const double hz = static_cast<double>(rte_get_tsc_hz());
  for (auto _ : state) {
    solo.round(1, w);
    one.packets += static_cast<double>(solo.lane_of(0).moved);
    one.cpu += solo.lane_of(0).cpu_seconds;
    one_wall += static_cast<double>(solo.wall_tsc(1)) / hz;
    rig.round(2, w);
    w0.packets += static_cast<double>(rig.lane_of(0).moved);
    w0.cpu += rig.lane_of(0).cpu_seconds;
    w1.packets += static_cast<double>(rig.lane_of(1).moved);
    w1.cpu += rig.lane_of(1).cpu_seconds;
    const double wall = static_cast<double>(rig.wall_tsc(2)) / hz;
    two_wall += wall;
    two_packets += static_cast<double>(rig.lane_of(0).moved + rig.lane_of(1).moved);
    state.SetIterationTime(wall);
  }
  const double one_rate = one.packets / one_wall, two_rate = two_packets / two_wall;
  const double one_cpu = one.packets / one.cpu, w0_cpu = w0.packets / w0.cpu, w1_cpu = w1.packets / w1.cpu;
  state.SetItemsProcessed(static_cast<std::int64_t>(two_packets));
  state.counters["dropped"] = static_cast<double>(rig.dropped() + solo.dropped());
  state.counters["devices_q0"] = rig.devices_on(0);
  state.counters["devices_q1"] = rig.devices_on(1);
  state.counters["one_worker_Mpps"] = one_rate / 1e6;
  state.counters["two_workers_Mpps"] = two_rate / 1e6;
  state.counters["speedup_wall"] = two_rate / one_rate;
  state.counters["one_Mpps_cpu"] = one_cpu / 1e6;
  state.counters["w0_Mpps_cpu"] = w0_cpu / 1e6;
  state.counters["w1_Mpps_cpu"] = w1_cpu / 1e6;
  state.counters["speedup_cpu"] = (w0_cpu + w1_cpu) / one_cpu;
  state.counters["cipher_bound_Mpps"] = bound / 1e6;
  state.counters["share_of_bound_one"] = one_cpu / bound;
  state.counters["share_of_bound_w0"] = w0_cpu / bound;
  state.counters["share_of_bound_w1"] = w1_cpu / bound;
}
void BM_TwoWorkersDeviceToTailnet(benchmark::State& state) { two_workers(state, way::device_to_tailnet); }
void BM_TwoWorkersTailnetToDevice(benchmark::State& state) { two_workers(state, way::tailnet_to_device); }
BENCHMARK(BM_TwoWorkersDeviceToTailnet)->ArgName("inner")->Arg(64)->Arg(1280)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_TwoWorkersTailnetToDevice)->ArgName("inner")->Arg(64)->Arg(1280)->UseManualTime()->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) { return lopower::bench::run_benchmarks(argc, argv, "multi_worker_bench", 2048, "0-1"); }
