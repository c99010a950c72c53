// The uplink NAT in memory (stage_uplink.cc): one real worker with the
// splice rig's device port (tests/support/splice_rig.h) and a second
// net_ring port with role uplink at 192.0.2.2/24, gateway 192.0.2.1. A
// device's packet for an address no tailnet peer serves comes out of the
// uplink ring as an Ethernet frame to the gateway, from 192.0.2.2 and a NAT
// port; the answer put on the uplink's RX ring comes back sealed for the
// device. Checksums are checked with the tests' own RFC 1071 code
// (tests/unit/splice/packets.h), not the translation's.

#include <gtest/gtest.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <sodium.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "control/clock.h"
#include "dataplane/flow_table.h"
#include "dataplane/neighbour_table.h"
#include "dataplane/worker.h"
#include "lopower/byte_order.h"
#include "tests/support/eal.h"
#include "tests/support/splice_rig.h"
#include "tests/unit/splice/packets.h"

namespace lopower {
namespace {

using splice::test::bytes;
using splice::test::icmp_echo;
using splice::test::icmp_error_packet;
using splice::test::ip_packet;
using splice::test::tcp_segment;
using splice::test::udp_datagram;
using test_support::sent_frame;
using test_support::splice_rig;

constexpr const char* uplink_addr = "192.0.2.2";
constexpr const char* gateway = "192.0.2.1";
constexpr const char* server = "203.0.113.80";
constexpr const char* uplink_addr6 = "2001:db8::2";
constexpr const char* gateway6 = "2001:db8::1";
constexpr const char* server6 = "2001:db8:80::80";
constexpr std::uint8_t gateway_mac[6] = {0x02, 0xaa, 0, 0, 0, 1};
constexpr std::uint8_t uplink_mac[6] = {0x02, 0xbb, 0, 0, 0, 2};

rte_mempool* pool() {
  static rte_mempool* p = [] {
    if (!test_support::start_eal("uplink_tests", 256) || sodium_init() < 0) return static_cast<rte_mempool*>(nullptr);
    return rte_pktmbuf_pool_create("up_test_pool", 4095, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
  }();
  return p;
}

// The rig's device port plus the uplink port; `gateway_known`: the
// neighbour table holds the gateway's MAC (as after its ARP answer).
struct uplink_path {
  splice_rig rig;
  flow_table flows;
  neighbour_table neighbours{64};
  rte_ring *up_rx, *up_tx;
  std::uint16_t up_port;
  port_identity up_identity;
  std::unique_ptr<worker> w;

  uplink_path(const std::string& name, bool gateway_known = true)
      : rig(name, pool()), flows(1u << 10, rig.rcu) {
    up_rx = test_support::make_ring(name + "_urx");
    up_tx = test_support::make_ring(name + "_utx");
    up_port = test_support::ring_port("net_ring_" + name + "u", up_rx, up_tx, pool());
    up_identity.add_address(*ip_address::parse(uplink_addr));
    up_identity.add_address(*ip_address::parse(uplink_addr6));
    up_identity.uplink = true;
    up_identity.nat_first_port = 20000;
    up_identity.nat_last_port = 29999;
    for (const char* gw_text : {gateway, gateway6}) {
      if (!gateway_known) break;
      const ip_address gw = *ip_address::parse(gw_text);
      neighbour_note note;
      note.port = up_port;
      note.family = gw.family;
      note.op = neighbour_op::answers;
      std::memcpy(note.mac, gateway_mac, 6);
      std::memcpy(note.ip, gw.bytes.data(), 16);
      neighbours.learn(note, monotonic_ms());
    }
    worker_setup s = rig.setup(flows, "libsodium");
    s.ports.push_back(worker_port{1, up_port, no_port, &up_identity});
    port_config up;
    up.name = "up";
    up.role = port_role::uplink;
    up.addresses = {*ip_prefix::parse("192.0.2.2/24"), *ip_prefix::parse("2001:db8::2/64")};
    up.gateway4 = *ip_address::parse(gateway);
    up.gateway6 = *ip_address::parse(gateway6);
    s.uplink = up;
    std::memcpy(s.uplink_mac.addr_bytes, uplink_mac, 6);
    s.neighbour_macs = &neighbours;
    w = std::make_unique<worker>(std::move(s));
    rig.device.egress.store(egress_mode::uplink);  // as [egress] mode defaults to on a box with an uplink
  }
  ~uplink_path() {
    w.reset();
    test_support::close_ring_port(up_port);
    test_support::drain({up_rx, up_tx});
    rte_ring_free(up_rx);
    rte_ring_free(up_tx);
  }

  void run() {
    for (int i = 0; i < 4; ++i) w->poll_once();
    w->flush();
  }
  void from_device(const bytes& packet) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool());
    rig.seal_from_device(m, packet);
    ASSERT_EQ(rte_ring_sp_enqueue(rig.rx, m), 0);
    run();
  }
  // `packet` in an Ethernet frame from the gateway, on the uplink.
  void from_uplink(const bytes& packet) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool());
    ASSERT_FALSE(packet.empty());
    auto* f = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(m, static_cast<std::uint16_t>(14 + packet.size())));
    ASSERT_NE(f, nullptr);
    std::memcpy(f, uplink_mac, 6);
    std::memcpy(f + 6, gateway_mac, 6);
    store_be16(f + 12, (packet[0] >> 4) == 6 ? 0x86dd : 0x0800);
    std::memcpy(f + 14, packet.data(), packet.size());
    m->port = up_port;
    ASSERT_EQ(rte_ring_sp_enqueue(up_rx, m), 0);
    run();
  }
  // What went out of the uplink: IP packets, their Ethernet header checked.
  std::vector<bytes> out_of_uplink() {
    std::vector<bytes> packets;
    for (const sent_frame& f : test_support::take_sent(up_tx)) {
      EXPECT_GE(f.bytes.size(), 14u + 20u);
      if (f.bytes.size() < 34) continue;
      EXPECT_EQ(0, std::memcmp(f.bytes.data(), gateway_mac, 6)) << "to the gateway's MAC";
      EXPECT_EQ(0, std::memcmp(f.bytes.data() + 6, uplink_mac, 6)) << "from the uplink's MAC";
      EXPECT_EQ(load_be16(&f.bytes[12]), (f.bytes[14] >> 4) == 6 ? 0x86dd : 0x0800);
      packets.emplace_back(f.bytes.begin() + 14, f.bytes.end());
    }
    return packets;
  }
  // What the device got: the inner packets, opened with its key.
  std::vector<bytes> to_device() {
    std::vector<bytes> packets;
    for (const sent_frame& f : test_support::take_sent(rig.tx)) {
      auto plain = f.open(rig.device_open_key);
      if (!plain) {
        ADD_FAILURE() << "a frame to the device that does not open with its key";
        continue;
      }
      const bool v6 = ((*plain)[0] >> 4) == 6;
      plain->resize(std::min<std::size_t>(plain->size(), v6 ? 40u + load_be16(&(*plain)[4]) : load_be16(&(*plain)[2])));
      packets.push_back(*plain);
    }
    return packets;
  }
  std::uint64_t drops(unsigned port, drop_reason why) const {
    return w->stats().ports[port].drops[static_cast<unsigned>(why)].get();
  }
};

