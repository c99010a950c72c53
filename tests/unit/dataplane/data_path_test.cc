// The data path in memory: one real worker on a net_ring port (EAL without
// hugepages or PCI), a device and a tailnet peer with sessions up
// (tests/support/splice_rig.h). Frames go in on the port's RX ring sealed
// as the peers seal them, and what comes out of its TX ring is read back
// byte by byte: the outer headers, the WireGuard header, and the inner
// packet after opening it with the receiving peer's key; checksums are
// checked with the tests' own RFC 1071 code (tests/unit/splice/packets.h).

#include <gtest/gtest.h>
#include <rte_cycles.h>
#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>
#include <sodium.h>
#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "control/wireguard/engine/cookie.h"
#include "control/wireguard/engine/noise_handshake.h"
#include "dataplane/flow_table.h"
#include "lopower/byte_order.h"
#include "dataplane/worker.h"
#include "tests/support/eal.h"
#include "tests/support/splice_rig.h"
#include "tests/unit/frame_builder.h"
#include "tests/unit/splice/packets.h"

namespace lopower {
namespace {

using splice::test::bytes;
using splice::test::ip_packet;
using splice::test::udp_datagram;
using test_support::sent_frame;
using test_support::splice_rig;

rte_mempool* pool() {
  static rte_mempool* p = [] {
    if (!test_support::start_eal("dataplane_tests", 256) || sodium_init() < 0) return static_cast<rte_mempool*>(nullptr);
    // No per-lcore cache: rte_mempool_in_use_count is exact.
    return rte_pktmbuf_pool_create("dp_test_pool", 4095, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
  }();
  return p;
}


bytes address(bool v6, const char* text) {
  const ip_address a = *ip_address::parse(text);
  return bytes(a.bytes.begin(), a.bytes.begin() + (v6 ? 16 : 4));
}

// A rig, its flow table and a worker on it; `name` keeps rings apart.
struct data_path {
  splice_rig rig;
  flow_table flows;
  std::unique_ptr<worker> w;

  explicit data_path(const std::string& name, const std::function<void(worker_setup&)>& adjust = {})
      : rig(name, pool()), flows(1u << 10, rig.rcu) {
    worker_setup s = rig.setup(flows, "libsodium");
    s.reassembly_datagrams = 16;
    s.reassembly_per_device = 4;
    s.reassembly_per_tailnet_peer = 4;
    if (adjust) adjust(s);
    w = std::make_unique<worker>(std::move(s));
  }
  ~data_path() { w.reset(); }

  void receive(const std::vector<rte_mbuf*>& frames) {
    for (rte_mbuf* m : frames) ASSERT_EQ(rte_ring_sp_enqueue(rig.rx, m), 0);
    for (int i = 0; i < 4; ++i) w->poll_once();
    w->flush();
  }
  rte_mbuf* from_device(const bytes& packet) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool());
    rig.seal_from_device(m, packet);
    return m;
  }
  rte_mbuf* from_peer(const bytes& packet) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool());
    rig.seal_from_peer(m, packet);
    return m;
  }
  std::uint64_t drops(drop_reason why) const { return w->stats().ports[0].drops[static_cast<unsigned>(why)].get(); }
  std::uint64_t all_drops() const {
    std::uint64_t n = 0;
    for (unsigned r = 0; r < drop_reason_count; ++r) n += w->stats().ports[0].drops[r].get();
    return n;
  }
};

// The outer headers of a frame lopower sent to `to` (as lopower sees it).
void expect_outer(const sent_frame& f, const wg_endpoint& to, std::uint32_t receiver, std::uint64_t counter) {
  EXPECT_FALSE(f.ipv6);
  EXPECT_EQ(load_be16(&f.bytes[12]), 0x0800);
  EXPECT_EQ(0, std::memcmp(f.src_ip, to.local_ip, 4)) << "from lopower's address on the port";
  EXPECT_EQ(0, std::memcmp(f.dst_ip, to.peer_ip, 4));
  EXPECT_EQ(f.src_port, ntohs(to.local_port_be));
  EXPECT_EQ(f.dst_port, ntohs(to.peer_port_be));
  // IPv4: total length, header checksum (RFC 1071), UDP length.
  EXPECT_EQ(load_be16(&f.bytes[16]), f.bytes.size() - 14);
  EXPECT_EQ(splice::test::reference_sum(&f.bytes[14], 20), 0xffff) << "outer IPv4 header checksum";
  EXPECT_EQ(f.udp_length, f.bytes.size() - 14 - 20);
  // WireGuard transport: type 4, the peer's receiver index, our counter,
  // and the payload padded to 16 bytes plus the tag.
  EXPECT_EQ(f.type, 4);
  EXPECT_EQ(f.receiver, receiver);
  EXPECT_EQ(f.counter, counter);
  EXPECT_EQ((f.bytes.size() - f.message_offset - 32) % 16, 0u);
}

// The inner packet out of `f`, opened with `key`, its padding cut.
bytes inner_of(const sent_frame& f, const std::uint8_t* key) {
  auto plain = f.open(key);
  if (!plain) {
    ADD_FAILURE() << "the frame does not open with the peer's key";
    return {};
  }
  const std::size_t length = (((*plain)[0] >> 4) == 6) ? 40u + load_be16(&(*plain)[4]) : load_be16(&(*plain)[2]);
  EXPECT_LE(length, plain->size());
  EXPECT_LT(plain->size() - length, 16u) << "padding beyond the next multiple of 16";
  plain->resize(std::min(length, plain->size()));
  return *plain;
}

class spliced : public ::testing::TestWithParam<bool> {};

// A device's UDP datagram to a tailnet peer: decrypted, spliced (source
// rewritten to lopower's tailnet address and a port of the flow's),
// encrypted for the peer and sent to its endpoint; the peer's reply comes
// back the same way to the device.
TEST_P(spliced, device_datagram_reaches_the_peer_and_the_reply_comes_back) {
  ASSERT_NE(pool(), nullptr);
  const bool v6 = GetParam();
  const unsigned in_use_before = rte_mempool_in_use_count(pool());
  {
    data_path d(v6 ? "dp6" : "dp4");
    const bytes sent = ip_packet(v6, 17, test_support::device_address(v6), test_support::peer_address(v6),
                                 udp_datagram(5555, 9000, 100));
    d.receive({d.from_device(sent)});
    auto out = test_support::take_sent(d.rig.tx);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(d.all_drops(), 0u);
    expect_outer(out[0], d.rig.peer_ep, splice_rig::peer_index + 100, 0);
    const bytes inner = inner_of(out[0], d.rig.peer_open_key);
    ASSERT_EQ(inner.size(), sent.size());
    const std::size_t l4 = v6 ? 40 : 20, a = v6 ? 16 : 4;
    // Source: lopower's tailnet address and the flow's port; destination untouched.
    EXPECT_EQ(bytes(inner.begin() + (v6 ? 8 : 12), inner.begin() + (v6 ? 8 : 12) + static_cast<long>(a)),
              address(v6, test_support::our_tailnet_address(v6)));
    EXPECT_EQ(bytes(inner.begin() + (v6 ? 24 : 16), inner.begin() + (v6 ? 24 : 16) + static_cast<long>(a)),
              address(v6, test_support::peer_address(v6)));
    const std::uint16_t flow_port = load_be16(&inner[l4]);
    EXPECT_NE(flow_port, 0);
    EXPECT_EQ(load_be16(&inner[l4 + 2]), 9000);
    EXPECT_TRUE(std::equal(inner.begin() + static_cast<long>(l4 + 8), inner.end(), sent.begin() + static_cast<long>(l4 + 8)))
        << "the payload changed";
    EXPECT_TRUE(splice::test::ip_checksum_ok(inner));
    EXPECT_TRUE(splice::test::l4_checksum_ok(inner));
    // Counters: one packet each way through the peers, one flow.
    EXPECT_EQ(d.rig.device.rx_packets.load(), 1u);
    EXPECT_EQ(d.rig.ts_peer.tx_packets.load(), 1u);
    EXPECT_EQ(d.rig.ts_peer.rx_packets.load(), 0u);
    EXPECT_EQ(d.flows.size(), 1u);
    EXPECT_NE(d.rig.ts_peer.last_tx_tsc.load(), 0u);

    // The peer answers the flow's port: back to the device, from the peer's address.
    const bytes reply = ip_packet(v6, 17, test_support::peer_address(v6), test_support::our_tailnet_address(v6),
                                  udp_datagram(9000, flow_port, 300));
    d.receive({d.from_peer(reply)});
    out = test_support::take_sent(d.rig.tx);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(d.all_drops(), 0u);
    expect_outer(out[0], d.rig.device_ep, splice_rig::device_index + 100, 0);
    const bytes back = inner_of(out[0], d.rig.device_open_key);
    ASSERT_EQ(back.size(), reply.size());
    EXPECT_EQ(bytes(back.begin() + (v6 ? 8 : 12), back.begin() + (v6 ? 8 : 12) + static_cast<long>(a)),
              address(v6, test_support::peer_address(v6)));
    EXPECT_EQ(bytes(back.begin() + (v6 ? 24 : 16), back.begin() + (v6 ? 24 : 16) + static_cast<long>(a)),
              address(v6, test_support::device_address(v6)));
    EXPECT_EQ(load_be16(&back[l4]), 9000);
    EXPECT_EQ(load_be16(&back[l4 + 2]), 5555) << "back to the device's own port";
    EXPECT_TRUE(std::equal(back.begin() + static_cast<long>(l4 + 8), back.end(), reply.begin() + static_cast<long>(l4 + 8)));
    EXPECT_TRUE(splice::test::ip_checksum_ok(back));
    EXPECT_TRUE(splice::test::l4_checksum_ok(back));
    EXPECT_EQ(d.rig.ts_peer.rx_packets.load(), 1u);
    EXPECT_EQ(d.rig.device.tx_packets.load(), 1u);
    EXPECT_EQ(d.flows.size(), 1u) << "the reply used the device's flow";

    // A second datagram on the same flow: same port, the next counter.
    d.receive({d.from_device(sent)});
    out = test_support::take_sent(d.rig.tx);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].counter, 1u);
    EXPECT_EQ(load_be16(&inner_of(out[0], d.rig.peer_open_key)[l4]), flow_port);
  }
  EXPECT_EQ(rte_mempool_in_use_count(pool()), in_use_before) << "an mbuf was not given back";
}

