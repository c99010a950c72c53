// DERP frames: the incremental reader on input cut anywhere, joined or too
// large; the ClientInfo and ServerInfo boxes opened by the other side with
// the exact JSON tailscaled sends; and each server frame's parser on good,
// short and foreign bodies.

#include <gtest/gtest.h>
#include <sodium.h>

#include <string>
#include <vector>

#include "control/tailnet/derp/derp_frames.h"
#include "lopower/byte_order.h"
#include "tests/unit/test_hex.h"

namespace lopower::tailnet::derp {
namespace {

using bytes = std::vector<std::uint8_t>;
using lopower::test_hex::hex;
using lopower::test_hex::unhex;

bytes text_bytes(std::string_view s) { return bytes(s.begin(), s.end()); }

public_key key_of(std::uint8_t fill) {
  std::array<std::uint8_t, key_size> raw{};
  raw.fill(fill);
  return public_key(raw);
}

// All whole frames the reader yields now, as (type, body) pairs.
std::vector<std::pair<frame_type, bytes>> drain(frame_reader& r) {
  std::vector<std::pair<frame_type, bytes>> out;
  for (;;) {
    auto next = r.next();
    EXPECT_TRUE(next.ok()) << next.message();
    if (!next.ok() || !*next) return out;
    out.emplace_back((*next)->type, bytes((*next)->body.begin(), (*next)->body.end()));
  }
}

TEST(DerpFrameReader, SplitAtEveryByte) {
  bytes stream = send_packet_frame(key_of(7), text_bytes("hello"));
  const bytes keep_alive = keep_alive_frame();
  stream.insert(stream.end(), keep_alive.begin(), keep_alive.end());
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    frame_reader r;
    r.feed(std::span(stream).first(cut));
    auto first = drain(r);
    r.feed(std::span(stream).subspan(cut));
    auto second = drain(r);
    first.insert(first.end(), second.begin(), second.end());
    ASSERT_EQ(first.size(), 2u) << "cut at " << cut;
    EXPECT_EQ(first[0].first, frame_type::send_packet);
    EXPECT_EQ(first[0].second.size(), key_size + 5);
    EXPECT_EQ(std::string(first[0].second.begin() + key_size, first[0].second.end()), "hello");
    EXPECT_EQ(first[1].first, frame_type::keep_alive);
    EXPECT_TRUE(first[1].second.empty());
    EXPECT_EQ(r.buffered(), 0u);
  }
}

TEST(DerpFrameReader, ByteByByte) {
  bytes stream = ping_frame({1, 2, 3, 4, 5, 6, 7, 8});
  const bytes pong = pong_frame({8, 7, 6, 5, 4, 3, 2, 1});
  stream.insert(stream.end(), pong.begin(), pong.end());
  frame_reader r;
  std::vector<std::pair<frame_type, bytes>> got;
  for (const std::uint8_t b : stream) {
    r.feed(std::span(&b, 1));
    auto some = drain(r);
    got.insert(got.end(), some.begin(), some.end());
  }
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].first, frame_type::ping);
  EXPECT_EQ(hex(got[0].second), "0102030405060708");
  EXPECT_EQ(got[1].first, frame_type::pong);
  EXPECT_EQ(hex(got[1].second), "0807060504030201");
}

TEST(DerpFrameReader, ManyJoinedFrames) {
  bytes stream;
  for (int i = 0; i < 100; ++i) append_recv_packet(stream, key_of(static_cast<std::uint8_t>(i)), bytes(i, 0xab));
  frame_reader r;
  r.feed(stream);
  const auto got = drain(r);
  ASSERT_EQ(got.size(), 100u);
  for (int i = 0; i < 100; ++i) {
    auto p = parse_recv_packet(got[static_cast<std::size_t>(i)].second);
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(p->src, key_of(static_cast<std::uint8_t>(i)));
    EXPECT_EQ(p->packet.size(), static_cast<std::size_t>(i));
  }
}

TEST(DerpFrameReader, OversizedFrameIsAnErrorFromItsHeader) {
  bytes header = {0x05, 0, 0, 0, 0};
  store_be32(header.data() + 1, max_frame_body + 1);
  frame_reader r;
  r.feed(header);  // the body never needs to arrive
  auto next = r.next();
  ASSERT_FALSE(next.ok());
  EXPECT_NE(next.message().find("1048577"), std::string::npos) << next.message();
  EXPECT_TRUE(r.failed());
  EXPECT_FALSE(r.next().ok());  // stays failed
  r.feed(keep_alive_frame());
  EXPECT_FALSE(r.next().ok());
}

