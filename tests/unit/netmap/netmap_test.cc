// Merging MapResponses: the recorded sessions replayed against tailscaled's
// own merged netmap at the same point, and each merge rule of tailscale's
// mapSession (control/controlclient/map.go) on hand-made deltas.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "control/tailnet/netmap/netmap.h"
#include "netmap_test_util.h"

namespace lopower::tailnet {
namespace {

using test::json;
using test::parse_ok;

const timestamp test_now = timestamp::from_unix(1'800'000'000);

// Dereferences what the test has checked is there (GCC's -Wnull-dereference
// cannot see through gtest's assertions).
template <class T>
const T& must(const T* p) {
  if (p == nullptr) throw std::runtime_error("unexpected null");
  return *p;
}

netmap_changes apply_json(netmap& nm, const json& j) { return nm.apply(parse_ok(j), test_now); }

// A started netmap: self plus peers 1..n.
netmap started_with(std::initializer_list<unsigned> ids) {
  netmap nm;
  json peers = json::array();
  for (unsigned id : ids) peers.push_back(test::peer_json(id));
  json r = {{"Node", test::self_json()}};
  if (!peers.empty()) r["Peers"] = peers;
  const auto ch = apply_json(nm, r);
  if (!ch.ok()) throw std::runtime_error(ch.error);
  return nm;
}

std::vector<node_id> ids_of(const netmap& nm) {
  std::vector<node_id> out;
  for (const auto& p : nm.peers()) out.push_back(p.id);
  return out;
}

// Nodes as tailscaled re-marshals them lose Hostinfo fields it does not
// know: compare everything but the Hostinfo digest.
node without_digest(node n) {
  n.hostinfo_digest = 0;
  return n;
}

// ---------------------------------------------------------------------------
// Replays of the recorded sessions, against tailscaled's netmap.

TEST(RecordedSessionsReplay, MatchTailscaledNetmapAtEachSnapshot) {
  const json m = test::manifest();
  ASSERT_GE(m["oracles"].size(), 3u);
  for (const auto& oracle : m["oracles"]) {
    const std::string session = oracle["session"];
    const std::size_t after = oracle["after"];
    SCOPED_TRACE(oracle["file"].get<std::string>());
    const auto files = test::session(session);
    ASSERT_LE(after, files.size());

    netmap nm;
    for (std::size_t i = 0; i < after; ++i) {
      const auto ch = nm.apply(parse_ok(test::read_fixture(files[i])));
      ASSERT_TRUE(ch.ok()) << files[i] << ": " << ch.error;
    }
    const json want = json::parse(test::read_fixture(oracle["file"]));

    // Peers, every field, parsed from tailscaled's JSON of its own netmap.
    const auto want_peers = parse_ok(json{{"Peers", want["Peers"]}}).peers;
    ASSERT_EQ(nm.peer_count(), want_peers.size());
    for (std::size_t i = 0; i < want_peers.size(); ++i) {
      SCOPED_TRACE("peer " + std::to_string(want_peers[i].id));
      const node& got = nm.peers()[i];
      const node& exp = want_peers[i];
      EXPECT_EQ(got.id, exp.id);
      EXPECT_EQ(got.key, exp.key);
      EXPECT_EQ(got.disco_key, exp.disco_key);
      EXPECT_EQ(got.endpoints, exp.endpoints);
      EXPECT_EQ(got.home_derp, exp.home_derp);
      EXPECT_EQ(got.online, exp.online);
      EXPECT_EQ(got.last_seen, exp.last_seen);
      EXPECT_EQ(got.allowed_ips, exp.allowed_ips);
      EXPECT_EQ(got.primary_routes, exp.primary_routes);
      EXPECT_EQ(without_digest(got), without_digest(exp));
      EXPECT_EQ(nm.peer_by_key(exp.key), &got);
      EXPECT_EQ(nm.peer_by_address(exp.addresses.at(0).address), &got);
    }

    // Self node.
    const auto want_self = parse_ok(json{{"Node", want["SelfNode"]}}).self;
    ASSERT_TRUE(nm.self());
    EXPECT_EQ(without_digest(must(nm.self())), without_digest(*want_self));

    // DERP map and DNS config.
    EXPECT_EQ(must(nm.derp()), *parse_ok(json{{"DERPMap", want["DERPMap"]}}).derp);
    EXPECT_EQ(nm.dns(), *parse_ok(json{{"DNSConfig", want["DNS"]}}).dns);
    EXPECT_EQ(nm.domain(), want["Domain"].get<std::string>());
    EXPECT_EQ(nm.collect_services(), want.value("CollectServices", false));

    // The rules as sent, and as compiled.
    const json rules = want.value("PacketFilterRules", json::array());
    EXPECT_EQ(nm.packet_filter_rules(),
              rules.empty() ? std::vector<filter_rule>{} : *parse_ok(json{{"PacketFilter", rules}}).packet_filter);
    EXPECT_TRUE(nm.packet_filter_error().empty()) << nm.packet_filter_error();
    const json compiled = want.value("PacketFilter", json::array());
    ASSERT_EQ(nm.packet_filter().size(), compiled.size());
    for (std::size_t i = 0; i < compiled.size(); ++i) {
      const filter_match& got = nm.packet_filter()[i];
      const json& exp = compiled[i];
      std::vector<std::string> srcs;
      for (const auto& p : got.srcs) srcs.push_back(p.to_string());
      EXPECT_EQ(srcs, exp["Srcs"].get<std::vector<std::string>>());
      std::vector<int> protos(got.ip_proto.begin(), got.ip_proto.end());
      EXPECT_EQ(protos, exp["IPProto"].get<std::vector<int>>());
      ASSERT_EQ(got.dsts.size(), exp["Dsts"].size());
      for (std::size_t k = 0; k < got.dsts.size(); ++k) {
        EXPECT_EQ(got.dsts[k].net.to_string(), exp["Dsts"][k]["Net"]);
        EXPECT_EQ(got.dsts[k].ports.first, exp["Dsts"][k]["Ports"]["First"]);
        EXPECT_EQ(got.dsts[k].ports.last, exp["Dsts"][k]["Ports"]["Last"]);
      }
      EXPECT_EQ(got.caps.size(), exp.value("Caps", json::array()).size());
      EXPECT_EQ(got.src_caps.size(), exp["SrcCaps"].is_null() ? 0u : exp["SrcCaps"].size());
    }
  }
}

TEST(RecordedSessionsReplay, JoinAndLeaveAsTheStoryGoes) {
  const auto files = test::session("alpha");
  netmap nm;
  std::vector<node_id> ever_added, ever_removed;
  std::size_t keepalives = 0;
  for (const auto& f : files) {
    const auto ch = nm.apply(parse_ok(test::read_fixture(f)));
    ASSERT_TRUE(ch.ok()) << f << ": " << ch.error;
    keepalives += ch.keep_alive;
    if (ch.keep_alive) {
      EXPECT_FALSE(ch.anything_changed());
    }
    ever_added.insert(ever_added.end(), ch.added.begin(), ch.added.end());
    ever_removed.insert(ever_removed.end(), ch.removed.begin(), ch.removed.end());
    EXPECT_TRUE(std::is_sorted(nm.peers().begin(), nm.peers().end(),
                               [](const node& a, const node& b) { return a.id < b.id; }));
  }
  // alpha saw bravo (2) and charlie (3) join, and bravo go.
  EXPECT_EQ(ever_added, (std::vector<node_id>{2, 3}));
  EXPECT_EQ(ever_removed, (std::vector<node_id>{2}));
  EXPECT_EQ(ids_of(nm), (std::vector<node_id>{3}));
  EXPECT_EQ(keepalives, 1u);
  ASSERT_TRUE(nm.self());
  EXPECT_EQ(must(nm.self()).id, 1);
  EXPECT_EQ(nm.peers()[0].primary_routes.size(), 1u);
  // The policy lets charlie (tag:router) reach alpha on 22 and 80-443 only.
  const auto alpha4 = must(nm.self()).addresses[0].address;
  const auto charlie4 = nm.peers()[0].addresses[0].address;
  EXPECT_TRUE(filter_allows(nm.packet_filter(), 6, charlie4, alpha4, 22));
  EXPECT_TRUE(filter_allows(nm.packet_filter(), 6, charlie4, alpha4, 443));
  EXPECT_FALSE(filter_allows(nm.packet_filter(), 6, charlie4, alpha4, 8080));
}

TEST(RecordedSessionsReplay, FullMapThenSameFullMapChangesNothing) {
  const std::string full = test::read_fixture(test::manifest()["examples"]["full"]);
  netmap nm;
  auto ch = nm.apply(parse_ok(full));
  ASSERT_TRUE(ch.ok());
  EXPECT_TRUE(ch.full_peer_list);
  EXPECT_EQ(ch.added.size(), nm.peer_count());
  EXPECT_TRUE(ch.self_changed && ch.derp_map_changed && ch.dns_changed && ch.packet_filter_changed);
  ch = nm.apply(parse_ok(full));
  EXPECT_TRUE(ch.ok());
  EXPECT_FALSE(ch.anything_changed());
}

// ---------------------------------------------------------------------------
// Session rules.

TEST(NetmapMerge, KeepAliveChangesNothingEvenWithOtherFields) {
  netmap nm = started_with({1, 2});
  const auto ch = apply_json(nm, {{"KeepAlive", true}, {"PeersRemoved", {1}}, {"Domain", "other"}});
  EXPECT_TRUE(ch.keep_alive);
  EXPECT_FALSE(ch.anything_changed());
  EXPECT_EQ(ids_of(nm), (std::vector<node_id>{1, 2}));
  EXPECT_EQ(nm.domain(), "");
}

TEST(NetmapMerge, FirstResponseMustCarryNode) {
  netmap nm;
  EXPECT_TRUE(apply_json(nm, {{"KeepAlive", true}}).ok());  // keepalives may come first
  const auto ch = apply_json(nm, {{"Peers", {test::peer_json(1)}}});
  EXPECT_FALSE(ch.ok());
  EXPECT_EQ(nm.peer_count(), 0u);
  EXPECT_FALSE(nm.started());
  EXPECT_TRUE(apply_json(nm, {{"Node", test::self_json()}}).ok());
  EXPECT_TRUE(nm.started());
  // After that, Node may be left out.
  EXPECT_TRUE(apply_json(nm, {{"Peers", {test::peer_json(1)}}}).ok());
}

TEST(NetmapMerge, SelfNodeReplacedAndCapabilitiesJoinCapMap) {
  netmap nm = started_with({});
  json self = test::self_json();
  self["Capabilities"] = {"old-cap"};
  self["Name"] = "renamed.tailnet.example.";
  const auto ch = apply_json(nm, {{"Node", self}});
  EXPECT_TRUE(ch.self_changed);
  EXPECT_EQ(must(nm.self()).name, "renamed.tailnet.example.");
  EXPECT_TRUE(must(nm.self()).has_cap("old-cap"));
  EXPECT_EQ(must(nm.self()).capmap.count("old-cap"), 1u);
  EXPECT_TRUE(must(nm.self()).has_cap("https://tailscale.com/cap/ssh"));
  EXPECT_FALSE(apply_json(nm, {{"Node", self}}).self_changed);
}

// ---------------------------------------------------------------------------
// Peers.

TEST(NetmapMerge, FullPeerListReplacesAndReportsTheDifference) {
  netmap nm = started_with({1, 2, 3});
  json p2 = test::peer_json(2);
  p2["Tags"] = {"tag:new"};
  const auto ch = apply_json(nm, {{"Peers", {test::peer_json(4), p2, test::peer_json(1)}}});
  EXPECT_TRUE(ch.full_peer_list);
  EXPECT_EQ(ids_of(nm), (std::vector<node_id>{1, 2, 4}));  // sorted whatever the order sent
  EXPECT_EQ(ch.added, std::vector<node_id>{4});
  EXPECT_EQ(ch.removed, std::vector<node_id>{3});
  EXPECT_EQ(ch.changed, std::vector<node_id>{2});
  EXPECT_EQ(nm.peer_by_id(3), nullptr);
  EXPECT_EQ(nm.peer_by_address(*ip_address::parse("100.64.0.3")), nullptr);
  EXPECT_EQ(nm.peer_by_address(*ip_address::parse("fd7a:115c:a1e0::4"))->id, 4);
}

TEST(NetmapMerge, FullPeerListIgnoresEveryOtherPeerDelta) {
  netmap nm = started_with({1, 2});
  const auto ch = apply_json(nm, {{"Peers", {test::peer_json(1), test::peer_json(2)}},
                                  {"PeersRemoved", {1}},
                                  {"PeersChanged", {test::peer_json(9)}},
                                  {"PeersChangedPatch", {{{"NodeID", 2}, {"DERPRegion", 5}}}},
                                  {"OnlineChange", {{"1", false}}}});
  EXPECT_FALSE(ch.peers_changed());
  EXPECT_EQ(ids_of(nm), (std::vector<node_id>{1, 2}));
  EXPECT_EQ(nm.peer_by_id(2)->home_derp, 999);
  EXPECT_EQ(nm.peer_by_id(1)->online, std::optional<bool>(true));
}

TEST(NetmapMerge, RepeatedIdInAFullListKeepsTheLastCopy) {
  netmap nm = started_with({});
  json a = test::peer_json(1), b = test::peer_json(1);
  b["Name"] = "second.tailnet.example.";
  apply_json(nm, {{"Peers", {a, b}}});
  ASSERT_EQ(nm.peer_count(), 1u);
  EXPECT_EQ(nm.peers()[0].name, "second.tailnet.example.");
}

TEST(NetmapMerge, EmptyPeersArrayIsNotAFullList) {
  netmap nm = started_with({1, 2});
  const auto ch = apply_json(nm, {{"Peers", json::array()}});
  EXPECT_FALSE(ch.full_peer_list);
  EXPECT_EQ(ids_of(nm), (std::vector<node_id>{1, 2}));
}

TEST(NetmapMerge, PeersRemovedDeletesKnownIdsOnly) {
  netmap nm = started_with({1, 2, 3});
  const auto ch = apply_json(nm, {{"PeersRemoved", {3, 1, 77, 3}}});
  EXPECT_EQ(ch.removed, (std::vector<node_id>{1, 3}));
  EXPECT_EQ(ids_of(nm), std::vector<node_id>{2});
  EXPECT_EQ(nm.peer_by_key(*parse_prefixed_key(test::node_key(1), node_key_prefix)), nullptr);
  EXPECT_EQ(nm.peer_by_key(*parse_prefixed_key(test::node_key(2), node_key_prefix))->id, 2);
}

TEST(NetmapMerge, PeersChangedAddsNewPeersInIdOrder) {
  netmap nm = started_with({5});
  const auto ch = apply_json(nm, {{"PeersChanged", {test::peer_json(9), test::peer_json(2), test::peer_json(7)}}});
  EXPECT_EQ(ch.added, (std::vector<node_id>{2, 7, 9}));
  EXPECT_EQ(ids_of(nm), (std::vector<node_id>{2, 5, 7, 9}));
  EXPECT_EQ(nm.peer_by_address(*ip_address::parse("100.64.0.7"))->id, 7);
}

TEST(NetmapMerge, PeersChangedReplacesWhenAFieldNoPatchCarriesChanged) {
  netmap nm = started_with({1});
  json p = test::peer_json(1);
  p["Addresses"] = {"100.64.0.99/32"};
  p.erase("Online");
  p.erase("LastSeen");
  p.erase("Endpoints");
  const auto ch = apply_json(nm, {{"PeersChanged", {p}}});
  EXPECT_EQ(ch.changed, std::vector<node_id>{1});
  const node* n = nm.peer_by_id(1);
  // A whole new copy: what it leaves out is gone.
  EXPECT_FALSE(n->online.has_value());
  EXPECT_FALSE(n->last_seen.has_value());
  EXPECT_TRUE(n->endpoints.empty());
  EXPECT_EQ(nm.peer_by_address(*ip_address::parse("100.64.0.1")), nullptr);
  EXPECT_EQ(nm.peer_by_address(*ip_address::parse("100.64.0.99")), n);
}

TEST(NetmapMerge, PeersChangedWithOnlyPatchableChangesIsAPatch) {
  netmap nm = started_with({1});
  json p = test::peer_json(1);
  p["Key"] = test::node_key(101);
  p["Endpoints"] = {"192.0.2.77:5"};
  p["HomeDERP"] = 3;
  p["Online"] = false;
  p["LastSeen"] = "2026-05-05T05:05:05Z";
  const auto ch = apply_json(nm, {{"PeersChanged", {p}}});
  EXPECT_EQ(ch.changed, std::vector<node_id>{1});
  const node* n = nm.peer_by_id(1);
  EXPECT_EQ(n->home_derp, 3);
  EXPECT_EQ(n->online, std::optional<bool>(false));
  EXPECT_EQ(n->last_seen->to_string(), "2026-05-05T05:05:05Z");
  EXPECT_EQ(n->endpoints.at(0).to_string(), "192.0.2.77:5");
  EXPECT_EQ(nm.peer_by_key(*parse_prefixed_key(test::node_key(101), node_key_prefix)), n);
  EXPECT_EQ(nm.peer_by_key(*parse_prefixed_key(test::node_key(1), node_key_prefix)), nullptr);
}

TEST(NetmapMerge, PatchifiedChangeKeepsWhatTheNewCopyOmits) {
  // As tailscale: a patch never clears Online, LastSeen, endpoints, the home
  // DERP or the capability version that the new copy merely leaves out.
  netmap nm = started_with({1});
  json p = test::peer_json(1);
  p.erase("Online");
  p.erase("LastSeen");
  p.erase("Endpoints");
  p.erase("HomeDERP");
  p.erase("Cap");
  const auto ch = apply_json(nm, {{"PeersChanged", {p}}});
  const node* n = nm.peer_by_id(1);
  EXPECT_EQ(n->online, std::optional<bool>(true));
  EXPECT_TRUE(n->last_seen.has_value());
  EXPECT_EQ(n->endpoints.size(), 1u);
  EXPECT_EQ(n->home_derp, 999);
  EXPECT_EQ(n->cap, 138);
  EXPECT_TRUE(ch.changed.empty());
}

TEST(NetmapMerge, IdenticalPeersChangedReportsNothing) {
  netmap nm = started_with({1, 2});
  const auto ch = apply_json(nm, {{"PeersChanged", {test::peer_json(2)}}});
  EXPECT_FALSE(ch.anything_changed());
}

TEST(NetmapMerge, RemovedThenChangedInOneResponse) {
  // PeersRemoved runs first. A non-patchable change re-adds the peer; a
  // patchable one became a patch for a peer that is gone by then.
  netmap nm = started_with({1, 2});
  json moved = test::peer_json(1);
  moved["Addresses"] = {"100.64.1.1/32"};
  json patched = test::peer_json(2);
  patched["HomeDERP"] = 4;
  const auto ch = apply_json(nm, {{"PeersRemoved", {1, 2}}, {"PeersChanged", {moved, patched}}});
  EXPECT_EQ(ids_of(nm), std::vector<node_id>{1});
  EXPECT_EQ(ch.changed, std::vector<node_id>{1});
  EXPECT_EQ(ch.removed, std::vector<node_id>{2});
}

TEST(NetmapMerge, PatchEachField) {
  netmap nm = started_with({1, 2});
  const json pc = {{"NodeID", 1},
                   {"DERPRegion", 4},
                   {"Cap", 140},
                   {"CapMap", {{"c", json::array()}}},
                   {"Endpoints", {"[2001:db8::5]:9"}},
                   {"Key", test::node_key(50)},
                   {"KeySignature", "c2ln"},
                   {"DiscoKey", test::disco_key(50)},
                   {"Online", false},
                   {"LastSeen", "2027-01-01T00:00:00Z"},
                   {"KeyExpiry", "2028-01-01T00:00:00Z"}};
  const auto ch = apply_json(nm, {{"PeersChangedPatch", {pc, {{"NodeID", 99}, {"DERPRegion", 1}}}}});
  EXPECT_EQ(ch.changed, std::vector<node_id>{1});
  const node* n = nm.peer_by_id(1);
  EXPECT_EQ(n->home_derp, 4);
  EXPECT_EQ(n->cap, 140);
  EXPECT_TRUE(n->has_cap("c"));
  EXPECT_EQ(n->endpoints.at(0).to_string(), "[2001:db8::5]:9");
  EXPECT_EQ(format_prefixed_key(n->key, node_key_prefix), test::node_key(50));
  EXPECT_EQ(nm.peer_by_key(n->key), n);
  EXPECT_EQ(n->key_signature, "c2ln");
  EXPECT_EQ(format_prefixed_key(n->disco_key, disco_key_prefix), test::disco_key(50));
  EXPECT_EQ(n->online, std::optional<bool>(false));
  EXPECT_EQ(n->last_seen->to_string(), "2027-01-01T00:00:00Z");
  EXPECT_EQ(n->key_expiry.to_string(), "2028-01-01T00:00:00Z");
  EXPECT_EQ(nm.peer_count(), 2u);  // a patch never adds a peer

  // Zero DERPRegion and Cap mean "unchanged"; [] endpoints means none.
  apply_json(nm, {{"PeersChangedPatch", {{{"NodeID", 1}, {"DERPRegion", 0}, {"Cap", 0}, {"Endpoints", json::array()}}}}});
  EXPECT_EQ(n->home_derp, 4);
  EXPECT_EQ(n->cap, 140);
  EXPECT_TRUE(n->endpoints.empty());
}

TEST(NetmapMerge, StaleDiscoKeyPatchIsDropped) {
  netmap nm = started_with({1});
  const std::string old_disco = format_prefixed_key(nm.peer_by_id(1)->disco_key, disco_key_prefix);
  // Offline, and last seen no later than what we hold: stale.
  apply_json(nm, {{"PeersChangedPatch",
                   {{{"NodeID", 1}, {"DiscoKey", test::disco_key(1, 0xee)}, {"Online", false},
                     {"LastSeen", "2026-01-02T03:04:05Z"}, {"DERPRegion", 7}}}}});
  EXPECT_EQ(format_prefixed_key(nm.peer_by_id(1)->disco_key, disco_key_prefix), old_disco);
  EXPECT_EQ(nm.peer_by_id(1)->home_derp, 999);  // the whole patch went
  // Seen later: taken.
  apply_json(nm, {{"PeersChangedPatch",
                   {{{"NodeID", 1}, {"DiscoKey", test::disco_key(1, 0xee)}, {"Online", false},
                     {"LastSeen", "2026-01-02T03:04:06Z"}}}}});
  EXPECT_EQ(format_prefixed_key(nm.peer_by_id(1)->disco_key, disco_key_prefix), test::disco_key(1, 0xee));
  // Online: taken whatever the time.
  apply_json(nm, {{"PeersChangedPatch",
                   {{{"NodeID", 1}, {"DiscoKey", test::disco_key(1, 0xef)}, {"Online", true},
                     {"LastSeen", "2000-01-01T00:00:00Z"}}}}});
  EXPECT_EQ(format_prefixed_key(nm.peer_by_id(1)->disco_key, disco_key_prefix), test::disco_key(1, 0xef));
  // Without all three fields the rule does not apply.
  apply_json(nm, {{"PeersChangedPatch", {{{"NodeID", 1}, {"DiscoKey", test::disco_key(1, 0xf0)}}}}});
  EXPECT_EQ(format_prefixed_key(nm.peer_by_id(1)->disco_key, disco_key_prefix), test::disco_key(1, 0xf0));
}

TEST(NetmapMerge, FullListDoesNotRollBackADiscoKeyForAnOfflinePeer) {
  netmap nm = started_with({1, 2});
  json p1 = test::peer_json(1), p2 = test::peer_json(2);
  for (json* p : {&p1, &p2}) {
    (*p)["DiscoKey"] = test::disco_key((*p)["ID"].get<unsigned>(), 0x77);
    (*p)["Online"] = false;
  }
  p2["LastSeen"] = "2026-06-01T00:00:00Z";  // seen since: the new key stands
  apply_json(nm, {{"Peers", {p1, p2}}});
  EXPECT_EQ(format_prefixed_key(nm.peer_by_id(1)->disco_key, disco_key_prefix), test::disco_key(1));
  EXPECT_EQ(nm.peer_by_id(1)->online, std::optional<bool>(false));
  EXPECT_EQ(format_prefixed_key(nm.peer_by_id(2)->disco_key, disco_key_prefix), test::disco_key(2, 0x77));
}

TEST(NetmapMerge, SeenAndOnlineChanges) {
  netmap nm = started_with({1, 2});
  const auto ch = apply_json(nm, {{"PeerSeenChange", {{"1", true}, {"2", false}, {"3", true}}},
                                  {"OnlineChange", {{"2", false}, {"4", true}}}});
  EXPECT_EQ(ch.changed, (std::vector<node_id>{1, 2}));
  EXPECT_EQ(nm.peer_by_id(1)->last_seen, std::optional<timestamp>(test_now));
  EXPECT_FALSE(nm.peer_by_id(2)->last_seen.has_value());
  EXPECT_EQ(nm.peer_by_id(2)->online, std::optional<bool>(false));
  EXPECT_EQ(nm.peer_count(), 2u);
}

TEST(NetmapMerge, LookupsPreferTheLowestIdOnDuplicates) {
  netmap nm = started_with({});
  json a = test::peer_json(8), b = test::peer_json(3);
  b["Key"] = a["Key"];
  b["Addresses"] = a["Addresses"];
  apply_json(nm, {{"Peers", {a, b}}});
  const auto key = *parse_prefixed_key(a["Key"].get<std::string>(), node_key_prefix);
  EXPECT_EQ(nm.peer_by_key(key)->id, 3);
  EXPECT_EQ(nm.peer_by_address(*ip_address::parse("100.64.0.8"))->id, 3);
  apply_json(nm, {{"PeersRemoved", {3}}});
  EXPECT_EQ(nm.peer_by_key(key)->id, 8);
  EXPECT_EQ(nm.peer_by_address(*ip_address::parse("100.64.0.8"))->id, 8);
  // Routes are not addresses.
  EXPECT_EQ(nm.peer_by_address(*ip_address::parse("100.64.0.9")), nullptr);
}

TEST(NetmapMerge, LegacyDerpPeerGetsItsHomeRegion) {
  netmap nm = started_with({});
  json p = test::peer_json(4);
  p.erase("HomeDERP");
  p["DERP"] = "127.3.3.40:12";
  apply_json(nm, {{"PeersChanged", {p}}});
  EXPECT_EQ(nm.peer_by_id(4)->home_derp, 12);
}

// ---------------------------------------------------------------------------
// The rest of the state.

json derp_json(std::initializer_list<int> regions) {
  json rs = json::object();
  for (int id : regions) {
    rs[std::to_string(id)] = {{"RegionID", id},
                              {"RegionCode", "r" + std::to_string(id)},
                              {"Nodes", {{{"Name", std::to_string(id)}, {"RegionID", id}, {"HostName", "127.0.0.1"}}}}};
  }
  return {{"Regions", rs}};
}

TEST(NetmapMerge, DerpMapRules) {
  netmap nm = started_with({});
  EXPECT_EQ(nm.derp(), nullptr);
  json first = derp_json({1, 2});
  first["HomeParams"] = {{"RegionScore", {{"1", 0.5}}}};
  first["omitDefaultRegions"] = true;
  EXPECT_TRUE(apply_json(nm, {{"DERPMap", first}}).derp_map_changed);
  ASSERT_EQ(must(nm.derp()).regions->size(), 2u);

  // No DERPMap: unchanged.
  EXPECT_FALSE(apply_json(nm, {{"Domain", "x"}}).derp_map_changed);
  EXPECT_EQ(must(nm.derp()).regions->size(), 2u);

  // A DERPMap without Regions keeps the old regions (and their
  // omitDefaultRegions); a new HomeParams without RegionScore keeps the
  // old scores.
  apply_json(nm, {{"DERPMap", {{"HomeParams", json::object()}}}});
  EXPECT_EQ(must(nm.derp()).regions->size(), 2u);
  EXPECT_TRUE(must(nm.derp()).omit_default_regions);
  EXPECT_EQ(must(nm.derp()).home_params->region_score->at(1), 0.5);

  // Regions sent: they replace the old, HomeParams absent keeps the old.
  auto ch = apply_json(nm, {{"DERPMap", derp_json({3})}});
  EXPECT_TRUE(ch.derp_map_changed);
  EXPECT_EQ(must(nm.derp()).regions->size(), 1u);
  EXPECT_EQ(must(nm.derp()).regions->count(3), 1u);
  EXPECT_FALSE(must(nm.derp()).omit_default_regions);
  EXPECT_EQ(must(nm.derp()).home_params->region_score->at(1), 0.5);

  // Null regions are dropped; an all-null map is an empty one.
  json with_null = derp_json({5});
  with_null["Regions"]["6"] = nullptr;
  apply_json(nm, {{"DERPMap", with_null}});
  EXPECT_EQ(must(nm.derp()).regions->size(), 1u);
  apply_json(nm, {{"DERPMap", {{"Regions", {{"7", nullptr}}}}}});
  EXPECT_TRUE(must(nm.derp()).regions->empty());
}

TEST(NetmapMerge, DnsConfigReplacedWholeOrKept) {
  netmap nm = started_with({});
  EXPECT_TRUE(nm.dns().resolvers.empty());
  const json dns = {{"Resolvers", {{{"Addr", "198.18.0.53"}}}}, {"Domains", {"a.example"}}, {"Proxied", true}};
  EXPECT_TRUE(apply_json(nm, {{"DNSConfig", dns}}).dns_changed);
  EXPECT_FALSE(apply_json(nm, {{"DNSConfig", nullptr}}).dns_changed);
  EXPECT_EQ(nm.dns().resolvers.at(0).addr, "198.18.0.53");
  EXPECT_FALSE(apply_json(nm, {{"DNSConfig", dns}}).dns_changed);
  EXPECT_TRUE(apply_json(nm, {{"DNSConfig", {{"Domains", {"b.example"}}}}}).dns_changed);
  EXPECT_TRUE(nm.dns().resolvers.empty());
  EXPECT_FALSE(nm.dns().proxied);
}

json rule(const std::string& src, const std::string& dst, int port) {
  return {{"SrcIPs", {src}}, {"DstPorts", {{{"IP", dst}, {"Ports", {{"First", port}, {"Last", port}}}}}}};
}

TEST(NetmapMerge, PacketFilterRules) {
  netmap nm = started_with({});
  const auto a = *ip_address::parse("100.64.0.1");
  const auto b = *ip_address::parse("100.64.0.2");
  // Nothing sent yet: nothing allowed.
  EXPECT_FALSE(filter_allows(nm.packet_filter(), 6, a, b, 22));

  // The old single blob is the "base" named filter.
  EXPECT_TRUE(apply_json(nm, {{"PacketFilter", {rule("100.64.0.1", "100.64.0.2", 22)}}}).packet_filter_changed);
  EXPECT_TRUE(filter_allows(nm.packet_filter(), 6, a, b, 22));
  EXPECT_EQ(nm.named_packet_filters().count("base"), 1u);

  // Absent or null: unchanged.
  EXPECT_FALSE(apply_json(nm, {{"PacketFilter", nullptr}, {"PacketFilters", nullptr}}).packet_filter_changed);
  EXPECT_TRUE(filter_allows(nm.packet_filter(), 6, a, b, 22));

  // Named chunks add to it, in name order after "base" < "z".
  apply_json(nm, {{"PacketFilters", {{"z", {rule("100.64.0.1", "100.64.0.2", 80)}},
                                     {"a", {rule("100.64.0.1", "100.64.0.2", 443)}}}}});
  ASSERT_EQ(nm.packet_filter_rules().size(), 3u);
  EXPECT_EQ(nm.packet_filter_rules()[0].dst_ports[0].ports.first, 443);
  EXPECT_EQ(nm.packet_filter_rules()[1].dst_ports[0].ports.first, 22);
  EXPECT_EQ(nm.packet_filter_rules()[2].dst_ports[0].ports.first, 80);

  // A null chunk deletes that name.
  apply_json(nm, {{"PacketFilters", {{"a", nullptr}}}});
  EXPECT_EQ(nm.packet_filter_rules().size(), 2u);
  EXPECT_FALSE(filter_allows(nm.packet_filter(), 6, a, b, 443));

  // "*": null clears all (the implicit base too) before the others apply.
  apply_json(nm, {{"PacketFilters", {{"*", nullptr}, {"n", {rule("100.64.0.1", "100.64.0.2", 53)}}}}});
  ASSERT_EQ(nm.packet_filter_rules().size(), 1u);
  EXPECT_TRUE(filter_allows(nm.packet_filter(), 17, a, b, 53));
  EXPECT_FALSE(filter_allows(nm.packet_filter(), 6, a, b, 22));

  // A "*" with rules is just skipped.
  apply_json(nm, {{"PacketFilters", {{"*", {rule("*", "*", 1)}}}}});
  EXPECT_EQ(nm.packet_filter_rules().size(), 1u);

  // PacketFilter and PacketFilters together: base first, then named.
  apply_json(nm, {{"PacketFilter", json::array()}, {"PacketFilters", {{"base", {rule("*", "*", 7)}}}}});
  EXPECT_TRUE(filter_allows(nm.packet_filter(), 6, a, b, 7));

  // An empty base is "deny all" from base.
  apply_json(nm, {{"PacketFilters", {{"*", nullptr}}}, {"PacketFilter", json::array()}});
  EXPECT_TRUE(nm.packet_filter_rules().empty());
  EXPECT_FALSE(filter_allows(nm.packet_filter(), 6, a, b, 7));
}

TEST(NetmapMerge, PacketFilterWithSrcBitsCompilesToNothing) {
  netmap nm = started_with({});
  json r = rule("100.64.0.1", "100.64.0.2", 22);
  r["SrcBits"] = {32};
  apply_json(nm, {{"PacketFilter", {rule("*", "*", 1), r}}});
  EXPECT_EQ(nm.packet_filter_rules().size(), 2u);
  EXPECT_TRUE(nm.packet_filter().empty());
  EXPECT_FALSE(nm.packet_filter_error().empty());
}

TEST(NetmapMerge, DomainCollectServicesHealthUserProfiles) {
  netmap nm = started_with({});
  EXPECT_TRUE(apply_json(nm, {{"Domain", "tailnet.example"}}).domain_changed);
  EXPECT_FALSE(apply_json(nm, {{"Domain", ""}}).domain_changed);
  EXPECT_EQ(nm.domain(), "tailnet.example");

  EXPECT_TRUE(apply_json(nm, {{"CollectServices", true}}).collect_services_changed);
  EXPECT_FALSE(apply_json(nm, {{"CollectServices", nullptr}}).collect_services_changed);
  EXPECT_TRUE(nm.collect_services());

  EXPECT_TRUE(apply_json(nm, {{"Health", {"trouble"}}}).health_changed);
  EXPECT_FALSE(apply_json(nm, {{"Domain", "x"}}).health_changed);
  EXPECT_EQ(nm.health().size(), 1u);
  EXPECT_TRUE(apply_json(nm, {{"Health", json::array()}}).health_changed);
  EXPECT_TRUE(nm.health().empty());

  apply_json(nm, {{"UserProfiles", {{{"ID", 1}, {"LoginName", "rec"}, {"DisplayName", "Rec"}}}}});
  ASSERT_NE(nm.user(1), nullptr);
  EXPECT_EQ(nm.user(1)->login_name, "rec");
}

TEST(NetmapMerge, DiffPeersBetweenTwoSessions) {
  const netmap old_session = started_with({1, 2, 3});
  netmap fresh = started_with({});
  json p2 = test::peer_json(2);
  p2["HomeDERP"] = 5;
  apply_json(fresh, {{"Peers", {p2, test::peer_json(3), test::peer_json(4)}}});
  const peer_diff d = diff_peers(old_session, fresh);
  EXPECT_EQ(d.added, std::vector<node_id>{4});
  EXPECT_EQ(d.removed, std::vector<node_id>{1});
  EXPECT_EQ(d.changed, std::vector<node_id>{2});
}

TEST(NetmapMerge, NamesChangedOnlyWhenWhatNamesResolveToMoves) {
  netmap nm;
  EXPECT_TRUE(apply_json(nm, {{"Node", test::self_json()}, {"Peers", {test::peer_json(1), test::peer_json(2)}}})
                  .names_changed)
      << "the first self node and peers";
  // Online, endpoints, keys: not names.
  json p1 = test::peer_json(1);
  p1["Online"] = false;
  p1["Endpoints"] = {"192.0.2.9:41641"};
  p1["Key"] = test::node_key(301);
  auto ch = apply_json(nm, {{"PeersChanged", {p1}}});
  EXPECT_EQ(ch.changed, std::vector<node_id>{1});
  EXPECT_FALSE(ch.names_changed);
  ch = apply_json(nm, {{"OnlineChange", {{"2", false}}}});
  EXPECT_EQ(ch.changed, std::vector<node_id>{2});
  EXPECT_FALSE(ch.names_changed);
  // The same in a full list.
  json p2 = test::peer_json(2);
  p2["Endpoints"] = {"192.0.2.10:41641"};
  ch = apply_json(nm, {{"Peers", {p1, p2}}});
  EXPECT_EQ(ch.changed, std::vector<node_id>{2});
  EXPECT_FALSE(ch.names_changed);
  // A rename, in a delta and in a full list.
  p1["Name"] = "renamed.tailnet.example.";
  ch = apply_json(nm, {{"PeersChanged", {p1}}});
  EXPECT_TRUE(ch.names_changed);
  p2["Addresses"] = {"100.64.0.222/32"};
  ch = apply_json(nm, {{"Peers", {p1, p2}}});
  EXPECT_TRUE(ch.names_changed);
  // A peer that comes or goes.
  EXPECT_TRUE(apply_json(nm, {{"PeersChanged", {test::peer_json(3)}}}).names_changed);
  EXPECT_TRUE(apply_json(nm, {{"PeersRemoved", {3}}}).names_changed);
  // The self node: a new key is not a name, a new name is.
  json self = test::self_json();
  self["Key"] = test::node_key(999);
  ch = apply_json(nm, {{"Node", self}});
  EXPECT_TRUE(ch.self_changed);
  EXPECT_FALSE(ch.names_changed);
  self["Name"] = "self2.tailnet.example.";
  EXPECT_TRUE(apply_json(nm, {{"Node", self}}).names_changed);
}

TEST(NetmapMerge, SerialTellsNetmapsApart) {
  netmap a = started_with({1});
  const auto serial = a.serial();
  apply_json(a, {{"PeersChanged", {test::peer_json(2)}}});
  EXPECT_EQ(a.serial(), serial) << "one netmap, however often merged";
  const netmap b = a;
  EXPECT_NE(b.serial(), a.serial()) << "a copy goes its own way";
  EXPECT_NE(netmap{}.serial(), a.serial());
}

TEST(NetmapMerge, ApplyByConstReferenceLeavesTheResponseAlone) {
  netmap nm = started_with({1});
  const map_response r = parse_ok(json{{"PeersChanged", {test::peer_json(2)}}});
  nm.apply(r, test_now);
  EXPECT_EQ(r.peers_changed.size(), 1u);
  EXPECT_EQ(r.peers_changed[0].id, 2);
  EXPECT_EQ(ids_of(nm), (std::vector<node_id>{1, 2}));
}

}  // namespace
}  // namespace lopower::tailnet