INSTANTIATE_TEST_SUITE_P(families, spliced, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& i) { return std::string(i.param ? "ipv6" : "ipv4"); });

// --- egress: destinations beyond the tailnet --------------------------------

const char* internet_address(bool v6) { return v6 ? "2001:db8::80" : "203.0.113.80"; }

// The rig's tailnet peer as the chosen exit node: its default routes in its
// AllowedIPs (replies come from anywhere) and in the view's exit_node.
void make_peer_the_exit_node(splice_rig& rig) {
  delete rig.ts_peer.allowed.exchange(new allowed_prefixes{{*ip_prefix::parse("100.64.0.5/32"),
                                                            *ip_prefix::parse("fd7a:115c:a1e0::5/128"),
                                                            *ip_prefix::parse("0.0.0.0/0"), *ip_prefix::parse("::/0")}});
  auto* v = new tailnet_view(*rig.view.load());
  v->exit_node = &rig.ts_peer;
  delete rig.view.exchange(v);
}

// The one frame lopower sent back to the device: an ICMP error of `type`
// and `code` from lopower's device-side address, quoting what was sent.
void expect_icmp_error_to_device(data_path& d, bool v6, std::uint8_t type, std::uint8_t code) {
  auto out = test_support::take_sent(d.rig.tx);
  ASSERT_EQ(out.size(), 1u);
  expect_outer(out[0], d.rig.device_ep, splice_rig::device_index + 100, 0);
  const bytes err = inner_of(out[0], d.rig.device_open_key);
  ASSERT_GT(err.size(), v6 ? 48u : 28u);
  EXPECT_EQ(splice::test::protocol(err), v6 ? 58 : 1);
  EXPECT_EQ(bytes(err.begin() + static_cast<long>(splice::test::src_at(err)),
                  err.begin() + static_cast<long>(splice::test::src_at(err) + splice::test::address_size(err))),
            address(v6, test_support::our_device_address(v6)));
  const std::size_t l4 = splice::test::l4_at(err);
  EXPECT_EQ(err[l4], type);
  EXPECT_EQ(err[l4 + 1], code);
  EXPECT_TRUE(splice::test::l4_checksum_ok(err));
}

// Flows come from the table's pool: with every one taken (erased flows
// waiting out their grace period, say), a new flow's packet is dropped and
// counted as such, and once flows come back the next one opens.
TEST(data_path, new_flow_with_the_flow_pool_exhausted_is_dropped_and_counted) {
  ASSERT_NE(pool(), nullptr);
  data_path d("fpool");
  std::vector<flow*> taken;
  for (flow* f; (f = d.flows.allocate()) != nullptr;) taken.push_back(f);
  ASSERT_GE(taken.size(), d.flows.capacity());
  const bytes sent = ip_packet(false, 17, test_support::device_address(false), test_support::peer_address(false),
                               udp_datagram(5555, 9000, 100));
  d.receive({d.from_device(sent)});
  EXPECT_TRUE(test_support::take_sent(d.rig.tx).empty());
  EXPECT_EQ(d.drops(drop_reason::splice_flow_pool_empty), 1u);
  EXPECT_EQ(d.all_drops(), 1u);
  EXPECT_EQ(d.flows.size(), 0u);

  for (flow* f : taken) d.flows.discard(f);
  d.receive({d.from_device(sent)});
  EXPECT_EQ(test_support::take_sent(d.rig.tx).size(), 1u);
  EXPECT_EQ(d.all_drops(), 1u);
  EXPECT_EQ(d.flows.size(), 1u);
}

// A worker's ports toward one destination (address, port, protocol) run
// out before its flows do: with a slice of two ports (as many workers as
// that leaves), the third flow to the same peer service is refused and
// counted as exhausted ports, not as a flow limit; another destination
// still gets ports.
TEST(data_path, a_new_flow_with_every_port_to_its_destination_in_use_is_dropped_as_ports_exhausted) {
  ASSERT_NE(pool(), nullptr);
  data_path d("pexh", [](worker_setup& s) { s.worker_count = (65535 - 1024 + 1) / 2; });  // ports 1024 and 1025
  const auto datagram = [](std::uint16_t src_port, std::uint16_t dst_port) {
    return ip_packet(false, 17, test_support::device_address(false), test_support::peer_address(false),
                     udp_datagram(src_port, dst_port, 100));
  };
  d.receive({d.from_device(datagram(5001, 9000)), d.from_device(datagram(5002, 9000)),
             d.from_device(datagram(5003, 9000))});
  EXPECT_EQ(test_support::take_sent(d.rig.tx).size(), 2u);
  EXPECT_EQ(d.drops(drop_reason::splice_ports_exhausted), 1u);
  EXPECT_EQ(d.all_drops(), 1u);
  EXPECT_EQ(d.flows.size(), 2u);

  d.receive({d.from_device(datagram(5003, 9001))});  // another service of the peer
  EXPECT_EQ(test_support::take_sent(d.rig.tx).size(), 1u);
  EXPECT_EQ(d.all_drops(), 1u);
  EXPECT_EQ(d.flows.size(), 3u);
}

class egress : public ::testing::TestWithParam<bool> {};

// An "exit" device's datagram to the internet goes to the exit node like a
// tailnet flow (from lopower's tailnet address and a port of the flow's),
// and the exit node's reply, from the internet address, comes back.
TEST_P(egress, exit_device_reaches_the_internet_through_the_exit_node_and_back) {
  ASSERT_NE(pool(), nullptr);
  const bool v6 = GetParam();
  data_path d(v6 ? "eg6x" : "eg4x");
  make_peer_the_exit_node(d.rig);
  d.rig.device.egress.store(egress_mode::exit);
  const bytes sent = ip_packet(v6, 17, test_support::device_address(v6), internet_address(v6), udp_datagram(5555, 80, 64));
  d.receive({d.from_device(sent)});
  auto out = test_support::take_sent(d.rig.tx);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(d.all_drops(), 0u);
  expect_outer(out[0], d.rig.peer_ep, splice_rig::peer_index + 100, 0);
  const bytes inner = inner_of(out[0], d.rig.peer_open_key);
  const std::size_t a = v6 ? 16 : 4, src = v6 ? 8 : 12, dst = v6 ? 24 : 16, l4 = v6 ? 40 : 20;
  ASSERT_EQ(inner.size(), sent.size());
  EXPECT_EQ(bytes(inner.begin() + src, inner.begin() + static_cast<long>(src + a)),
            address(v6, test_support::our_tailnet_address(v6)));
  EXPECT_EQ(bytes(inner.begin() + dst, inner.begin() + static_cast<long>(dst + a)), address(v6, internet_address(v6)));
  EXPECT_EQ(d.flows.size(), 1u);
  const std::uint16_t flow_port = load_be16(&inner[l4]);

  const bytes reply = ip_packet(v6, 17, internet_address(v6), test_support::our_tailnet_address(v6),
                                udp_datagram(80, flow_port, 100));
  d.receive({d.from_peer(reply)});
  out = test_support::take_sent(d.rig.tx);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(d.all_drops(), 0u);
  expect_outer(out[0], d.rig.device_ep, splice_rig::device_index + 100, 0);
  const bytes back = inner_of(out[0], d.rig.device_open_key);
  EXPECT_EQ(bytes(back.begin() + src, back.begin() + static_cast<long>(src + a)), address(v6, internet_address(v6)));
  EXPECT_EQ(bytes(back.begin() + dst, back.begin() + static_cast<long>(dst + a)),
            address(v6, test_support::device_address(v6)));
  EXPECT_EQ(load_be16(&back[l4 + 2]), 5555);
}

