// Two disco_paths instances find a direct path to each other: real keys and
// NaCl boxes (the codec is checked against tailscale's own output in
// tests/unit/disco), packets carried by the test between "the wire" queues.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>
#include <deque>

#include "control/tailnet/disco_paths.h"
#include "dataplane/inner_packet.h"

namespace lopower {
namespace {

using tailnet::node_id;

struct side {
  node_id id;
  const char* ip;
  private_key disco = generate_private_key();
  private_key node = generate_private_key();
  public_key disco_pub = public_from_private(disco);
  public_key node_pub = public_from_private(node);
};

wg_endpoint endpoint_of(const char* ip) {
  wg_endpoint ep;
  inet_pton(AF_INET, ip, ep.peer_ip);
  ep.peer_port_be = htons(41641);
  return ep;
}

tailnet::netmap netmap_with(const side& self, const side& peer) {
  tailnet::map_response r;
  tailnet::node s;
  s.id = self.id;
  s.key = self.node_pub;
  r.self = s;
  tailnet::node p;
  p.id = peer.id;
  p.key = peer.node_pub;
  p.disco_key = peer.disco_pub;
  p.endpoints = {*tailnet::endpoint::parse(std::string(peer.ip) + ":41641")};
  r.peers = {p};
  tailnet::netmap nm;
  EXPECT_TRUE(nm.apply(r).ok());
  return nm;
}

// A and B on one wire; packets queue until pump() delivers them.
class DiscoPair : public ::testing::Test {
 protected:
  struct packet {
    bool to_b;
    std::vector<std::uint8_t> bytes;
    wg_endpoint from;
  };

  void SetUp() override {
    a_ = std::make_unique<disco_paths>(sa_.disco, sa_.disco_pub, sa_.node_pub, hooks_for(true));
    b_ = std::make_unique<disco_paths>(sb_.disco, sb_.disco_pub, sb_.node_pub, hooks_for(false));
    a_->set_peers(netmap_with(sa_, sb_));
    b_->set_peers(netmap_with(sb_, sa_));
  }

  disco_paths::hooks hooks_for(bool is_a) {
    const char* my_ip = is_a ? sa_.ip : sb_.ip;
    return {[this, is_a, my_ip](const ip_address& ip, std::uint16_t, std::span<const std::uint8_t> p) {
              if (!deliver_) return false;
              EXPECT_EQ(ip.to_string(), is_a ? sb_.ip : sa_.ip);
              wire_.push_back({is_a, {p.begin(), p.end()}, endpoint_of(my_ip)});
              return true;
            },
            [this, is_a, my_ip](const wg_endpoint&, std::span<const std::uint8_t> p) {
              wire_.push_back({is_a, {p.begin(), p.end()}, endpoint_of(my_ip)});
            },
            [this, is_a](node_id id, const wg_endpoint& ep) { (is_a ? paths_a_ : paths_b_).push_back({id, ep}); }};
  }

  int pump() {
    int n = 0;
    while (!wire_.empty()) {
      packet p = std::move(wire_.front());
      wire_.pop_front();
      if (tamper_) p.bytes.back() ^= 1;
      last_handled_ = (p.to_b ? *b_ : *a_).handle(p.bytes, p.from);
      ++n;
    }
    return n;
  }