bytes address(const char* text) {
  const ip_address a = *ip_address::parse(text);
  return bytes(a.bytes.begin(), a.bytes.begin() + 4);
}
bytes src_of(const bytes& p) { return bytes(p.begin() + 12, p.begin() + 16); }
bytes dst_of(const bytes& p) { return bytes(p.begin() + 16, p.begin() + 20); }

struct proto_case {
  const char* name;
  std::uint8_t protocol;
};

class uplink_nat : public ::testing::TestWithParam<proto_case> {};

// The device's first packet of a flow out, the server's answer back.
bytes device_packet(std::uint8_t protocol) {
  switch (protocol) {
    case 6: return ip_packet(false, 6, test_support::device_address(false), server, tcp_segment(5555, 80, 0x02));
    case 17: return ip_packet(false, 17, test_support::device_address(false), server, udp_datagram(5555, 9000, 100));
    default: return ip_packet(false, 1, test_support::device_address(false), server, icmp_echo(false, true, 5555, 56));
  }
}
bytes server_answer(std::uint8_t protocol, std::uint16_t nat_port) {
  switch (protocol) {
    case 6: return ip_packet(false, 6, server, uplink_addr, tcp_segment(80, nat_port, 0x12));
    case 17: return ip_packet(false, 17, server, uplink_addr, udp_datagram(9000, nat_port, 300));
    default: return ip_packet(false, 1, server, uplink_addr, icmp_echo(false, false, nat_port, 56));
  }
}

