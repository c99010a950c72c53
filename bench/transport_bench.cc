// The WireGuard transport path of a worker on net_ring ports, with a real
// session: a device's ICMP echo requests to lopower's tunnel address are
// bulk-looked-up, decrypted in one backend call, checked (replay window,
// cryptokey routing), answered, re-encrypted in one call and transmitted.
// Each frame is one packet in and one packet out. Counters must stay fresh
// for the replay window, so frames are re-sealed outside the timed region.
// Each run reports its cipher bound, taken in step with it (bench/cipher_bound.h,
// bound_in_step), and its share of it.

#include <benchmark/benchmark.h>
#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <sodium.h>

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/bench_main.h"
#include "bench/cipher_bound.h"
#include "dataplane/inner_packet.h"
#include "bench/worker_drive.h"
#include "dataplane/worker.h"

namespace {

using namespace lopower;

constexpr unsigned frames = 4096;
constexpr unsigned refill_every = frames / 32;  // bursts between re-seals

rte_mempool* pool() {
  static rte_mempool* p = rte_pktmbuf_pool_create("transport_pool", 16383, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
  return p;
}


struct rig {
  rte_ring *rx, *tx;
  std::uint16_t port;
  port_identity identity;
  rcu_domain rcu{1};
  session_table sessions{1024, rcu};
  wg_peer peer;
  wg_endpoint device;  // the device as lopower sees it
  std::uint8_t device_to_lopower_key[32];
  std::uint64_t next_counter = 0;

  rig() {
    rx = rte_ring_create("tr_rx", 8192, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    tx = rte_ring_create("tr_tx", 8192, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    port = test_support::ring_port("net_ring_transport", rx, tx, pool());
    identity.add_address(ip_address::v4(0xc6120001));
    identity.device_port_be = htons(51820);
    device.port_id = port;
    inet_pton(AF_INET, "198.18.0.2", device.peer_ip);
    inet_pton(AF_INET, "198.18.0.1", device.local_ip);
    device.peer_port_be = htons(40000);
    device.local_port_be = htons(51820);
    peer.has_v4 = true;
    inet_pton(AF_INET, "10.90.0.2", &peer.v4_be);
    peer.endpoint.store(new wg_endpoint(device));
    auto* kp = new wg_keypair;
    randombytes_buf(device_to_lopower_key, 32);
    std::memcpy(kp->receive_key, device_to_lopower_key, 32);
    randombytes_buf(kp->send_key, 32);
    kp->local_index = 7;
    kp->remote_index = 9;
    kp->confirmed = true;
    kp->created_tsc = rte_rdtsc();
    kp->peer = &peer;
    sessions.insert(kp);
    peer.current.store(kp);
  }
};

// Writes `m` as the device would send it: an echo request of `payload`
// bytes to 10.90.0.1, sealed with the device's key and the next counter.
void seal_request(rig& g, rte_mbuf* m, std::uint16_t payload) {
  test_support::seal_frame(
      m, static_cast<std::uint16_t>(28 + payload),
      [payload](std::uint8_t* ip) {
        write_echo_request(ip, *ip_address::parse("10.90.0.2"), *ip_address::parse("10.90.0.1"), 1, payload);
      },
      g.device_to_lopower_key, g.next_counter++, 7, g.device);
}

rig& the_rig() {
  static rig g;
  return g;
}

void transport_echo(benchmark::State& state, const char* backend) {
  rig& g = the_rig();
  const auto payload = static_cast<std::uint16_t>(state.range(0));
  worker_setup s;
  s.burst_size = 32;
  s.adaptive_idle = false;
  s.ports.push_back(worker_port{0, g.port, no_port, &g.identity});
  s.sessions = &g.sessions;
  s.crypto_backend = backend;
  s.reject_after_cycles = rte_get_tsc_hz() * 3600;
  s.has_local_v4 = true;
  inet_pton(AF_INET, "10.90.0.1", &s.local_v4_be);
  static rte_ring* events = rte_ring_create_elem("tr_events", sizeof(wg_event), 4096, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
  s.wg_events = events;
  worker w(s);
  const test_support::seal_fn seal = [&g, payload](rte_mbuf* m) { seal_request(g, m, payload); };
  bench::bound_in_step bound(backend, bench::sealed_length(28u + payload));
  bench::scatter_pool(pool());  // frames as a gateway's lie after hours (worker_drive.h)
  test_support::fill(pool(), g.rx, frames, seal);
  double timed_seconds = 0;
  const std::uint64_t moved = bench::drive(state, w, g.rx, g.tx, events, refill_every, seal, &timed_seconds, {&bound});
  state.SetItemsProcessed(static_cast<std::int64_t>(moved));
  state.SetBytesProcessed(static_cast<std::int64_t>(moved) * (28 + payload));
  bench::report_in_step(state, moved, timed_seconds, bound);
  state.counters["dropped"] = static_cast<double>(
      w.stats().ports[0].drops[static_cast<unsigned>(drop_reason::wg_replay)].get() +
      w.stats().ports[0].drops[static_cast<unsigned>(drop_reason::wg_decrypt_failed)].get());
  test_support::drain({g.rx, g.tx});
}

void BM_TransportEcho_ipsec_mb(benchmark::State& state) { transport_echo(state, "ipsec-mb"); }
void BM_TransportEcho_libsodium(benchmark::State& state) { transport_echo(state, "libsodium"); }
BENCHMARK(BM_TransportEcho_ipsec_mb)->ArgName("payload")->Arg(64)->Arg(512)->Arg(1372);
BENCHMARK(BM_TransportEcho_libsodium)->ArgName("payload")->Arg(64)->Arg(512)->Arg(1372);

// The receiver-index lookup alone, as the decrypt stage does it: bursts of
// 32 indices against a table of `sessions` live keypairs with random indices
// (as fresh_index draws them), a burst's indices spread over the sessions.
void BM_SessionLookupBulk(benchmark::State& state) {
  constexpr unsigned burst = 32;
  const auto live = static_cast<unsigned>(state.range(0));
  rcu_domain rcu{1};
  session_table sessions{std::max(64u, 4 * live), rcu};
  std::vector<std::uint32_t> indices;
  while (indices.size() < live) {
    auto* kp = new wg_keypair;
    kp->local_index = randombytes_random();
    const std::uint32_t index = kp->local_index;
    if (sessions.insert(kp)) indices.push_back(index);
  }
  std::uint32_t keys[burst];
  wg_keypair* found[burst];
  std::size_t next = 0, hits = 0;
  for (auto _ : state) {
    for (unsigned k = 0; k < burst; ++k) keys[k] = indices[(next + k * 7) % live];
    sessions.lookup_bulk(keys, burst, found);
    for (unsigned k = 0; k < burst; ++k) hits += found[k] != nullptr;
    next = (next + burst) % live;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * burst);
  state.counters["hit_ratio"] = static_cast<double>(hits) / static_cast<double>(state.iterations() * burst);
}
BENCHMARK(BM_SessionLookupBulk)->ArgName("sessions")->Arg(1)->Arg(1000)->Arg(100000);

}  // namespace

int main(int argc, char** argv) { return lopower::bench::run_benchmarks(argc, argv, "transport_bench", 512); }
