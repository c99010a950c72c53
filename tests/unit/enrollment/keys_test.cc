#include "control/enrollment/keys.h"

#include "tests/unit/enrollment/temp_dir.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <sstream>

namespace lopower::enrollment {
namespace {

using testing::find_program;

// Generating, clamping and X25519 are lopower/keys.h's, tested with it in
// tests/unit/wireguard/keys_test.cc; here, what enrollment adds.

TEST(Keys, Base64RoundTrip) {
  const public_key k = public_from_private(generate_private_key());
  const std::string text = k.to_base64();
  ASSERT_EQ(text.size(), key_base64_length);
  EXPECT_EQ(text.back(), '=');
  auto back = parse_public_key(text);
  ASSERT_TRUE(back.ok()) << back.message();
  EXPECT_EQ(*back, k);
}

TEST(Keys, MalformedBase64IsRefused) {
  const std::string good = public_from_private(generate_private_key()).to_base64();
  // The last character before '=' carries 4 bits of the key and 2 zero bits;
  // a character with those bits set is not a canonical encoding.
  std::string noncanonical = good;
  noncanonical[42] = 'D';  // 000011: the two padding bits set
  EXPECT_FALSE(parse_public_key(noncanonical).ok());
  EXPECT_FALSE(parse_public_key(good.substr(0, 43) + "A").ok());  // no padding
  EXPECT_FALSE(parse_public_key(good.substr(0, 40) + "-_==").ok());  // URL-safe alphabet
  EXPECT_EQ(parse_public_key("x", "device key").message(), "device key is not 44 characters of base64 (it has 1)");
  EXPECT_EQ(parse_public_key(std::string(43, 'A') + "=").message(), "public key is all zeros, which is not a usable key");
  EXPECT_EQ(parse_private_key(good.substr(0, 43) + "A", "server_private_key").message(),
            "server_private_key is not 44 characters of base64 (it does not decode to 32 bytes)");
}


// The keys written into configs are the ones `wg` itself derives.
TEST(Keys, AgreesWithWgPubkey) {
  const auto wg = find_program("wg");
  if (!wg) GTEST_SKIP() << "wg is not installed (Debian package wireguard-tools): not cross-checked";
  const private_key k = generate_private_key();
  std::string priv = k.to_base64();
  const std::string command = "echo " + priv + " | " + *wg + " pubkey";
  wipe(priv);
  std::FILE* p = ::popen(command.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[128] = {};
  const std::size_t n = std::fread(buf, 1, sizeof buf - 1, p);
  ::pclose(p);
  EXPECT_EQ(std::string(buf, n), public_from_private(k).to_base64() + "\n");
}

}  // namespace
}  // namespace lopower::enrollment