// A device whose egress is "none" (the default) is refused at once with an
// ICMP "administratively prohibited", counted, even with an exit node there.
TEST_P(egress, none_device_gets_admin_prohibited_and_it_is_counted) {
  ASSERT_NE(pool(), nullptr);
  const bool v6 = GetParam();
  data_path d(v6 ? "eg6n" : "eg4n");
  make_peer_the_exit_node(d.rig);
  d.receive({d.from_device(ip_packet(v6, 17, test_support::device_address(v6), internet_address(v6),
                                     udp_datagram(5555, 80, 64)))});
  expect_icmp_error_to_device(d, v6, v6 ? 1 : 3, v6 ? 1 : 13);
  EXPECT_EQ(d.drops(drop_reason::egress_refused), 1u);
  EXPECT_EQ(d.all_drops(), 1u);
  EXPECT_EQ(d.flows.size(), 0u);
  EXPECT_EQ(d.rig.ts_peer.tx_packets.load(), 0u) << "nothing went to the exit node";
}

// The ICMP error takes the refused packet's own mbuf (stage_splice.cc,
// refuse_to_device): it is still sent with the pool empty, and no mbuf is
// lost on the way.
TEST(egress_refused, the_icmp_error_is_sent_with_the_pool_empty_and_every_mbuf_comes_back) {
  ASSERT_NE(pool(), nullptr);
  data_path d("egdry");
  make_peer_the_exit_node(d.rig);
  const unsigned in_use_before = rte_mempool_in_use_count(pool());
  rte_mbuf* frame = d.from_device(ip_packet(false, 17, test_support::device_address(false), internet_address(false),
                                            udp_datagram(5555, 80, 64)));
  std::vector<rte_mbuf*> held;
  while (rte_mbuf* m = rte_pktmbuf_alloc(pool())) held.push_back(m);
  d.receive({frame});
  expect_icmp_error_to_device(d, false, 3, 13);
  EXPECT_EQ(d.drops(drop_reason::egress_refused), 1u);
  for (rte_mbuf* m : held) rte_pktmbuf_free(m);
  EXPECT_EQ(rte_mempool_in_use_count(pool()), in_use_before) << "an mbuf was not given back";
}

// "exit" with no exit node available: host unreachable at once, counted.
TEST_P(egress, exit_device_without_an_exit_node_gets_host_unreachable_and_it_is_counted) {
  ASSERT_NE(pool(), nullptr);
  const bool v6 = GetParam();
  data_path d(v6 ? "eg6u" : "eg4u");
  d.rig.device.egress.store(egress_mode::exit);
  d.receive({d.from_device(ip_packet(v6, 17, test_support::device_address(v6), internet_address(v6),
                                     udp_datagram(5555, 80, 64)))});
  expect_icmp_error_to_device(d, v6, v6 ? 1 : 3, v6 ? 3 : 1);
  EXPECT_EQ(d.drops(drop_reason::egress_no_exit_node), 1u);
  EXPECT_EQ(d.all_drops(), 1u);
  EXPECT_EQ(d.flows.size(), 0u);
}

// "uplink" while lopower has none: unreachable, under its own name.
TEST_P(egress, uplink_device_without_an_uplink_gets_host_unreachable_and_it_is_counted) {
  ASSERT_NE(pool(), nullptr);
  const bool v6 = GetParam();
  data_path d(v6 ? "eg6l" : "eg4l");
  make_peer_the_exit_node(d.rig);
  d.rig.device.egress.store(egress_mode::uplink);
  d.receive({d.from_device(ip_packet(v6, 17, test_support::device_address(v6), internet_address(v6),
                                     udp_datagram(5555, 80, 64)))});
  expect_icmp_error_to_device(d, v6, v6 ? 1 : 3, v6 ? 3 : 1);
  EXPECT_EQ(d.drops(drop_reason::egress_no_uplink), 1u);
  EXPECT_EQ(d.rig.ts_peer.tx_packets.load(), 0u);
}

// Tailnet routes are every device's, whatever its egress; an address in the
// tailnet's ranges that no peer has stays "no route", never egress.
TEST_P(egress, tailnet_routes_are_unaffected_by_egress) {
  ASSERT_NE(pool(), nullptr);
  const bool v6 = GetParam();
  for (const egress_mode mode : {egress_mode::none, egress_mode::exit, egress_mode::uplink}) {
    SCOPED_TRACE(name_of(mode));
    data_path d(std::string(v6 ? "eg6t" : "eg4t") + name_of(mode)[0]);
    make_peer_the_exit_node(d.rig);
    d.rig.device.egress.store(mode);
    d.receive({d.from_device(ip_packet(v6, 17, test_support::device_address(v6), test_support::peer_address(v6),
                                       udp_datagram(5555, 9000, 64)))});
    auto out = test_support::take_sent(d.rig.tx);
    ASSERT_EQ(out.size(), 1u);
    expect_outer(out[0], d.rig.peer_ep, splice_rig::peer_index + 100, 0);
    EXPECT_EQ(d.all_drops(), 0u);
    d.receive({d.from_device(ip_packet(v6, 17, test_support::device_address(v6), v6 ? "fd7a:115c:a1e0::fa" : "100.64.0.250",
                                       udp_datagram(5555, 9000, 64)))});
    expect_icmp_error_to_device(d, v6, v6 ? 1 : 3, v6 ? 3 : 1);
    EXPECT_EQ(d.drops(drop_reason::splice_no_route), 1u);
    EXPECT_EQ(d.all_drops(), 1u);
  }
}

INSTANTIATE_TEST_SUITE_P(families, egress, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& i) { return std::string(i.param ? "ipv6" : "ipv4"); });

// The worker remembers the route its last device packet took (worker.h,
// route_memo): in one burst, packets to another destination still get
// theirs; and a view put in place of the old one is what the next pass
// routes by, even at the old one's address (its memory freed after a grace
// period and allocated again), where the remembered route would name a
// peer the new view may no longer hold.
TEST(data_path, each_packet_is_routed_by_its_destination_and_the_view_of_its_pass) {
  ASSERT_NE(pool(), nullptr);
  data_path d("rmemo");
  const auto to = [&d](const char* dst) {
    return d.from_device(ip_packet(false, 17, test_support::device_address(false), dst, udp_datagram(5555, 9000, 64)));
  };
  const auto to_peer = [&d](const std::vector<sent_frame>& out) {
    return std::count_if(out.begin(), out.end(),
                         [&d](const sent_frame& f) { return f.dst_port == ntohs(d.rig.peer_ep.peer_port_be); });
  };
  const char* unrouted = "100.64.0.250";
  d.receive({to(unrouted), to(test_support::peer_address(false)), to(unrouted), to(test_support::peer_address(false))});
  auto out = test_support::take_sent(d.rig.tx);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(to_peer(out), 2);
  EXPECT_EQ(d.drops(drop_reason::splice_no_route), 2u);
  EXPECT_EQ(d.all_drops(), 2u);

  // The view rebuilt in the old one's memory, without the peer's routes.
  auto* storage = const_cast<tailnet_view*>(d.rig.view.load());
  tailnet_view without_routes = *storage;
  without_routes.routes = {};
  storage->~tailnet_view();
  new (storage) tailnet_view(std::move(without_routes));
  d.receive({to(test_support::peer_address(false))});
  out = test_support::take_sent(d.rig.tx);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(to_peer(out), 0) << "routed by the view of an earlier pass";
  EXPECT_EQ(d.drops(drop_reason::splice_no_route), 3u);
}