TEST_P(uplink_nat, device_packet_leaves_natted_and_the_answer_comes_back) {
  ASSERT_NE(pool(), nullptr);
  const std::uint8_t proto = GetParam().protocol;
  const unsigned in_use_before = rte_mempool_in_use_count(pool());
  {
    uplink_path u(std::string("u") + GetParam().name);
    const bytes sent = device_packet(proto);
    u.from_device(sent);
    auto out = u.out_of_uplink();
    ASSERT_EQ(out.size(), 1u);
    const bytes& natted = out[0];
    ASSERT_EQ(natted.size(), sent.size());
    EXPECT_EQ(src_of(natted), address(uplink_addr)) << "source NATed to the uplink address";
    EXPECT_EQ(dst_of(natted), address(server));
    EXPECT_EQ(natted[8], 63) << "TTL decremented: lopower is a router hop";
    const std::uint16_t nat_port = load_be16(&natted[proto == 1 ? 24 : 20]);  // ICMP: the identifier
    EXPECT_GE(nat_port, 20000);
    EXPECT_LE(nat_port, 29999);
    EXPECT_TRUE(splice::test::ip_checksum_ok(natted));
    EXPECT_TRUE(splice::test::l4_checksum_ok(natted));
    ASSERT_EQ(u.flows.size(), 1u);
    EXPECT_EQ(u.flows.census().uplink, 1u);

    u.from_uplink(server_answer(proto, nat_port));
    auto back = u.to_device();
    ASSERT_EQ(back.size(), 1u);
    EXPECT_EQ(src_of(back[0]), address(server));
    EXPECT_EQ(dst_of(back[0]), address(test_support::device_address(false)));
    EXPECT_EQ(load_be16(&back[0][proto == 1 ? 24 : 22]), 5555) << "back to the device's own port / identifier";
    EXPECT_EQ(back[0][8], 63);
    EXPECT_TRUE(splice::test::ip_checksum_ok(back[0]));
    EXPECT_TRUE(splice::test::l4_checksum_ok(back[0]));
    EXPECT_EQ(u.flows.size(), 1u) << "the answer used the device's flow";
    EXPECT_TRUE(test_support::take_sent(u.up_tx).empty());
  }
  EXPECT_EQ(rte_mempool_in_use_count(pool()), in_use_before) << "an mbuf was not given back";
}

// The device's egress decides, not the uplink's presence: a device set to
// "none" on a box with an uplink is refused, and nothing leaves the uplink.
TEST(uplink_egress, a_device_whose_egress_is_none_does_not_use_the_uplink) {
  ASSERT_NE(pool(), nullptr);
  uplink_path u("unone");
  u.rig.device.egress.store(egress_mode::none);
  u.from_device(device_packet(17));
  EXPECT_TRUE(u.out_of_uplink().empty());
  EXPECT_EQ(u.flows.size(), 0u);
  const auto back = u.to_device();
  ASSERT_EQ(back.size(), 1u) << "an ICMP error back to the device";
  EXPECT_EQ(back[0][9], 1) << "ICMP";
  EXPECT_EQ(back[0][20], 3) << "destination unreachable";
  EXPECT_EQ(back[0][21], 13) << "administratively prohibited";
  EXPECT_EQ(u.drops(0, drop_reason::egress_refused), 1u);
}

