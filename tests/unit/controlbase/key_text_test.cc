// Tailscale's key text forms: round trips, and what bad text is told.

#include <gtest/gtest.h>

#include "control/tailnet/controlbase/key_text.h"
#include "tests/unit/controlbase/test_support.h"

namespace lopower::tailnet {
namespace {

constexpr std::string_view hex64 = "0123456789abcdeffedcba987654321000112233445566778899aabbccddeeff";

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST(key_text, prefixes) {
  EXPECT_EQ(key_text_prefix(key_text_kind::machine), "mkey:");
  EXPECT_EQ(key_text_prefix(key_text_kind::node), "nodekey:");
  EXPECT_EQ(key_text_prefix(key_text_kind::disco), "discokey:");
  EXPECT_EQ(key_text_prefix(key_text_kind::challenge), "chalpub:");
  EXPECT_EQ(private_key_text_prefix, "privkey:");
}

TEST(key_text, round_trips_every_kind) {
  for (const auto kind : {key_text_kind::machine, key_text_kind::node, key_text_kind::disco, key_text_kind::challenge}) {
    const public_key key = public_from_private(generate_private_key());
    const std::string text = format_key_text(kind, key);
    EXPECT_EQ(text, std::string(key_text_prefix(kind)) + key.to_hex());
    const auto back = parse_key_text(kind, text);
    ASSERT_TRUE(back.ok()) << back.message();
    EXPECT_EQ(*back, key);
  }
  const private_key priv = generate_private_key();
  const std::string text = format_private_key_text(priv);
  EXPECT_EQ(text.substr(0, 8), "privkey:");
  EXPECT_EQ(text.size(), 8u + 64u);
  const auto back = parse_private_key_text(text);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, priv);
}

TEST(key_text, known_text) {
  const auto key = parse_machine_key("mkey:" + std::string(hex64));
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(key->to_hex(), hex64);
  EXPECT_EQ(format_machine_key(*key), "mkey:" + std::string(hex64));
  EXPECT_EQ(format_node_key(*key), "nodekey:" + std::string(hex64));
  EXPECT_EQ(format_disco_key(*key), "discokey:" + std::string(hex64));
}

TEST(key_text, upper_case_hex_is_read_and_written_lower) {
  std::string upper(hex64);
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const auto key = parse_node_key("nodekey:" + upper);
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(format_node_key(*key), "nodekey:" + std::string(hex64));
}

TEST(key_text, zero_key_parses) {
  const auto key = parse_machine_key("mkey:" + std::string(64, '0'));
  ASSERT_TRUE(key.ok());
  EXPECT_TRUE(key->is_zero());
}

TEST(key_text, wrong_prefix_says_which) {
  const auto r = parse_machine_key("nodekey:" + std::string(hex64));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.message(), "machine key")) << r.message();
  EXPECT_TRUE(contains(r.message(), "\"mkey:\"")) << r.message();
  EXPECT_TRUE(contains(r.message(), "\"nodekey:\"")) << r.message();
  EXPECT_FALSE(parse_machine_key(std::string(hex64)).ok());
  EXPECT_FALSE(parse_machine_key("MKEY:" + std::string(hex64)).ok());
  EXPECT_FALSE(parse_machine_key(" mkey:" + std::string(hex64)).ok());
  EXPECT_FALSE(parse_disco_key("discokey" + std::string(hex64)).ok());
}

TEST(key_text, wrong_length_says_how_long) {
  const auto short_one = parse_node_key("nodekey:" + std::string(hex64.substr(0, 63)));
  ASSERT_FALSE(short_one.ok());
  EXPECT_TRUE(contains(short_one.message(), "63 hex digits")) << short_one.message();
  EXPECT_FALSE(parse_node_key("nodekey:" + std::string(hex64) + "0").ok());
  EXPECT_FALSE(parse_node_key("nodekey:" + std::string(hex64) + "\n").ok());
  EXPECT_FALSE(parse_node_key("nodekey:").ok());
  EXPECT_FALSE(parse_node_key("").ok());
}

TEST(key_text, bad_digit_says_where) {
  std::string text = "discokey:" + std::string(hex64);
  text[9 + 10] = 'g';
  const auto r = parse_disco_key(text);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.message(), "position 19")) << r.message();
  text[9 + 10] = '\0';
  EXPECT_FALSE(parse_disco_key(text).ok());
}

TEST(key_text, private_key_errors_do_not_echo_the_text) {
  const std::string secret = "secretkey:" + std::string(hex64);
  const auto r = parse_private_key_text(secret);
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(contains(r.message(), "secretkey")) << r.message();
  EXPECT_FALSE(contains(r.message(), hex64.substr(0, 8))) << r.message();
  std::string bad = "privkey:" + std::string(hex64);
  bad[20] = 'x';
  const auto r2 = parse_private_key_text(bad);
  ASSERT_FALSE(r2.ok());
  EXPECT_FALSE(contains(r2.message(), hex64.substr(0, 8))) << r2.message();
  EXPECT_FALSE(parse_private_key_text("mkey:" + std::string(hex64)).ok());
}

}  // namespace
}  // namespace lopower::tailnet
