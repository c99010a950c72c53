// A worker NATing to the internet on net_ring ports (stage_uplink.cc), per
// core, to set beside splice_bench's tailnet splice:
//   device -> uplink  a device's UDP datagrams to an internet address are
//                     decrypted in one call, found in the flow table, NATed
//                     (source rewritten to the uplink address and the
//                     flow's port, checksums updated, TTL decremented), given
//                     an Ethernet header for the gateway and transmitted on
//                     the uplink port: one decryption per packet;
//   uplink -> device  the server's answers on the flow arrive in the clear on
//                     the uplink, are found by their tuple, NATed back and
//                     sealed for the device: one encryption per packet.
// One frame in, one frame out; frames are rewritten outside the timed region
// (bench/worker_drive.h). Each run measures its cipher bound in step with it (the backend
// alone opening and sealing packets of that size: twice the work the NAT
// does per packet, so the NAT may pass 100 %) and reports the share of it
// the path reaches, as splice_bench does.

#include <benchmark/benchmark.h>
#include <rte_ether.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <sodium.h>

#include <cstring>
#include <stdexcept>
#include <vector>

#include "bench/bench_main.h"
#include "bench/cipher_bound.h"
#include "bench/worker_drive.h"
#include "control/clock.h"
#include "dataplane/inner_packet.h"
#include "dataplane/neighbour_table.h"
#include "dataplane/worker.h"
#include "lopower/byte_order.h"
#include "tests/support/splice_rig.h"