TEST(DerpFrameReader, LargestFrameIsAccepted) {
  bytes frame = {0x05, 0, 0, 0, 0};
  store_be32(frame.data() + 1, max_frame_body);
  frame.resize(frame_header_size + max_frame_body, 0x11);
  frame_reader r;
  r.feed(std::span(frame).first(frame.size() - 1));
  auto partial = r.next();
  ASSERT_TRUE(partial.ok());
  EXPECT_FALSE(partial->has_value());
  r.feed(std::span(frame).last(1));
  auto whole = r.next();
  ASSERT_TRUE(whole.ok() && whole->has_value());
  EXPECT_EQ((*whole)->body.size(), max_frame_body);
}

TEST(DerpFrameReader, SmallerBoundForTests) {
  frame_reader r(16);
  r.feed(send_packet_frame(key_of(1), {}));  // 32-byte body
  EXPECT_FALSE(r.next().ok());
}

TEST(DerpFrames, ClientInfoOpensToTheExactJson) {
  const private_key server = generate_private_key();
  const private_key node = generate_private_key();
  auto frame = client_info_frame(node, public_from_private(node), public_from_private(server));
  ASSERT_TRUE(frame.ok()) << frame.message();
  const std::string json = R"({"version":2,"CanAckPings":true})";
  // tailscaled's ClientInfo body is 104 bytes: key 32, nonce 24, tag 16, JSON 32.
  ASSERT_EQ(frame->size(), frame_header_size + 104);
  EXPECT_EQ((*frame)[0], 0x02);
  EXPECT_EQ(load_be32(frame->data() + 1), 104u);
  const auto body = std::span<const std::uint8_t>(*frame).subspan(frame_header_size);
  EXPECT_TRUE(public_key::from_bytes(body.data()) == public_from_private(node));
  auto opened = open_client_info(body, server);
  ASSERT_TRUE(opened.ok()) << opened.message();
  EXPECT_EQ(opened->json, json);
  EXPECT_TRUE(opened->node_key == public_from_private(node));
  // Opened by anyone else, it does not open.
  EXPECT_FALSE(open_client_info(body, generate_private_key()).ok());
}

TEST(DerpFrames, ClientInfoNoncesAreFresh) {
  const private_key server = generate_private_key();
  const private_key node = generate_private_key();
  auto a = client_info_frame(node, public_from_private(node), public_from_private(server));
  auto b = client_info_frame(node, public_from_private(node), public_from_private(server));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
}

TEST(DerpFrames, ClientInfoToLowOrderKeyFails) {
  const private_key node = generate_private_key();
  EXPECT_FALSE(client_info_frame(node, public_from_private(node), public_key()).ok());
}

TEST(DerpFrames, ServerInfoRoundTrip) {
  const private_key server = generate_private_key();
  const private_key node = generate_private_key();
  auto frame = server_info_frame(server, public_from_private(node),
                                 R"({"version":2,"TokenBucketBytesPerSecond":1000,"TokenBucketBytesBurst":5000})");
  ASSERT_TRUE(frame.ok());
  frame_reader r;
  r.feed(*frame);
  auto f = r.next();
  ASSERT_TRUE(f.ok() && f->has_value());
  EXPECT_EQ((*f)->type, frame_type::server_info);
  auto info = open_server_info((*f)->body, node, public_from_private(server));
  ASSERT_TRUE(info.ok()) << info.message();
  EXPECT_EQ(info->version, 2);
  EXPECT_EQ(info->token_bucket_bytes_per_second, 1000u);
  EXPECT_EQ(info->token_bucket_bytes_burst, 5000u);

  auto plain = server_info_frame(server, public_from_private(node));
  ASSERT_TRUE(plain.ok());
  auto minimal = open_server_info(std::span<const std::uint8_t>(*plain).subspan(frame_header_size), node,
                                  public_from_private(server));
  ASSERT_TRUE(minimal.ok());
  EXPECT_EQ(minimal->json, R"({"version":2})");
  EXPECT_FALSE(minimal->token_bucket_bytes_per_second.has_value());
}

TEST(DerpFrames, ServerInfoRefusals) {
  const private_key server = generate_private_key();
  const private_key node = generate_private_key();
  auto frame = server_info_frame(server, public_from_private(node));
  ASSERT_TRUE(frame.ok());
  bytes body(frame->begin() + frame_header_size, frame->end());
  // Wrong server key.
  EXPECT_FALSE(open_server_info(body, node, public_from_private(generate_private_key())).ok());
  // A flipped bit.
  bytes corrupt = body;
  corrupt.back() ^= 1;
  EXPECT_FALSE(open_server_info(corrupt, node, public_from_private(server)).ok());
  // Shorter than nonce + tag.
  EXPECT_FALSE(open_server_info(std::span(body).first(nonce_size + box_tag_size - 1), node,
                                public_from_private(server)).ok());
  // Not JSON.
  auto not_json = server_info_frame(server, public_from_private(node), "version 2");
  ASSERT_TRUE(not_json.ok());
  EXPECT_FALSE(open_server_info(std::span<const std::uint8_t>(*not_json).subspan(frame_header_size), node,
                                public_from_private(server)).ok());
}

