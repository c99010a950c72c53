// derp::client over an in-memory stream, the test playing the server: the
// upgrade request as sent, the reply head with frames behind it in one read,
// the handshake (ClientInfo opened with the server's key), packets both
// ways, Ping/Pong both ways, PeerGone, Health, Restarting, unknown frames,
// send refusals, and every way a hostile or broken server ends it.

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "control/tailnet/derp/derp_client.h"
#include "control/tailnet/derp/derp_frames.h"
#include "lopower/byte_order.h"
#include "tests/unit/derp/fake_stream.h"
#include "tests/unit/test_hex.h"

namespace lopower::tailnet::derp {
namespace {

using bytes = std::vector<std::uint8_t>;
using test_support::fake_stream;

bytes text_bytes(std::string_view s) { return bytes(s.begin(), s.end()); }
const std::string switching = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n\r\n";

struct events {
  int ready = 0;
  std::vector<std::pair<public_key, bytes>> packets;
  std::vector<std::pair<public_key, peer_gone_reason>> gone;
  std::vector<std::string> health;
  std::optional<std::pair<std::chrono::milliseconds, std::chrono::milliseconds>> restarting;
  std::vector<std::string> closed;
  std::chrono::steady_clock::time_point closed_at{};
};

class DerpClient : public ::testing::Test {
 protected:
  void SetUp() override { make_client(); }

  void make_client(std::function<void(const public_key&, std::span<const std::uint8_t>)> on_packet = {}) {
    client::handlers h;
    h.on_ready = [this] { ++ev.ready; };
    h.on_packet = on_packet ? on_packet : [this](const public_key& src, std::span<const std::uint8_t> p) {
      ev.packets.emplace_back(src, bytes(p.begin(), p.end()));
    };
    h.on_peer_gone = [this](const public_key& k, peer_gone_reason r) { ev.gone.emplace_back(k, r); };
    h.on_restarting = [this](std::chrono::milliseconds a, std::chrono::milliseconds b) { ev.restarting = {a, b}; };
    h.on_health = [this](const std::string& s) { ev.health.push_back(s); };
    h.on_closed = [this](const std::string& r) {
      ev.closed.push_back(r);
      ev.closed_at = std::chrono::steady_clock::now();
    };
    c = std::make_unique<client>(
        loop, node,
        [this](byte_stream::handlers sh) { return std::make_unique<fake_stream>(stream, std::move(sh)); },
        std::move(h));
  }

  // Connects and answers the TCP connect; the upgrade request is then sent.
  void connect(bool preferred = false) {
    ASSERT_TRUE(c->connect("127.0.0.1", 3340, "derp.example", preferred).ok());
    stream.connected = true;
    stream.h.on_connected();
  }

  void deliver(const bytes& b) { stream.h.on_data(b); }
  void deliver(std::string_view s) { deliver(text_bytes(s)); }

  bytes take_sent() { return std::exchange(stream.sent, {}); }

  // All frames the client sent since the last call.
  std::vector<std::pair<frame_type, bytes>> sent_frames() {
    frame_reader r;
    r.feed(take_sent());
    std::vector<std::pair<frame_type, bytes>> out;
    for (;;) {
      auto f = r.next();
      if (!f.ok() || !*f) return out;
      out.emplace_back((*f)->type, bytes((*f)->body.begin(), (*f)->body.end()));
    }
  }

  // Connect, 101 + ServerKey in one read, ClientInfo checked, ServerInfo.
  void handshake(bool preferred = false) {
    connect(preferred);
    take_sent();
    bytes reply = text_bytes(switching);
    const bytes key_frame = server_key_frame(public_from_private(server));
    reply.insert(reply.end(), key_frame.begin(), key_frame.end());
    deliver(reply);
    const auto frames = sent_frames();
    ASSERT_GE(frames.size(), 1u);
    ASSERT_EQ(frames[0].first, frame_type::client_info);
    auto info = open_client_info(frames[0].second, server);
    ASSERT_TRUE(info.ok()) << info.message();
    EXPECT_EQ(info->json, R"({"version":2,"CanAckPings":true})");
    EXPECT_TRUE(info->node_key == public_from_private(node));
    if (preferred) {
      ASSERT_EQ(frames.size(), 2u);
      EXPECT_EQ(frames[1].first, frame_type::note_preferred);
      EXPECT_EQ(frames[1].second, bytes{1});
    } else {
      EXPECT_EQ(frames.size(), 1u);
    }
    EXPECT_FALSE(c->ready());
    auto server_info = server_info_frame(server, public_from_private(node));
    ASSERT_TRUE(server_info.ok());
    deliver(*server_info);
    EXPECT_TRUE(c->ready());
    EXPECT_EQ(ev.ready, 1);
    EXPECT_TRUE(c->server_key() == public_from_private(server));
  }

