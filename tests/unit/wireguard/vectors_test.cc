// Known answers from an independent implementation (gen_vectors.py:
// noiseprotocol, CPython's BLAKE2s, cryptography, PyNaCl): our initiator
// must produce exactly the vector's initiation, our responder must accept
// it and produce exactly the vector's response, and both sides must derive
// the vector's transport keys. The cookie reply and MAC2 likewise.

#include <gtest/gtest.h>
#include <sodium.h>

#include "control/wireguard/engine/cookie.h"
#include "control/wireguard/engine/noise_handshake.h"
#include "control/wireguard/engine/tai64n.h"
#include "tests/unit/wireguard/test_support.h"

namespace lopower::wg {
namespace {

using test::hex;
using test::hex_of;
using test::key_from_hex;
using test::message_from_hex;

constexpr std::uint64_t t0 = 1'000'000'000'000;  // a monotonic "now", far from zero

class handshake_vectors : public ::testing::TestWithParam<std::size_t> {
 protected:
  // at(): a vector missing from the file fails the test (operator[] would not).
  const nlohmann::json& v() const { return test::vectors().at("handshakes").at(GetParam()); }
  std::string s(const char* name) const { return v()[name].get<std::string>(); }
  std::optional<key32> psk() const {
    if (v()["preshared_key"].is_null()) return std::nullopt;
    return key_from_hex<key32>(s("preshared_key"));
  }
  tai64n timestamp() const { return tai64n::from_bytes(test::unhex(s("timestamp")).data()); }
};

TEST_P(handshake_vectors, static_keys_match) {
  const static_identity initiator(key_from_hex<private_key>(s("initiator_static_private")));
  const static_identity responder(key_from_hex<private_key>(s("responder_static_private")));
  ASSERT_TRUE(initiator.valid());
  ASSERT_TRUE(responder.valid());
  EXPECT_EQ(initiator.static_public().to_hex(), s("initiator_static_public"));
  EXPECT_EQ(responder.static_public().to_hex(), s("responder_static_public"));
}

TEST_P(handshake_vectors, timestamp_matches_tai64n) {
  const auto seconds = v()["timestamp_unix_seconds"].get<std::int64_t>();
  const auto nanos = v()["timestamp_nanoseconds"].get<std::uint32_t>();
  EXPECT_EQ(tai64n::from_unix(seconds, nanos), timestamp());
  // tai64n_now whitens the low 24 bits of the nanoseconds away.
  EXPECT_EQ(tai64n_now(seconds * 1'000'000'000 + nanos + 12345), timestamp());
}

TEST_P(handshake_vectors, initiator_produces_the_initiation) {
  const static_identity initiator(key_from_hex<private_key>(s("initiator_static_private")));
  const auto responder_public = key_from_hex<public_key>(s("responder_static_public"));
  peer_handshake peer(initiator, responder_public, psk());
  test::scripted_random rng;
  rng.push_hex(s("initiator_ephemeral_private"));

  message_handshake_initiation msg;
  ASSERT_EQ(create_initiation(msg, peer, initiator, v()["initiator_index"].get<std::uint32_t>(), timestamp(), rng),
            handshake_error::none);
  cookie_maker maker(responder_public);
  ASSERT_TRUE(maker.add_macs(msg, t0));
  EXPECT_EQ(hex_of(msg), s("initiation"));
  EXPECT_EQ(peer.state(), handshake_state::created_initiation);
  EXPECT_EQ(peer.local_index(), v()["initiator_index"].get<std::uint32_t>());
}

TEST_P(handshake_vectors, responder_consumes_the_initiation_and_produces_the_response) {
  const static_identity responder(key_from_hex<private_key>(s("responder_static_private")));
  const auto initiator_public = key_from_hex<public_key>(s("initiator_static_public"));
  test::peer_table peers;
  peer_handshake& peer = peers.add(responder, initiator_public, psk());

  const auto init = message_from_hex<message_handshake_initiation>(s("initiation"));
  cookie_checker checker;
  const auto source = packet_source::v4(std::array<std::uint8_t, 4>{192, 0, 2, 1}.data(), 51820);
  EXPECT_EQ(checker.validate(responder, reinterpret_cast<const std::uint8_t*>(&init), sizeof init, source, false, t0),
            mac_status::valid_mac_no_cookie);

  const consume_result r = consume_initiation(init, responder, peers, t0);
  ASSERT_TRUE(r) << to_string(r.error);
  EXPECT_EQ(r.peer, &peer);
  EXPECT_EQ(peer.state(), handshake_state::consumed_initiation);
  EXPECT_EQ(peer.remote_index(), v()["initiator_index"].get<std::uint32_t>());
  EXPECT_EQ(peer.latest_timestamp(), timestamp());

  test::scripted_random rng;
  rng.push_hex(s("responder_ephemeral_private"));
  message_handshake_response resp;
  ASSERT_EQ(create_response(resp, peer, responder, v()["responder_index"].get<std::uint32_t>(), rng),
            handshake_error::none);
  cookie_maker maker(initiator_public);
  ASSERT_TRUE(maker.add_macs(resp, t0));
  EXPECT_EQ(hex_of(resp), s("response"));

  const auto keys = derive_keypair(peer);
  ASSERT_TRUE(keys);
  EXPECT_FALSE(keys->initiator);
  EXPECT_EQ(keys->send.to_hex(), s("initiator_receive_key"));
  EXPECT_EQ(keys->receive.to_hex(), s("initiator_send_key"));
  EXPECT_EQ(keys->local_index, v()["responder_index"].get<std::uint32_t>());
  EXPECT_EQ(keys->remote_index, v()["initiator_index"].get<std::uint32_t>());
  EXPECT_EQ(peer.state(), handshake_state::zeroed);
}

TEST_P(handshake_vectors, initiator_consumes_the_response_and_derives_the_keys) {
  const static_identity initiator(key_from_hex<private_key>(s("initiator_static_private")));
  const auto responder_public = key_from_hex<public_key>(s("responder_static_public"));
  test::peer_table peers;
  peer_handshake& peer = peers.add(initiator, responder_public, psk());
  test::scripted_random rng;
  rng.push_hex(s("initiator_ephemeral_private"));
  message_handshake_initiation init;
  ASSERT_EQ(create_initiation(init, peer, initiator, v()["initiator_index"].get<std::uint32_t>(), timestamp(), rng),
            handshake_error::none);

  const auto resp = message_from_hex<message_handshake_response>(s("response"));
  cookie_checker checker;
  const auto source = packet_source::v4(std::array<std::uint8_t, 4>{192, 0, 2, 2}.data(), 51820);
  EXPECT_EQ(checker.validate(initiator, reinterpret_cast<const std::uint8_t*>(&resp), sizeof resp, source, false, t0),
            mac_status::valid_mac_no_cookie);
  const consume_result r = consume_response(resp, initiator, peers);
  ASSERT_TRUE(r) << to_string(r.error);
  EXPECT_EQ(r.peer, &peer);
  EXPECT_EQ(peer.state(), handshake_state::consumed_response);

  const auto keys = derive_keypair(peer);
  ASSERT_TRUE(keys);
  EXPECT_TRUE(keys->initiator);
  EXPECT_EQ(keys->send.to_hex(), s("initiator_send_key"));
  EXPECT_EQ(keys->receive.to_hex(), s("initiator_receive_key"));
  EXPECT_EQ(keys->local_index, v()["initiator_index"].get<std::uint32_t>());
  EXPECT_EQ(keys->remote_index, v()["responder_index"].get<std::uint32_t>());

  // The first transport message (a keepalive, counter 0) under the send key.
  std::uint8_t nonce[12] = {};
  std::uint8_t tag[16];
  crypto_aead_chacha20poly1305_ietf_encrypt(tag, nullptr, nullptr, 0, nullptr, 0, nullptr, nonce, keys->send.data());
  EXPECT_EQ(hex(tag, sizeof tag), s("keepalive_from_initiator"));
}

INSTANTIATE_TEST_SUITE_P(wireguard, handshake_vectors, ::testing::Values(0u, 1u),
                         [](const ::testing::TestParamInfo<std::size_t>& param_info) {
                           return param_info.param == 0 ? std::string("with_psk") : std::string("without_psk");
                         });

TEST(cookie_vectors, reply_to_initiation_and_mac2) {
  const auto& h = test::vectors()["handshakes"][0];
  const auto& c = test::vectors()["cookie"];
  const static_identity responder(key_from_hex<private_key>(h["responder_static_private"].get<std::string>()));
  const auto responder_public = responder.static_public();
  const auto init_bytes = test::unhex(h["initiation"].get<std::string>());
  const auto ip = test::unhex(c["source_ipv4"].get<std::string>());
  const auto source = packet_source::v4(ip.data(), c["source_port_v4"].get<std::uint16_t>());

  test::scripted_random rng;
  rng.push_hex(c["nonce"].get<std::string>());
  cookie_checker checker(rng);
  checker.set_secret(key_from_hex<key32>(c["secret"].get<std::string>()), t0);
  message_handshake_cookie reply;
  ASSERT_TRUE(checker.create_reply(reply, responder, init_bytes.data(), init_bytes.size(), source, t0 + 1));
  EXPECT_EQ(hex_of(reply), c["reply_to_initiation"].get<std::string>());

  // The initiator takes the cookie from the vector's reply (having sent
  // that initiation, so that its MAC1 is the associated data) ...
  cookie_maker maker(responder_public);
  auto init = message_from_hex<message_handshake_initiation>(h["initiation"].get<std::string>());
  ASSERT_TRUE(maker.add_macs(init, t0));
  EXPECT_EQ(hex_of(init), h["initiation"].get<std::string>());  // no cookie yet: MAC2 zero
  ASSERT_TRUE(maker.consume_reply(message_from_hex<message_handshake_cookie>(c["reply_to_initiation"].get<std::string>()), t0 + 2));
  // ... and MACs the initiation again, now with MAC2.
  ASSERT_TRUE(maker.add_macs(init, t0 + 3));
  EXPECT_EQ(hex_of(init), c["initiation_with_mac2"].get<std::string>());

  // The responder, under load, accepts that MAC2 from that source only.
  const auto with_mac2 = test::unhex(c["initiation_with_mac2"].get<std::string>());
  EXPECT_EQ(checker.validate(responder, with_mac2.data(), with_mac2.size(), source, true, t0 + 4),
            mac_status::valid_mac_with_cookie);
  auto other_port = source;
  other_port.port = static_cast<std::uint16_t>(source.port + 1);
  EXPECT_EQ(checker.validate(responder, with_mac2.data(), with_mac2.size(), other_port, true, t0 + 4),
            mac_status::valid_mac_no_cookie);
}

TEST(cookie_vectors, reply_to_response_from_ipv6) {
  const auto& h = test::vectors()["handshakes"][0];
  const auto& c = test::vectors()["cookie"];
  // The initiator, receiving the response, is the one under load here.
  const static_identity initiator(key_from_hex<private_key>(h["initiator_static_private"].get<std::string>()));
  const auto resp_bytes = test::unhex(h["response"].get<std::string>());
  const auto ip = test::unhex(c["source_ipv6"].get<std::string>());
  const auto source = packet_source::v6(ip.data(), c["source_port_v6"].get<std::uint16_t>());

  test::scripted_random rng;
  rng.push_hex(c["nonce"].get<std::string>());
  cookie_checker checker(rng);
  checker.set_secret(key_from_hex<key32>(c["secret"].get<std::string>()), t0);
  message_handshake_cookie reply;
  ASSERT_TRUE(checker.create_reply(reply, initiator, resp_bytes.data(), resp_bytes.size(), source, t0));
  EXPECT_EQ(hex_of(reply), c["reply_to_response"].get<std::string>());

  cookie_maker maker(initiator.static_public());
  auto resp = message_from_hex<message_handshake_response>(h["response"].get<std::string>());
  ASSERT_TRUE(maker.add_macs(resp, t0));
  ASSERT_TRUE(maker.consume_reply(reply, t0));
  ASSERT_TRUE(maker.add_macs(resp, t0));
  EXPECT_EQ(hex_of(resp), c["response_with_mac2"].get<std::string>());
  const auto with_mac2 = test::unhex(c["response_with_mac2"].get<std::string>());
  EXPECT_EQ(checker.validate(initiator, with_mac2.data(), with_mac2.size(), source, true, t0),
            mac_status::valid_mac_with_cookie);
}

}  // namespace
}  // namespace lopower::wg