TEST(DerpFrames, ServerKey) {
  const public_key k = key_of(0x5a);
  const bytes frame = server_key_frame(k);
  EXPECT_EQ(hex(std::span(frame).first(13)), "0100000028" "44455250f09f9491");
  const auto body = std::span<const std::uint8_t>(frame).subspan(frame_header_size);
  auto parsed = parse_server_key(body);
  ASSERT_TRUE(parsed.ok());
  EXPECT_TRUE(*parsed == k);
  // Future bytes after the key are fine.
  bytes longer(body.begin(), body.end());
  longer.push_back(9);
  EXPECT_TRUE(parse_server_key(longer).ok());
  // Short, or another magic.
  EXPECT_FALSE(parse_server_key(body.first(39)).ok());
  bytes wrong(body.begin(), body.end());
  wrong[0] = 'd';
  EXPECT_FALSE(parse_server_key(wrong).ok());
}

TEST(DerpFrames, SendPacketLayout) {
  const bytes frame = send_packet_frame(key_of(0xee), bytes{1, 2, 3});
  EXPECT_EQ(hex(frame), "0400000023" + std::string(64, 'e') + "010203");
}

TEST(DerpFrames, NotePreferredPingPong) {
  EXPECT_EQ(hex(note_preferred_frame(true)), "070000000101");
  EXPECT_EQ(hex(note_preferred_frame(false)), "070000000100");
  EXPECT_EQ(hex(ping_frame({1, 2, 3, 4, 5, 6, 7, 8})), "12000000080102030405060708");
  EXPECT_EQ(hex(pong_frame({1, 2, 3, 4, 5, 6, 7, 8})), "13000000080102030405060708");
}

TEST(DerpFrames, RecvPacket) {
  bytes frame;
  append_recv_packet(frame, key_of(3), bytes{9, 9});
  auto p = parse_recv_packet(std::span<const std::uint8_t>(frame).subspan(frame_header_size));
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->src == key_of(3));
  EXPECT_EQ(hex(p->packet), "0909");
  EXPECT_TRUE(parse_recv_packet(bytes(32, 0)).ok());  // an empty packet
  EXPECT_FALSE(parse_recv_packet(bytes(31, 0)).ok());
}

TEST(DerpFrames, PeerGone) {
  const bytes frame = peer_gone_frame(key_of(4), 1);
  auto g = parse_peer_gone(std::span<const std::uint8_t>(frame).subspan(frame_header_size));
  ASSERT_TRUE(g.ok());
  EXPECT_TRUE(g->peer == key_of(4));
  EXPECT_EQ(g->reason, 1);
  auto old = parse_peer_gone(bytes(32, 4));  // no reason byte: disconnected
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(old->reason, 0);
  EXPECT_FALSE(parse_peer_gone(bytes(31, 4)).ok());
}

TEST(DerpFrames, RestartingHealthPing) {
  const bytes frame = restarting_frame(1500, 60000);
  auto r = parse_restarting(std::span<const std::uint8_t>(frame).subspan(frame_header_size));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->reconnect_in.count(), 1500);
  EXPECT_EQ(r->try_for.count(), 60000);
  EXPECT_FALSE(parse_restarting(bytes(7, 0)).ok());

  EXPECT_EQ(parse_health(text_bytes("disk \x01 full\xff")), "disk ? full?");
  EXPECT_EQ(parse_health({}), "");
  EXPECT_EQ(parse_health(bytes(5000, 'a')).size(), max_health_text);

  EXPECT_FALSE(parse_ping_data(bytes(7, 0)).ok());
  auto longer = parse_ping_data(unhex("0102030405060708ffff"));
  ASSERT_TRUE(longer.ok());
  EXPECT_EQ(hex(*longer), "0102030405060708");
}

TEST(DerpFrames, TypeNames) {
  EXPECT_STREQ(to_string(frame_type::recv_packet), "recv_packet");
  EXPECT_STREQ(to_string(static_cast<frame_type>(0x99)), "unknown");
}

}  // namespace
}  // namespace lopower::tailnet::derp
