// Cookies: the round trip between checker and maker, MAC2 under load, and
// the lifetimes of the secret (120 s) and of a cookie in use (115 s).

#include <gtest/gtest.h>

#include <array>

#include "control/wireguard/engine/cookie.h"
#include "control/wireguard/engine/noise_handshake.h"
#include "control/wireguard/engine/tai64n.h"
#include "tests/unit/wireguard/test_support.h"

namespace lopower::wg {
namespace {

constexpr std::uint64_t second = 1'000'000'000;
constexpr std::uint64_t t0 = 1000 * second;

struct cookie_fixture : ::testing::Test {
  static_identity alice{generate_private_key()};
  static_identity bob{generate_private_key()};
  peer_handshake alice_for_bob{alice, bob.static_public()};
  cookie_maker maker{bob.static_public()};  // Alice's, for messages to Bob
  cookie_checker checker;                   // Bob's
  packet_source src = packet_source::v4(std::array<std::uint8_t, 4>{203, 0, 113, 9}.data(), 40001);
  test::scripted_random rng;
  std::uint32_t next_index = 1;
  std::int64_t clock_ns = 1'700'000'000LL * 1'000'000'000LL;

  message_handshake_initiation initiation(std::uint64_t now) {
    message_handshake_initiation m;
    clock_ns += 1'000'000'000;
    EXPECT_EQ(create_initiation(m, alice_for_bob, alice, next_index++, tai64n_now(clock_ns), rng), handshake_error::none);
    EXPECT_TRUE(maker.add_macs(m, now));
    return m;
  }
  mac_status check(const message_handshake_initiation& m, bool under_load, std::uint64_t now,
                   const packet_source& from) {
    return checker.validate(bob, reinterpret_cast<const std::uint8_t*>(&m), sizeof m, from, under_load, now);
  }
  mac_status check(const message_handshake_initiation& m, bool under_load, std::uint64_t now) {
    return check(m, under_load, now, src);
  }
  message_handshake_cookie reply_to(const message_handshake_initiation& m, std::uint64_t now) {
    message_handshake_cookie r;
    EXPECT_TRUE(checker.create_reply(r, bob, reinterpret_cast<const std::uint8_t*>(&m), sizeof m, src, now));
    return r;
  }
};

TEST_F(cookie_fixture, round_trip_then_mac2_validates) {
  const auto first = initiation(t0);
  const std::uint8_t zero[16] = {};
  EXPECT_EQ(std::memcmp(first.macs.mac2, zero, 16), 0);  // no cookie yet
  EXPECT_EQ(check(first, false, t0), mac_status::valid_mac_no_cookie);
  EXPECT_EQ(check(first, true, t0), mac_status::valid_mac_no_cookie);  // under load: MAC2 missing

  const auto reply = reply_to(first, t0);
  EXPECT_EQ(reply.header.type, 3);
  EXPECT_EQ(reply.receiver_index.get(), first.sender_index.get());
  ASSERT_TRUE(maker.consume_reply(reply, t0));
  EXPECT_TRUE(maker.has_cookie(t0));
  // One reply per message sent: the same reply again is refused.
  EXPECT_FALSE(maker.consume_reply(reply, t0));

  const auto second_try = initiation(t0 + second);
  EXPECT_NE(std::memcmp(second_try.macs.mac2, zero, 16), 0);
  EXPECT_EQ(check(second_try, true, t0 + second), mac_status::valid_mac_with_cookie);
  // Not under load, MAC2 is not even looked at.
  EXPECT_EQ(check(second_try, false, t0 + second), mac_status::valid_mac_no_cookie);
  // The cookie is bound to the source address and port.
  auto other = src;
  other.ip[3] ^= 1;
  EXPECT_EQ(check(second_try, true, t0 + second, other), mac_status::valid_mac_no_cookie);
  other = src;
  other.port = 40002;
  EXPECT_EQ(check(second_try, true, t0 + second, other), mac_status::valid_mac_no_cookie);
  // A tampered MAC2.
  auto bad = second_try;
  bad.macs.mac2[0] ^= 1;
  EXPECT_EQ(check(bad, true, t0 + second), mac_status::valid_mac_no_cookie);
}

TEST_F(cookie_fixture, reply_must_answer_the_last_message_sent) {
  const auto first = initiation(t0);
  const auto reply_to_first = reply_to(first, t0);
  initiation(t0);  // a newer message with another MAC1
  // The reply's associated data is the first message's MAC1: refused.
  EXPECT_FALSE(maker.consume_reply(reply_to_first, t0));
  EXPECT_FALSE(maker.has_cookie(t0));
}

TEST_F(cookie_fixture, tampered_reply_is_refused) {
  const auto first = initiation(t0);
  auto reply = reply_to(first, t0);
  reply.encrypted_cookie[4] ^= 1;
  EXPECT_FALSE(maker.consume_reply(reply, t0));
  auto reply2 = reply_to(first, t0);
  reply2.nonce[0] ^= 1;
  EXPECT_FALSE(maker.consume_reply(reply2, t0));
  // A reply made under another identity's cookie key.
  cookie_checker carols;
  const static_identity carol{generate_private_key()};
  message_handshake_cookie from_carol;
  ASSERT_TRUE(carols.create_reply(from_carol, carol, reinterpret_cast<const std::uint8_t*>(&first), sizeof first, src, t0));
  EXPECT_FALSE(maker.consume_reply(from_carol, t0));
  // The genuine one still works.
  EXPECT_TRUE(maker.consume_reply(reply_to(first, t0), t0));
}

TEST_F(cookie_fixture, secret_rotation_after_120_s_invalidates_cookies) {
  const auto first = initiation(t0);
  ASSERT_TRUE(maker.consume_reply(reply_to(first, t0), t0));
  // 119 s later the secret is the same: the cookie holds.
  const auto later = initiation(t0 + 110 * second);
  EXPECT_EQ(check(later, true, t0 + 119 * second), mac_status::valid_mac_with_cookie);
  // At 120 s the secret is renewed: the same message no longer passes.
  EXPECT_EQ(check(later, true, t0 + 120 * second), mac_status::valid_mac_no_cookie);
  // A fresh cookie under the new secret does.
  ASSERT_TRUE(maker.consume_reply(reply_to(later, t0 + 121 * second), t0 + 121 * second));
  const auto fresh = initiation(t0 + 122 * second);
  EXPECT_EQ(check(fresh, true, t0 + 122 * second), mac_status::valid_mac_with_cookie);
}

TEST_F(cookie_fixture, maker_stops_using_a_cookie_after_115_s) {
  const auto first = initiation(t0);
  ASSERT_TRUE(maker.consume_reply(reply_to(first, t0), t0));
  EXPECT_TRUE(maker.has_cookie(t0 + 114 * second));
  EXPECT_FALSE(maker.has_cookie(t0 + 115 * second));
  const auto late = initiation(t0 + 115 * second);
  const std::uint8_t zero[16] = {};
  EXPECT_EQ(std::memcmp(late.macs.mac2, zero, 16), 0);
}

TEST_F(cookie_fixture, set_secret_gives_stable_cookies) {
  key32 secret;
  secret[0] = 42;
  checker.set_secret(secret, t0);
  const auto first = initiation(t0);
  ASSERT_TRUE(maker.consume_reply(reply_to(first, t0), t0));
  const auto next = initiation(t0);
  // Another checker with the same secret agrees.
  cookie_checker twin;
  twin.set_secret(secret, t0);
  EXPECT_EQ(twin.validate(bob, reinterpret_cast<const std::uint8_t*>(&next), sizeof next, src, true, t0 + second),
            mac_status::valid_mac_with_cookie);
}

// The workers' stateless check (check_macs with a copy of the secret) says
// what the checker says.
TEST_F(cookie_fixture, check_macs_with_the_secret_agrees_with_the_checker) {
  const auto first = initiation(t0);
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(&first);
  const key32& secret = checker.secret(t0);
  EXPECT_EQ(check_macs(bytes, sizeof first, bob.mac1_key(), nullptr, src), mac_status::valid_mac_no_cookie);
  EXPECT_EQ(check_macs(bytes, sizeof first, bob.mac1_key(), &secret, src), mac_status::valid_mac_no_cookie);
  EXPECT_EQ(check_macs(bytes, sizeof first, alice.mac1_key(), nullptr, src), mac_status::invalid_mac);
  ASSERT_TRUE(maker.consume_reply(reply_to(first, t0), t0));
  const auto next = initiation(t0 + second);
  const auto* next_bytes = reinterpret_cast<const std::uint8_t*>(&next);
  EXPECT_EQ(check(next, true, t0 + second), mac_status::valid_mac_with_cookie);
  EXPECT_EQ(check_macs(next_bytes, sizeof next, bob.mac1_key(), &checker.secret(t0 + second), src),
            mac_status::valid_mac_with_cookie);
  EXPECT_EQ(check_macs(next_bytes, sizeof next - 1, bob.mac1_key(), nullptr, src), mac_status::invalid_mac);
  // 120 s on, the secret is new and the same cookie proves nothing.
  EXPECT_EQ(check_macs(next_bytes, sizeof next, bob.mac1_key(), &checker.secret(t0 + 121 * second), src),
            mac_status::valid_mac_no_cookie);
  EXPECT_EQ(checker.secret_birth_ns(), t0 + 121 * second);
}

TEST_F(cookie_fixture, create_reply_refuses_non_handshake_messages) {
  message_handshake_cookie r;
  std::uint8_t junk[148] = {1};
  EXPECT_FALSE(checker.create_reply(r, bob, junk, 147, src, t0));
  junk[0] = 4;
  EXPECT_FALSE(checker.create_reply(r, bob, junk, 148, src, t0));
  EXPECT_FALSE(checker.create_reply(r, bob, nullptr, 148, src, t0));
  message_handshake_response resp{};
  EXPECT_FALSE(maker.add_macs(reinterpret_cast<std::uint8_t*>(&resp), sizeof resp, t0));  // type byte is 0
}

TEST(cookie, ipv6_sources_use_all_16_bytes) {
  const static_identity bob{generate_private_key()};
  const static_identity alice{generate_private_key()};
  peer_handshake alice_for_bob{alice, bob.static_public()};
  cookie_maker maker{bob.static_public()};
  cookie_checker checker;
  std::array<std::uint8_t, 16> ip{0x20, 0x01, 0x0d, 0xb8};
  ip[15] = 1;
  const auto src = packet_source::v6(ip.data(), 51820);
  test::scripted_random rng;
  message_handshake_initiation m;
  ASSERT_EQ(create_initiation(m, alice_for_bob, alice, 1, tai64n_now(1'000'000'000), rng), handshake_error::none);
  ASSERT_TRUE(maker.add_macs(m, 0));
  message_handshake_cookie r;
  ASSERT_TRUE(checker.create_reply(r, bob, reinterpret_cast<const std::uint8_t*>(&m), sizeof m, src, 0));
  ASSERT_TRUE(maker.consume_reply(r, 0));
  ASSERT_TRUE(maker.add_macs(m, 0));
  EXPECT_EQ(checker.validate(bob, reinterpret_cast<const std::uint8_t*>(&m), sizeof m, src, true, 0),
            mac_status::valid_mac_with_cookie);
  auto neighbour = src;
  neighbour.ip[15] = 2;  // same /64, another host: another cookie
  EXPECT_EQ(checker.validate(bob, reinterpret_cast<const std::uint8_t*>(&m), sizeof m, neighbour, true, 0),
            mac_status::valid_mac_no_cookie);
}

}  // namespace
}  // namespace lopower::wg