// A peer reached through DERP: what lopower sends it is sealed on the
// worker as always, then handed up without outer headers (the relay frames
// it); what the relay brings is decrypted and delivered like any frame,
// without moving the peer off the path it has.
TEST(data_path, relayed_peer_gets_sealed_messages_handed_up_and_relayed_data_delivered) {
  ASSERT_NE(pool(), nullptr);
  const unsigned in_use_before = rte_mempool_in_use_count(pool());
  {
    data_path d("dprl");
    wg_endpoint relay;
    relay.port_id = d.rig.port;
    relay.relay_region = 999;
    delete d.rig.ts_peer.endpoint.exchange(new wg_endpoint(relay));
    const bytes sent = ip_packet(false, 17, "10.90.0.2", "100.64.0.5", udp_datagram(5555, 9000, 64));
    d.receive({d.from_device(sent)});
    EXPECT_TRUE(test_support::take_sent(d.rig.tx).empty()) << "nothing leaves on the port for a relayed peer";
    EXPECT_EQ(d.all_drops(), 0u);
    relay_packet rp;
    ASSERT_EQ(rte_ring_sc_dequeue_elem(d.rig.relay_out, &rp, sizeof rp), 0) << "handed up for the relay";
    EXPECT_EQ(rp.peer_id, d.rig.ts_peer.id);
    EXPECT_EQ(rp.region, 999);
    // The WireGuard message from its first byte, as the relay carries it.
    test_support::sent_frame msg;
    msg.bytes.assign(rte_pktmbuf_mtod(rp.mbuf, const std::uint8_t*), rte_pktmbuf_mtod(rp.mbuf, const std::uint8_t*) + rp.mbuf->data_len);
    rte_pktmbuf_free(rp.mbuf);
    ASSERT_GE(msg.bytes.size(), 32u);
    msg.type = msg.bytes[0];
    std::memcpy(&msg.receiver, &msg.bytes[4], 4);
    std::memcpy(&msg.counter, &msg.bytes[8], 8);
    EXPECT_EQ(msg.type, 4);
    EXPECT_EQ(msg.receiver, splice_rig::peer_index + 100);
    const bytes inner = inner_of(msg, d.rig.peer_open_key);
    ASSERT_EQ(inner.size(), sent.size());
    const std::uint16_t flow_port = load_be16(&inner[20]);

    // The peer's answer through the relay: the message alone, region in hash.usr.
    const bytes reply = ip_packet(false, 17, "100.64.0.5", test_support::our_tailnet_address(false),
                                  udp_datagram(9000, flow_port, 200));
    rte_mbuf* m = d.from_peer(reply);
    rte_pktmbuf_adj(m, static_cast<std::uint16_t>(outer_header_size(false)));
    m->hash.usr = 999;
    ASSERT_EQ(rte_ring_sp_enqueue(d.rig.relay_in, m), 0);
    d.receive({});
    auto out = test_support::take_sent(d.rig.tx);
    ASSERT_EQ(out.size(), 1u) << "delivered to the device";
    EXPECT_EQ(d.all_drops(), 0u);
    EXPECT_EQ(inner_of(out[0], d.rig.device_open_key).size(), reply.size());
    EXPECT_EQ(d.rig.ts_peer.rx_packets.load(), 1u);
    wg_event ev;
    EXPECT_NE(rte_ring_sc_dequeue_elem(d.rig.events, &ev, sizeof ev), 0) << "already on that relay: nothing to tell";

    // On a direct path, data that came through a relay does not move it there.
    delete d.rig.ts_peer.endpoint.exchange(new wg_endpoint(d.rig.peer_ep));
    m = d.from_peer(reply);
    rte_pktmbuf_adj(m, static_cast<std::uint16_t>(outer_header_size(false)));
    m->hash.usr = 999;
    ASSERT_EQ(rte_ring_sp_enqueue(d.rig.relay_in, m), 0);
    d.receive({});
    EXPECT_EQ(test_support::take_sent(d.rig.tx).size(), 1u);
    EXPECT_NE(rte_ring_sc_dequeue_elem(d.rig.events, &ev, sizeof ev), 0) << "no roaming onto the relay";
    // A direct frame on a relayed peer does move it (the path upgrade).
    delete d.rig.ts_peer.endpoint.exchange(new wg_endpoint(relay));
    d.receive({d.from_peer(reply)});
    EXPECT_EQ(test_support::take_sent(d.rig.tx).size(), 1u);
    ASSERT_EQ(rte_ring_sc_dequeue_elem(d.rig.events, &ev, sizeof ev), 0);
    EXPECT_EQ(ev.kind, wg_event::endpoint_changed);
    EXPECT_EQ(ev.endpoint.relay_region, 0);
    EXPECT_TRUE(ev.endpoint.same_path(d.rig.peer_ep));
  }
  EXPECT_EQ(rte_mempool_in_use_count(pool()), in_use_before) << "an mbuf was not given back";
}

// A relayed "message" shorter than a transport header and its tag is never
// decrypted (its length would underflow): dropped as wg_malformed.
TEST(data_path, relayed_message_too_short_for_a_tag_is_dropped_as_wg_malformed) {
  ASSERT_NE(pool(), nullptr);
  const unsigned in_use_before = rte_mempool_in_use_count(pool());
  {
    data_path d("dprs");
    rte_mbuf* m = rte_pktmbuf_alloc(pool());
    ASSERT_NE(m, nullptr);
    auto* p = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(m, 20));
    ASSERT_NE(p, nullptr);
    std::memset(p, 0, 20);
    p[0] = 4;
    const std::uint32_t receiver = splice_rig::peer_index;  // a real session's index
    std::memcpy(p + 4, &receiver, 4);
    m->hash.usr = 999;
    ASSERT_EQ(rte_ring_sp_enqueue(d.rig.relay_in, m), 0);
    d.receive({});
    EXPECT_TRUE(test_support::take_sent(d.rig.tx).empty());
    EXPECT_EQ(d.drops(drop_reason::wg_malformed), 1u);
    EXPECT_EQ(d.rig.ts_peer.rx_packets.load(), 0u);
  }
  EXPECT_EQ(rte_mempool_in_use_count(pool()), in_use_before) << "an mbuf was not given back";
}

// A packet for a peer with no session is handed up to the control thread
// (staged, the peer named by id), not dropped and not sent.
TEST(data_path, packet_for_a_peer_without_session_is_staged) {
  ASSERT_NE(pool(), nullptr);
  data_path d("dpst");
  d.rig.ts_peer.current.store(nullptr);  // no session with the tailnet peer
  const bytes sent = ip_packet(false, 17, "10.90.0.2", "100.64.0.5", udp_datagram(5555, 9000, 64));
  d.receive({d.from_device(sent), d.from_device(sent)});
  EXPECT_TRUE(test_support::take_sent(d.rig.tx).empty()) << "nothing can be sent without a keypair";
  EXPECT_EQ(d.all_drops(), 0u);
  std::vector<staged_packet> staged;
  staged_packet sp;
  while (rte_ring_sc_dequeue_elem(d.rig.staged, &sp, sizeof sp) == 0) staged.push_back(sp);
  ASSERT_EQ(staged.size(), 2u);
  for (const staged_packet& s : staged) {
    EXPECT_EQ(s.peer_id, d.rig.ts_peer.id);
    // The inner packet as it would have been sealed: already spliced.
    const bytes inner(rte_pktmbuf_mtod(s.mbuf, const std::uint8_t*), rte_pktmbuf_mtod(s.mbuf, const std::uint8_t*) + s.mbuf->data_len);
    ASSERT_GE(inner.size(), sent.size());
    EXPECT_EQ(bytes(inner.begin() + 12, inner.begin() + 16), address(false, "100.64.0.1"));
    EXPECT_EQ(bytes(inner.begin() + 16, inner.begin() + 20), address(false, "100.64.0.5"));
    EXPECT_EQ(load_be16(&inner[22]), 9000);
    EXPECT_TRUE(splice::test::l4_checksum_ok(bytes(inner.begin(), inner.begin() + static_cast<long>(sent.size()))));
    rte_pktmbuf_free(s.mbuf);
  }
  EXPECT_EQ(d.rig.device.rx_packets.load(), 2u);
  EXPECT_EQ(d.rig.ts_peer.tx_packets.load(), 0u);
}

// A frame seen again (same counter) is dropped as a replay; the first went through.
TEST(data_path, replayed_frame_is_dropped_as_wg_replay) {
  ASSERT_NE(pool(), nullptr);
  data_path d("dprp");
  const bytes sent = ip_packet(false, 17, "10.90.0.2", "100.64.0.5", udp_datagram(5555, 9000, 64));
  rte_mbuf* first = d.from_device(sent);
  rte_mbuf* again = rte_pktmbuf_copy(first, pool(), 0, UINT32_MAX);
  ASSERT_NE(again, nullptr);
  d.receive({first});
  d.receive({again});
  EXPECT_EQ(test_support::take_sent(d.rig.tx).size(), 1u);
  EXPECT_EQ(d.drops(drop_reason::wg_replay), 1u);
  EXPECT_EQ(d.all_drops(), 1u);
  EXPECT_EQ(d.rig.device.rx_packets.load(), 1u);
  // An older counter inside the window that was never seen still passes.
  d.rig.device_counter = 5;
  d.receive({d.from_device(sent)});
  d.rig.device_counter = 3;
  d.receive({d.from_device(sent)});
  EXPECT_EQ(test_support::take_sent(d.rig.tx).size(), 2u);
  EXPECT_EQ(d.drops(drop_reason::wg_replay), 1u);
}

