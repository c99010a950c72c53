#pragma once
// Curve25519 keys as WireGuard uses them: 32 bytes, written as 44 characters
// of standard base64. A private key wipes itself when it goes away.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "control/enrollment/result.h"

namespace lopower::enrollment {

using key32 = std::array<std::uint8_t, 32>;

// Length of a key in base64 (with its one '=' of padding).
inline constexpr std::size_t key_base64_length = 44;

class private_key {
 public:
  private_key() = default;
  explicit private_key(const key32& bytes) : bytes_(bytes) {}
  private_key(const private_key& other) : bytes_(other.bytes_) {}
  private_key& operator=(const private_key& other);
  ~private_key();

  // A fresh key from the system's randomness, clamped as WireGuard does.
  static private_key generate();

  const key32& bytes() const { return bytes_; }
  key32 public_key() const;  // X25519 base-point multiplication
  bool operator==(const private_key& other) const;

 private:
  key32 bytes_{};
};

std::string key_to_base64(const key32& key);
// The base64 text of a private key (callers should wipe the string when done).
std::string key_to_base64(const private_key& key);

// Parses a key an operator typed: exactly 44 characters of standard base64
// (trailing whitespace is not trimmed here) that decode to 32 bytes, not all
// zero. `what` names the key in the message ("public key").
result<key32> key_from_base64(std::string_view text, std::string_view what = "public key");

// Overwrites a buffer that held secret text.
void wipe(std::string& s);

// sodium_init(); safe to call any number of times. Aborts if libsodium
// cannot start (no randomness source), as nothing here is safe without it.
void ensure_sodium();

}  // namespace lopower::enrollment
