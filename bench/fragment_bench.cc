// IP fragments through a worker's splice, on a net_ring port with real
// sessions on both sides (as in splice_bench): 1392-byte UDP datagrams,
// what an ESP32 sends to a UDP service on the tailnet and gets back.
//
//   BM_FragmentOut             device -> tailnet: one 1420-byte IPv4 packet
//                              without DF in, cut in two for the tailnet's
//                              1280 bytes: two frames out per datagram.
//   BM_ReassembleThenFragment  device -> tailnet: the datagram in two
//                              fragments (a device whose tunnel MTU is below
//                              it, or the IPv6 device): put together,
//                              spliced, cut in two again.
//   BM_ReassembleIn            tailnet -> device: the peer's reply in two
//                              fragments, put together, spliced back to the
//                              device: whole for IPv4 (1420 fits its tunnel),
//                              cut again for IPv6 (1440 does not).
//   BM_WholeOut                for comparison: the same bytes as one
//                              1280-byte packet that needs neither.
//
// Items are datagrams (BM_WholeOut: packets of 1252 bytes of payload);
// bytes are UDP payload bytes. Frames are sealed afresh outside the timed
// region when the port's RX ring runs low.

#include <benchmark/benchmark.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <sodium.h>

#include <arpa/inet.h>

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/bench_main.h"
#include "bench/worker_drive.h"
#include "tests/support/splice_rig.h"
#include "dataplane/inner_packet.h"
#include "dataplane/worker.h"
#include "lopower/byte_order.h"

namespace {

using namespace lopower;
using bytes = std::vector<std::uint8_t>;

constexpr unsigned in_flight = 2048;  // frames waiting on the RX ring
constexpr std::size_t datagram_payload = 1392;

rte_mempool* pool() {
  static rte_mempool* p = rte_pktmbuf_pool_create("frag_pool", 16383, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
  return p;
}


using test_support::device_address;
using test_support::our_tailnet_address;
using test_support::peer_address;
// A device and a tailnet peer on one ring port, sessions up both ways.
using rig = test_support::splice_rig;

rig& the_rig() {
  static rig g("fr", pool());
  return g;
}

// A UDP packet, IPv4 without DF (lwIP's and a router's way).
bytes udp_packet(bool v6, const char* from, std::uint16_t sport, const char* to, std::uint16_t dport, std::size_t payload) {
  bytes p(48 + payload);
  const bytes data(payload, 0x5a);
  p.resize(write_udp_packet(p.data(), *ip_address::parse(from), sport, *ip_address::parse(to), dport, data));
  if (!v6 && (p[6] & 0x40) != 0) throw std::logic_error("write_udp_packet sets DF: clear it here");
  return p;
}

// `whole` in two fragments, the first carrying `first` bytes of payload.
std::vector<bytes> two_fragments(const bytes& whole, std::size_t first, std::uint32_t id) {
  const bool v6 = (whole[0] >> 4) == 6;
  const std::size_t h = v6 ? 40 : 20, payload = whole.size() - h;
  std::vector<bytes> out;
  for (auto [offset, length] : {std::pair{std::size_t{0}, first}, std::pair{first, payload - first}}) {
    bytes f(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(h));
    const bool more = offset == 0;
    if (v6) {
      f[6] = 44;
      const std::uint16_t plen = static_cast<std::uint16_t>(8 + length), om = static_cast<std::uint16_t>(offset | more);
      std::uint8_t fh[8] = {whole[6], 0};
      store_be16(&fh[2], om);
      store_be32(&fh[4], id);
      store_be16(&f[4], plen);
      f.insert(f.end(), fh, fh + 8);
    } else {
      const std::uint16_t total = static_cast<std::uint16_t>(h + length), fo = static_cast<std::uint16_t>((more ? 0x2000 : 0) | offset / 8);
      store_be16(&f[2], total);
      store_be16(&f[4], static_cast<std::uint16_t>(id));
      store_be16(&f[6], fo);
      f[10] = f[11] = 0;
      const std::uint16_t sum = static_cast<std::uint16_t>(~rte_raw_cksum(f.data(), 20));
      std::memcpy(&f[10], &sum, 2);
    }
    f.insert(f.end(), whole.begin() + static_cast<std::ptrdiff_t>(h + offset),
             whole.begin() + static_cast<std::ptrdiff_t>(h + offset + length));
    out.push_back(std::move(f));
  }
  return out;
}

// The frames one side sends, in turn: the pieces of each datagram, a new
// identification per datagram, counters fresh for the replay window.
struct sender {
  const std::uint8_t* key;
  std::uint32_t receiver;
  wg_endpoint endpoint;
  std::vector<bytes> pieces;
  std::uint64_t* counter;
  unsigned per_datagram = 1;  // frames
  std::size_t next = 0;

  void seal(rte_mbuf* m) {
    const bytes& p = pieces[next];
    next = (next + 1) % pieces.size();
    test_support::seal_frame(
        m, static_cast<std::uint16_t>(p.size()), [&p](std::uint8_t* ip) { std::memcpy(ip, p.data(), p.size()); }, key,
        (*counter)++, receiver, endpoint);
  }
};

worker_setup setup_for(rig& g, flow_table& table) {
  worker_setup s = g.setup(table, "ipsec-mb");
  s.reassembly_datagrams = 256;
  s.reassembly_per_device = 16;
  s.reassembly_per_tailnet_peer = 64;
  s.device_mtu = 1420;
  return s;
}

// Seals `n` frames into the RX ring, reusing what the worker sent.
void refill(rig& g, sender& from, unsigned n) {
  void* objs[256];
  unsigned got;
  while (n != 0 && (got = rte_ring_sc_dequeue_burst(g.tx, objs, std::min(n, 256u), nullptr)) != 0)
    for (unsigned i = 0; i < got; ++i, --n) {
      from.seal(static_cast<rte_mbuf*>(objs[i]));
      rte_ring_sp_enqueue(g.rx, objs[i]);
    }
  for (; n != 0; --n) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool());
    if (m == nullptr) throw std::runtime_error("mbuf pool exhausted");
    from.seal(m);
    rte_ring_sp_enqueue(g.rx, m);
  }
  test_support::drain({g.tx});
}

