// The workers' tailnet view: lopower's own addresses and the ACLs an inbound
// packet must pass, compiled from filter rules as headscale sends them.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include "control/tailnet/netmap/packet_filter.h"
#include "dataplane/tailnet_view.h"
#include "lopower/byte_order.h"

namespace lopower {
namespace {

std::vector<std::uint8_t> v4_packet(const char* src, const char* dst, std::uint8_t proto, std::uint16_t dport) {
  std::vector<std::uint8_t> p(20 + 20, 0);
  p[0] = 0x45;
  p[3] = static_cast<std::uint8_t>(p.size());
  p[8] = 64;
  p[9] = proto;
  inet_pton(AF_INET, src, p.data() + 12);
  inet_pton(AF_INET, dst, p.data() + 16);
  p[20] = 0x30;  // source port 12345
  p[21] = 0x39;
  store_be16(&p[22], dport);
  if (proto == 1) p[20] = 8;  // echo request
  return p;
}

tailnet_view view_with(std::vector<tailnet::filter_rule> rules) {
  tailnet_view v;
  v.has_v4 = true;
  inet_pton(AF_INET, "100.64.0.1", &v.v4_be);
  auto compiled = tailnet::compile_filter(rules);
  EXPECT_EQ(compiled.error, "");
  v.filter = compiled.matches;
  return v;
}

bool allows(const tailnet_view& v, const std::vector<std::uint8_t>& p) {
  auto info = parse_inner(p.data(), static_cast<std::uint32_t>(p.size()));
  EXPECT_TRUE(info);
  return v.allows(p.data(), *info);
}

TEST(TailnetView, OwnsItsAddressesOnly) {
  const tailnet_view v = view_with({});
  std::uint8_t a[16];
  inet_pton(AF_INET, "100.64.0.1", a);
  EXPECT_TRUE(v.owns(false, a));
  inet_pton(AF_INET, "100.64.0.2", a);
  EXPECT_FALSE(v.owns(false, a));
  EXPECT_FALSE(v.owns(true, a)) << "no IPv6 address set";
}

TEST(TailnetView, EmptyFilterLetsNothingIn) {
  const tailnet_view v = view_with({});
  EXPECT_FALSE(allows(v, v4_packet("100.64.0.5", "100.64.0.1", 1, 0)));
  EXPECT_FALSE(allows(v, v4_packet("100.64.0.5", "100.64.0.1", 6, 22)));
}

TEST(TailnetView, RulesBySourcePortAndProtocol) {
  tailnet::filter_rule ssh;  // 100.64.0.5 -> us, TCP 22 only
  ssh.src_ips = {"100.64.0.5"};
  ssh.dst_ports = {{"100.64.0.1", std::nullopt, {22, 22}}};
  ssh.ip_proto = {6};
  tailnet::filter_rule any;  // 100.64.0.6 -> anything (TCP, UDP, ICMP by default)
  any.src_ips = {"100.64.0.6"};
  any.dst_ports = {{"*", std::nullopt, {0, 65535}}};
  const tailnet_view v = view_with({ssh, any});
  EXPECT_TRUE(allows(v, v4_packet("100.64.0.5", "100.64.0.1", 6, 22)));
  EXPECT_FALSE(allows(v, v4_packet("100.64.0.5", "100.64.0.1", 6, 23)));
  EXPECT_FALSE(allows(v, v4_packet("100.64.0.5", "100.64.0.1", 17, 22))) << "UDP was not granted";
  EXPECT_FALSE(allows(v, v4_packet("100.64.0.5", "100.64.0.1", 1, 0))) << "ICMP was not granted";
  EXPECT_TRUE(allows(v, v4_packet("100.64.0.6", "100.64.0.1", 1, 0)));
  EXPECT_TRUE(allows(v, v4_packet("100.64.0.6", "100.64.0.1", 17, 53)));
  EXPECT_FALSE(allows(v, v4_packet("100.64.0.7", "100.64.0.1", 6, 22)));
}

}  // namespace
}  // namespace lopower