  side sa_{1, "198.18.0.1"}, sb_{2, "198.18.0.2"};
  std::unique_ptr<disco_paths> a_, b_;
  std::deque<packet> wire_;
  std::vector<std::pair<node_id, wg_endpoint>> paths_a_, paths_b_;
  bool deliver_ = true, tamper_ = false, last_handled_ = false;
};

TEST_F(DiscoPair, PingFindsADirectPathBothWays) {
  std::optional<disco_paths::ping_outcome> got;
  a_->ping(sb_.id, std::chrono::seconds(5), [&](const disco_paths::ping_outcome& o) { got = o; });
  EXPECT_GE(pump(), 2);  // ping, pong (and B's ping back, its pong)
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->answered);
  EXPECT_EQ(got->peer, sb_.id);
  EXPECT_EQ(got->path, "198.18.0.2:41641");
  ASSERT_EQ(paths_a_.size(), 1u);
  EXPECT_EQ(paths_a_[0].first, sb_.id);
  EXPECT_EQ(endpoint_string(paths_a_[0].second), "198.18.0.2:41641");
  EXPECT_EQ(a_->path_text(sb_.id), "direct 198.18.0.2:41641");
  ASSERT_TRUE(a_->latency_ms(sb_.id));
  // B answered, and having no path to A yet, checked the way back.
  ASSERT_EQ(paths_b_.size(), 1u);
  EXPECT_EQ(b_->path_text(sa_.id), "direct 198.18.0.1:41641");
  EXPECT_EQ(b_->counters_json()["pongs_sent"], 1);
}

TEST_F(DiscoPair, NoAnswerTimesOut) {
  deliver_ = false;  // no route to B yet
  std::optional<disco_paths::ping_outcome> got;
  a_->ping(sb_.id, std::chrono::milliseconds(0), [&](const disco_paths::ping_outcome& o) { got = o; });
  EXPECT_FALSE(got);
  a_->tick([](node_id) { return false; });
  ASSERT_TRUE(got);
  EXPECT_FALSE(got->answered);
  EXPECT_EQ(a_->path_text(sb_.id), "");
  EXPECT_GE(a_->counters_json()["no_route"].get<int>(), 1);
}

TEST_F(DiscoPair, TamperedOrUnknownIsRefusedAndCounted) {
  tamper_ = true;
  a_->ping(sb_.id, std::chrono::seconds(5), [](const disco_paths::ping_outcome&) {});
  pump();
  EXPECT_FALSE(last_handled_);
  EXPECT_EQ(b_->counters_json()["undecryptable"], 1);
  EXPECT_TRUE(paths_b_.empty());
  // A sender no netmap names.
  disco_paths stranger(generate_private_key(), public_from_private(generate_private_key()), sa_.node_pub, {});
  std::vector<std::uint8_t> junk(100, 0);
  std::memcpy(junk.data(), tailnet::disco::magic.data(), 6);
  EXPECT_FALSE(b_->handle(junk, endpoint_of("198.18.0.9")));
  EXPECT_EQ(b_->counters_json()["unknown_sender"], 1);
}

TEST_F(DiscoPair, APongNoPingAskedForChangesNothing) {
  a_->ping(sb_.id, std::chrono::seconds(5), [](const disco_paths::ping_outcome&) {});
  // Keep B's pong, deliver it twice: the second finds no pending ping.
  ASSERT_EQ(wire_.size(), 1u);
  auto ping = wire_.front();
  wire_.pop_front();
  b_->handle(ping.bytes, ping.from);
  std::vector<packet> from_b(wire_.begin(), wire_.end());
  wire_.clear();
  const auto pong = std::find_if(from_b.begin(), from_b.end(), [](const packet& p) { return !p.to_b; });
  ASSERT_NE(pong, from_b.end());
  a_->handle(pong->bytes, endpoint_of(sb_.ip));
  const auto received = a_->counters_json()["pongs_received"].get<int>();
  a_->handle(pong->bytes, endpoint_of("198.18.0.77"));  // replayed from elsewhere
  EXPECT_EQ(a_->counters_json()["pongs_received"].get<int>(), received);
  EXPECT_EQ(a_->path_text(sb_.id), "direct 198.18.0.2:41641");
}

TEST_F(DiscoPair, HeartbeatOnlyForBusyPeers) {
  a_->tick([](node_id) { return false; });
  EXPECT_TRUE(wire_.empty());
  a_->tick([](node_id) { return true; });
  EXPECT_EQ(wire_.size(), 1u);  // one ping per advertised endpoint
  wire_.clear();
  a_->tick([](node_id) { return true; });
  EXPECT_TRUE(wire_.empty()) << "not again before the heartbeat interval";
}

TEST_F(DiscoPair, UpdatePeersKeepsThePathAndTakesNewEndpoints) {
  a_->ping(sb_.id, std::chrono::seconds(5), [](const disco_paths::ping_outcome&) {});
  pump();
  ASSERT_EQ(a_->path_text(sb_.id), "direct 198.18.0.2:41641");
  // B moves its endpoint: a delta for B alone.
  tailnet::netmap nm = netmap_with(sa_, sb_);
  tailnet::map_response r;
  tailnet::node p = *nm.peer_by_id(sb_.id);
  p.endpoints = {*tailnet::endpoint::parse("198.18.0.2:5555")};
  r.peers_changed = {p};
  ASSERT_EQ(nm.apply(r).changed, std::vector<node_id>{sb_.id});
  const std::vector<node_id> ids{sb_.id};
  EXPECT_TRUE(a_->update_peers(nm, ids));
  EXPECT_EQ(a_->path_text(sb_.id), "direct 198.18.0.2:41641") << "the path it had stays";
  EXPECT_TRUE(a_->direct_trusted(sb_.id));

  // A new disco key (B restarted), or B gone: not for update_peers.
  side restarted = sb_;
  restarted.disco = generate_private_key();
  restarted.disco_pub = public_from_private(restarted.disco);
  EXPECT_FALSE(a_->update_peers(netmap_with(sa_, restarted), ids));
  EXPECT_EQ(a_->path_text(sb_.id), "direct 198.18.0.2:41641") << "nothing done";
  tailnet::netmap gone;
  tailnet::map_response only_self;
  only_self.self = *nm.self();
  ASSERT_TRUE(gone.apply(only_self).ok());
  EXPECT_FALSE(a_->update_peers(gone, ids));
}

}  // namespace
}  // namespace lopower