namespace {

using namespace lopower;

constexpr unsigned frames = 4096;
constexpr unsigned refill_every = frames / 32;
constexpr std::uint16_t device_port = 5555, server_port = 9000;
constexpr std::uint8_t gateway_mac[6] = {0x02, 0xaa, 0, 0, 0, 1};
constexpr std::uint8_t uplink_mac[6] = {0x02, 0xbb, 0, 0, 0, 2};

rte_mempool* pool() {
  static rte_mempool* p = rte_pktmbuf_pool_create("uplink_pool", 16383, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
  return p;
}

ip_address uplink_address() { return *ip_address::parse("192.0.2.2"); }
ip_address server() { return *ip_address::parse("203.0.113.80"); }
ip_address device_address() { return *ip_address::parse(test_support::device_address(false)); }

// The splice rig's device port, and an uplink port whose gateway's MAC is known.
struct uplink_rig {
  test_support::splice_rig g{"ub", pool()};
  rte_ring* rx = test_support::make_ring("ub_urx");
  rte_ring* tx = test_support::make_ring("ub_utx");
  std::uint16_t port = test_support::ring_port("net_ring_ubu", rx, tx, pool());
  port_identity identity;
  neighbour_table neighbours{64};

  uplink_rig() {
    identity.add_address(uplink_address());
    identity.uplink = true;
    identity.nat_first_port = 20000;
    identity.nat_last_port = 29999;
    neighbour_note note;
    note.port = port;
    note.op = neighbour_op::answers;
    std::memcpy(note.mac, gateway_mac, 6);
    std::memcpy(note.ip, ip_address::parse("192.0.2.1")->bytes.data(), 4);
    neighbours.learn(note, monotonic_ms());
  }

  worker_setup setup(flow_table& table, const char* backend) {
    worker_setup s = g.setup(table, backend);
    s.max_flows_per_device = table.capacity();
    s.ports.push_back(worker_port{1, port, no_port, &identity});
    port_config up;
    up.name = "up";
    up.role = port_role::uplink;
    up.addresses = {*ip_prefix::parse("192.0.2.2/24")};
    up.gateway4 = *ip_address::parse("192.0.2.1");
    s.uplink = up;
    std::memcpy(s.uplink_mac.addr_bytes, uplink_mac, 6);
    s.neighbour_macs = &neighbours;
    return s;
  }
};

uplink_rig& the_rig() {
  static uplink_rig r;
  return r;
}

// The device's datagram to the server, sealed as the device seals it.
void seal_out(uplink_rig& r, rte_mbuf* m, std::uint16_t inner, const std::vector<std::uint8_t>& payload) {
  test_support::seal_frame(
      m, inner, [&](std::uint8_t* ip) { write_udp_packet(ip, device_address(), device_port, server(), server_port, payload); },
      r.g.device_key, r.g.device_counter++, test_support::splice_rig::device_index, r.g.device_ep);
}

// The server's answer to the flow's NAT port, as the gateway delivers it.
void answer_in(rte_mbuf* m, std::uint16_t inner, std::uint16_t nat_port, const std::vector<std::uint8_t>& payload) {
  rte_pktmbuf_reset(m);
  auto* f = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(m, static_cast<std::uint16_t>(14 + inner)));
  if (f == nullptr) throw std::runtime_error("no room for an answer");
  std::memcpy(f, uplink_mac, 6);
  std::memcpy(f + 6, gateway_mac, 6);
  store_be16(f + 12, RTE_ETHER_TYPE_IPV4);
  write_udp_packet(f + 14, server(), server_port, uplink_address(), nat_port, payload);
}

enum class direction { device_to_uplink, uplink_to_device };

void uplink_run(benchmark::State& state, const char* backend, direction dir) {
  uplink_rig& r = the_rig();
  const auto inner = static_cast<std::uint16_t>(state.range(0));
  const std::vector<std::uint8_t> payload(inner - 28u, 0x5a);
  flow_table table{1u << 16, r.g.rcu};
  r.g.device.flows.store(0);
  r.g.device.egress.store(egress_mode::uplink);  // as [egress] mode defaults to on a box with an uplink
  worker w(r.setup(table, backend));
  bench::bound_in_step bound(backend, bench::sealed_length(inner));
  std::uint64_t moved = 0;
  double timed_seconds = 0;
  bench::scatter_pool(pool());  // frames as a gateway's lie after hours (worker_drive.h)
  if (dir == direction::device_to_uplink) {
    const test_support::seal_fn seal = [&](rte_mbuf* m) { seal_out(r, m, inner, payload); };
    test_support::fill(pool(), r.g.rx, frames, seal);
    moved = bench::drive(state, w, r.g.rx, r.tx, r.g.events, refill_every, seal, &timed_seconds, {&bound});
  } else {
    // The device opens the flow; its NAT port is where the answers go.
    test_support::fill(pool(), r.g.rx, 1, [&](rte_mbuf* m) { seal_out(r, m, inner, payload); });
    while (rte_ring_count(r.g.rx) != 0) w.poll_once();
    w.flush();
    test_support::drain({r.tx});
    const flow* f = table.find(splice::make_flow_key(ip_family::v4, 17, device_address().bytes.data(), device_port,
                                                     server().bytes.data(), server_port));
    if (f == nullptr) throw std::runtime_error("the device's first datagram made no flow");
    const std::uint16_t nat_port = f->tailnet_key.dst_port;
    const test_support::seal_fn answer = [&](rte_mbuf* m) { answer_in(m, inner, nat_port, payload); };
    test_support::fill(pool(), r.rx, frames, answer);
    moved = bench::drive(state, w, r.rx, r.g.tx, r.g.events, refill_every, answer, &timed_seconds, {&bound});
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(moved));
  state.SetBytesProcessed(static_cast<std::int64_t>(moved) * inner);
  bench::report_in_step(state, moved, timed_seconds, bound);
  std::uint64_t dropped = 0;
  for (unsigned port = 0; port < 2; ++port)
    for (unsigned reason = 0; reason < drop_reason_count; ++reason) dropped += w.stats().ports[port].drops[reason].get();
  state.counters["dropped"] = static_cast<double>(dropped);
  state.counters["flows"] = static_cast<double>(table.size());
  test_support::drain({r.g.rx, r.g.tx, r.rx, r.tx});
}

void BM_UplinkDeviceToInternet_ipsec_mb(benchmark::State& state) { uplink_run(state, "ipsec-mb", direction::device_to_uplink); }
void BM_UplinkInternetToDevice_ipsec_mb(benchmark::State& state) { uplink_run(state, "ipsec-mb", direction::uplink_to_device); }
BENCHMARK(BM_UplinkDeviceToInternet_ipsec_mb)->ArgNames({"inner"})->Arg(64)->Arg(512)->Arg(1280);
BENCHMARK(BM_UplinkInternetToDevice_ipsec_mb)->ArgNames({"inner"})->Arg(64)->Arg(512)->Arg(1280);

}  // namespace

int main(int argc, char** argv) { return lopower::bench::run_benchmarks(argc, argv, "uplink_bench", 2048); }
