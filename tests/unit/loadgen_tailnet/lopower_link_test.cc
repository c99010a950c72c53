// lopower_link (tools/loadgen/tailnet/lopower_link.h): the loadgen's tailnet
// node against lopower's side played by the same WireGuard engine and disco
// codec lopower runs, packets carried by the test, the clock the test's.
#include <gtest/gtest.h>
#include <sodium.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "control/tailnet/disco/disco_message.h"
#include "control/wireguard/engine/cookie.h"
#include "control/wireguard/engine/noise_handshake.h"
#include "tools/loadgen/tailnet/lopower_link.h"

namespace lopower::loadgen {
namespace {

namespace disco = tailnet::disco;
using namespace std::chrono_literals;

constexpr std::uint64_t second = 1'000'000'000;

udp_endpoint v4(std::uint8_t last, std::uint16_t port) {
  udp_endpoint e;
  e.ip[0] = 198, e.ip[1] = 18, e.ip[2] = 40, e.ip[3] = last;
  e.port = port;
  return e;
}

udp_endpoint v6(std::uint16_t port) {
  udp_endpoint e;
  e.ipv6 = true;
  e.ip[0] = 0xfd;
  e.ip[15] = 1;
  e.port = port;
  return e;
}

const udp_endpoint local = v4(60, 41642);
const udp_endpoint lopower_v4 = v4(1, 41641);
const udp_endpoint lopower_v4_other = v4(2, 41641);

// lopower's side of the protocols: its keys, one WireGuard peer (the
// loadgen's node) and the engine's functions.
struct lopower_side final : wg::peer_lookup {
  private_key node = generate_private_key();
  private_key disco_key = generate_private_key();
  wg::static_identity id{node};
  std::optional<wg::peer_handshake> peer;
  std::uint32_t sent_index = 0;

  lopower_peer as_peer(std::vector<udp_endpoint> endpoints) const {
    return {id.static_public(), public_from_private(disco_key), std::move(endpoints)};
  }
  wg::peer_handshake* by_static(const public_key& k) override { return peer && peer->remote_static() == k ? &*peer : nullptr; }
  wg::peer_handshake* by_index(std::uint32_t i) override { return peer && i == sent_index ? &*peer : nullptr; }

  // Answers an initiation as lopower's wireguard_interface does; the keys.
  std::optional<wg::transport_keys> respond(const datagram& init, std::vector<std::uint8_t>& response, std::uint64_t now) {
    const auto msg = wg::parse_message(init.payload.data(), init.payload.size());
    if (msg.initiation() == nullptr) return std::nullopt;
    EXPECT_EQ(wg::check_macs(msg.data, msg.length, id.mac1_key(), nullptr, wg::packet_source{}),
              wg::mac_status::valid_mac_no_cookie);
    if (!wg::consume_initiation(*msg.initiation(), id, *this, now)) return std::nullopt;
    wg::message_handshake_response resp{};
    EXPECT_EQ(wg::create_response(resp, *peer, id, 77), wg::handshake_error::none);
    wg::cookie_maker maker(peer->remote_static());
    maker.add_macs(resp, 0);
    const auto* p = reinterpret_cast<const std::uint8_t*>(&resp);
    response.assign(p, p + sizeof resp);
    return wg::derive_keypair(*peer);
  }

  datagram initiation() {
    sent_index = 4242;
    wg::message_handshake_initiation msg{};
    EXPECT_EQ(wg::create_initiation(msg, *peer, id, sent_index, wg::tai64n_now()), wg::handshake_error::none);
    wg::cookie_maker maker(peer->remote_static());
    maker.add_macs(msg, 0);
    const auto* p = reinterpret_cast<const std::uint8_t*>(&msg);
    return {lopower_v4, {p, p + sizeof msg}};
  }

  std::optional<disco::message> open_disco(const datagram& d, const public_key& sender) const {
    auto m = disco::open(d.payload, disco_key, sender);
    if (!m) return std::nullopt;
    return *m;
  }
};

class LopowerLink : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_GE(sodium_init(), 0);
    lopower.peer.emplace(lopower.id, public_from_private(node_key));
    link.set_lopower(lopower.as_peer({lopower_v4, v6(41641)}));
  }

