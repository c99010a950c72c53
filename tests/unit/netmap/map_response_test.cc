// Parsing MapResponses: every recorded headscale response, checked field by
// field against its own JSON; hand-made edge cases; malformed input.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "control/tailnet/netmap/map_response.h"
#include "netmap_test_util.h"

namespace lopower::tailnet {
namespace {

using test::json;
using test::parse_ok;

template <class T>
std::vector<std::string> strings(const std::vector<T>& v) {
  std::vector<std::string> out;
  for (const auto& x : v) out.push_back(x.to_string());
  return out;
}

std::vector<std::string> json_strings(const json& j, const char* name) {
  if (!j.contains(name) || j[name].is_null()) return {};
  return j[name].get<std::vector<std::string>>();
}

// Every field we read, against the JSON it came from.
void expect_node_matches(const node& n, const json& j) {
  SCOPED_TRACE("node " + j["Name"].get<std::string>());
  EXPECT_EQ(n.id, j["ID"].get<node_id>());
  EXPECT_EQ(n.stable_id, j["StableID"].get<std::string>());
  EXPECT_EQ(n.name, j["Name"].get<std::string>());
  EXPECT_EQ(n.user, j.value("User", std::int64_t{0}));
  EXPECT_EQ(format_prefixed_key(n.key, node_key_prefix), j["Key"].get<std::string>());
  if (j.contains("DiscoKey")) {
    EXPECT_EQ(format_prefixed_key(n.disco_key, disco_key_prefix), j["DiscoKey"].get<std::string>());
  } else {
    EXPECT_TRUE(n.disco_key.is_zero());
  }
  if (j.contains("Machine")) {
    EXPECT_EQ(format_prefixed_key(n.machine, machine_key_prefix), j["Machine"]);
  }
  EXPECT_EQ(strings(n.addresses), json_strings(j, "Addresses"));
  EXPECT_EQ(strings(n.allowed_ips), json_strings(j, j.contains("AllowedIPs") ? "AllowedIPs" : "Addresses"));
  EXPECT_EQ(strings(n.endpoints), json_strings(j, "Endpoints"));
  EXPECT_EQ(n.home_derp, j.value("HomeDERP", 0));
  EXPECT_EQ(n.has_hostinfo, j.contains("Hostinfo"));
  if (j.contains("Hostinfo")) {
    EXPECT_EQ(n.hostname, j["Hostinfo"].value("Hostname", ""));
  }
  EXPECT_EQ(n.cap, j.value("Cap", std::int64_t{0}));
  EXPECT_EQ(n.tags, json_strings(j, "Tags"));
  EXPECT_EQ(strings(n.primary_routes), json_strings(j, "PrimaryRoutes"));
  EXPECT_EQ(n.machine_authorized, j.value("MachineAuthorized", false));
  EXPECT_EQ(n.expired, j.value("Expired", false));
  if (j.contains("Online")) {
    EXPECT_EQ(n.online, std::optional<bool>(j["Online"].get<bool>()));
  } else {
    EXPECT_FALSE(n.online.has_value());
  }
  if (j.contains("LastSeen")) {
    ASSERT_TRUE(n.last_seen.has_value());
    EXPECT_EQ(*n.last_seen, *timestamp::parse(j["LastSeen"].get<std::string>()));
  } else {
    EXPECT_FALSE(n.last_seen.has_value());
  }
  if (j.contains("KeyExpiry")) {
    EXPECT_EQ(n.key_expiry, *timestamp::parse(j["KeyExpiry"].get<std::string>()));
  } else {
    EXPECT_TRUE(n.key_expiry.is_zero());
  }
  if (j.contains("Created")) {
    EXPECT_EQ(n.created, *timestamp::parse(j["Created"].get<std::string>()));
  }
  std::vector<std::string> caps;
  if (j.contains("CapMap")) {
    for (const auto& [k, v] : j["CapMap"].items()) caps.push_back(k);
  }
  std::vector<std::string> ours;
  for (const auto& [k, v] : n.capmap) ours.push_back(k);
  EXPECT_EQ(ours, caps);
}

TEST(MapResponseFixtures, EveryRecordedResponseParsesAndMatchesItsJson) {
  const json m = test::manifest();
  std::size_t count = 0;
  for (const auto& [name, files] : m["sessions"].items()) {
    for (const auto& file : files) {
      SCOPED_TRACE(file.get<std::string>());
      const std::string text = test::read_fixture(file.get<std::string>());
      const json j = json::parse(text);
      const auto r = parse_map_response(text);
      ASSERT_TRUE(r) << r.error;
      const map_response& resp = *r.response;
      ++count;
      EXPECT_EQ(resp.keep_alive, j.value("KeepAlive", false));
      EXPECT_EQ(resp.self.has_value(), j.contains("Node"));
      if (resp.self) expect_node_matches(*resp.self, j["Node"]);
      ASSERT_EQ(resp.peers.size(), j.value("Peers", json::array()).size());
      for (std::size_t i = 0; i < resp.peers.size(); ++i) expect_node_matches(resp.peers[i], j["Peers"][i]);
      ASSERT_EQ(resp.peers_changed.size(), j.value("PeersChanged", json::array()).size());
      for (std::size_t i = 0; i < resp.peers_changed.size(); ++i) {
        expect_node_matches(resp.peers_changed[i], j["PeersChanged"][i]);
      }
      EXPECT_EQ(resp.peers_removed, j.value("PeersRemoved", std::vector<node_id>{}));
      ASSERT_EQ(resp.peers_changed_patch.size(), j.value("PeersChangedPatch", json::array()).size());
      EXPECT_EQ(resp.derp.has_value(), j.contains("DERPMap"));
      EXPECT_EQ(resp.dns.has_value(), j.contains("DNSConfig"));
      EXPECT_EQ(resp.packet_filters.has_value(), j.contains("PacketFilters"));
      EXPECT_EQ(resp.domain, j.value("Domain", ""));
      EXPECT_EQ(resp.control_time.has_value(), j.contains("ControlTime"));
      if (resp.control_time) {
        EXPECT_EQ(resp.control_time->to_string(), j["ControlTime"].get<std::string>());
      }
      EXPECT_EQ(resp.user_profiles.size(), j.value("UserProfiles", json::array()).size());
    }
  }
  EXPECT_GE(count, 40u);
}

TEST(MapResponseFixtures, FullMapFromHeadscale) {
  const std::string file = test::manifest()["examples"]["full"];
  const json j = json::parse(test::read_fixture(file));
  const map_response r = parse_ok(test::read_fixture(file));

  ASSERT_TRUE(r.self);
  EXPECT_TRUE(r.self->has_cap("https://tailscale.com/cap/ssh"));
  EXPECT_EQ(r.self->tags, std::vector<std::string>{"tag:router"});
  ASSERT_GE(r.peers.size(), 2u);
  for (const auto& p : r.peers) {
    EXPECT_EQ(p.home_derp, 999);
    EXPECT_EQ(p.online, std::optional<bool>(true));
    EXPECT_EQ(p.addresses.size(), 2u);
  }

  // The embedded DERP region, as configured by record_fixtures.sh.
  ASSERT_TRUE(r.derp && r.derp->regions);
  ASSERT_EQ(r.derp->regions->count(999), 1u);
  const derp_region& region = r.derp->regions->at(999);
  EXPECT_EQ(region.region_id, 999);
  EXPECT_EQ(region.region_code, "headscale");
  ASSERT_EQ(region.nodes.size(), 1u);
  const json& jn = j["DERPMap"]["Regions"]["999"]["Nodes"][0];
  EXPECT_EQ(region.nodes[0].host_name, "127.0.0.1");
  EXPECT_EQ(region.nodes[0].ipv4, "127.0.0.1");
  EXPECT_EQ(region.nodes[0].derp_port, jn["DERPPort"].get<int>());
  EXPECT_EQ(region.nodes[0].stun_port, jn["STUNPort"].get<int>());
  EXPECT_FALSE(r.derp->home_params.has_value());

  // MagicDNS as configured.
  ASSERT_TRUE(r.dns);
  EXPECT_TRUE(r.dns->proxied);
  ASSERT_EQ(r.dns->resolvers.size(), 2u);
  EXPECT_EQ(r.dns->resolvers[0].addr, "198.18.0.53");
  EXPECT_EQ(r.dns->resolvers[1].addr, "fd00:198:18::53");
  ASSERT_EQ(r.dns->routes.count("corp.example"), 1u);
  EXPECT_EQ(r.dns->routes.at("corp.example").at(0).addr, "198.18.0.54");
  EXPECT_TRUE(r.dns->routes.at("64.100.in-addr.arpa").empty());
  EXPECT_EQ(r.dns->routes.size(), j["DNSConfig"]["Routes"].size());
  EXPECT_EQ(r.dns->domains, (std::vector<std::string>{"tailnet.example", "search.example"}));
  ASSERT_EQ(r.dns->extra_records.size(), 1u);
  EXPECT_EQ(r.dns->extra_records[0], (dns_record{"grafana.tailnet.example", "A", "100.64.0.3"}));

  // The policy's rules, reduced by headscale for this node.
  ASSERT_TRUE(r.packet_filters);
  ASSERT_EQ(r.packet_filters->count("base"), 1u);
  const auto& base = r.packet_filters->at("base");
  ASSERT_TRUE(base.has_value());
  ASSERT_EQ(base->size(), j["PacketFilters"]["base"].size());
  for (std::size_t i = 0; i < base->size(); ++i) {
    const json& jr = j["PacketFilters"]["base"][i];
    EXPECT_EQ((*base)[i].src_ips, jr["SrcIPs"].get<std::vector<std::string>>());
    ASSERT_EQ((*base)[i].dst_ports.size(), jr["DstPorts"].size());
    for (std::size_t k = 0; k < (*base)[i].dst_ports.size(); ++k) {
      EXPECT_EQ((*base)[i].dst_ports[k].ip, jr["DstPorts"][k]["IP"]);
      EXPECT_EQ((*base)[i].dst_ports[k].ports.first, jr["DstPorts"][k]["Ports"]["First"]);
      EXPECT_EQ((*base)[i].dst_ports[k].ports.last, jr["DstPorts"][k]["Ports"]["Last"]);
    }
    EXPECT_EQ((*base)[i].ip_proto, jr.value("IPProto", std::vector<int>{}));
  }
  EXPECT_EQ(r.domain, j["Domain"].get<std::string>());
  ASSERT_FALSE(r.user_profiles.empty());
}

TEST(MapResponseFixtures, DeltaKinds) {
  const json ex = test::manifest()["examples"];
  const auto keepalive = parse_ok(test::read_fixture(ex["keepalive"]));
  EXPECT_TRUE(keepalive.keep_alive);
  EXPECT_FALSE(keepalive.self);

  const auto patch = parse_ok(test::read_fixture(ex["patch"]));
  ASSERT_FALSE(patch.peers_changed_patch.empty());
  EXPECT_TRUE(patch.peers_changed_patch[0].online.has_value());

  const auto removed = parse_ok(test::read_fixture(ex["removed"]));
  EXPECT_FALSE(removed.peers_removed.empty());

  const auto join = parse_ok(test::read_fixture(ex["join"]));
  EXPECT_FALSE(join.peers_changed.empty());
  EXPECT_TRUE(join.peers.empty());

  const auto empty = parse_ok(test::read_fixture(ex["empty"]));
  EXPECT_FALSE(empty.keep_alive);
  EXPECT_TRUE(empty.control_time.has_value());
  EXPECT_FALSE(empty.self || empty.derp || empty.dns || empty.packet_filters);
}

// ---------------------------------------------------------------------------
// Hand-made: the field rules.

TEST(MapResponseParse, AllowedIPsNullMeansAddressesButEmptyStaysEmpty) {
  json p = test::peer_json(5);
  const auto absent = parse_ok(json{{"Peers", {p}}});
  EXPECT_EQ(absent.peers[0].allowed_ips, absent.peers[0].addresses);

  p["AllowedIPs"] = nullptr;
  EXPECT_EQ(parse_ok(json{{"Peers", {p}}}).peers[0].allowed_ips.size(), 2u);

  p["AllowedIPs"] = json::array();
  EXPECT_TRUE(parse_ok(json{{"Peers", {p}}}).peers[0].allowed_ips.empty());

  p["AllowedIPs"] = {"100.64.0.5/32", "10.0.0.0/8"};
  EXPECT_EQ(strings(parse_ok(json{{"Peers", {p}}}).peers[0].allowed_ips),
            (std::vector<std::string>{"100.64.0.5/32", "10.0.0.0/8"}));
}

TEST(MapResponseParse, LegacyDerpStringFillsHomeDerp) {
  json p = test::peer_json(5);
  p.erase("HomeDERP");
  p["DERP"] = "127.3.3.40:7";
  EXPECT_EQ(parse_ok(json{{"Peers", {p}}}).peers[0].home_derp, 7);
  // HomeDERP wins when both are there.
  p["HomeDERP"] = 3;
  EXPECT_EQ(parse_ok(json{{"Peers", {p}}}).peers[0].home_derp, 3);
  // Anything but the magic address is ignored.
  p.erase("HomeDERP");
  p["DERP"] = "10.0.0.1:7";
  EXPECT_EQ(parse_ok(json{{"Peers", {p}}}).peers[0].home_derp, 0);
  p["DERP"] = "127.3.3.40:x";
  EXPECT_EQ(parse_ok(json{{"Peers", {p}}}).peers[0].home_derp, 0);
}

TEST(MapResponseParse, UnknownFieldsAndNullsAreIgnored) {
  json p = test::peer_json(5);
  p["SomethingNew"] = {{"deep", {1, 2, 3}}};
  p["Tags"] = nullptr;
  p["Online"] = nullptr;
  const auto r = parse_ok(json{{"Peers", {p}}, {"FutureField", "x"}, {"DNSConfig", nullptr}, {"DERPMap", nullptr}});
  EXPECT_TRUE(r.peers[0].tags.empty());
  EXPECT_FALSE(r.peers[0].online.has_value());
  EXPECT_FALSE(r.dns.has_value());
  EXPECT_FALSE(r.derp.has_value());
}

TEST(MapResponseParse, BareNullIsAnEmptyResponse) {
  const auto r = parse_ok(std::string("null"));
  EXPECT_FALSE(r.keep_alive || r.self || !r.peers.empty());
}

TEST(MapResponseParse, PeerChangeFields) {
  const json pc = {{"NodeID", 7},
                   {"DERPRegion", 2},
                   {"Cap", 120},
                   {"CapMap", {{"cap-a", {1, "x"}}}},
                   {"Endpoints", {"[2001:db8::1]:41641", "192.0.2.9:1"}},
                   {"Key", test::node_key(9)},
                   {"KeySignature", "c2ln"},
                   {"DiscoKey", test::disco_key(9)},
                   {"Online", false},
                   {"LastSeen", "2026-03-04T05:06:07.5+01:00"},
                   {"KeyExpiry", "0001-01-01T00:00:00Z"}};
  const auto r = parse_ok(json{{"PeersChangedPatch", {pc, {{"NodeID", 8}}}}});
  ASSERT_EQ(r.peers_changed_patch.size(), 2u);
  const peer_change& c = r.peers_changed_patch[0];
  EXPECT_EQ(c.id, 7);
  EXPECT_EQ(c.derp_region, 2);
  EXPECT_EQ(c.cap, 120);
  ASSERT_TRUE(c.capmap);
  EXPECT_EQ(c.capmap->at("cap-a"), (std::vector<std::string>{"1", "\"x\""}));
  ASSERT_TRUE(c.endpoints);
  EXPECT_EQ(strings(*c.endpoints), (std::vector<std::string>{"[2001:db8::1]:41641", "192.0.2.9:1"}));
  EXPECT_EQ(format_prefixed_key(*c.key, node_key_prefix), test::node_key(9));
  EXPECT_EQ(c.key_signature, std::optional<std::string>("c2ln"));
  EXPECT_EQ(format_prefixed_key(*c.disco_key, disco_key_prefix), test::disco_key(9));
  EXPECT_EQ(c.online, std::optional<bool>(false));
  EXPECT_EQ(c.last_seen->to_string(), "2026-03-04T04:06:07.5Z");
  ASSERT_TRUE(c.key_expiry);
  EXPECT_TRUE(c.key_expiry->is_zero());
  // Absent fields stay "unchanged".
  const peer_change& d = r.peers_changed_patch[1];
  EXPECT_EQ(d, (peer_change{8, 0, 0, {}, {}, {}, {}, {}, {}, {}, {}}));
  // An empty endpoint list is a change to none.
  const auto e = parse_ok(json{{"PeersChangedPatch", {{{"NodeID", 1}, {"Endpoints", json::array()}}}}});
  ASSERT_TRUE(e.peers_changed_patch[0].endpoints);
  EXPECT_TRUE(e.peers_changed_patch[0].endpoints->empty());
}

TEST(MapResponseParse, DerpMapDetails) {
  const json dm = {{"HomeParams", {{"RegionScore", {{"1", 0.5}, {"900", 2}}}}},
                   {"Regions",
                    {{"1",
                      {{"RegionID", 1},
                       {"RegionCode", "r1"},
                       {"Avoid", true},
                       {"Nodes",
                        {{{"Name", "1a"},
                          {"RegionID", 1},
                          {"HostName", "derp1.example"},
                          {"CertName", "cert.example"},
                          {"IPv4", "198.18.1.1"},
                          {"IPv6", "fd00:198:18::1"},
                          {"STUNPort", -1},
                          {"DERPPort", 8443},
                          {"InsecureForTests", true},
                          {"STUNOnly", true},
                          {"CanPort80", true}}}}}},
                     {"2", nullptr}}},
                   {"omitDefaultRegions", true}};
  const auto r = parse_ok(json{{"DERPMap", dm}});
  ASSERT_TRUE(r.derp && r.derp->regions && r.derp->home_params && r.derp->home_params->region_score);
  EXPECT_EQ(r.derp->home_params->region_score->at(900), 2.0);
  EXPECT_TRUE(r.derp->omit_default_regions);
  EXPECT_EQ(r.derp->regions->size(), 1u);  // the null region is dropped
  const derp_node& n = r.derp->regions->at(1).nodes.at(0);
  EXPECT_EQ(n, (derp_node{"1a", 1, "derp1.example", "cert.example", "198.18.1.1", "fd00:198:18::1", -1, true, 8443, true,
                          "", true}));
  EXPECT_TRUE(r.derp->regions->at(1).avoid);

  // No Regions: "keep the old ones" (distinct from an empty map).
  EXPECT_FALSE(parse_ok(json{{"DERPMap", json::object()}}).derp->regions.has_value());
  EXPECT_TRUE(parse_ok(json{{"DERPMap", {{"Regions", json::object()}}}}).derp->regions->empty());
}

TEST(MapResponseParse, PacketFilterForms) {
  const json rule = {{"SrcIPs", {"*"}},
                     {"DstPorts", {{{"IP", "100.64.0.1"}, {"Ports", {{"First", 22}, {"Last", 22}}}}}},
                     {"IPProto", {6}},
                     {"CapGrant", {{{"Dsts", {"100.64.0.1/32"}}, {"CapMap", {{"cap-x", {{{"a", 1}}}}}}}}}};
  const auto r = parse_ok(json{{"PacketFilter", {rule}},
                               {"PacketFilters", {{"*", nullptr}, {"a", {rule}}, {"b", json::array()}, {"c", nullptr}}}});
  ASSERT_TRUE(r.packet_filter);
  ASSERT_EQ(r.packet_filter->size(), 1u);
  EXPECT_EQ(r.packet_filter->at(0).cap_grants.at(0).capmap.at("cap-x").at(0), "{\"a\":1}");
  ASSERT_TRUE(r.packet_filters);
  EXPECT_FALSE(r.packet_filters->at("*").has_value());
  EXPECT_EQ(r.packet_filters->at("a")->size(), 1u);
  ASSERT_TRUE(r.packet_filters->at("b").has_value());
  EXPECT_TRUE(r.packet_filters->at("b")->empty());
  EXPECT_FALSE(r.packet_filters->at("c").has_value());
  // [] is "no rules" (deny all), distinct from absent.
  EXPECT_TRUE(parse_ok(json{{"PacketFilter", json::array()}}).packet_filter.has_value());
  EXPECT_FALSE(parse_ok(json{{"PacketFilter", nullptr}}).packet_filter.has_value());
}

TEST(MapResponseParse, OtherTopLevelFields) {
  const auto r = parse_ok(json{{"KeepAlive", true},
                               {"ControlTime", "2026-11-22T04:18:33.915253812Z"},
                               {"PingRequest", {{"URL", "http://127.0.0.1/ping"}, {"Types", "disco"}, {"IP", "100.64.0.2"}}},
                               {"CollectServices", false},
                               {"Health", json::array()},
                               {"Seq", 12},
                               {"MapSessionHandle", "h"},
                               {"PeerSeenChange", {{"5", true}, {"6", false}}},
                               {"OnlineChange", {{"7", true}}},
                               {"PopBrowserURL", "http://127.0.0.1/x"}});
  EXPECT_TRUE(r.keep_alive);
  EXPECT_EQ(r.control_time->to_string(), "2026-11-22T04:18:33.915253812Z");
  EXPECT_EQ(r.ping->url, "http://127.0.0.1/ping");
  EXPECT_EQ(r.ping->ip->to_string(), "100.64.0.2");
  EXPECT_EQ(r.collect_services, std::optional<bool>(false));
  ASSERT_TRUE(r.health);
  EXPECT_TRUE(r.health->empty());
  EXPECT_EQ(r.seq, 12);
  EXPECT_EQ(r.peer_seen_change, (std::map<node_id, bool>{{5, true}, {6, false}}));
  EXPECT_EQ(r.online_change, (std::map<node_id, bool>{{7, true}}));
}

TEST(MapResponseParse, KeysInEitherCaseButWithTheirPrefix) {
  std::string upper = test::key_hex(0xab, 1);
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_TRUE(parse_prefixed_key("nodekey:" + upper, node_key_prefix));
  EXPECT_FALSE(parse_prefixed_key("discokey:" + upper, node_key_prefix));
  EXPECT_FALSE(parse_prefixed_key(upper, node_key_prefix));
  EXPECT_FALSE(parse_prefixed_key("nodekey:" + upper.substr(1), node_key_prefix));
  EXPECT_FALSE(parse_prefixed_key("nodekey:" + upper + "0", node_key_prefix));
  EXPECT_FALSE(parse_prefixed_key("nodekey:" + upper.substr(1) + "g", node_key_prefix));
}

TEST(MapResponseParse, Timestamps) {
  EXPECT_TRUE(timestamp::parse("0001-01-01T00:00:00Z")->is_zero());
  EXPECT_EQ(timestamp::parse("1970-01-01T00:00:00Z")->unix_seconds, 0);
  EXPECT_EQ(timestamp::parse("2026-11-22T04:18:33.9Z")->nanos, 900000000);
  EXPECT_EQ(*timestamp::parse("2026-11-22T05:18:33+01:00"), *timestamp::parse("2026-11-22T04:18:33Z"));
  EXPECT_EQ(timestamp::parse("2024-02-29T00:00:00Z")->to_string(), "2024-02-29T00:00:00Z");
  EXPECT_EQ(timestamp::parse("0001-01-01T00:00:00Z")->to_string(), "0001-01-01T00:00:00Z");
  EXPECT_EQ(timestamp::from_unix(1'700'000'000, 5000).to_string(), "2023-11-14T22:13:20.000005Z");
  for (const char* bad : {"", "2026-11-22", "2026-11-22T04:18:33", "2026-13-01T00:00:00Z", "2023-02-29T00:00:00Z",
                          "2026-11-22T24:00:00Z", "2026-11-22T04:18:33.Z", "2026-11-22T04:18:33+0100",
                          "2026-11-22 04:18:33Z", "2026-11-22T04:18:33Zjunk", "+026-11-22T04:18:33Z"}) {
    EXPECT_FALSE(timestamp::parse(bad)) << bad;
  }
}

TEST(MapResponseParse, Endpoints) {
  EXPECT_EQ(endpoint::parse("192.0.2.1:41641")->to_string(), "192.0.2.1:41641");
  EXPECT_EQ(endpoint::parse("[2001:db8::1]:1")->to_string(), "[2001:db8::1]:1");
  for (const char* bad : {"192.0.2.1", "2001:db8::1:5", "[192.0.2.1]:5", "192.0.2.1:65536", "192.0.2.1:-1",
                          "192.0.2.1:", ":5", "[2001:db8::1:5"}) {
    EXPECT_FALSE(endpoint::parse(bad)) << bad;
  }
  // Go takes "" as a zero endpoint and a zoned one is unusable: both left
  // out, neither an error.
  json p = test::peer_json(1);
  p["Endpoints"] = {"", "[fe80::1%eth0]:5", "192.0.2.1:5"};
  EXPECT_EQ(parse_ok(json{{"Peers", {p}}}).peers[0].endpoints.size(), 1u);
}

// ---------------------------------------------------------------------------
// Rejected input: each with a reason, never a partial response.

struct bad_case {
  const char* what;
  json response;
  const char* reason_part;
};

TEST(MapResponseParse, WrongTypesAreErrorsWithAPath) {
  json bad_key = test::peer_json(3);
  bad_key["Key"] = "nodekey:zz";
  json bad_addr = test::peer_json(3);
  bad_addr["Addresses"] = {"100.64.0.3/33"};
  json leading_zero = test::peer_json(3);
  leading_zero["Addresses"] = {"100.64.0.3/032"};
  json float_id = test::peer_json(3);
  float_id["ID"] = 3.5;
  json string_online = test::peer_json(3);
  string_online["Online"] = "true";
  json bad_time = test::peer_json(3);
  bad_time["LastSeen"] = "yesterday";
  json bad_endpoint = test::peer_json(3);
  bad_endpoint["Endpoints"] = {"nonsense"};
  json disco_as_node = test::peer_json(3);
  disco_as_node["DiscoKey"] = test::node_key(3);
  const std::vector<bad_case> cases = {
      {"array at top", json::array(), "not an object"},
      {"peers not array", {{"Peers", {{"a", 1}}}}, "Peers"},
      {"null peer", {{"Peers", {nullptr}}}, "Peers[0]"},
      {"bad key", {{"Peers", {test::peer_json(1), bad_key}}}, "Peers[1].Key"},
      {"bad prefix", {{"PeersChanged", {bad_addr}}}, "PeersChanged[0].Addresses[0]"},
      {"leading zero bits", {{"PeersChanged", {leading_zero}}}, "Addresses"},
      {"float id", {{"Peers", {float_id}}}, "Peers[0].ID"},
      {"string bool", {{"Peers", {string_online}}}, "Online"},
      {"bad time", {{"Node", bad_time}}, "Node.LastSeen"},
      {"bad endpoint", {{"Node", bad_endpoint}}, "Node.Endpoints[0]"},
      {"wrong key kind", {{"Node", disco_as_node}}, "Node.DiscoKey"},
      {"port out of range",
       {{"PacketFilter", {{{"SrcIPs", {"*"}}, {"DstPorts", {{{"IP", "*"}, {"Ports", {{"First", 0}, {"Last", 65536}}}}}}}}}},
       "PacketFilter[0].DstPorts[0].Ports.Last"},
      {"region key", {{"DERPMap", {{"Regions", {{"one", json::object()}}}}}}, "DERPMap.Regions"},
      {"removed not ints", {{"PeersRemoved", {"1"}}}, "PeersRemoved[0]"},
      {"id out of range", {{"PeersRemoved", {18446744073709551615ULL}}}, "PeersRemoved[0]"},
      {"keepalive string", {{"KeepAlive", "yes"}}, "KeepAlive"},
      {"collect services string", {{"CollectServices", "true"}}, "CollectServices"},
      {"dns routes", {{"DNSConfig", {{"Routes", {{"a.example", {{{"Addr", 5}}}}}}}}}, "DNSConfig.Routes.a.example[0].Addr"},
      {"seen change", {{"PeerSeenChange", {{"x", true}}}}, "PeerSeenChange"},
      {"filters not object", {{"PacketFilters", json::array()}}, "PacketFilters"},
  };
  for (const auto& c : cases) {
    const auto r = parse_map_response(c.response.dump());
    EXPECT_FALSE(r) << c.what;
    EXPECT_FALSE(r.response.has_value()) << c.what;
    EXPECT_NE(r.error.find(c.reason_part), std::string::npos) << c.what << ": " << r.error;
  }
}

TEST(MapResponseParse, MalformedJsonIsRejected) {
  for (const char* bad : {"", "{", "{\"Peers\":[}", "{\"KeepAlive\":true} junk", "{'KeepAlive':true}",
                          "{\"KeepAlive\":tru}", "{\"a\":\"\xff\xfe\"}", "{\"a\":1e999}", "/* c */ {}"}) {
    const auto r = parse_map_response(bad);
    EXPECT_FALSE(r) << bad;
    EXPECT_FALSE(r.error.empty());
  }
}

TEST(MapResponseParse, DepthAndSizeAreBounded) {
  // Nesting far beyond tailcfg's is refused before the parser recurses.
  std::string deep(100000, '[');
  deep += std::string(100000, ']');
  auto r = parse_map_response("{\"X\":" + deep + "}");
  EXPECT_FALSE(r);
  EXPECT_NE(r.error.find("deeper"), std::string::npos);
  // Brackets inside strings do not count.
  EXPECT_TRUE(parse_map_response("{\"X\":\"" + std::string(1000, '[') + "\"}"));
  // Unknown but shallow nesting is fine.
  std::string ok_depth = "{\"X\":" + std::string(30, '[') + std::string(30, ']') + "}";
  EXPECT_TRUE(parse_map_response(ok_depth));

  parse_limits small;
  small.max_bytes = 100;
  r = parse_map_response(std::string(101, ' '), small);
  EXPECT_FALSE(r);
  EXPECT_EQ(r.error, "map response of 101 bytes exceeds the limit of 100");
  small.max_depth = 3;
  small.max_bytes = 1000;
  EXPECT_FALSE(parse_map_response("{\"a\":[[{}]]}", small));
  EXPECT_TRUE(parse_map_response("{\"a\":[[]]}", small));
}

}  // namespace
}  // namespace lopower::tailnet