// A device's packets moving to a second worker (it roamed to another RSS
// queue): the first worker checked its keypair's replay window without the
// lock (replay_guard.h); the second one's packets are dropped as
// wg_replay_handover until the first has passed a quiescent state, then both
// check under the lock, and what the first accepted stays accepted.
TEST(data_path, a_keypair_moving_to_a_second_worker_is_handed_over_after_a_grace_period) {
  ASSERT_NE(pool(), nullptr);
  data_path d("dpho", [](worker_setup& s) { s.worker_count = 2; });
  worker_setup s = d.rig.setup(d.flows, "libsodium");
  s.worker_index = 1;
  s.worker_count = 2;
  worker second(std::move(s));
  auto second_receives = [&](rte_mbuf* m) {
    ASSERT_EQ(rte_ring_sp_enqueue(d.rig.rx, m), 0);
    for (int i = 0; i < 4; ++i) second.poll_once();
    second.flush();
  };
  auto second_drops = [&](drop_reason why) { return second.stats().ports[0].drops[static_cast<unsigned>(why)].get(); };
  // The first worker as worker::run makes it: registered, online.
  rte_rcu_qsbr* qsbr = d.rig.rcu.qsbr();
  ASSERT_EQ(rte_rcu_qsbr_thread_register(qsbr, 0), 0);
  rte_rcu_qsbr_thread_online(qsbr, 0);
  const bytes sent = ip_packet(false, 17, "10.90.0.2", "100.64.0.5", udp_datagram(5555, 9000, 64));

  rte_mbuf* first = d.from_device(sent);
  rte_mbuf* replay = rte_pktmbuf_copy(first, pool(), 0, UINT32_MAX);
  ASSERT_NE(replay, nullptr);
  d.receive({first});
  EXPECT_EQ(test_support::take_sent(d.rig.tx).size(), 1u) << "the owner, unlocked";
  second_receives(d.from_device(sent));
  second_receives(d.from_device(sent));
  EXPECT_EQ(second_drops(drop_reason::wg_replay_handover), 2u) << "the first worker has not passed a quiescent state";
  EXPECT_TRUE(test_support::take_sent(d.rig.tx).empty());
  rte_rcu_qsbr_quiescent(qsbr, 0);
  second_receives(d.from_device(sent));
  EXPECT_EQ(test_support::take_sent(d.rig.tx).size(), 1u) << "shared now: the second worker under the lock";
  second_receives(replay);
  EXPECT_EQ(second_drops(drop_reason::wg_replay), 1u) << "what the owner accepted is in the window the second one reads";
  d.receive({d.from_device(sent)});
  EXPECT_EQ(test_support::take_sent(d.rig.tx).size(), 1u) << "the first worker, under the lock too";
  EXPECT_EQ(d.all_drops(), 0u);
  EXPECT_EQ(d.rig.device.rx_packets.load(), 3u);
  rte_rcu_qsbr_thread_offline(qsbr, 0);
  rte_rcu_qsbr_thread_unregister(qsbr, 0);
}

// A burst of one device's packets is admitted as a run (stage_decrypt.cc):
// counted whole both ways, a replay inside the run still dropped, and the
// device's endpoint follows the run's last packet, which came from a new
// port (the device roamed mid-burst).
TEST(data_path, a_run_of_one_devices_packets_is_counted_whole_and_roams_to_its_last_source) {
  ASSERT_NE(pool(), nullptr);
  data_path d("dprun");
  const bytes sent = ip_packet(false, 17, "10.90.0.2", "100.64.0.5", udp_datagram(5555, 9000, 64));
  std::vector<rte_mbuf*> burst;
  for (int i = 0; i < 4; ++i) burst.push_back(d.from_device(sent));
  burst.push_back(rte_pktmbuf_copy(burst[1], pool(), 0, UINT32_MAX));  // a replay, inside the run
  ASSERT_NE(burst.back(), nullptr);
  burst.push_back(d.from_device(sent));
  constexpr std::uint16_t roamed_port = 40404;
  store_be16(rte_pktmbuf_mtod(burst.back(), std::uint8_t*) + 14 + 20, roamed_port);  // outer UDP source port
  d.receive(burst);
  EXPECT_EQ(test_support::take_sent(d.rig.tx).size(), 5u);
  EXPECT_EQ(d.drops(drop_reason::wg_replay), 1u);
  EXPECT_EQ(d.all_drops(), 1u);
  EXPECT_EQ(d.rig.device.rx_packets.load(), 5u);
  EXPECT_EQ(d.rig.ts_peer.tx_packets.load(), 5u);
  EXPECT_NE(d.rig.device.last_rx_tsc.load(), 0u);
  EXPECT_NE(d.rig.ts_peer.last_tx_tsc.load(), 0u);
  unsigned moves = 0;
  wg_event ev;
  while (rte_ring_sc_dequeue_elem(d.rig.events, &ev, sizeof ev) == 0) {
    if (ev.kind != wg_event::endpoint_changed) continue;
    ++moves;
    EXPECT_EQ(load_be16(reinterpret_cast<const std::uint8_t*>(&ev.endpoint.peer_port_be)), roamed_port);
  }
  EXPECT_EQ(moves, 1u) << "one move, to where the run's last packet came from";
}

// Sealed with a key that is not the session's: it fails authentication,
// and nothing of it goes anywhere.
TEST(data_path, frame_sealed_with_the_wrong_key_is_dropped_as_wg_decrypt_failed) {
  ASSERT_NE(pool(), nullptr);
  data_path d("dpwk");
  const bytes sent = ip_packet(false, 17, "10.90.0.2", "100.64.0.5", udp_datagram(5555, 9000, 64));
  std::uint8_t wrong[32];
  randombytes_buf(wrong, sizeof wrong);
  rte_mbuf* m = rte_pktmbuf_alloc(pool());
  test_support::seal_packet(m, sent, wrong, 0, splice_rig::device_index, d.rig.device_ep);
  d.receive({m});
  EXPECT_TRUE(test_support::take_sent(d.rig.tx).empty());
  EXPECT_EQ(d.drops(drop_reason::wg_decrypt_failed), 1u);
  EXPECT_EQ(d.all_drops(), 1u);
  EXPECT_EQ(d.rig.device.rx_packets.load(), 0u);
  EXPECT_EQ(d.flows.size(), 0u);
  // The counter it claimed was not burnt: the real frame with it goes through.
  d.receive({d.from_device(sent)});
  EXPECT_EQ(test_support::take_sent(d.rig.tx).size(), 1u);
  EXPECT_EQ(d.drops(drop_reason::wg_replay), 0u);
}

// Busy cycles (lcore_stats::busy_cycles) count the passes that moved a
// packet, within the time those passes took: none while the ring is empty,
// some for a datagram, never more than the wall time around it.
TEST(data_path, busy_cycles_count_passes_that_move_packets_and_only_those) {
  ASSERT_NE(pool(), nullptr);
  data_path d("dpbc");
  for (int i = 0; i < 100; ++i) d.w->poll_once();
  EXPECT_EQ(d.w->stats().busy_cycles.get(), 0u) << "empty passes are polling, not work";
  const bytes sent = ip_packet(false, 17, test_support::device_address(false), test_support::peer_address(false),
                               udp_datagram(5555, 9000, 100));
  rte_mbuf* m = d.from_device(sent);
  ASSERT_EQ(rte_ring_sp_enqueue(d.rig.rx, m), 0);
  const std::uint64_t before = rte_rdtsc();
  EXPECT_EQ(d.w->poll_once(), 1u);
  const std::uint64_t elapsed = rte_rdtsc() - before;
  const std::uint64_t busy = d.w->stats().busy_cycles.get();
  EXPECT_GT(busy, 0u);
  EXPECT_LE(busy, elapsed);
  for (int i = 0; i < 100; ++i) d.w->poll_once();
  EXPECT_EQ(d.w->stats().busy_cycles.get(), busy) << "the empty passes after it add nothing";
  d.w->flush();
  EXPECT_EQ(test_support::take_sent(d.rig.tx).size(), 1u);
}

// A receiver index no session has: dropped as unknown.
TEST(data_path, frame_for_no_session_is_dropped_as_wg_unknown_receiver) {
  ASSERT_NE(pool(), nullptr);
  data_path d("dpur");
  const bytes sent = ip_packet(false, 17, "10.90.0.2", "100.64.0.5", udp_datagram(5555, 9000, 64));
  rte_mbuf* m = rte_pktmbuf_alloc(pool());
  test_support::seal_packet(m, sent, d.rig.device_key, 0, 999, d.rig.device_ep);
  d.receive({m});
  EXPECT_TRUE(test_support::take_sent(d.rig.tx).empty());
  EXPECT_EQ(d.drops(drop_reason::wg_unknown_receiver), 1u);
  EXPECT_EQ(d.all_drops(), 1u);
}

// The device's inner source must be its own address (cryptokey routing).
TEST(data_path, device_packet_from_another_address_is_dropped_as_wg_source_not_allowed) {
  ASSERT_NE(pool(), nullptr);
  data_path d("dpsa");
  const bytes spoofed = ip_packet(false, 17, "10.90.0.3", "100.64.0.5", udp_datagram(5555, 9000, 64));
  d.receive({d.from_device(spoofed)});
  EXPECT_TRUE(test_support::take_sent(d.rig.tx).empty());
  EXPECT_EQ(d.drops(drop_reason::wg_source_not_allowed), 1u);
  EXPECT_EQ(d.flows.size(), 0u);
}