  std::vector<datagram> poll(std::uint64_t now) {
    std::vector<datagram> out;
    link.poll(now, out);
    return out;
  }
  std::vector<datagram> receive(const datagram& in, std::uint64_t now) {
    std::vector<datagram> out;
    link.receive(in, now, out);
    return out;
  }
  static std::vector<datagram> of_type(const std::vector<datagram>& v, wg::message_type t) {
    std::vector<datagram> out;
    for (const datagram& d : v)
      if (wg::parse_message(d.payload.data(), d.payload.size()).type == t) out.push_back(d);
    return out;
  }
  static std::vector<datagram> disco_only(const std::vector<datagram>& v) {
    std::vector<datagram> out;
    for (const datagram& d : v)
      if (disco::looks_like_disco(d.payload)) out.push_back(d);
    return out;
  }
  // The handshake the link starts, answered by lopower: lopower's keys.
  wg::transport_keys handshake(std::uint64_t now, std::vector<datagram>* after = nullptr) {
    const auto inits = of_type(poll(now), wg::message_type::handshake_initiation);
    EXPECT_EQ(inits.size(), 1u);
    std::vector<std::uint8_t> resp;
    auto keys = lopower.respond(inits.at(0), resp, now);
    EXPECT_TRUE(keys);
    auto out = receive({lopower_v4, resp}, now);
    if (after) *after = out;
    return std::move(*keys);
  }

  private_key node_key = generate_private_key();
  private_key disco_key = generate_private_key();
  lopower_side lopower;
  lopower_link link{node_key, disco_key, local};
};

TEST_F(LopowerLink, InitiatesAndItsKeysMatchLopowers) {
  std::vector<datagram> after;
  const wg::transport_keys theirs = handshake(1 * second, &after);
  const auto s = link.session();
  ASSERT_TRUE(s);
  EXPECT_EQ(0, std::memcmp(s->send_key, theirs.receive.data(), 32));
  EXPECT_EQ(0, std::memcmp(s->receive_key, theirs.send.data(), 32));
  EXPECT_EQ(s->remote_index, theirs.local_index);
  EXPECT_EQ(s->local_index, theirs.remote_index);
  EXPECT_EQ(s->lopower, lopower_v4);
  // The keepalive that confirms the session to lopower: counter 0, which the data path then skips.
  ASSERT_EQ(after.size(), 1u);
  const auto ka = wg::parse_message(after[0].payload.data(), after[0].payload.size());
  ASSERT_NE(ka.transport(), nullptr);
  EXPECT_EQ(ka.length, wg::message_data_min_size);
  EXPECT_EQ(ka.transport()->counter.get(), 0u);
  std::uint8_t nonce[12]{}, plain[16];
  unsigned long long len = 1;
  EXPECT_EQ(0, crypto_aead_chacha20poly1305_ietf_decrypt(plain, &len, nullptr, ka.transport_payload(), 16, nullptr, 0,
                                                         nonce, theirs.receive.data()));
  EXPECT_EQ(len, 0u);
  EXPECT_EQ(s->first_send_counter, 1u);
  EXPECT_EQ(link.counters().handshakes_completed, 1u);
}

TEST_F(LopowerLink, AnswersLopowersInitiation) {
  const auto out = receive(lopower.initiation(), 1 * second);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].peer, lopower_v4);
  const auto msg = wg::parse_message(out[0].payload.data(), out[0].payload.size());
  ASSERT_NE(msg.response(), nullptr);
  EXPECT_EQ(wg::check_macs(msg.data, msg.length, lopower.id.mac1_key(), nullptr, wg::packet_source{}),
            wg::mac_status::valid_mac_no_cookie);
  ASSERT_TRUE(wg::consume_response(*msg.response(), lopower.id, lopower));
  const auto theirs = wg::derive_keypair(*lopower.peer);
  ASSERT_TRUE(theirs);
  const auto s = link.session();
  ASSERT_TRUE(s);
  EXPECT_EQ(0, std::memcmp(s->send_key, theirs->receive.data(), 32));
  EXPECT_EQ(0, std::memcmp(s->receive_key, theirs->send.data(), 32));
  EXPECT_EQ(s->first_send_counter, 0u);  // no keepalive: lopower, the initiator, confirms on our data
  // No initiation of our own while lopower's session is young.
  EXPECT_TRUE(of_type(poll(2 * second), wg::message_type::handshake_initiation).empty());
}

