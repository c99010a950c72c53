// Compiling filter rules as wgengine/filter does.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "control/tailnet/netmap/packet_filter.h"

namespace lopower::tailnet {
namespace {

std::vector<std::string> range(const char* a, const char* b) {
  std::vector<std::string> out;
  for (const auto& p : range_to_prefixes(*ip_address::parse(a), *ip_address::parse(b))) out.push_back(p.to_string());
  return out;
}

TEST(PacketFilter, RangesBecomeTheFewestPrefixes) {
  EXPECT_EQ(range("100.64.0.1", "100.64.0.2"), (std::vector<std::string>{"100.64.0.1/32", "100.64.0.2/32"}));
  EXPECT_EQ(range("10.0.0.0", "10.0.0.255"), std::vector<std::string>{"10.0.0.0/24"});
  EXPECT_EQ(range("10.0.0.1", "10.0.0.6"),
            (std::vector<std::string>{"10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"}));
  EXPECT_EQ(range("0.0.0.0", "255.255.255.255"), std::vector<std::string>{"0.0.0.0/0"});
  EXPECT_EQ(range("255.255.255.255", "255.255.255.255"), std::vector<std::string>{"255.255.255.255/32"});
  EXPECT_EQ(range("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), std::vector<std::string>{"::/0"});
  EXPECT_EQ(range("fd7a:115c:a1e0::1", "fd7a:115c:a1e0::2"),
            (std::vector<std::string>{"fd7a:115c:a1e0::1/128", "fd7a:115c:a1e0::2/128"}));
  EXPECT_EQ(range("::8000:0:0:0", "::ffff:ffff:ffff:ffff"), std::vector<std::string>{"::8000:0:0:0/65"});
  EXPECT_TRUE(range("10.0.0.2", "10.0.0.1").empty());
  EXPECT_TRUE(range("10.0.0.1", "::1").empty());
}

filter_rule rule(std::vector<std::string> srcs, std::vector<std::string> dsts, port_range ports = {0, 65535}) {
  filter_rule r;
  r.src_ips = std::move(srcs);
  for (auto& d : dsts) r.dst_ports.push_back(net_port_range{std::move(d), std::nullopt, ports});
  return r;
}

TEST(PacketFilter, SetForms) {
  const auto c = compile_filter({rule({"*", "100.64.0.1-100.64.0.2", "10.1.0.0/16", "fd00::1", "cap:x"},
                                      {"*", "100.64.0.9"}, {22, 22})});
  EXPECT_TRUE(c.error.empty()) << c.error;
  ASSERT_EQ(c.matches.size(), 1u);
  const filter_match& m = c.matches[0];
  std::vector<std::string> srcs;
  for (const auto& p : m.srcs) srcs.push_back(p.to_string());
  EXPECT_EQ(srcs, (std::vector<std::string>{"0.0.0.0/0", "::/0", "100.64.0.1/32", "100.64.0.2/32", "10.1.0.0/16",
                                            "fd00::1/128"}));
  EXPECT_EQ(m.src_caps, std::vector<std::string>{"x"});
  EXPECT_EQ(m.ip_proto, (std::vector<std::uint8_t>{6, 17, 1, 58}));
  ASSERT_EQ(m.dsts.size(), 3u);
  EXPECT_EQ(m.dsts[2].net.to_string(), "100.64.0.9/32");
  EXPECT_EQ(m.dsts[2].ports, (port_range{22, 22}));
}

TEST(PacketFilter, BadEntriesAreSkippedAndReported) {
  auto r = rule({"10.1.0.1/16", "nonsense", "10.0.0.1"}, {"cap:y", "100.64.0.1"});
  r.ip_proto = {6, -1, 256, 17};
  const auto c = compile_filter({r});
  // The first bad set is reported, except that a capability among the
  // destinations overrides it (as in wgengine/filter).
  EXPECT_NE(c.error.find("unexpected capability"), std::string::npos) << c.error;
  EXPECT_NE(compile_filter({rule({"10.1.0.1/16"}, {"*"})}).error.find("non-network bits"), std::string::npos);
  ASSERT_EQ(c.matches.size(), 1u);
  EXPECT_EQ(c.matches[0].srcs.size(), 1u);  // only 10.0.0.1
  EXPECT_EQ(c.matches[0].dsts.size(), 1u);
  EXPECT_EQ(c.matches[0].ip_proto, (std::vector<std::uint8_t>{6, 17}));
}

TEST(PacketFilter, DeprecatedBitsDiscardEverything) {
  auto r = rule({"*"}, {"*"});
  r.dst_ports[0].bits = 24;
  const auto c = compile_filter({rule({"*"}, {"*"}), r});
  EXPECT_TRUE(c.matches.empty());
  EXPECT_FALSE(c.error.empty());
}

TEST(PacketFilter, CapGrants) {
  filter_rule r = rule({"100.64.0.1"}, {});
  cap_grant g;
  g.dsts = {*ip_prefix::parse("100.64.0.2/32"), *ip_prefix::parse("fd7a:115c:a1e0::2/128")};
  g.caps = {"old"};
  g.capmap = {{"new", {"{\"a\":1}"}}};
  r.cap_grants = {g};
  const auto c = compile_filter({r});
  ASSERT_EQ(c.matches.size(), 1u);
  ASSERT_EQ(c.matches[0].caps.size(), 4u);
  EXPECT_EQ(c.matches[0].caps[0].cap, "old");
  EXPECT_EQ(c.matches[0].caps[1].values, std::vector<std::string>{"{\"a\":1}"});
}

TEST(PacketFilter, Allows) {
  auto r = rule({"100.64.0.0/24"}, {"100.64.1.1"}, {80, 443});
  r.ip_proto = {6};
  const auto c = compile_filter({r});
  const auto src = *ip_address::parse("100.64.0.7");
  const auto dst = *ip_address::parse("100.64.1.1");
  EXPECT_TRUE(filter_allows(c.matches, 6, src, dst, 80));
  EXPECT_TRUE(filter_allows(c.matches, 6, src, dst, 443));
  EXPECT_FALSE(filter_allows(c.matches, 6, src, dst, 444));
  EXPECT_FALSE(filter_allows(c.matches, 17, src, dst, 80));
  EXPECT_FALSE(filter_allows(c.matches, 6, *ip_address::parse("100.64.2.7"), dst, 80));
  EXPECT_FALSE(filter_allows(c.matches, 6, src, *ip_address::parse("100.64.1.2"), 80));
  EXPECT_TRUE(filter_allows(c.matches, 6, src, dst, std::nullopt));
}

}  // namespace
}  // namespace lopower::tailnet
