// The handshake engine against itself: two instances complete handshakes
// (with and without a preshared key) and refuse every message they should.

#include <gtest/gtest.h>

#include <array>

#include "control/wireguard/engine/cookie.h"
#include "control/wireguard/engine/noise_handshake.h"
#include "control/wireguard/engine/tai64n.h"
#include "tests/unit/wireguard/test_support.h"

namespace lopower::wg {
namespace {

constexpr std::uint64_t ms = 1'000'000;
constexpr std::uint64_t second = 1'000 * ms;
constexpr std::int64_t unix_now = 1'700'000'000LL * 1'000'000'000LL;

// Two parties, each with its own identity and table holding the other.
struct two_peers {
  static_identity alice{generate_private_key()};  // initiator
  static_identity bob{generate_private_key()};    // responder
  test::peer_table alice_peers, bob_peers;
  peer_handshake& alice_side;  // alice's state for bob
  peer_handshake& bob_side;    // bob's state for alice
  test::scripted_random rng;

  explicit two_peers(const std::optional<key32>& psk_alice = std::nullopt,
                     const std::optional<key32>& psk_bob = std::nullopt)
      : alice_side(alice_peers.add(alice, bob.static_public(), psk_alice)),
        bob_side(bob_peers.add(bob, alice.static_public(), psk_bob)) {}