INSTANTIATE_TEST_SUITE_P(protocols, uplink_nat,
                         ::testing::Values(proto_case{"tcp", 6}, proto_case{"udp", 17}, proto_case{"icmp", 1}),
                         [](const ::testing::TestParamInfo<proto_case>& i) { return std::string(i.param.name); });

// IPv6: the same, through the v6 gateway, the hop limit decremented.
TEST(uplink, ipv6_datagram_leaves_natted_and_the_answer_comes_back) {
  ASSERT_NE(pool(), nullptr);
  uplink_path u("uv6");
  const char* device6 = test_support::device_address(true);
  u.from_device(ip_packet(true, 17, device6, server6, udp_datagram(5555, 9000, 100)));
  auto out = u.out_of_uplink();
  ASSERT_EQ(out.size(), 1u);
  const bytes& natted = out[0];
  const ip_address ours = *ip_address::parse(uplink_addr6);
  EXPECT_EQ(bytes(natted.begin() + 8, natted.begin() + 24), bytes(ours.bytes.begin(), ours.bytes.end()));
  EXPECT_EQ(natted[7], 63) << "hop limit decremented";
  const std::uint16_t nat_port = load_be16(&natted[40]);
  EXPECT_GE(nat_port, 20000);
  EXPECT_LE(nat_port, 29999);
  EXPECT_TRUE(splice::test::l4_checksum_ok(natted));
  u.from_uplink(ip_packet(true, 17, server6, uplink_addr6, udp_datagram(9000, nat_port, 30)));
  auto back = u.to_device();
  ASSERT_EQ(back.size(), 1u);
  const ip_address dev = *ip_address::parse(device6);
  EXPECT_EQ(bytes(back[0].begin() + 24, back[0].begin() + 40), bytes(dev.bytes.begin(), dev.bytes.end()));
  EXPECT_EQ(load_be16(&back[0][42]), 5555);
  EXPECT_TRUE(splice::test::l4_checksum_ok(back[0]));
}

// A port unreachable from beyond the uplink quotes the NATed datagram: it
// reaches the device quoting what the device sent.
TEST(uplink, icmp_error_from_beyond_is_translated_back) {
  ASSERT_NE(pool(), nullptr);
  uplink_path u("uerr");
  const bytes sent = device_packet(17);
  u.from_device(sent);
  auto out = u.out_of_uplink();
  ASSERT_EQ(out.size(), 1u);
  const bytes quote(out[0].begin(), out[0].begin() + 28);
  u.from_uplink(icmp_error_packet(false, "198.51.100.1", uplink_addr, 3, 3, 0, quote));
  auto back = u.to_device();
  ASSERT_EQ(back.size(), 1u);
  const bytes& e = back[0];
  EXPECT_EQ(e[9], 1);
  EXPECT_EQ(e[20], 3);
  EXPECT_EQ(dst_of(e), address(test_support::device_address(false)));
  EXPECT_EQ(src_of(e), address("198.51.100.1")) << "the router that reported stays the source";
  const bytes quoted(e.begin() + 28, e.end());
  EXPECT_EQ(bytes(quoted.begin() + 12, quoted.begin() + 16), address(test_support::device_address(false)));
  EXPECT_EQ(load_be16(&quoted[20]), 5555) << "the quote names the device's own port";
  EXPECT_TRUE(splice::test::ip_checksum_ok(e));
  EXPECT_TRUE(splice::test::l4_checksum_ok(e));
}