// A burst of forged initiations -- random bytes with a valid MAC1, which
// anyone who knows lopower's public key can make -- arriving between two of
// the control thread's ticks (its 'under load' flag still off). The worker
// turns under load itself once its handshake rings hold more than the
// threshold, so the forgeries past it go up the unproven ring (cookie
// replies only) and the ring real devices use keeps its room. Without the
// worker's own look (threshold 0) every forgery is taken for proven.
std::pair<unsigned, unsigned> forged_initiations_through(unsigned threshold, const std::string& name) {
  const wg::static_identity lopower{generate_private_key()};
  wg::cookie_maker maker{lopower.static_public()};
  handshake_guard keys;
  keys.devices.known = true;
  keys.devices.mac1_key = lopower.mac1_key();
  std::atomic<const handshake_guard*> guard{&keys};
  std::atomic<bool> control_says{false};
  std::array<rte_ring*, up_ring_count> up{};
  for (std::size_t c = 0; c < up_ring_count; ++c)
    up[c] = rte_ring_create((name + std::to_string(c)).c_str(), 1024, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
  unsigned proven = 0, unproven = 0;
  {
    data_path d(name, [&](worker_setup& s) {
      s.to_control = up;
      s.guard = &guard;
      s.handshakes_under_load = &control_says;
      s.handshake_load_threshold = threshold;
    });
    std::vector<rte_mbuf*> frames;
    for (int i = 0; i < 96; ++i) {
      wg::message_handshake_initiation m;
      randombytes_buf(&m, sizeof m);
      m.header = wg::message_header{static_cast<std::uint8_t>(wg::message_type::handshake_initiation), {0, 0, 0}};
      EXPECT_TRUE(maker.add_macs(m, 1));
      const auto* p = reinterpret_cast<const std::uint8_t*>(&m);
      const bytes f = test::udp4("198.18.0.1", 51820, bytes(p, p + sizeof m));
      rte_mbuf* mb = rte_pktmbuf_alloc(pool());
      std::memcpy(rte_pktmbuf_append(mb, static_cast<std::uint16_t>(f.size())), f.data(), f.size());
      mb->port = d.rig.port;
      frames.push_back(mb);
    }
    d.receive(frames);
    EXPECT_EQ(d.drops(drop_reason::wg_bad_mac1), 0u) << "MAC1 is right";
  }
  for (std::size_t c = 0; c < up_ring_count; ++c) {
    void* m;
    while (rte_ring_sc_dequeue(up[c], &m) == 0) {
      if (c == static_cast<std::size_t>(up_ring::handshakes)) ++proven;
      if (c == static_cast<std::size_t>(up_ring::unproven)) ++unproven;
      rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
    }
    rte_ring_free(up[c]);
  }
  return {proven, unproven};
}

TEST(data_path, forged_initiations_past_the_workers_threshold_go_up_the_unproven_ring) {
  ASSERT_NE(pool(), nullptr);
  const auto [proven, unproven] = forged_initiations_through(8, "dphl");
  EXPECT_EQ(proven, 9u) << "up to the threshold, and the one that passed it";
  EXPECT_EQ(unproven, 87u);
  const auto [all_proven, none] = forged_initiations_through(0, "dphn");
  EXPECT_EQ(all_proven, 96u) << "the control thread's flag alone comes too late for a burst";
  EXPECT_EQ(none, 0u);
}

// A tailnet peer asking lopower's DNS (lopower as its split-DNS resolver
// for the device domain): a UDP query to lopower's tailnet address, port
// 53, goes up the inner ring with the peer's id, only when the tailnet's
// packet filter allows it; TCP is not served from the tailnet; a peer over
// its rate is dropped on the worker.
struct tailnet_dns : data_path {
  rte_ring* inner;
  std::uint64_t flag;
  static std::uint64_t inner_up_flag() {
    rte_mbuf_dynflag desc{};
    std::snprintf(desc.name, sizeof desc.name, "%s", "lopower_test_inner_up");
    return std::uint64_t{1} << rte_mbuf_dynflag_register(&desc);
  }
  tailnet_dns(const std::string& name, rte_ring* ring, std::uint64_t interval_cycles)
      : data_path(name, [&](worker_setup& s) {
          s.to_control[static_cast<std::size_t>(up_ring::inner)] = ring;
          s.inner_up_flag = inner_up_flag();
          s.dns_query_interval_cycles = interval_cycles;
          s.dns_query_burst = 2;
        }),
        inner(ring), flag(inner_up_flag()) {}
  // The tailnet lets 100.64.0.5 / fd7a:115c:a1e0::5 reach lopower on `proto` port 53.
  void allow(std::uint8_t proto) {
    auto* v = const_cast<tailnet_view*>(rig.view.load());
    filter_match m;
    m.ip_proto = {proto};
    m.srcs = {*ip_prefix::parse("100.64.0.5/32"), *ip_prefix::parse("fd7a:115c:a1e0::5/128")};
    for (bool v6 : {false, true})
      m.dsts.push_back(
          {*ip_prefix::parse(std::string(test_support::our_tailnet_address(v6)) + (v6 ? "/128" : "/32")), {53, 53}});
    v->filter = {m};
  }
  std::vector<rte_mbuf*> handed_up() {
    std::vector<rte_mbuf*> out;
    void* m;
    while (rte_ring_sc_dequeue(inner, &m) == 0) out.push_back(static_cast<rte_mbuf*>(m));
    return out;
  }
};

bytes dns_query_from_peer(bool v6, std::uint8_t proto = 17) {
  const bytes l4 = proto == 17 ? udp_datagram(40053, 53, 30) : splice::test::tcp_segment(40053, 53, 0x02);
  return ip_packet(v6, proto, v6 ? "fd7a:115c:a1e0::5" : "100.64.0.5", test_support::our_tailnet_address(v6), l4);
}

TEST(data_path, tailnet_dns_query_goes_up_only_when_the_filter_allows_it) {
  ASSERT_NE(pool(), nullptr);
  rte_ring* ring = rte_ring_create("tdns_inner", 64, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
  ASSERT_NE(ring, nullptr);
  {
    tailnet_dns d("tdns", ring, 0);
    for (bool v6 : {false, true}) {
      SCOPED_TRACE(v6 ? "IPv6" : "IPv4");
      const std::uint64_t filtered = d.drops(drop_reason::tailnet_filtered);
      const_cast<tailnet_view*>(d.rig.view.load())->filter.clear();  // no rules: nothing is allowed in
      d.receive({d.from_peer(dns_query_from_peer(v6))});
      EXPECT_TRUE(d.handed_up().empty());
      EXPECT_EQ(d.drops(drop_reason::tailnet_filtered), filtered + 1);

      d.allow(17);
      d.receive({d.from_peer(dns_query_from_peer(v6))});
      const auto up = d.handed_up();
      ASSERT_EQ(up.size(), 1u);
      EXPECT_NE(up[0]->ol_flags & d.flag, 0u) << "marked as an inner packet";
      EXPECT_EQ(up[0]->hash.usr, d.rig.ts_peer.id) << "the control thread answers the peer it came from";
      const bytes expected = dns_query_from_peer(v6);
      ASSERT_EQ(rte_pktmbuf_data_len(up[0]), expected.size()) << "WireGuard's padding cut";
      EXPECT_EQ(0, std::memcmp(rte_pktmbuf_mtod(up[0], const std::uint8_t*), expected.data(), expected.size()));
      rte_pktmbuf_free(up[0]);

      // TCP to port 53, even where the filter allows it, is not served from the tailnet.
      d.allow(6);
      const std::uint64_t not_for_us = d.drops(drop_reason::tailnet_not_for_us);
      d.receive({d.from_peer(dns_query_from_peer(v6, 6))});
      EXPECT_TRUE(d.handed_up().empty());
      EXPECT_EQ(d.drops(drop_reason::tailnet_not_for_us), not_for_us + 1);
    }
    EXPECT_TRUE(test_support::take_sent(d.rig.tx).empty()) << "nothing answered on the worker";
  }
  {
    // Paced: a burst of 2, then one per hour.
    tailnet_dns d("tdnr", ring, rte_get_tsc_hz() * 3600);
    d.allow(17);
    d.receive({d.from_peer(dns_query_from_peer(false)), d.from_peer(dns_query_from_peer(false)),
               d.from_peer(dns_query_from_peer(true)), d.from_peer(dns_query_from_peer(false))});
    const auto up = d.handed_up();
    EXPECT_EQ(up.size(), 2u);
    for (rte_mbuf* m : up) rte_pktmbuf_free(m);
    EXPECT_EQ(d.drops(drop_reason::dns_tailnet_rate), 2u);
    EXPECT_EQ(d.drops(drop_reason::dns_device_rate), 0u);
  }
  rte_ring_free(ring);
  EXPECT_EQ(rte_mempool_in_use_count(pool()), 0u) << "every buffer back in the pool";
}

}  // namespace
}  // namespace lopower

namespace lopower {
namespace {

// Inbound: a tailnet peer reaches a device by its address (route mode), and
// device-to-device traffic. The rig's device holds 10.90.0.2 and
// fd7a:115c:a1e0:9909::2; `other` (no session) holds .3 / ::3.
struct inbound_path {
  wg_peer other;
  std::atomic<const device_directory*> devices{nullptr};
  data_path d;

