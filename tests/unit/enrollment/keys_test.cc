#include "control/enrollment/keys.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <sstream>

namespace lopower::enrollment {
namespace {

TEST(Keys, GeneratedKeysAreClampedAndDistinct) {
  const private_key a = private_key::generate(), b = private_key::generate();
  EXPECT_FALSE(a == b);
  for (const auto* k : {&a, &b}) {
    EXPECT_EQ(k->bytes()[0] & 7, 0);
    EXPECT_EQ(k->bytes()[31] & 0x80, 0);
    EXPECT_EQ(k->bytes()[31] & 0x40, 0x40);
  }
  EXPECT_NE(a.public_key(), b.public_key());
}

// RFC 7748 section 6.1: Alice's X25519 key pair.
TEST(Keys, PublicKeyIsX25519OfTheBasePoint) {
  key32 alice{};
  const char* hex = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
  for (std::size_t i = 0; i < 32; ++i) alice[i] = static_cast<std::uint8_t>(std::stoi(std::string(hex + 2 * i, 2), nullptr, 16));
  const key32 pub = private_key(alice).public_key();
  char out[65];
  for (std::size_t i = 0; i < 32; ++i) std::snprintf(out + 2 * i, 3, "%02x", pub[i]);
  EXPECT_STREQ(out, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
}

TEST(Keys, Base64RoundTrip) {
  const key32 k = private_key::generate().public_key();
  const std::string text = key_to_base64(k);
  ASSERT_EQ(text.size(), key_base64_length);
  EXPECT_EQ(text.back(), '=');
  auto back = key_from_base64(text);
  ASSERT_TRUE(back.ok()) << back.message();
  EXPECT_EQ(*back, k);
}

TEST(Keys, MalformedBase64IsRefused) {
  const std::string good = key_to_base64(private_key::generate().public_key());
  // The last character before '=' carries 4 bits of the key and 2 zero bits;
  // a character with those bits set is not a canonical encoding.
  std::string noncanonical = good;
  noncanonical[42] = 'D';  // 000011: the two padding bits set
  EXPECT_FALSE(key_from_base64(noncanonical).ok());
  EXPECT_FALSE(key_from_base64(good.substr(0, 43) + "A").ok());  // no padding
  EXPECT_FALSE(key_from_base64(good.substr(0, 40) + "-_==").ok());  // URL-safe alphabet
  EXPECT_EQ(key_from_base64("x", "device key").message(), "device key is not 44 characters of base64 (it has 1)");
}

std::optional<std::string> find_program(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

// The keys written into configs are the ones `wg` itself derives.
TEST(Keys, AgreesWithWgPubkey) {
  const auto wg = find_program("wg");
  if (!wg) GTEST_SKIP() << "wg is not installed (Debian package wireguard-tools): not cross-checked";
  const private_key k = private_key::generate();
  std::string priv = key_to_base64(k);
  const std::string command = "echo " + priv + " | " + *wg + " pubkey";
  wipe(priv);
  std::FILE* p = ::popen(command.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[128] = {};
  const std::size_t n = std::fread(buf, 1, sizeof buf - 1, p);
  ::pclose(p);
  EXPECT_EQ(std::string(buf, n), key_to_base64(k.public_key()) + "\n");
}

}  // namespace
}  // namespace lopower::enrollment