// The device's own port unreachable about an answer on its flow (its socket
// closed) leaves from the uplink address, quoting the flow's NAT port, as
// the server sent to it; about no flow, it is dropped.
TEST(uplink, device_icmp_error_about_an_answer_is_translated_out) {
  ASSERT_NE(pool(), nullptr);
  uplink_path u("uout");
  u.from_device(device_packet(17));
  auto out = u.out_of_uplink();
  ASSERT_EQ(out.size(), 1u);
  const std::uint16_t nat_port = load_be16(&out[0][20]);
  u.from_uplink(server_answer(17, nat_port));
  auto back = u.to_device();
  ASSERT_EQ(back.size(), 1u);
  const bytes quote(back[0].begin(), back[0].begin() + 28);  // the answer as the device got it
  u.from_device(icmp_error_packet(false, test_support::device_address(false), server, 3, 3, 0, quote));
  out = u.out_of_uplink();
  ASSERT_EQ(out.size(), 1u);
  const bytes& e = out[0];
  EXPECT_EQ(src_of(e), address(uplink_addr));
  EXPECT_EQ(dst_of(e), address(server));
  const bytes quoted(e.begin() + 28, e.end());
  EXPECT_EQ(bytes(quoted.begin() + 16, quoted.begin() + 20), address(uplink_addr)) << "the quote names the NAT side";
  EXPECT_EQ(load_be16(&quoted[22]), nat_port);
  EXPECT_TRUE(splice::test::ip_checksum_ok(e));
  EXPECT_TRUE(splice::test::l4_checksum_ok(e));
  // About a flow that does not exist: dropped, nothing sent.
  bytes stray = quote;
  splice::test::put16(&stray[20], 9999);
  u.from_device(icmp_error_packet(false, test_support::device_address(false), server, 3, 3, 0, stray));
  EXPECT_TRUE(u.out_of_uplink().empty());
  EXPECT_EQ(u.drops(0, drop_reason::uplink_unsupported), 1u);
}

// Traffic on the uplink that no flow owns is the kernel's (no TAP here:
// counted as no_exception_path), the kernel's ephemeral ports never even
// looked up; nothing reaches the device.
TEST(uplink, a_miss_goes_to_the_exception_path) {
  ASSERT_NE(pool(), nullptr);
  uplink_path u("umiss");
  u.from_uplink(ip_packet(false, 17, server, uplink_addr, udp_datagram(9000, 20001, 10)));  // NAT range, no flow
  u.from_uplink(ip_packet(false, 6, server, uplink_addr, tcp_segment(80, 40000, 0x12)));     // the kernel's port
  EXPECT_EQ(u.drops(1, drop_reason::no_exception_path), 2u);
  EXPECT_EQ(u.w->stats().ports[1].by_class[static_cast<unsigned>(packet_class::uplink_nat)].get(), 1u);
  EXPECT_TRUE(u.to_device().empty());
}

TEST(uplink, unknown_next_hop_is_dropped_and_counted) {
  ASSERT_NE(pool(), nullptr);
  uplink_path u("unonb", false);
  u.from_device(device_packet(17));
  EXPECT_TRUE(u.out_of_uplink().empty());
  EXPECT_EQ(u.drops(0, drop_reason::uplink_no_neighbour), 1u);
  EXPECT_EQ(u.flows.size(), 0u) << "no flow made for a packet that could not leave";
}

// TTL 1: the packet dies at lopower, which says so to the device.
TEST(uplink, ttl_running_out_at_lopower_answers_time_exceeded) {
  ASSERT_NE(pool(), nullptr);
  uplink_path u("uttl");
  bytes sent = device_packet(17);
  ASSERT_GE(sent.size(), 20u);
  sent.at(8) = 1;
  sent.at(10) = sent.at(11) = 0;
  const std::uint16_t sum = splice::test::reference_checksum(sent.data(), 20);
  sent.at(10) = static_cast<std::uint8_t>(sum >> 8);
  sent.at(11) = static_cast<std::uint8_t>(sum);
  u.from_device(sent);
  EXPECT_TRUE(u.out_of_uplink().empty());
  EXPECT_EQ(u.drops(0, drop_reason::uplink_ttl_expired), 1u);
  auto back = u.to_device();
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0][20], 11) << "ICMP time exceeded";
}

}  // namespace
}  // namespace lopower
