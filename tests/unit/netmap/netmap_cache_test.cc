// The netmap kept on disk (netmap_cache.h): what is written reads back as
// the same netmap -- the recorded headscale sessions and a hand-made netmap
// with every field set -- through the MapResponse parser; a truncated or
// damaged file is refused with a message, never half taken; a file kept
// for another node key is ignored.
#include "control/tailnet/netmap/netmap_cache.h"

#include <gtest/gtest.h>

#include <string>

#include "netmap_test_util.h"

namespace lopower::tailnet {
namespace {

using json = nlohmann::json;

// A node as the cache keeps it: of Hostinfo, only the host name (the
// digest of the rest is not kept).
node as_kept(node n) {
  n.hostinfo_digest = 0;
  return n;
}

void expect_same_netmap(const netmap& a, const netmap& b) {
  ASSERT_NE(a.self(), nullptr);
  ASSERT_NE(b.self(), nullptr);
  EXPECT_EQ(as_kept(*a.self()), as_kept(*b.self()));
  ASSERT_EQ(a.peer_count(), b.peer_count());
  for (std::size_t i = 0; i < a.peer_count(); ++i) EXPECT_EQ(as_kept(a.peers()[i]), as_kept(b.peers()[i])) << "peer " << i;
  ASSERT_EQ(a.derp() != nullptr, b.derp() != nullptr);
  if (a.derp() != nullptr) {
    EXPECT_EQ(*a.derp(), *b.derp());
  }
  EXPECT_EQ(a.dns(), b.dns());
  EXPECT_EQ(a.domain(), b.domain());
  EXPECT_EQ(a.collect_services(), b.collect_services());
  EXPECT_EQ(a.health(), b.health());
  EXPECT_EQ(a.users(), b.users());
  EXPECT_EQ(a.domain_audit_log_id(), b.domain_audit_log_id());
  EXPECT_EQ(a.named_packet_filters(), b.named_packet_filters());
  EXPECT_EQ(a.packet_filter_rules(), b.packet_filter_rules());
  EXPECT_EQ(a.packet_filter().size(), b.packet_filter().size());
  EXPECT_EQ(a.packet_filter_error(), b.packet_filter_error());
}

// Writes `nm`, reads it back for its own node key, and checks both the
// netmap and that writing the copy gives the same text.
void expect_round_trip(const netmap& nm) {
  const std::string text = netmap_to_cache_json(nm);
  const netmap_cache_load got = netmap_from_cache_json(text, nm.self()->key);
  ASSERT_EQ(got.result, netmap_cache_load::outcome::loaded) << got.message;
  ASSERT_NE(got.map, nullptr);
  expect_same_netmap(nm, *got.map);
  EXPECT_EQ(netmap_to_cache_json(*got.map), text);
  // What a fresh netmap reports: everything is new.
  EXPECT_EQ(got.changes.added.size(), nm.peer_count());
  EXPECT_TRUE(got.changes.self_changed);
}

netmap rich_netmap() {
  json self = test::self_json();
  self["KeyExpiry"] = "2027-01-02T03:04:05.5Z";
  self["Tags"] = {"tag:gw"};
  self["PrimaryRoutes"] = {"10.1.0.0/16"};
  self["AllowedIPs"] = {"100.64.0.200/32", "10.1.0.0/16"};
  json p1 = test::peer_json(1);
  p1["CapMap"] = {{"cap:a", {json{{"x", 1}}, "s"}}, {"cap:empty", json::array()}};
  p1["Capabilities"] = {"old-cap"};
  p1["SelfNodeV4MasqAddrForThisPeer"] = "100.99.0.1";
  p1["ExitNodeDNSResolvers"] = {{{"Addr", "1.1.1.1"}, {"BootstrapResolution", {"1.1.1.1"}}}};
  p1["Online"] = false;
  p1["Expired"] = true;
  p1["Sharer"] = 7;
  p1["KeySignature"] = "c2ln";
  p1["Machine"] = "mkey:" + test::key_hex(0xbb, 1);
  json p2 = test::peer_json(2);
  p2["AllowedIPs"] = json::array();  // sent empty: stays empty, not the addresses
  p2.erase("Online");
  p2.erase("LastSeen");
  p2["Endpoints"] = {"[2001:db8::2]:41641", "192.0.2.2:41641"};
  json p3 = test::peer_json(3);
  p3.erase("Hostinfo");
  p3["IsWireGuardOnly"] = true;
  p3["IsJailed"] = true;
  json resp{
      {"Node", self},
      {"Peers", {p1, p2, p3}},
      {"DERPMap",
       {{"HomeParams", {{"RegionScore", {{"1", 0.5}, {"999", 1.25}}}}},
        {"Regions",
         {{"999",
           {{"RegionID", 999},
            {"RegionCode", "test"},
            {"RegionName", "Test Region"},
            {"Latitude", 52.5},
            {"Nodes",
             {{{"Name", "999a"}, {"RegionID", 999}, {"HostName", "derp.test"}, {"IPv4", "198.18.40.2"},
               {"IPv6", "none"}, {"STUNPort", 3478}, {"DERPPort", -1}, {"InsecureForTests", true},
               {"CanPort80", true}}}}}}}},
        {"omitDefaultRegions", true}}},
      {"DNSConfig",
       {{"Resolvers", {{{"Addr", "198.18.40.2"}}}},
        {"Routes", {{"tailnet.test.", json::array()}, {"corp.example.", {{{"Addr", "10.0.0.53:53"}}}}}},
        {"FallbackResolvers", {{{"Addr", "9.9.9.9"}, {"UseWithExitNode", true}}}},
        {"Domains", {"tailnet.test"}},
        {"Proxied", true},
        {"Nameservers", {"100.100.100.100"}},
        {"CertDomains", {"self.tailnet.test"}},
        {"ExtraRecords", {{{"Name", "extra.tailnet.test"}, {"Value", "100.64.0.50"}},
                          {{"Name", "txt.tailnet.test"}, {"Type", "AAAA"}, {"Value", "fd7a::1"}}}},
        {"ExitNodeFilteredSet", {".example"}}}},
      {"Domain", "tailnet.test"},
      {"CollectServices", true},
      {"Health", {"something is off"}},
      {"DomainDataPlaneAuditLogID", "audit"},
      {"PacketFilters",
       {{"base",
         {{{"SrcIPs", {"100.64.0.0/10", "*"}},
           {"DstPorts", {{{"IP", "*"}, {"Ports", {{"First", 0}, {"Last", 65535}}}},
                         {{"IP", "100.64.0.200"}, {"Ports", {{"First", 22}, {"Last", 22}}}}}},
           {"IPProto", {6, 17}}}}},
        {"grants",
         {{{"SrcIPs", {"100.64.0.1"}},
           {"DstPorts", json::array()},
           {"CapGrant", {{{"Dsts", {"100.64.0.200/32"}}, {"Caps", {"cap:x"}}, {"CapMap", {{"cap:y", json::array({1})}}}}}}}}}}},
      {"UserProfiles", {{{"ID", 1}, {"LoginName", "alice"}, {"DisplayName", "Alice"}}, {{"ID", 2}}}},
  };
  netmap nm;
  const netmap_changes ch = nm.apply(test::parse_ok(resp));
  EXPECT_TRUE(ch.ok()) << ch.error;
  return nm;
}

TEST(NetmapCache, RecordedHeadscaleSessionsReadBackAsTheSameNetmap) {
  for (const char* name : {"alpha", "bravo", "charlie"}) {
    SCOPED_TRACE(name);
    netmap nm;
    for (const std::string& file : test::session(name)) {
      const netmap_changes ch = nm.apply(test::parse_ok(test::read_fixture(file)));
      ASSERT_TRUE(ch.ok()) << file << ": " << ch.error;
      // At every point of the session, not only the end.
      if (nm.started()) expect_round_trip(nm);
    }
    ASSERT_TRUE(nm.started());
  }
}

TEST(NetmapCache, EveryFieldReadsBack) {
  const netmap nm = rich_netmap();
  ASSERT_EQ(nm.peer_count(), 3u);
  ASSERT_TRUE(nm.peer_by_id(2)->allowed_ips.empty());
  ASSERT_TRUE(nm.peer_by_id(3)->is_jailed);
  ASSERT_EQ(nm.named_packet_filters().size(), 2u);
  expect_round_trip(nm);
  // The hand-made peer with a Hostinfo keeps its host name.
  const netmap_cache_load got = netmap_from_cache_json(netmap_to_cache_json(nm), nm.self()->key);
  ASSERT_TRUE(got.map);
  EXPECT_EQ(got.map->peer_by_id(1)->hostname, "node1");
  EXPECT_TRUE(got.map->peer_by_id(1)->has_hostinfo);
  EXPECT_FALSE(got.map->peer_by_id(3)->has_hostinfo);
}

TEST(NetmapCache, ATruncatedOrDamagedFileIsRefusedWithAMessage) {
  const netmap nm = rich_netmap();
  const public_key self_key = nm.self()->key;
  const std::string text = netmap_to_cache_json(nm);
  // Cut anywhere (a crash cannot leave this with state_store, but a full
  // disk under another writer or a hand edit can): refused, never a part.
  for (std::size_t cut = 0; cut + 1 < text.size(); cut += 1 + cut / 7) {
    const netmap_cache_load got = netmap_from_cache_json(std::string_view(text).substr(0, cut), self_key);
    ASSERT_EQ(got.result, netmap_cache_load::outcome::refused) << "cut at " << cut;
    EXPECT_FALSE(got.message.empty()) << "cut at " << cut;
    EXPECT_EQ(got.map, nullptr);
  }
  EXPECT_EQ(netmap_from_cache_json("", self_key).message, "MapResponse is not valid JSON");

  // Damage the parser catches names the field.
  json j = json::parse(text);
  j["Peers"][1]["Key"] = "nodekey:not-hex";
  netmap_cache_load got = netmap_from_cache_json(j.dump(), self_key);
  EXPECT_EQ(got.result, netmap_cache_load::outcome::refused);
  EXPECT_NE(got.message.find("Peers[1].Key: bad key"), std::string::npos) << got.message;

  j = json::parse(text);
  j["Node"]["Addresses"] = 7;
  got = netmap_from_cache_json(j.dump(), self_key);
  EXPECT_EQ(got.result, netmap_cache_load::outcome::refused);
  EXPECT_NE(got.message.find("Node.Addresses"), std::string::npos) << got.message;

  // Without the self node it is no netmap.
  j = json::parse(text);
  j.erase("Node");
  got = netmap_from_cache_json(j.dump(), self_key);
  EXPECT_EQ(got.result, netmap_cache_load::outcome::refused);
  EXPECT_EQ(got.message, "no self node (Node) in it");

  // Random bytes over the middle: refused, or (when they fall inside a
  // string) a netmap that still writes back as it reads.
  for (unsigned seed = 1; seed <= 200; ++seed) {
    std::string bad = text;
    const std::size_t at = (seed * 7919u) % bad.size();
    bad[at] = static_cast<char>(seed * 31u);
    const netmap_cache_load r = netmap_from_cache_json(bad, self_key);
    if (r.result == netmap_cache_load::outcome::loaded) {
      const std::string again = netmap_to_cache_json(*r.map);
      const netmap_cache_load r2 = netmap_from_cache_json(again, self_key);
      ASSERT_EQ(r2.result, netmap_cache_load::outcome::loaded) << r2.message;
      EXPECT_EQ(netmap_to_cache_json(*r2.map), again);
    } else {
      EXPECT_FALSE(r.message.empty());
    }
  }
}

TEST(NetmapCache, AFileKeptForAnotherNodeKeyIsIgnored) {
  const netmap nm = rich_netmap();
  const std::string text = netmap_to_cache_json(nm);
  const auto other = parse_prefixed_key("nodekey:" + test::key_hex(0xee, 9), node_key_prefix);
  ASSERT_TRUE(other);
  const netmap_cache_load got = netmap_from_cache_json(text, *other);
  EXPECT_EQ(got.result, netmap_cache_load::outcome::other_node);
  EXPECT_EQ(got.map, nullptr);
  EXPECT_NE(got.message.find(format_prefixed_key(nm.self()->key, node_key_prefix)), std::string::npos) << got.message;
  EXPECT_NE(got.message.find("not ours"), std::string::npos) << got.message;
}

}  // namespace
}  // namespace lopower::tailnet