void run(benchmark::State& state, worker& w, rig& g, sender& from, std::size_t payload) {
  bench::scatter_pool(pool());  // frames as a gateway's lie after hours (worker_drive.h)
  refill(g, from, in_flight);
  std::uint64_t moved = 0;
  unsigned since_refill = 0;
  for (auto _ : state) {
    const unsigned n = w.poll_once();
    moved += n;
    since_refill += n;
    if (since_refill + 32 < in_flight) continue;
    state.PauseTiming();
    w.flush();
    refill(g, from, since_refill);
    since_refill = 0;
    wg_event ev;
    while (rte_ring_sc_dequeue_elem(w.setup().wg_events, &ev, sizeof ev) == 0) {}
    state.ResumeTiming();
  }
  w.flush();
  const auto datagrams = static_cast<std::int64_t>(moved / from.per_datagram);
  state.SetItemsProcessed(datagrams);
  state.SetBytesProcessed(datagrams * static_cast<std::int64_t>(payload));
  for (unsigned r = 0; r < drop_reason_count; ++r)  // none expected: any drop is named
    if (const auto n = w.stats().ports[0].drops[r].get(); n != 0)
      state.counters[std::string(drop_reason_names[r])] = static_cast<double>(n);
  test_support::drain({g.rx, g.tx});
}

sender from_device(rig& g, std::vector<bytes> pieces) {
  return {g.device_key, 7, g.device_ep, std::move(pieces), &g.device_counter};
}

void BM_FragmentOut(benchmark::State& state) {
  rig& g = the_rig();
  flow_table table{1u << 12, g.rcu};
  worker w(setup_for(g, table));
  sender s = from_device(g, {udp_packet(false, device_address(false), 5555, peer_address(false), 9000, datagram_payload)});
  run(state, w, g, s, datagram_payload);
}

void BM_ReassembleThenFragment(benchmark::State& state) {
  const bool v6 = state.range(0) == 6;
  rig& g = the_rig();
  flow_table table{1u << 12, g.rcu};
  worker w(setup_for(g, table));
  const bytes whole = udp_packet(v6, device_address(v6), 5555, peer_address(v6), 9000, datagram_payload);
  std::vector<bytes> pieces;
  for (std::uint32_t id = 0; id < 64; ++id)  // datagrams in turn, each its own identification
    for (bytes& f : two_fragments(whole, v6 ? 1368 : 1376, id)) pieces.push_back(std::move(f));
  sender s = from_device(g, std::move(pieces));
  s.per_datagram = 2;
  run(state, w, g, s, datagram_payload);
}

void BM_ReassembleIn(benchmark::State& state) {
  const bool v6 = state.range(0) == 6;
  rig& g = the_rig();
  flow_table table{1u << 12, g.rcu};
  worker w(setup_for(g, table));
  // The device's datagram opens the flow; the peer's replies come back on it.
  sender opener = from_device(g, {udp_packet(v6, device_address(v6), 5555, peer_address(v6), 9000, 32)});
  refill(g, opener, 1);
  w.poll_once();
  w.flush();
  test_support::drain({g.tx});
  const auto dev = *ip_address::parse(device_address(v6)), peer = *ip_address::parse(peer_address(v6));
  const flow* f = table.find(splice::make_flow_key(v6 ? ip_family::v6 : ip_family::v4, 17, dev.bytes.data(), 5555,
                                                   peer.bytes.data(), 9000));
  if (f == nullptr) throw std::runtime_error("the device's datagram made no flow");
  const bytes reply = udp_packet(v6, peer_address(v6), 9000, our_tailnet_address(v6), f->tailnet_key.dst_port, datagram_payload);
  std::vector<bytes> pieces;
  for (std::uint32_t id = 0; id < 64; ++id)
    for (bytes& p : two_fragments(reply, 1232, id)) pieces.push_back(std::move(p));
  sender s{g.peer_key, 8, g.peer_ep, std::move(pieces), &g.peer_counter, 2};
  run(state, w, g, s, datagram_payload);
}

void BM_WholeOut(benchmark::State& state) {
  rig& g = the_rig();
  flow_table table{1u << 12, g.rcu};
  worker w(setup_for(g, table));
  sender s = from_device(g, {udp_packet(false, device_address(false), 5555, peer_address(false), 9000, 1252)});
  run(state, w, g, s, 1252);
}

BENCHMARK(BM_FragmentOut);
BENCHMARK(BM_ReassembleThenFragment)->ArgName("ip")->Arg(4)->Arg(6);
BENCHMARK(BM_ReassembleIn)->ArgName("ip")->Arg(4)->Arg(6);
BENCHMARK(BM_WholeOut);

}  // namespace

int main(int argc, char** argv) { return lopower::bench::run_benchmarks(argc, argv, "fragment_bench", 1024); }