  inbound_path(const std::string& name, bool snat, bool routes = true, bool device_to_device = false)
      : d(name, [&](worker_setup& s) {
          s.devices = &devices;
          s.inbound_routes = routes;
          s.inbound_snat = snat;
          s.device_to_device = device_to_device;
          s.max_flows = 256;
        }) {
    other.id = 3;
    other.has_v4 = other.has_v6 = true;
    inet_pton(AF_INET, "10.90.0.3", &other.v4_be);
    inet_pton(AF_INET6, "fd7a:115c:a1e0:9909::3", other.v6);
    devices.store(new device_directory(*ip_prefix::parse("10.90.0.0/24"), *ip_prefix::parse("fd7a:115c:a1e0:9909::/64"),
                                       {&d.rig.device, &other}));
    allow_everything();
  }
  ~inbound_path() { delete devices.load(); }

  tailnet_view& view() { return *const_cast<tailnet_view*>(d.rig.view.load()); }
  // The tailnet's ACLs: anything from anywhere.
  void allow_everything() {
    filter_match any;
    any.ip_proto = {1, 6, 17, 58};
    any.srcs = {*ip_prefix::parse("0.0.0.0/0"), *ip_prefix::parse("::/0")};
    any.dsts = {{*ip_prefix::parse("0.0.0.0/0"), {0, 65535}}, {*ip_prefix::parse("::/0"), {0, 65535}}};
    view().filter = {any};
  }
  std::vector<staged_packet> staged() {
    std::vector<staged_packet> out;
    staged_packet sp;
    while (rte_ring_sc_dequeue_elem(d.rig.staged, &sp, sizeof sp) == 0) out.push_back(sp);
    return out;
  }
};

bytes address_at(const bytes& p, bool src) {
  const std::size_t at = src ? splice::test::src_at(p) : splice::test::dst_at(p);
  return bytes(p.begin() + static_cast<long>(at), p.begin() + static_cast<long>(at + splice::test::address_size(p)));
}

class inbound : public ::testing::TestWithParam<bool> {};

// With SNAT: the peer's datagram reaches the device from lopower's
// device-side address and a port of the flow's; the device's reply to it
// goes back to the peer as if the device had answered it directly.
TEST_P(inbound, peer_reaches_a_device_through_snat_and_the_reply_comes_back) {
  ASSERT_NE(pool(), nullptr);
  const bool v6 = GetParam();
  const unsigned in_use_before = rte_mempool_in_use_count(pool());
  {
    inbound_path in(v6 ? "ib6" : "ib4", true);
    data_path& d = in.d;
    const bytes sent = ip_packet(v6, 17, test_support::peer_address(v6), test_support::device_address(v6),
                                 udp_datagram(7000, 8080, 100));
    d.receive({d.from_peer(sent)});
    auto out = test_support::take_sent(d.rig.tx);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(d.all_drops(), 0u);
    expect_outer(out[0], d.rig.device_ep, splice_rig::device_index + 100, 0);
    const bytes inner = inner_of(out[0], d.rig.device_open_key);
    const std::size_t l4 = v6 ? 40 : 20;
    EXPECT_EQ(address_at(inner, true), address(v6, test_support::our_device_address(v6))) << "SNAT: from lopower";
    EXPECT_EQ(address_at(inner, false), address(v6, test_support::device_address(v6)));
    const std::uint16_t flow_port = load_be16(&inner[l4]);
    EXPECT_NE(flow_port, 0);
    EXPECT_EQ(load_be16(&inner[l4 + 2]), 8080);
    EXPECT_TRUE(splice::test::ip_checksum_ok(inner));
    EXPECT_TRUE(splice::test::l4_checksum_ok(inner));
    ASSERT_EQ(d.flows.size(), 1u);

    const bytes reply = ip_packet(v6, 17, test_support::device_address(v6), test_support::our_device_address(v6),
                                  udp_datagram(8080, flow_port, 300));
    d.receive({d.from_device(reply)});
    out = test_support::take_sent(d.rig.tx);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(d.all_drops(), 0u);
    expect_outer(out[0], d.rig.peer_ep, splice_rig::peer_index + 100, 0);
    const bytes back = inner_of(out[0], d.rig.peer_open_key);
    EXPECT_EQ(address_at(back, true), address(v6, test_support::device_address(v6)));
    EXPECT_EQ(address_at(back, false), address(v6, test_support::peer_address(v6)));
    EXPECT_EQ(load_be16(&back[l4]), 8080);
    EXPECT_EQ(load_be16(&back[l4 + 2]), 7000) << "back to the peer's own port";
    EXPECT_TRUE(splice::test::ip_checksum_ok(back));
    EXPECT_TRUE(splice::test::l4_checksum_ok(back));
    EXPECT_EQ(d.flows.size(), 1u);

    // The peer's next datagram rides the same flow, through the same port.
    d.receive({d.from_peer(sent)});
    out = test_support::take_sent(d.rig.tx);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(load_be16(&inner_of(out[0], d.rig.device_open_key)[l4]), flow_port);
  }
  EXPECT_EQ(rte_mempool_in_use_count(pool()), in_use_before) << "an mbuf was not given back";
}

// Without SNAT: to the device unchanged, the reply to the peer unchanged.
TEST_P(inbound, without_snat_packets_pass_unchanged_both_ways) {
  ASSERT_NE(pool(), nullptr);
  const bool v6 = GetParam();
  inbound_path in(v6 ? "in6" : "in4", false);
  data_path& d = in.d;
  const bytes sent = ip_packet(v6, 17, test_support::peer_address(v6), test_support::device_address(v6),
                               udp_datagram(7000, 8080, 100));
  d.receive({d.from_peer(sent)});
  auto out = test_support::take_sent(d.rig.tx);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(inner_of(out[0], d.rig.device_open_key), sent);
  const bytes reply = ip_packet(v6, 17, test_support::device_address(v6), test_support::peer_address(v6),
                                udp_datagram(8080, 7000, 300));
  d.receive({d.from_device(reply)});
  out = test_support::take_sent(d.rig.tx);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(inner_of(out[0], d.rig.peer_open_key), reply);
  EXPECT_EQ(d.all_drops(), 0u);
  EXPECT_EQ(d.flows.size(), 1u);
}

INSTANTIATE_TEST_SUITE_P(families, inbound, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& i) { return std::string(i.param ? "ipv6" : "ipv4"); });

// The tailnet's ACLs decide: refused, nothing reaches the device and no flow is made.
TEST(inbound_refused, by_the_tailnet_packet_filter) {
  ASSERT_NE(pool(), nullptr);
  inbound_path in("ibf", true);
  in.view().filter.clear();
  in.d.receive({in.d.from_peer(ip_packet(false, 17, "100.64.0.5", "10.90.0.2", udp_datagram(7000, 8080, 10)))});
  EXPECT_TRUE(test_support::take_sent(in.d.rig.tx).empty());
  EXPECT_EQ(in.d.drops(drop_reason::tailnet_filtered), 1u);
  EXPECT_EQ(in.d.flows.size(), 0u);
}

TEST(inbound_refused, to_an_address_no_device_holds) {
  ASSERT_NE(pool(), nullptr);
  inbound_path in("ibn", true);
  in.d.receive({in.d.from_peer(ip_packet(false, 17, "100.64.0.5", "10.90.0.77", udp_datagram(7000, 8080, 10)))});
  EXPECT_TRUE(test_support::take_sent(in.d.rig.tx).empty());
  EXPECT_EQ(in.d.drops(drop_reason::inbound_no_device), 1u);
}

TEST(inbound_refused, when_routes_are_not_advertised) {
  ASSERT_NE(pool(), nullptr);
  inbound_path in("ibo", true, false);
  in.d.receive({in.d.from_peer(ip_packet(false, 17, "100.64.0.5", "10.90.0.2", udp_datagram(7000, 8080, 10)))});
  EXPECT_TRUE(test_support::take_sent(in.d.rig.tx).empty());
  EXPECT_EQ(in.d.drops(drop_reason::tailnet_not_for_us), 1u);
}

// A TCP segment that opens nothing (no SYN) makes no flow.
TEST(inbound_refused, tcp_without_a_syn) {
  ASSERT_NE(pool(), nullptr);
  inbound_path in("ibt", true);
  in.d.receive({in.d.from_peer(ip_packet(false, 6, "100.64.0.5", "10.90.0.2",
                                         splice::test::tcp_segment(7000, 80, splice::tcp_flag::ack)))});
  EXPECT_TRUE(test_support::take_sent(in.d.rig.tx).empty());
  EXPECT_EQ(in.d.drops(drop_reason::splice_no_flow), 1u);
}

// Devices are isolated by default: ICMP administratively prohibited back.
TEST(device_to_device, denied_by_default_with_icmp_prohibited) {
  ASSERT_NE(pool(), nullptr);
  inbound_path in("d2dn", true);
  in.d.receive({in.d.from_device(ip_packet(false, 17, "10.90.0.2", "10.90.0.3", udp_datagram(5000, 6000, 20)))});
  auto out = test_support::take_sent(in.d.rig.tx);
  ASSERT_EQ(out.size(), 1u);
  const bytes err = inner_of(out[0], in.d.rig.device_open_key);
  ASSERT_GE(err.size(), 28u);
  EXPECT_EQ(err[9], 1) << "ICMP";
  EXPECT_EQ(err[20], 3) << "destination unreachable";
  EXPECT_EQ(err[21], 13) << "communication administratively prohibited";
  EXPECT_EQ(in.d.drops(drop_reason::device_to_device_denied), 1u);
  EXPECT_TRUE(in.staged().empty());
}

// Allowed: the packet goes to the other device as it was (here staged: it
// has no session yet), counted.
TEST(device_to_device, allowed_is_delivered_unchanged) {
  ASSERT_NE(pool(), nullptr);
  inbound_path in("d2da", true, true, true);
  const bytes sent = ip_packet(true, 17, "fd7a:115c:a1e0:9909::2", "fd7a:115c:a1e0:9909::3", udp_datagram(5000, 6000, 20));
  in.d.receive({in.d.from_device(sent)});
  EXPECT_TRUE(test_support::take_sent(in.d.rig.tx).empty());
  EXPECT_EQ(in.d.all_drops(), 0u);
  auto staged = in.staged();
  ASSERT_EQ(staged.size(), 1u);
  EXPECT_EQ(staged[0].peer_id, in.other.id);
  const auto* p = rte_pktmbuf_mtod(staged[0].mbuf, const std::uint8_t*);
  EXPECT_EQ(bytes(p, p + sent.size()), sent);
  rte_pktmbuf_free(staged[0].mbuf);
  EXPECT_EQ(in.d.w->stats().ports[0].device_to_device.get(), 1u);
  EXPECT_EQ(in.d.flows.size(), 0u);
}

}  // namespace
}  // namespace lopower