  event_loop loop;
  private_key node = generate_private_key();
  private_key server = generate_private_key();
  fake_stream::state stream;
  events ev;
  std::unique_ptr<client> c;
};

TEST_F(DerpClient, UpgradeRequestAsSpecified) {
  connect();
  EXPECT_EQ(stream.host, "127.0.0.1");
  EXPECT_EQ(stream.port, 3340);
  const bytes sent = take_sent();
  EXPECT_EQ(std::string(sent.begin(), sent.end()),
            "GET /derp HTTP/1.1\r\nHost: derp.example\r\nUser-Agent: lopower\r\nConnection: Upgrade\r\n"
            "Upgrade: DERP\r\n\r\n");
}

TEST_F(DerpClient, BadHostHeaderIsRefused) {
  EXPECT_FALSE(c->connect("127.0.0.1", 3340, "evil\r\nX: y", false).ok());
  EXPECT_FALSE(c->connect("127.0.0.1", 3340, "", false).ok());
}

TEST_F(DerpClient, ConnectFailureIsReturnedNotReported) {
  stream.fail_connect = true;
  auto r = c->connect("nowhere.invalid", 3340, "nowhere.invalid", false);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.message().rfind("connect: ", 0), 0u) << r.message();
  EXPECT_TRUE(ev.closed.empty());
}

TEST_F(DerpClient, HandshakeAndPreferred) { handshake(/*preferred=*/true); }

TEST_F(DerpClient, ReplyHeadInPiecesThenFrames) {
  connect();
  take_sent();
  const std::string head = switching;
  for (const char ch : head) deliver(std::string_view(&ch, 1));
  const bytes key_frame = server_key_frame(public_from_private(server));
  deliver(bytes(key_frame.begin(), key_frame.begin() + 3));
  EXPECT_TRUE(stream.sent.empty());
  deliver(bytes(key_frame.begin() + 3, key_frame.end()));
  const auto frames = sent_frames();
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].first, frame_type::client_info);
  EXPECT_TRUE(ev.closed.empty());
}