TEST_F(LopowerLink, DiscoPingsLopowersEndpointsOfItsFamilyAndFollowsThePong) {
  link.set_lopower(lopower.as_peer({lopower_v4, v6(41641), lopower_v4_other}));
  const auto pings = disco_only(poll(1 * second));
  ASSERT_EQ(pings.size(), 2u);  // the IPv6 endpoint is not ours to reach
  EXPECT_EQ(pings[0].peer, lopower_v4);
  EXPECT_EQ(pings[1].peer, lopower_v4_other);
  // lopower answers the ping to its second endpoint; the next handshake goes there.
  const auto m = lopower.open_disco(pings[1], public_from_private(disco_key));
  ASSERT_TRUE(m);
  const auto* ping = std::get_if<disco::ping>(&*m);
  ASSERT_NE(ping, nullptr);
  EXPECT_TRUE(ping->node_key && *ping->node_key == public_from_private(node_key));
  const disco::pong pong{ping->tx_id, {ip_address::from_bytes(false, local.ip), local.port}};
  auto sealed = disco::seal(disco::message{pong}, lopower.disco_key, public_from_private(lopower.disco_key),
                            public_from_private(disco_key));
  EXPECT_TRUE(receive({lopower_v4_other, sealed}, 1 * second).empty());
  EXPECT_EQ(link.counters().disco_pongs_received, 1u);
  // The same pong again answers no ping of ours.
  receive({lopower_v4_other, sealed}, 1 * second);
  EXPECT_EQ(link.counters().disco_unexpected_pong, 1u);
  const auto inits = of_type(poll(7 * second), wg::message_type::handshake_initiation);  // the first timed out
  ASSERT_EQ(inits.size(), 1u);
  EXPECT_EQ(inits[0].peer, lopower_v4_other);
}

TEST_F(LopowerLink, PongsLopowersPingWithWhereItCameFrom) {
  disco::ping ping;
  ping.tx_id.fill(7);
  ping.node_key = lopower.id.static_public();
  const auto sealed = disco::seal(disco::message{ping}, lopower.disco_key, public_from_private(lopower.disco_key),
                                  public_from_private(disco_key));
  const auto out = receive({lopower_v4, sealed}, 1 * second);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].peer, lopower_v4);
  const auto m = lopower.open_disco(out[0], public_from_private(disco_key));
  ASSERT_TRUE(m);
  const auto* pong = std::get_if<disco::pong>(&*m);
  ASSERT_NE(pong, nullptr);
  EXPECT_EQ(pong->tx_id, ping.tx_id);
  EXPECT_EQ(pong->src.address, ip_address::from_bytes(false, lopower_v4.ip));
  EXPECT_EQ(pong->src.port, lopower_v4.port);
  // A ping naming another node key is someone else's session.
  ping.node_key = public_from_private(generate_private_key());
  EXPECT_TRUE(receive({lopower_v4, disco::seal(disco::message{ping}, lopower.disco_key,
                                               public_from_private(lopower.disco_key), public_from_private(disco_key))},
                      1 * second)
                  .empty());
  EXPECT_EQ(link.counters().disco_ping_for_another_key, 1u);
}

TEST_F(LopowerLink, RetriesRekeysAndDropsAnOldSession) {
  EXPECT_EQ(of_type(poll(1 * second), wg::message_type::handshake_initiation).size(), 1u);
  EXPECT_TRUE(of_type(poll(3 * second), wg::message_type::handshake_initiation).empty());  // waits rekey_timeout
  handshake(7 * second);  // the retry, answered
  const std::uint64_t born = 7 * second;
  EXPECT_TRUE(of_type(poll(born + 119 * second), wg::message_type::handshake_initiation).empty());
  // Rekey after rekey_after_time; lopower does not answer, the old keys serve until reject_after_time.
  EXPECT_EQ(of_type(poll(born + 120 * second), wg::message_type::handshake_initiation).size(), 1u);
  EXPECT_TRUE(link.session());
  poll(born + 179 * second);
  EXPECT_TRUE(link.session());
  poll(born + 180 * second);
  EXPECT_FALSE(link.session());
  const auto gen = link.counters().handshakes_completed;
  // A fresh peer on lopower's side: the test's initiations are made
  // milliseconds apart, inside one TAI64N tick, and would read as replays.
  lopower.peer.emplace(lopower.id, public_from_private(node_key));
  handshake(born + 190 * second);
  EXPECT_EQ(link.counters().handshakes_completed, gen + 1);
  EXPECT_EQ(link.session()->generation, 2u);
}

