#include "dataplane/classifier.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>
#include <vector>

#include "tests/unit/frame_builder.h"

namespace lopower {
namespace {

using namespace lopower::test;

port_identity both_roles() {
  port_identity p;
  p.add_address(*ip_address::parse("198.18.0.1"));
  p.add_address(*ip_address::parse("fd00:198:18::1"));
  p.device_port_be = htons(51820);
  p.tailnet_port_be = htons(41641);
  return p;
}

classify_result classify(const bytes& f, const port_identity& p = both_roles()) {
  return classify_frame(f.data(), static_cast<std::uint32_t>(f.size()), p);
}

TEST(Classifier, WireGuardHandshakeMessagesOnTheDevicePort) {
  for (auto [type, size] : {std::pair{1, 148}, {2, 92}, {3, 64}}) {
    const auto r = classify(udp4("198.18.0.1", 51820, wg_message(static_cast<std::uint8_t>(type), size)));
    EXPECT_EQ(r.cls, packet_class::wg_handshake) << "type " << type;
    EXPECT_EQ(r.to, listener::devices);
    EXPECT_EQ(r.payload_offset, 14 + 20 + 8);
    EXPECT_EQ(r.payload_length, size);
  }
}

TEST(Classifier, TransportDataIncludingKeepalive) {
  EXPECT_EQ(classify(udp4("198.18.0.1", 51820, wg_message(4, 32))).cls, packet_class::wg_transport);
  EXPECT_EQ(classify(udp6("fd00:198:18::1", 51820, wg_message(4, 1452))).cls, packet_class::wg_transport);
}

TEST(Classifier, MalformedWireGuardIsDroppedWithAReason) {
  const bytes bad[] = {
      wg_message(1, 147),  // initiation one byte short
      wg_message(2, 93),   // response one byte long
      wg_message(4, 31),   // transport shorter than header + tag
      wg_message(9, 64),   // unknown type
      wg_message(4, 3),    // not even a header
  };
  for (const bytes& msg : bad) {
    const auto r = classify(udp4("198.18.0.1", 51820, msg));
    EXPECT_EQ(r.cls, packet_class::drop);
    EXPECT_EQ(r.reason, drop_reason::wg_malformed);
  }
  bytes reserved = wg_message(4, 64);
  reserved[2] = 1;  // reserved bytes must be zero
  EXPECT_EQ(classify(udp4("198.18.0.1", 51820, reserved)).reason, drop_reason::wg_malformed);
}

TEST(Classifier, TailnetPortDemultiplexesStunDiscoAndWireGuard) {
  EXPECT_EQ(classify(udp4("198.18.0.1", 41641, stun_binding_request())).cls, packet_class::stun);
  EXPECT_EQ(classify(udp4("198.18.0.1", 41641, disco_message())).cls, packet_class::disco);
  EXPECT_EQ(classify(udp6("fd00:198:18::1", 41641, disco_message())).cls, packet_class::disco);
  EXPECT_EQ(classify(udp4("198.18.0.1", 41641, wg_message(1, 148))).cls, packet_class::wg_handshake);
  const auto r = classify(udp4("198.18.0.1", 41641, wg_message(4, 48)));
  EXPECT_EQ(r.cls, packet_class::wg_transport);
  EXPECT_EQ(r.to, listener::tailnet);
  const auto junk = classify(udp4("198.18.0.1", 41641, bytes(40, 0x99)));
  EXPECT_EQ(junk.cls, packet_class::drop);
  EXPECT_EQ(junk.reason, drop_reason::tailnet_unknown_payload);
}

// classify_frame decides IPv4 transport data first; around that shortcut's
// edges it must agree with the full walk (fuzz_classifier checks any input).
TEST(Classifier, TransportShortcutDecidesAsTheWalkDoes) {
  port_identity uplink = both_roles();
  uplink.uplink = true;
  uplink.nat_first_port = 40000;
  uplink.nat_last_port = 60000;  // the listeners' ports inside the NAT range: replies first
  bytes stun_index = wg_message(4, 48);
  const std::uint8_t cookie[4] = {0x21, 0x12, 0xa4, 0x42};
  std::copy(std::begin(cookie), std::end(cookie), stun_index.begin() + 4);  // the receiver index
  std::vector<bytes> frames = {udp4("198.18.0.1", 51820, wg_message(4, 32)), udp4("198.18.0.1", 41641, wg_message(4, 48)),
                               udp4("198.18.0.1", 41641, stun_index), udp4("198.18.0.1", 51820, stun_index),
                               udp4("198.18.0.2", 51820, wg_message(4, 48)), udp4("198.18.0.1", 51821, wg_message(4, 48)),
                               udp4("198.18.0.1", 51820, wg_message(4, 31))};
  bytes fragment = frames[0];
  fragment[14 + 6] = 0x20;  // more fragments
  bytes udp_too_long = frames[0];
  udp_too_long[14 + 20 + 5] += 1;
  bytes ip_short = frames[0];
  ip_short[14 + 3] -= 1;
  bytes ip_shorter_than_its_header = frames[0];  // fuzz_classifier found the shortcut taking this one
  ip_shorter_than_its_header[14 + 2] = 0;
  ip_shorter_than_its_header[14 + 3] = 1;
  bytes truncated = frames[0];
  truncated.pop_back();
  frames.insert(frames.end(), {fragment, udp_too_long, ip_short, ip_shorter_than_its_header, truncated});
  for (std::size_t i = 0; i < frames.size(); ++i)
    for (const port_identity& p : {both_roles(), uplink}) {
      const auto len = static_cast<std::uint32_t>(frames[i].size());
      EXPECT_EQ(classify_frame(frames[i].data(), len, p), classify_frame_walk(frames[i].data(), len, p)) << i;
    }
  EXPECT_EQ(classify(frames[2]).cls, packet_class::stun);  // the tailnet port checks STUN first, as magicsock does
  EXPECT_EQ(classify(frames[3]).cls, packet_class::wg_transport);
  EXPECT_EQ(classify(frames[0], uplink).cls, packet_class::uplink_nat);
}

TEST(Classifier, RoleDecidesWhichListenersExist) {
  port_identity devices_only = both_roles();
  devices_only.tailnet_port_be = 0;
  EXPECT_EQ(classify(udp4("198.18.0.1", 41641, disco_message()), devices_only).cls, packet_class::exception);
  port_identity tailnet_only = both_roles();
  tailnet_only.device_port_be = 0;
  EXPECT_EQ(classify(udp4("198.18.0.1", 51820, wg_message(1, 148)), tailnet_only).cls, packet_class::exception);
}

// An uplink port: to its address, TCP/UDP to a NAT port and ICMP echo
// replies and errors may be replies on NATed flows; the kernel's own
// ports, and the same frames on any other port, are the kernel's.
TEST(Classifier, UplinkRepliesAreRecognisedCheaply) {
  port_identity uplink;
  uplink.add_address(*ip_address::parse("198.18.0.1"));
  uplink.uplink = true;
  uplink.nat_first_port = 20000;
  uplink.nat_last_port = 29999;
  const bytes to_nat_port = udp4("198.18.0.1", 20001, bytes(20, 0));
  const auto r = classify(to_nat_port, uplink);
  EXPECT_EQ(r.cls, packet_class::uplink_nat);
  EXPECT_EQ(r.l3_offset, 14);
  EXPECT_EQ(r.l4_offset, 34);
  EXPECT_EQ(classify(to_nat_port).cls, packet_class::exception) << "not an uplink port";
  EXPECT_EQ(classify(udp4("198.18.0.1", 40000, bytes(20, 0)), uplink).cls, packet_class::exception);  // the kernel's
  EXPECT_EQ(classify(udp4("198.18.0.9", 20001, bytes(20, 0)), uplink).cls, packet_class::exception);  // not ours
  bytes tcp = to_nat_port;
  tcp[14 + 9] = 6;
  EXPECT_EQ(classify(tcp, uplink).cls, packet_class::uplink_nat);
  bytes echo_reply = to_nat_port;
  echo_reply[14 + 9] = 1;
  echo_reply[34] = 0;
  EXPECT_EQ(classify(echo_reply, uplink).cls, packet_class::uplink_nat);
  echo_reply[34] = 8;  // an echo request: the kernel answers it
  EXPECT_EQ(classify(echo_reply, uplink).cls, packet_class::exception);
  EXPECT_EQ(classify(udp4("198.18.0.1", 20001, bytes(20, 0), 0x2000), uplink).cls, packet_class::exception);  // fragment
}

TEST(Classifier, TrafficNotForUsGoesToTheKernel) {
  EXPECT_EQ(classify(udp4("198.18.0.9", 51820, wg_message(1, 148))).cls, packet_class::exception);  // not our address
  EXPECT_EQ(classify(udp4("198.18.0.1", 53, bytes(30, 0))).cls, packet_class::exception);          // other UDP port
  EXPECT_EQ(classify(udp6("fd00:198:18::7", 51820, wg_message(1, 148))).cls, packet_class::exception);
  EXPECT_EQ(classify(ethernet(0x88cc)).cls, packet_class::exception);  // LLDP
  bytes tcp = udp4("198.18.0.1", 22, bytes(20, 0));
  tcp[14 + 9] = 6;
  EXPECT_EQ(classify(tcp).cls, packet_class::exception);
}

TEST(Classifier, FragmentsToAListenerAreDroppedOthersGoToTheKernel) {
  const auto r = classify(udp4("198.18.0.1", 51820, wg_message(4, 64), 0x2000));  // MF set
  EXPECT_EQ(r.cls, packet_class::drop);
  EXPECT_EQ(r.reason, drop_reason::fragment_to_listener);
  EXPECT_EQ(classify(udp4("198.18.0.1", 5000, bytes(64, 0), 0x2000)).cls, packet_class::exception);
}

TEST(Classifier, MalformedHeadersAreNamed) {
  EXPECT_EQ(classify(bytes(10, 0)).reason, drop_reason::malformed_ethernet);
  bytes short_ip = ethernet(0x0800);
  short_ip.resize(14 + 12);
  EXPECT_EQ(classify(short_ip).reason, drop_reason::malformed_ipv4);
  bytes bad_total = udp4("198.18.0.1", 51820, wg_message(1, 148));
  bad_total[14 + 2] = 0xff;  // total length beyond the frame
  EXPECT_EQ(classify(bad_total).reason, drop_reason::malformed_ipv4);
  bytes bad_ihl = udp4("198.18.0.1", 51820, wg_message(1, 148));
  bad_ihl[14] = 0x44;
  EXPECT_EQ(classify(bad_ihl).reason, drop_reason::malformed_ipv4);
  bytes bad_udp = udp4("198.18.0.1", 51820, wg_message(1, 148));
  bad_udp[14 + 20 + 4] = 0xff;  // UDP length beyond the IP payload
  EXPECT_EQ(classify(bad_udp).reason, drop_reason::malformed_udp);
  bytes short6 = udp6("fd00:198:18::1", 51820, wg_message(1, 148));
  short6.resize(14 + 30);
  EXPECT_EQ(classify(short6).reason, drop_reason::malformed_ipv6);
}

TEST(Classifier, ArpAndNeighbourDiscoveryAreLearnedFrom) {
  const std::uint8_t mac[6] = {0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee};
  const bytes a = arp(2, "198.18.0.7", mac);
  EXPECT_EQ(classify(a).cls, packet_class::neighbour);
  auto note = neighbour_from_frame(a.data(), static_cast<std::uint32_t>(a.size()));
  ASSERT_TRUE(note);
  EXPECT_EQ(note->family, ip_family::v4);
  EXPECT_EQ(0, std::memcmp(note->mac, mac, 6));
  EXPECT_EQ(note->ip[3], 7);

  const bytes ns = nd(135, "fd00:198:18::7", "fd00:198:18::1", mac);
  EXPECT_EQ(classify(ns).cls, packet_class::neighbour);
  note = neighbour_from_frame(ns.data(), static_cast<std::uint32_t>(ns.size()));
  ASSERT_TRUE(note);
  EXPECT_EQ(note->family, ip_family::v6);
  EXPECT_EQ(note->ip[15], 7);  // a solicitation announces its sender
  EXPECT_EQ(0, std::memcmp(note->mac, mac, 6));

  const bytes na = nd(136, "fd00:198:18::9", "fd00:198:18::8", mac);
  note = neighbour_from_frame(na.data(), static_cast<std::uint32_t>(na.size()));
  ASSERT_TRUE(note);
  EXPECT_EQ(note->ip[15], 8);  // an advertisement announces its target
}

TEST(Classifier, ProbesAndTruncatedNeighbourMessagesAnnounceNothing) {
  const std::uint8_t mac[6] = {0x02, 1, 2, 3, 4, 5};
  const bytes probe = arp(1, "0.0.0.0", mac);
  EXPECT_FALSE(neighbour_from_frame(probe.data(), static_cast<std::uint32_t>(probe.size())));
  const bytes dad = nd(135, "::", "fd00:198:18::1", nullptr);
  EXPECT_FALSE(neighbour_from_frame(dad.data(), static_cast<std::uint32_t>(dad.size())));
  bytes ns = nd(135, "fd00:198:18::7", "fd00:198:18::1", mac);
  ns[ns.size() - 7] = 0;  // option length zero: malformed
  EXPECT_FALSE(neighbour_from_frame(ns.data(), static_cast<std::uint32_t>(ns.size())));
  for (std::size_t cut = 0; cut < ns.size(); ++cut)  // every truncation is safe
    (void)neighbour_from_frame(ns.data(), static_cast<std::uint32_t>(cut));
}

TEST(PortIdentity, HoldsAtMostFourAddressesPerFamily) {
  port_identity p;
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(p.add_address(ip_address::v4(0xc6120001u + static_cast<unsigned>(i))));
  EXPECT_FALSE(p.add_address(ip_address::v4(0xc6120009u)));
  EXPECT_TRUE(p.owns_v4(htonl(0xc6120003u)));
  EXPECT_FALSE(p.owns_v4(htonl(0xc6120009u)));
}

}  // namespace
}  // namespace lopower