namespace lopower {
namespace {

// A forward of TCP port 2222 on lopower's tailnet address to the device's port 22.
std::unique_ptr<forward_table> forward_to_the_device() {
  auto t = std::make_unique<forward_table>();
  forward_entry e;
  e.protocol = 6;
  e.port = 2222;
  e.has_v4 = true;
  inet_pton(AF_INET, test_support::device_address(false), &e.device_v4_be);
  e.device_port = 22;
  t->entries.push_back(e);
  return t;
}

// The peer connects to the forwarded port: the device gets it on its own
// port, from lopower's device-side address; its answer goes back from
// lopower's tailnet address and the forwarded port. Without the forward,
// a new connection is refused at once.
TEST(forward, opens_a_flow_to_the_device_and_translates_the_reply) {
  ASSERT_NE(pool(), nullptr);
  std::atomic<const forward_table*> forwards{nullptr};
  inbound_path in("fwd", true, false);  // route mode off: forwards stand alone
  data_path& d = in.d;
  d.w.reset();
  {
    worker_setup s = d.rig.setup(d.flows, "libsodium");
    s.devices = &in.devices;
    s.forwards = &forwards;
    s.max_flows = 256;
    d.w = std::make_unique<worker>(std::move(s));
  }
  auto table = forward_to_the_device();
  forwards.store(table.get());
  const bytes syn = ip_packet(false, 6, "100.64.0.5", "100.64.0.1", splice::test::tcp_segment(40000, 2222, splice::tcp_flag::syn));
  d.receive({d.from_peer(syn)});
  auto out = test_support::take_sent(d.rig.tx);
  ASSERT_EQ(out.size(), 1u) << "drops: " << d.all_drops();
  const bytes inner = inner_of(out[0], d.rig.device_open_key);
  EXPECT_EQ(address_at(inner, true), address(false, "10.90.0.1"));
  EXPECT_EQ(address_at(inner, false), address(false, "10.90.0.2"));
  const std::uint16_t flow_port = load_be16(&inner[20]);
  EXPECT_EQ(load_be16(&inner[22]), 22);
  EXPECT_TRUE(splice::test::l4_checksum_ok(inner));
  ASSERT_EQ(d.flows.size(), 1u);

  const bytes syn_ack = ip_packet(false, 6, "10.90.0.2", "10.90.0.1",
                                  splice::test::tcp_segment(22, flow_port, splice::tcp_flag::syn | splice::tcp_flag::ack));
  d.receive({d.from_device(syn_ack)});
  out = test_support::take_sent(d.rig.tx);
  ASSERT_EQ(out.size(), 1u);
  const bytes back = inner_of(out[0], d.rig.peer_open_key);
  EXPECT_EQ(address_at(back, true), address(false, "100.64.0.1"));
  EXPECT_EQ(address_at(back, false), address(false, "100.64.0.5"));
  EXPECT_EQ(load_be16(&back[20]), 2222);
  EXPECT_EQ(load_be16(&back[22]), 40000);
  EXPECT_TRUE(splice::test::l4_checksum_ok(back));
  EXPECT_EQ(d.all_drops(), 0u);

  // Removed: a new connection finds no forward (and nothing else answers there).
  forwards.store(nullptr);
  const bytes other = ip_packet(false, 6, "100.64.0.5", "100.64.0.1", splice::test::tcp_segment(40001, 2222, splice::tcp_flag::syn));
  d.receive({d.from_peer(other)});
  EXPECT_TRUE(test_support::take_sent(d.rig.tx).empty());
  EXPECT_EQ(d.flows.size(), 1u);
  d.w.reset();
}

}  // namespace
}  // namespace lopower

namespace lopower {
namespace {

// The device answers an inbound datagram with an ICMP error: it reaches the
// peer, quoting what the peer sent (its own address and port again).
TEST(inbound_icmp, a_devices_error_goes_back_to_the_peer_translated) {
  ASSERT_NE(pool(), nullptr);
  inbound_path in("ibe", true);
  data_path& d = in.d;
  d.receive({d.from_peer(ip_packet(false, 17, "100.64.0.5", "10.90.0.2", udp_datagram(7000, 8080, 40)))});
  auto out = test_support::take_sent(d.rig.tx);
  ASSERT_EQ(out.size(), 1u);
  const bytes received = inner_of(out[0], d.rig.device_open_key);
  bytes error(600);
  const std::uint16_t len = splice::build_icmp_error(error.data(), error.size(), received.data(),
                                                     static_cast<std::uint32_t>(received.size()),
                                                     splice::icmp_error_kind::host_unreachable, 0, splice::test::addr("10.90.0.2"));
  ASSERT_NE(len, 0);
  error.resize(len);
  d.receive({d.from_device(error)});
  out = test_support::take_sent(d.rig.tx);
  ASSERT_EQ(out.size(), 1u) << "drops: " << d.all_drops();
  const bytes back = inner_of(out[0], d.rig.peer_open_key);
  EXPECT_EQ(address_at(back, false), address(false, "100.64.0.5"));
  const bytes quoted(back.begin() + 28, back.end());
  EXPECT_EQ(address_at(quoted, true), address(false, "100.64.0.5")) << "the quote names the peer again";
  EXPECT_EQ(load_be16(&quoted[20]), 7000);
  EXPECT_EQ(splice::test::reference_sum(back.data() + 20, back.size() - 20), 0xffff) << "ICMP checksum";
}

}  // namespace
}  // namespace lopower

namespace lopower {
namespace {

// The port a device's first UDP flow to the peer leaves from (a fresh
// worker draws the same one: the rig's seed is fixed), with `forwards`.
std::uint16_t first_spliced_port(const std::string& name, const forward_table* forwards) {
  std::atomic<const forward_table*> published{forwards};
  data_path d(name, [&](worker_setup& s) { s.forwards = &published; });
  d.receive({d.from_device(ip_packet(false, 17, "10.90.0.2", "100.64.0.5", udp_datagram(5555, 9000, 10)))});
  auto out = test_support::take_sent(d.rig.tx);
  if (out.size() != 1) return 0;
  const std::uint16_t port = load_be16(&inner_of(out[0], d.rig.peer_open_key)[20]);
  d.w.reset();
  return port;
}

// A spliced flow never leaves from a forwarded port: a peer's connection to
// the forward would look like a reply on it.
TEST(forward, spliced_flows_never_take_a_forwarded_port) {
  ASSERT_NE(pool(), nullptr);
  const std::uint16_t usual = first_spliced_port("fxa", nullptr);
  ASSERT_NE(usual, 0);
  forward_table table;
  forward_entry e;
  e.protocol = 17;
  e.port = usual;
  e.has_v4 = true;
  e.device_port = 1;
  table.entries.push_back(e);
  const std::uint16_t other = first_spliced_port("fxb", &table);
  EXPECT_NE(other, 0);
  EXPECT_NE(other, usual);
}

}  // namespace
}  // namespace lopower