TEST_F(LopowerLink, ANewLopowerStartsOver) {
  handshake(1 * second);
  ASSERT_TRUE(link.session());
  lopower_side other;
  link.set_lopower(other.as_peer({lopower_v4}));
  EXPECT_FALSE(link.session());
  link.set_lopower(std::nullopt);
  EXPECT_TRUE(poll(2 * second).empty());
  EXPECT_TRUE(receive({lopower_v4, {1, 0, 0, 0}}, 2 * second).empty());
  EXPECT_EQ(link.counters().not_ready, 1u);
}

TEST_F(LopowerLink, DropsAndCountsWhatIsNotForIt) {
  std::vector<std::vector<std::uint8_t>> junk = {{}, {1}, {1, 0, 0, 0}, std::vector<std::uint8_t>(148, 0xff),
                                                 std::vector<std::uint8_t>(92, 0)};
  junk[3][0] = 1, junk[3][1] = junk[3][2] = junk[3][3] = 0;  // an initiation's size and type, MAC1 wrong
  junk[4][0] = 2;                                           // a response's, MAC1 wrong
  std::vector<std::uint8_t> foreign_disco = disco::seal(disco::message{disco::ping{}}, generate_private_key(),
                                                        public_from_private(generate_private_key()),
                                                        public_from_private(disco_key));
  junk.push_back(foreign_disco);
  std::vector<std::uint8_t> bad_box = disco::seal(disco::message{disco::ping{}}, lopower.disco_key,
                                                  public_from_private(lopower.disco_key), public_from_private(disco_key));
  bad_box.back() ^= 1;
  junk.push_back(bad_box);
  std::vector<std::uint8_t> data(32, 0);
  data[0] = 4;
  junk.push_back(data);
  std::vector<std::uint8_t> cookie(64, 0);
  cookie[0] = 3;
  junk.push_back(cookie);
  for (const auto& j : junk) EXPECT_TRUE(receive({lopower_v4, j}, 1 * second).empty());
  const auto c = link.counters();
  EXPECT_EQ(c.malformed, 3u);
  EXPECT_EQ(c.handshake_invalid_mac, 2u);
  EXPECT_EQ(c.disco_not_from_lopower, 1u);
  EXPECT_EQ(c.disco_undecryptable, 1u);
  EXPECT_EQ(c.transport_ignored, 1u);
  EXPECT_EQ(c.cookie_reply_unexpected, 1u);
  EXPECT_FALSE(link.session());
}

}  // namespace
}  // namespace lopower::loadgen

namespace lopower::loadgen {
namespace {

// tailnet_node's own part: start() refuses with a message, and stops its thread.
TEST(TailnetNode, StartRefusesABadUrlAndTimesOutWithoutAServer) {
  char dir[] = "/tmp/loadgen_tailnet_node_XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  tailnet_node_options o;
  o.control_url = "gopher://nowhere";
  o.state_dir = dir;
  o.hostname = "loadgen";
  o.lopower_hostname = "lopower";
  o.local = v4(60, 41642);
  o.start_timeout_ms = 300;
  std::string error;
  EXPECT_FALSE(tailnet_node(o).start(error));
  EXPECT_NE(error.find("control_url"), std::string::npos) << error;
  o.control_url = "http://127.0.0.1:1";  // nothing listens there
  tailnet_node node(o);
  error.clear();
  EXPECT_FALSE(node.start(error));
  EXPECT_NE(error.find("no peer named lopower in the netmap after 300 ms"), std::string::npos) << error;
  EXPECT_FALSE(node.session());
  EXPECT_TRUE(node.own_addresses().empty());
  std::vector<datagram> out;
  node.poll(1, out);  // harmless after a failed start
  EXPECT_TRUE(out.empty());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace lopower::loadgen