  message_handshake_initiation initiation(std::uint32_t index, std::int64_t realtime_ns) {
    message_handshake_initiation m;
    EXPECT_EQ(create_initiation(m, alice_side, alice, index, tai64n_now(realtime_ns), rng), handshake_error::none);
    return m;
  }
};

key32 some_psk() {
  key32 k;
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = static_cast<std::uint8_t>(0xa0 + i);
  return k;
}

void full_handshake(const std::optional<key32>& psk) {
  two_peers p(psk, psk);
  cookie_maker alice_macs(p.bob.static_public()), bob_macs(p.alice.static_public());
  cookie_checker alice_checker, bob_checker;
  const auto src = packet_source::v4(std::array<std::uint8_t, 4>{10, 0, 0, 1}.data(), 1234);

  auto init = p.initiation(7, unix_now);
  ASSERT_TRUE(alice_macs.add_macs(init, 0));
  ASSERT_EQ(bob_checker.validate(p.bob, reinterpret_cast<const std::uint8_t*>(&init), sizeof init, src, false, 0),
            mac_status::valid_mac_no_cookie);
  const auto consumed = consume_initiation(init, p.bob, p.bob_peers, 5 * second);
  ASSERT_TRUE(consumed) << to_string(consumed.error);
  ASSERT_EQ(consumed.peer, &p.bob_side);

  message_handshake_response resp;
  ASSERT_EQ(create_response(resp, p.bob_side, p.bob, 99, p.rng), handshake_error::none);
  ASSERT_TRUE(bob_macs.add_macs(resp, 0));
  ASSERT_EQ(alice_checker.validate(p.alice, reinterpret_cast<const std::uint8_t*>(&resp), sizeof resp, src, false, 0),
            mac_status::valid_mac_no_cookie);
  const auto answered = consume_response(resp, p.alice, p.alice_peers);
  ASSERT_TRUE(answered) << to_string(answered.error);
  ASSERT_EQ(answered.peer, &p.alice_side);
  // Both sides agree on the transcript.
  EXPECT_EQ(p.alice_side.hash(), p.bob_side.hash());

  const auto a = derive_keypair(p.alice_side);
  const auto b = derive_keypair(p.bob_side);
  ASSERT_TRUE(a && b);
  EXPECT_TRUE(a->initiator);
  EXPECT_FALSE(b->initiator);
  EXPECT_EQ(a->send, b->receive);
  EXPECT_EQ(a->receive, b->send);
  EXPECT_FALSE(a->send == a->receive);
  EXPECT_EQ(a->local_index, 7u);
  EXPECT_EQ(a->remote_index, 99u);
  EXPECT_EQ(b->local_index, 99u);
  EXPECT_EQ(b->remote_index, 7u);
  EXPECT_EQ(p.alice_side.state(), handshake_state::zeroed);
  EXPECT_EQ(p.bob_side.state(), handshake_state::zeroed);
  // Keys were derived once: a second derivation has nothing to work on.
  EXPECT_FALSE(derive_keypair(p.alice_side));
}

TEST(handshake, full_handshake_without_psk) { full_handshake(std::nullopt); }
TEST(handshake, full_handshake_with_psk) { full_handshake(some_psk()); }

TEST(handshake, psk_mismatch_fails_the_response) {
  two_peers p(some_psk(), std::nullopt);
  const auto init = p.initiation(1, unix_now);
  ASSERT_TRUE(consume_initiation(init, p.bob, p.bob_peers, second));  // psk enters only at the response
  message_handshake_response resp;
  ASSERT_EQ(create_response(resp, p.bob_side, p.bob, 2, p.rng), handshake_error::none);
  EXPECT_EQ(consume_response(resp, p.alice, p.alice_peers).error, handshake_error::decrypt_response);
  EXPECT_EQ(p.alice_side.state(), handshake_state::created_initiation);  // untouched
}

TEST(handshake, replayed_initiation_is_rejected) {
  two_peers p;
  const auto init = p.initiation(1, unix_now);
  ASSERT_TRUE(consume_initiation(init, p.bob, p.bob_peers, second));
  // Long after, so that only the timestamp can refuse it.
  const auto again = consume_initiation(init, p.bob, p.bob_peers, 100 * second);
  EXPECT_EQ(again.error, handshake_error::replayed_timestamp);
  EXPECT_EQ(again.peer, nullptr);
}

TEST(handshake, timestamp_going_backwards_is_rejected) {
  two_peers p;
  ASSERT_TRUE(consume_initiation(p.initiation(1, unix_now), p.bob, p.bob_peers, second));
  // One second earlier, and equal: both refused.
  EXPECT_EQ(consume_initiation(p.initiation(2, unix_now - 1'000'000'000), p.bob, p.bob_peers, 10 * second).error,
            handshake_error::replayed_timestamp);
  EXPECT_EQ(consume_initiation(p.initiation(3, unix_now), p.bob, p.bob_peers, 20 * second).error,
            handshake_error::replayed_timestamp);
  // A later one is fine.
  EXPECT_TRUE(consume_initiation(p.initiation(4, unix_now + 1'000'000'000), p.bob, p.bob_peers, 30 * second));
  EXPECT_EQ(p.bob_side.remote_index(), 4u);
}

TEST(handshake, initiation_flood_is_rejected) {
  two_peers p;
  ASSERT_TRUE(consume_initiation(p.initiation(1, unix_now), p.bob, p.bob_peers, second));
  // A newer timestamp, but within 1/50 s of the last consumed initiation.
  EXPECT_EQ(consume_initiation(p.initiation(2, unix_now + 1'000'000'000), p.bob, p.bob_peers, second + 10 * ms).error,
            handshake_error::initiation_flood);
  EXPECT_TRUE(consume_initiation(p.initiation(3, unix_now + 2'000'000'000), p.bob, p.bob_peers, second + 20 * ms));
}

TEST(handshake, wrong_mac1_is_rejected) {
  two_peers p;
  cookie_maker maker(p.bob.static_public());
  cookie_checker checker;
  const auto src = packet_source::v4(std::array<std::uint8_t, 4>{10, 0, 0, 1}.data(), 1234);
  auto init = p.initiation(1, unix_now);
  ASSERT_TRUE(maker.add_macs(init, 0));
  auto bytes = [&](const message_handshake_initiation& m) { return reinterpret_cast<const std::uint8_t*>(&m); };
  ASSERT_EQ(checker.validate(p.bob, bytes(init), sizeof init, src, false, 0), mac_status::valid_mac_no_cookie);

  auto bad_mac = init;
  bad_mac.macs.mac1[3] ^= 1;
  EXPECT_EQ(checker.validate(p.bob, bytes(bad_mac), sizeof bad_mac, src, false, 0), mac_status::invalid_mac);
  auto bad_body = init;
  bad_body.sender_index.set(init.sender_index.get() + 1);  // MAC1 covers the body
  EXPECT_EQ(checker.validate(p.bob, bytes(bad_body), sizeof bad_body, src, false, 0), mac_status::invalid_mac);
  // MAC1 is keyed to the receiver: Alice's key does not validate it.
  EXPECT_EQ(checker.validate(p.alice, bytes(init), sizeof init, src, false, 0), mac_status::invalid_mac);
  // Wrong length or type.
  EXPECT_EQ(checker.validate(p.bob, bytes(init), sizeof init - 1, src, false, 0), mac_status::invalid_mac);
  auto wrong_type = init;
  wrong_type.header.type = 2;
  EXPECT_EQ(checker.validate(p.bob, bytes(wrong_type), sizeof wrong_type, src, false, 0), mac_status::invalid_mac);
}

TEST(handshake, tampered_initiation_is_rejected) {
  two_peers p;
  const auto init = p.initiation(1, unix_now);

  auto bad_static = init;
  bad_static.encrypted_static[5] ^= 0x40;
  EXPECT_EQ(consume_initiation(bad_static, p.bob, p.bob_peers, second).error, handshake_error::decrypt_static);

  auto bad_timestamp = init;
  bad_timestamp.encrypted_timestamp[0] ^= 0x01;
  EXPECT_EQ(consume_initiation(bad_timestamp, p.bob, p.bob_peers, second).error, handshake_error::decrypt_timestamp);

  auto bad_tag = init;
  bad_tag.encrypted_timestamp[sizeof bad_tag.encrypted_timestamp - 1] ^= 0x80;
  EXPECT_EQ(consume_initiation(bad_tag, p.bob, p.bob_peers, second).error, handshake_error::decrypt_timestamp);

  auto bad_ephemeral = init;
  bad_ephemeral.unencrypted_ephemeral[9] ^= 0x10;
  EXPECT_FALSE(consume_initiation(bad_ephemeral, p.bob, p.bob_peers, second));

  EXPECT_EQ(p.bob_side.state(), handshake_state::zeroed);
  // The genuine one still passes: failures changed nothing.
  EXPECT_TRUE(consume_initiation(init, p.bob, p.bob_peers, second));
}

TEST(handshake, unknown_initiator_is_rejected) {
  two_peers p;
  const static_identity stranger{generate_private_key()};
  peer_handshake strangers_view(stranger, p.bob.static_public());
  message_handshake_initiation init;
  ASSERT_EQ(create_initiation(init, strangers_view, stranger, 1, tai64n_now(unix_now), p.rng), handshake_error::none);
  EXPECT_EQ(consume_initiation(init, p.bob, p.bob_peers, second).error, handshake_error::unknown_peer);
}

TEST(handshake, initiation_to_someone_else_is_rejected) {
  two_peers p;
  const auto init = p.initiation(1, unix_now);
  // Alice's initiation was for Bob; Carol (who knows Alice) cannot read it.
  const static_identity carol{generate_private_key()};
  test::peer_table carols;
  carols.add(carol, p.alice.static_public());
  EXPECT_EQ(consume_initiation(init, carol, carols, second).error, handshake_error::decrypt_static);
}

TEST(handshake, consume_response_in_wrong_state_is_rejected) {
  two_peers p;
  const auto init = p.initiation(1, unix_now);
  ASSERT_TRUE(consume_initiation(init, p.bob, p.bob_peers, second));
  message_handshake_response resp;
  ASSERT_EQ(create_response(resp, p.bob_side, p.bob, 2, p.rng), handshake_error::none);

  // Bob, who sent it, has no initiation of his own waiting for it.
  EXPECT_NE(consume_response(resp, p.bob, p.bob_peers).error, handshake_error::none);

  // An index nobody announced.
  auto stray = resp;
  stray.receiver_index.set(12345);
  EXPECT_EQ(consume_response(stray, p.alice, p.alice_peers).error, handshake_error::unknown_index);

  // The genuine response, once; then again, with the handshake gone.
  ASSERT_TRUE(consume_response(resp, p.alice, p.alice_peers));
  EXPECT_EQ(consume_response(resp, p.alice, p.alice_peers).error, handshake_error::wrong_state);
  ASSERT_TRUE(derive_keypair(p.alice_side));
  EXPECT_EQ(consume_response(resp, p.alice, p.alice_peers).error, handshake_error::wrong_state);
}

TEST(handshake, create_response_needs_a_consumed_initiation) {
  two_peers p;
  message_handshake_response resp;
  EXPECT_EQ(create_response(resp, p.bob_side, p.bob, 2, p.rng), handshake_error::wrong_state);
  p.initiation(1, unix_now);
  EXPECT_EQ(create_response(resp, p.alice_side, p.alice, 2, p.rng), handshake_error::wrong_state);
  EXPECT_FALSE(derive_keypair(p.alice_side));  // created_initiation: no keys yet
  EXPECT_EQ(p.alice_side.state(), handshake_state::created_initiation);
}

TEST(handshake, tampered_response_is_rejected) {
  two_peers p;
  ASSERT_TRUE(consume_initiation(p.initiation(1, unix_now), p.bob, p.bob_peers, second));
  message_handshake_response resp;
  ASSERT_EQ(create_response(resp, p.bob_side, p.bob, 2, p.rng), handshake_error::none);
  auto bad = resp;
  bad.encrypted_nothing[0] ^= 1;
  EXPECT_EQ(consume_response(bad, p.alice, p.alice_peers).error, handshake_error::decrypt_response);
  auto bad_e = resp;
  bad_e.unencrypted_ephemeral[0] ^= 1;
  EXPECT_FALSE(consume_response(bad_e, p.alice, p.alice_peers));
  EXPECT_TRUE(consume_response(resp, p.alice, p.alice_peers));
}

TEST(handshake, all_zero_public_keys_are_rejected) {
  two_peers p;
  // A peer whose static key is zero can never complete a handshake.
  peer_handshake zero_peer(p.alice, public_key{});
  EXPECT_FALSE(zero_peer.usable());
  message_handshake_initiation init;
  EXPECT_EQ(create_initiation(init, zero_peer, p.alice, 1, tai64n_now(unix_now), p.rng),
            handshake_error::unusable_peer);

  // Nor can a low-order one (u = 1): the DH result is zero.
  std::array<std::uint8_t, 32> one{};
  one[0] = 1;
  peer_handshake low_order(p.alice, public_key(one));
  EXPECT_FALSE(low_order.usable());

  // An initiation whose ephemeral key is zero or of low order.
  auto zero_e = p.initiation(1, unix_now);
  std::memset(zero_e.unencrypted_ephemeral, 0, sizeof zero_e.unencrypted_ephemeral);
  EXPECT_EQ(consume_initiation(zero_e, p.bob, p.bob_peers, second).error, handshake_error::bad_ephemeral);
  auto one_e = p.initiation(2, unix_now);
  std::memcpy(one_e.unencrypted_ephemeral, one.data(), 32);
  EXPECT_EQ(consume_initiation(one_e, p.bob, p.bob_peers, second).error, handshake_error::bad_ephemeral);

  // A response whose ephemeral key is zero.
  ASSERT_TRUE(consume_initiation(p.initiation(3, unix_now), p.bob, p.bob_peers, second));
  message_handshake_response resp;
  ASSERT_EQ(create_response(resp, p.bob_side, p.bob, 4, p.rng), handshake_error::none);
  std::memset(resp.unencrypted_ephemeral, 0, sizeof resp.unencrypted_ephemeral);
  EXPECT_EQ(consume_response(resp, p.alice, p.alice_peers).error, handshake_error::bad_ephemeral);

  // And a zero private key (clamped, it is still a valid scalar) works.
  EXPECT_TRUE(static_identity(private_key{}).valid());
}

TEST(handshake, newer_initiation_replaces_pending_state) {
  two_peers p;
  // Alice initiates; Bob initiates too (both sides' timers fired).
  const auto from_alice = p.initiation(1, unix_now);
  message_handshake_initiation from_bob;
  ASSERT_EQ(create_initiation(from_bob, p.bob_side, p.bob, 50, tai64n_now(unix_now), p.rng), handshake_error::none);
  // Bob consumes Alice's: he becomes the responder for this handshake.
  ASSERT_TRUE(consume_initiation(from_alice, p.bob, p.bob_peers, second));
  EXPECT_EQ(p.bob_side.state(), handshake_state::consumed_initiation);
  message_handshake_response resp;
  ASSERT_EQ(create_response(resp, p.bob_side, p.bob, 51, p.rng), handshake_error::none);
  ASSERT_TRUE(consume_response(resp, p.alice, p.alice_peers));
  const auto a = derive_keypair(p.alice_side);
  const auto b = derive_keypair(p.bob_side);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->send, b->receive);
}

TEST(handshake, set_identity_recomputes_static_static) {
  two_peers p;
  const static_identity new_bob{generate_private_key()};
  // Alice learns Bob's new key; Bob's side for Alice is recomputed.
  peer_handshake alice_for_new_bob(p.alice, new_bob.static_public());
  p.bob_side.set_identity(new_bob);
  message_handshake_initiation init;
  ASSERT_EQ(create_initiation(init, alice_for_new_bob, p.alice, 1, tai64n_now(unix_now), p.rng), handshake_error::none);
  EXPECT_TRUE(consume_initiation(init, new_bob, p.bob_peers, second));
}

TEST(handshake, error_names) {
  EXPECT_STREQ(to_string(handshake_error::replayed_timestamp), "replayed_timestamp");
  EXPECT_STREQ(to_string(handshake_state::created_response), "created_response");
}

}  // namespace
}  // namespace lopower::wg
