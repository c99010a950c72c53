// Keys and their text forms, TAI64N, and the wire-message parser.

#include <gtest/gtest.h>

#include <array>
#include <cctype>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "control/wireguard/engine/tai64n.h"
#include "lopower/keys.h"
#include "lopower/wireguard_messages.h"
#include "tests/unit/wireguard/test_support.h"

namespace lopower {
namespace test = wg::test;
namespace {

// --- keys -------------------------------------------------------------------

TEST(keys, base64_round_trip) {
  for (int i = 0; i < 50; ++i) {
    const private_key k = generate_private_key();
    const std::string text = k.to_base64();
    ASSERT_EQ(text.size(), key_base64_length);
    EXPECT_EQ(text.back(), '=');
    const auto back = private_key::from_base64(text);
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, k);
  }
}

TEST(keys, base64_known_values) {
  EXPECT_EQ(key32{}.to_base64(), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
  std::array<std::uint8_t, 32> b{};
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<std::uint8_t>(i);
  EXPECT_EQ(key32(b).to_base64(), "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
  EXPECT_EQ(key32::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="), key32(b));
  // The vectors' static public key, as `wg pubkey` would print it.
  const auto& v = test::vectors()["handshakes"][0];
  const auto pub = public_key::from_hex(v["responder_static_public"].get<std::string>());
  ASSERT_TRUE(pub);
  EXPECT_EQ(public_key::from_base64(pub->to_base64()), pub);
}

TEST(keys, base64_bad_inputs) {
  const std::string good = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
  EXPECT_FALSE(key32::from_base64(""));
  EXPECT_FALSE(key32::from_base64(good.substr(0, 43)));                        // short
  EXPECT_FALSE(key32::from_base64(good + "="));                                // long
  EXPECT_FALSE(key32::from_base64(good.substr(0, 43) + "A"));                  // no padding
  EXPECT_FALSE(key32::from_base64(" " + good.substr(1)));                      // whitespace
  EXPECT_FALSE(key32::from_base64(good.substr(0, 43) + "\n"));
  EXPECT_FALSE(key32::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh*="));  // bad character
  EXPECT_FALSE(key32::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh-="));  // URL-safe alphabet
  // The last character carries 2 bits too many: they must be zero.
  EXPECT_FALSE(key32::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9="));
  EXPECT_FALSE(key32::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdH=8="));  // padding inside
  EXPECT_FALSE(key32::from_base64(std::string(43, 'A') + '\0'));
}

TEST(keys, hex_round_trip_and_bad_inputs) {
  const key32 k = [] {
    key32 x;
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<std::uint8_t>(0xf0 ^ i);
    return x;
  }();
  const std::string text = k.to_hex();
  EXPECT_EQ(text, "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeffe0e1e2e3e4e5e6e7e8e9eaebecedeeef");
  EXPECT_EQ(key32::from_hex(text), k);
  std::string upper = text;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_EQ(key32::from_hex(upper), k);
  EXPECT_FALSE(key32::from_hex(text.substr(1)));
  EXPECT_FALSE(key32::from_hex(text + "0"));
  EXPECT_FALSE(key32::from_hex(text.substr(0, 63) + "g"));
  EXPECT_FALSE(key32::from_hex(text.substr(0, 62) + " 0"));
  EXPECT_FALSE(key32::from_hex(""));
  EXPECT_EQ(hex_encode(k), text);
  EXPECT_EQ(base64_encode(k), k.to_base64());
}

TEST(keys, generated_keys_are_clamped_and_distinct) {
  const private_key a = generate_private_key(), b = generate_private_key();
  EXPECT_FALSE(a == b);
  for (const auto* k : {&a, &b}) {
    EXPECT_EQ((*k)[0] & 7, 0);
    EXPECT_EQ((*k)[31] & 0x80, 0);
    EXPECT_EQ((*k)[31] & 0x40, 0x40);
  }
  EXPECT_FALSE(public_from_private(a).is_zero());
  EXPECT_FALSE(public_from_private(a) == public_from_private(b));
}

TEST(keys, public_from_private_matches_the_vectors) {
  for (const auto& v : test::vectors()["handshakes"]) {
    const auto priv = private_key::from_hex(v["initiator_static_private"].get<std::string>());
    ASSERT_TRUE(priv);
    EXPECT_EQ(public_from_private(*priv).to_hex(), v["initiator_static_public"].get<std::string>());
  }
  // RFC 7748 6.1: Alice's key pair.
  const auto alice = private_key::from_hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
  ASSERT_TRUE(alice);
  EXPECT_EQ(public_from_private(*alice).to_hex(), "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
}

TEST(keys, move_wipes_the_source) {
  private_key a = generate_private_key();
  const private_key copy = a;
  private_key b = std::move(a);
  EXPECT_TRUE(a.is_zero());  // NOLINT(bugprone-use-after-move): that is the point
  EXPECT_EQ(b, copy);
  private_key c;
  c = std::move(b);
  EXPECT_TRUE(b.is_zero());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(c, copy);
  c.wipe();
  EXPECT_TRUE(c.is_zero());
}

// The types keep apart at compile time (the static_asserts); at run time
// each is exactly its 32 bytes, the same bytes whatever the tag.
TEST(keys, types_do_not_mix) {
  static_assert(!std::is_convertible_v<public_key, private_key>);
  static_assert(!std::is_convertible_v<private_key, key32>);
  static_assert(sizeof(key32) == 32);
  std::array<std::uint8_t, 32> bytes{};
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::uint8_t>(i * 7 + 1);
  const auto pub = public_key::from_bytes(bytes.data());
  const auto priv = private_key::from_bytes(bytes.data());
  const auto sym = key32::from_bytes(bytes.data());
  EXPECT_EQ(std::vector<std::uint8_t>(pub.begin(), pub.end()), std::vector<std::uint8_t>(bytes.begin(), bytes.end()));
  EXPECT_EQ(std::vector<std::uint8_t>(priv.begin(), priv.end()), std::vector<std::uint8_t>(bytes.begin(), bytes.end()));
  EXPECT_EQ(std::vector<std::uint8_t>(sym.begin(), sym.end()), std::vector<std::uint8_t>(bytes.begin(), bytes.end()));
  EXPECT_EQ(pub.to_base64(), priv.to_base64());
  EXPECT_EQ(pub.to_base64(), "AQgPFh0kKzI5QEdOVVxjanF4f4aNlJuiqbC3vsXM09o=");  // Python base64 of the same bytes
}

TEST(keys, constant_time_helpers) {
  const std::uint8_t a[4] = {1, 2, 3, 4}, b[4] = {1, 2, 3, 5}, z[4] = {};
  EXPECT_TRUE(constant_time_equal(a, a, 4));
  EXPECT_FALSE(constant_time_equal(a, b, 4));
  EXPECT_TRUE(constant_time_is_zero(z, 4));
  EXPECT_FALSE(constant_time_is_zero(a, 4));
}

// --- TAI64N -------------------------------------------------------------------

TEST(tai64n, layout) {
  const auto t = wg::tai64n::from_unix(0, 0);
  EXPECT_EQ(test::hex(t.bytes.data(), 12), "400000000000000a00000000");
  const auto u = wg::tai64n::from_unix(1700000000, 0x01020304);
  EXPECT_EQ(u.seconds_label(), 0x400000000000000aULL + 1700000000);
  EXPECT_EQ(u.nanoseconds(), 0x01020304u);
  EXPECT_EQ(test::hex(u.bytes.data() + 8, 4), "01020304");
}

TEST(tai64n, whitening_and_order) {
  const std::int64_t base = 1'700'000'000LL * 1'000'000'000LL;
  const auto a = wg::tai64n_now(base + 1);
  const auto b = wg::tai64n_now(base + (1 << 24) - 1);
  const auto c = wg::tai64n_now(base + (1 << 24));
  EXPECT_EQ(a, b);  // within one whitening step: equal (a replay, if sent twice)
  EXPECT_TRUE(wg::tai64n_after(c, a));
  EXPECT_FALSE(wg::tai64n_after(a, c));
  EXPECT_FALSE(wg::tai64n_after(a, b));
  EXPECT_EQ(c.nanoseconds(), 1u << 24);
  EXPECT_TRUE(wg::tai64n_after(wg::tai64n_now(base + 1'000'000'000), c));  // seconds outrank nanoseconds
  EXPECT_TRUE(wg::tai64n_after(a, wg::tai64n{}));                           // anything beats "never"
  // Before 1970 still orders below.
  EXPECT_TRUE(wg::tai64n_after(wg::tai64n_now(0), wg::tai64n_now(-1)));
  // The system clock gives something recent.
  EXPECT_TRUE(wg::tai64n_after(wg::tai64n_now(), wg::tai64n_now(base)));
}

// --- messages -----------------------------------------------------------------

TEST(messages, parse_accepts_exact_sizes) {
  std::vector<std::uint8_t> buf(200, 0);
  buf[0] = 1;
  auto p = wg::parse_message(buf.data(), 148);
  ASSERT_EQ(p.type, wg::message_type::handshake_initiation);
  EXPECT_NE(p.initiation(), nullptr);
  EXPECT_EQ(p.response(), nullptr);
  EXPECT_FALSE(wg::parse_message(buf.data(), 147).valid());
  EXPECT_FALSE(wg::parse_message(buf.data(), 149).valid());

  buf[0] = 2;
  p = wg::parse_message(buf.data(), 92);
  ASSERT_EQ(p.type, wg::message_type::handshake_response);
  EXPECT_NE(p.response(), nullptr);
  EXPECT_FALSE(wg::parse_message(buf.data(), 93).valid());

  buf[0] = 3;
  p = wg::parse_message(buf.data(), 64);
  ASSERT_EQ(p.type, wg::message_type::handshake_cookie);
  EXPECT_NE(p.cookie_reply(), nullptr);
  EXPECT_FALSE(wg::parse_message(buf.data(), 65).valid());

  buf[0] = 4;
  EXPECT_FALSE(wg::parse_message(buf.data(), 31).valid());
  p = wg::parse_message(buf.data(), 32);  // keepalive
  ASSERT_EQ(p.type, wg::message_type::data);
  EXPECT_EQ(p.transport_payload_length(), 16u);
  p = wg::parse_message(buf.data(), 200);
  ASSERT_EQ(p.type, wg::message_type::data);
  EXPECT_EQ(p.transport_payload(), buf.data() + 16);
  EXPECT_EQ(p.transport_payload_length(), 184u);
}

TEST(messages, parse_rejects_bad_types_and_reserved_bytes) {
  std::vector<std::uint8_t> buf(148, 0);
  for (int t : {0, 5, 255}) {
    buf[0] = static_cast<std::uint8_t>(t);
    EXPECT_FALSE(wg::parse_message(buf.data(), 148).valid()) << t;
  }
  buf[0] = 1;
  for (int i = 1; i < 4; ++i) {
    buf[static_cast<std::size_t>(i)] = 1;
    EXPECT_FALSE(wg::parse_message(buf.data(), 148).valid()) << i;
    buf[static_cast<std::size_t>(i)] = 0;
  }
  EXPECT_FALSE(wg::parse_message(nullptr, 148).valid());
  EXPECT_FALSE(wg::parse_message(buf.data(), 0).valid());
  EXPECT_FALSE(wg::parse_message(buf.data(), 3).valid());
}

TEST(messages, fields_are_little_endian) {
  wg::message_data d{};
  d.receiver_index.set(0x11223344);
  d.counter.set(0x0102030405060708ULL);
  EXPECT_EQ(test::hex_of(d), "00000000443322110807060504030201");
}

TEST(messages, vectors_parse) {
  const auto& v = test::vectors();
  const auto init = test::unhex(v["handshakes"][0]["initiation"].get<std::string>());
  const auto p = wg::parse_message(init.data(), init.size());
  ASSERT_NE(p.initiation(), nullptr);
  EXPECT_EQ(p.initiation()->sender_index.get(), v["handshakes"][0]["initiator_index"].get<std::uint32_t>());
  const auto reply = test::unhex(v["cookie"]["reply_to_initiation"].get<std::string>());
  ASSERT_NE(wg::parse_message(reply.data(), reply.size()).cookie_reply(), nullptr);
}

}  // namespace
}  // namespace lopower
