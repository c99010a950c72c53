// Choosing lopower's exit node from the netmap's peers
// (control/tailnet/exit_nodes.h): what counts as offering one, the
// configured order, "auto" by latency, and what makes a peer unusable.
#include "control/tailnet/exit_nodes.h"

#include <gtest/gtest.h>

#include <map>

namespace lopower::tailnet {
namespace {

// Peer `id` named "<host>.tail.example." at 100.64.0.<id>; with `exit`, both
// default routes approved; `online` as the netmap says (nullopt: not said).
node peer(node_id id, const std::string& host, bool exit, std::optional<bool> online = true) {
  node n;
  n.id = id;
  n.key[0] = static_cast<std::uint8_t>(id);
  n.name = host + ".tail.example.";
  n.hostname = host;
  const ip_prefix addr = *ip_prefix::parse("100.64.0." + std::to_string(id) + "/32");
  n.addresses = {addr};
  n.allowed_ips = {addr};
  if (exit) n.allowed_ips.insert(n.allowed_ips.end(), {*ip_prefix::parse("0.0.0.0/0"), *ip_prefix::parse("::/0")});
  n.online = online;
  return n;
}

std::optional<double> unmeasured(node_id) { return std::nullopt; }

TEST(ExitNodes, BothDefaultRoutesMakeAnOffer) {
  EXPECT_TRUE(offers_exit(peer(1, "ex1", true)));
  EXPECT_FALSE(offers_exit(peer(2, "plain", false)));
  node v4_only = peer(3, "half", false);
  v4_only.allowed_ips.push_back(*ip_prefix::parse("0.0.0.0/0"));
  EXPECT_FALSE(offers_exit(v4_only)) << "one default route alone is no exit node";
  node subnet = peer(4, "router", false);
  subnet.allowed_ips.push_back(*ip_prefix::parse("10.77.0.0/24"));
  EXPECT_FALSE(offers_exit(subnet));
}

TEST(ExitNodes, OfflineExpiredOrKeylessPeersAreNotUsable) {
  EXPECT_TRUE(usable_exit(peer(1, "ex1", true)));
  EXPECT_TRUE(usable_exit(peer(1, "ex1", true, std::nullopt))) << "online not said: taken for online";
  EXPECT_FALSE(usable_exit(peer(1, "ex1", true, false)));
  node expired = peer(1, "ex1", true);
  expired.expired = true;
  EXPECT_FALSE(usable_exit(expired));
  node keyless = peer(1, "ex1", true);
  keyless.key = public_key{};
  EXPECT_FALSE(usable_exit(keyless));
}

TEST(ExitNodes, NamesAPeerByNameHostOrAddress) {
  const node n = peer(7, "ex1", true);
  for (const char* what : {"ex1", "ex1.tail.example", "ex1.tail.example.", "ex1.tail", "100.64.0.7"})
    EXPECT_TRUE(names_node(n, what)) << what;
  for (const char* what : {"ex", "ex1.other", "100.64.0.8", "tail.example"}) EXPECT_FALSE(names_node(n, what)) << what;
}

TEST(ExitNodes, TheFirstUsableOneConfiguredWinsInOrder) {
  std::vector<node> peers{peer(1, "ts1", false), peer(2, "ex1", true), peer(3, "ex2", true), peer(4, "ex3", true)};
  EXPECT_EQ(choose_exit_node(peers, {"ex2", "ex1"}, 0, unmeasured), 3u);
  EXPECT_EQ(choose_exit_node(peers, {"100.64.0.4", "ex1"}, 3, unmeasured), 4u) << "by IP; the one in use is not kept";
  peers[2].online = false;
  EXPECT_EQ(choose_exit_node(peers, {"ex2", "ex1"}, 3, unmeasured), 2u) << "ex2 offline: the next one";
  peers[1].allowed_ips.resize(1);  // ex1's exit routes withdrawn
  EXPECT_EQ(choose_exit_node(peers, {"ex2", "ex1"}, 2, unmeasured), 0u) << "none of those named is usable";
  EXPECT_EQ(choose_exit_node(peers, {"ts1"}, 0, unmeasured), 0u) << "a peer offering none is never chosen";
}

TEST(ExitNodes, AutoTakesTheLowestLatencyAndKeepsItWhileUsable) {
  std::vector<node> peers{peer(1, "exa", true), peer(2, "exb", true), peer(3, "exc", true), peer(4, "ts1", false)};
  std::map<node_id, double> ms{{1, 30.0}, {2, 5.0}, {4, 1.0}};
  const auto latency = [&ms](node_id id) -> std::optional<double> {
    auto it = ms.find(id);
    return it == ms.end() ? std::nullopt : std::optional<double>(it->second);
  };
  EXPECT_EQ(choose_exit_node(peers, {"auto"}, 0, latency), 2u) << "exb is closest; ts1 offers nothing";
  ms[1] = 1.0;
  EXPECT_EQ(choose_exit_node(peers, {"auto"}, 2, latency), 2u) << "kept while usable: no flapping";
  peers[1].online = false;
  EXPECT_EQ(choose_exit_node(peers, {"auto"}, 2, latency), 1u);
  ms.clear();
  EXPECT_EQ(choose_exit_node(peers, {"auto"}, 0, latency), 1u) << "unmeasured all: ties go by name (exa < exc)";
  for (node& n : peers) n.online = false;
  EXPECT_EQ(choose_exit_node(peers, {"auto"}, 1, latency), 0u);
}

}  // namespace
}  // namespace lopower::tailnet