TEST_F(DerpClient, NonSwitchingReplyCloses) {
  connect();
  deliver("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
  ASSERT_EQ(ev.closed.size(), 1u);
  EXPECT_EQ(ev.closed[0], "upgrade: HTTP 404");
  EXPECT_FALSE(stream.open);
}

TEST_F(DerpClient, GarbageReplyCloses) {
  connect();
  deliver("SSH-2.0-OpenSSH\r\n\r\n");
  ASSERT_EQ(ev.closed.size(), 1u);
  EXPECT_EQ(ev.closed[0].rfind("upgrade: ", 0), 0u) << ev.closed[0];
}

TEST_F(DerpClient, EndlessReplyHeadCloses) {
  connect();
  const std::string line = "X-Filler: " + std::string(1000, 'a') + "\r\n";
  deliver("HTTP/1.1 101 Switching Protocols\r\n");
  for (int i = 0; i < 40 && ev.closed.empty(); ++i) deliver(line);
  ASSERT_EQ(ev.closed.size(), 1u);
  EXPECT_NE(ev.closed[0].find("longer than"), std::string::npos) << ev.closed[0];
}

TEST_F(DerpClient, FirstFrameMustBeServerKey) {
  connect();
  bytes reply = text_bytes(switching);
  const bytes ka = keep_alive_frame();
  reply.insert(reply.end(), ka.begin(), ka.end());
  deliver(reply);
  ASSERT_EQ(ev.closed.size(), 1u);
  EXPECT_EQ(ev.closed[0], "handshake: expected ServerKey, got keep_alive (6)");
}

TEST_F(DerpClient, ServerInfoFromAnotherKeyCloses) {
  connect();
  bytes reply = text_bytes(switching);
  const bytes key_frame = server_key_frame(public_from_private(server));
  reply.insert(reply.end(), key_frame.begin(), key_frame.end());
  deliver(reply);
  auto forged = server_info_frame(generate_private_key(), public_from_private(node));
  ASSERT_TRUE(forged.ok());
  deliver(*forged);
  ASSERT_EQ(ev.closed.size(), 1u);
  EXPECT_EQ(ev.closed[0].rfind("handshake: derp: ServerInfo", 0), 0u) << ev.closed[0];
  EXPECT_FALSE(c->ready());
}

TEST_F(DerpClient, PacketsBothWays) {
  handshake();
  const public_key peer = public_from_private(generate_private_key());
  const bytes payload = {1, 2, 3, 4};
  EXPECT_TRUE(c->send_packet(peer, payload));
  EXPECT_EQ(take_sent(), send_packet_frame(peer, payload));
  bytes in;
  append_recv_packet(in, peer, payload);
  append_recv_packet(in, peer, bytes{});
  deliver(in);
  ASSERT_EQ(ev.packets.size(), 2u);
  EXPECT_TRUE(ev.packets[0].first == peer);
  EXPECT_EQ(ev.packets[0].second, payload);
  EXPECT_TRUE(ev.packets[1].second.empty());
  EXPECT_EQ(c->stats().packets_sent, 1u);
  EXPECT_EQ(c->stats().bytes_sent, 4u);
  EXPECT_EQ(c->stats().packets_received, 2u);
  EXPECT_EQ(c->stats().bytes_received, 4u);
}

TEST_F(DerpClient, SendRefusals) {
  const public_key peer = public_from_private(generate_private_key());
  EXPECT_FALSE(c->send_packet(peer, bytes{1}));
  EXPECT_EQ(c->stats().send_refused_not_ready, 1u);
  handshake();
  EXPECT_FALSE(c->send_packet(peer, bytes(client::max_packet + 1, 0)));
  EXPECT_EQ(c->stats().send_refused_too_big, 1u);
  EXPECT_TRUE(c->send_packet(peer, bytes(client::max_packet, 0)));
  stream.queued = client::max_queued_bytes - 10;
  EXPECT_FALSE(c->send_packet(peer, bytes(100, 0)));
  EXPECT_EQ(c->stats().send_refused_queue_full, 1u);
  EXPECT_EQ(c->stats().packets_sent, 1u);
  const auto json = c->stats().to_json();
  EXPECT_EQ(json["send_refused_queue_full"], 1);
}

TEST_F(DerpClient, ServerPingIsAnsweredAndOurPingGetsItsPong) {
  handshake();
  deliver(ping_frame({1, 2, 3, 4, 5, 6, 7, 8}));
  auto frames = sent_frames();
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].first, frame_type::pong);
  EXPECT_EQ(frames[0].second, (bytes{1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(c->stats().pings_answered, 1u);

  std::optional<std::chrono::microseconds> rtt;
  c->ping([&](std::chrono::microseconds r) { rtt = r; });
  frames = sent_frames();
  ASSERT_EQ(frames.size(), 1u);
  ASSERT_EQ(frames[0].first, frame_type::ping);
  ASSERT_EQ(frames[0].second.size(), 8u);
  deliver(pong_frame({0, 0, 0, 0, 0, 0, 0, 0}));  // not ours
  EXPECT_FALSE(rtt.has_value());
  ping_data echoed{};
  std::copy(frames[0].second.begin(), frames[0].second.end(), echoed.begin());
  deliver(pong_frame(echoed));
  ASSERT_TRUE(rtt.has_value());
  EXPECT_GE(rtt->count(), 0);
  EXPECT_EQ(c->stats().pongs_received, 2u);
}

TEST_F(DerpClient, PeerGoneHealthRestartingKeepAliveUnknown) {
  handshake();
  const public_key peer = public_from_private(generate_private_key());
  bytes in = peer_gone_frame(peer, 1);
  for (const auto& f : {peer_gone_frame(peer, 0), health_frame("overloaded"), health_frame(""),
                        restarting_frame(2000, 30000), keep_alive_frame(), bytes{0x42, 0, 0, 0, 1, 7},
                        server_key_frame(peer)})
    in.insert(in.end(), f.begin(), f.end());
  deliver(in);
  ASSERT_EQ(ev.gone.size(), 2u);
  EXPECT_TRUE(ev.gone[0].first == peer);
  EXPECT_EQ(ev.gone[0].second, peer_gone_reason::not_here);
  EXPECT_EQ(ev.gone[1].second, peer_gone_reason::disconnected);
  EXPECT_EQ(ev.health, (std::vector<std::string>{"overloaded", ""}));
  ASSERT_TRUE(ev.restarting.has_value());
  EXPECT_EQ(ev.restarting->first.count(), 2000);
  EXPECT_EQ(ev.restarting->second.count(), 30000);
  EXPECT_EQ(c->stats().keepalives, 1u);
  EXPECT_EQ(c->stats().unknown_frames, 1u);
  EXPECT_EQ(c->stats().peer_gone, 2u);
  EXPECT_TRUE(ev.closed.empty());
  EXPECT_TRUE(c->ready());
}

TEST_F(DerpClient, MalformedFramesClose) {
  const std::vector<bytes> bad = {
      {0x05, 0, 0, 0, 3, 1, 2, 3},                 // RecvPacket shorter than a key
      {0x08, 0, 0, 0, 1, 0},                       // PeerGone shorter than a key
      {0x12, 0, 0, 0, 2, 1, 2},                    // short Ping
      {0x13, 0, 0, 0, 0},                          // short Pong
      {0x15, 0, 0, 0, 4, 0, 0, 0, 1},              // short Restarting
      {0x05, 0x00, 0x10, 0x00, 0x01},              // a frame of 1 MiB + 1
  };
  for (const auto& frame : bad) {
    ev = {};
    stream = {};
    make_client();
    handshake();
    deliver(frame);
    ASSERT_EQ(ev.closed.size(), 1u) << lopower::test_hex::hex(frame);
    EXPECT_FALSE(c->ready());
    EXPECT_FALSE(stream.open);
    // Nothing more is read or reported once closed.
    deliver(keep_alive_frame());
    EXPECT_EQ(ev.closed.size(), 1u);
  }
}

TEST_F(DerpClient, ServerCloseIsReportedOnce) {
  handshake();
  stream.open = false;
  stream.h.on_closed("");
  ASSERT_EQ(ev.closed.size(), 1u);
  EXPECT_EQ(ev.closed[0], "server closed");
  EXPECT_FALSE(c->ready());
}

TEST_F(DerpClient, CloseIsSilentAndPingsAreForgotten) {
  handshake();
  bool called = false;
  c->ping([&](std::chrono::microseconds) { called = true; });
  const auto frames = sent_frames();
  c->close();
  EXPECT_TRUE(ev.closed.empty());
  EXPECT_FALSE(c->ready());
  EXPECT_FALSE(c->send_packet(public_key(), bytes{1}));
  EXPECT_FALSE(called);
}

TEST_F(DerpClient, HandlerMayDestroyTheClientMidBatch) {
  make_client([this](const public_key&, std::span<const std::uint8_t>) { c.reset(); });
  handshake();
  bytes in;
  append_recv_packet(in, public_key(), bytes{1});
  append_recv_packet(in, public_key(), bytes{2});
  const bytes ping = ping_frame({1, 1, 1, 1, 1, 1, 1, 1});
  in.insert(in.end(), ping.begin(), ping.end());
  auto on_data = stream.h.on_data;  // the stream dies with the client
  on_data(in);
  EXPECT_EQ(c, nullptr);
}

TEST_F(DerpClient, ReconnectFromOnClosed) {
  client::handlers h;
  int closes = 0;
  h.on_closed = [&](const std::string&) {
    if (++closes == 1) {
      ASSERT_TRUE(c->connect("127.0.0.1", 3340, "derp.example", false).ok());
    }
  };
  c = std::make_unique<client>(
      loop, node, [this](byte_stream::handlers sh) { return std::make_unique<fake_stream>(stream, std::move(sh)); },
      std::move(h));
  connect();
  take_sent();
  deliver("HTTP/1.1 500 Oops\r\n\r\n" "trailing junk");
  EXPECT_EQ(closes, 1);
  EXPECT_TRUE(stream.open);  // the new connection
  stream.h.on_connected();
  const bytes sent = take_sent();
  EXPECT_EQ(std::string(sent.begin(), sent.begin() + 10), "GET /derp ");
}

TEST_F(DerpClient, HandshakeTimeout) {
  c->set_timeouts(std::chrono::milliseconds(50), std::chrono::seconds(10));
  const auto start = std::chrono::steady_clock::now();
  connect();
  deliver(switching);  // switched, but no ServerKey ever comes
  loop.add_timer(std::chrono::milliseconds(300), {}, [this] { loop.stop(); });
  loop.run();
  ASSERT_EQ(ev.closed, std::vector<std::string>{"handshake timeout"});
  EXPECT_GE(ev.closed_at - start, std::chrono::milliseconds(50));
  EXPECT_FALSE(stream.open);
}

TEST_F(DerpClient, ReadTimeoutIsPushedBackByEveryFrame) {
  c->set_timeouts(std::chrono::seconds(10), std::chrono::milliseconds(250));
  handshake();
  const auto start = std::chrono::steady_clock::now();
  // A KeepAlive every 40 ms for 400 ms: well inside the timeout each time.
  const auto keep_alives = loop.add_timer(std::chrono::milliseconds(40), std::chrono::milliseconds(40),
                                          [this] { deliver(keep_alive_frame()); });
  loop.add_timer(std::chrono::milliseconds(400), {}, [&] { loop.cancel_timer(keep_alives); });
  loop.add_timer(std::chrono::milliseconds(1500), {}, [this] { loop.stop(); });
  loop.run();
  ASSERT_EQ(ev.closed, std::vector<std::string>{"read timeout"});
  EXPECT_GE(ev.closed_at - start, std::chrono::milliseconds(500));  // not before the last KeepAlive + 250
  EXPECT_GE(c->stats().keepalives, 5u);
}

}  // namespace
}  // namespace lopower::tailnet::derp
