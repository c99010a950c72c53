#pragma once
// 32-byte keys as WireGuard uses them: Curve25519 private and public keys,
// preshared and symmetric keys. Every key wipes itself when it is destroyed
// or moved from, compares in constant time, and has WireGuard's text forms
// (44 characters of standard base64, or 64 hex digits).
//
// Defined in control/wireguard/engine/keys.cc (lopower_wireguard_dep: libsodium).

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace lopower {

// sodium_memzero: a wipe the compiler may not remove.
void secure_wipe(void* data, std::size_t length) noexcept;
// sodium_memcmp: true when equal; time depends on the length only.
bool constant_time_equal(const void* a, const void* b, std::size_t length) noexcept;
// sodium_is_zero, in constant time.
bool constant_time_is_zero(const void* data, std::size_t length) noexcept;

inline constexpr std::size_t key_size = 32;
inline constexpr std::size_t key_base64_length = 44;  // with its one '=' of padding
inline constexpr std::size_t key_hex_length = 64;

// The one implementation behind every key type; Tag keeps the types apart
// so that a public key cannot be passed where a private key is expected.
template <class Tag>
class basic_key32 {
 public:
  static constexpr std::size_t size_bytes = key_size;

  basic_key32() noexcept = default;  // all zero
  explicit basic_key32(const std::array<std::uint8_t, key_size>& bytes) noexcept : bytes_(bytes) {}
  // Copies 32 bytes from `bytes`.
  static basic_key32 from_bytes(const std::uint8_t* bytes) noexcept {
    basic_key32 k;
    for (std::size_t i = 0; i < key_size; ++i) k.bytes_[i] = bytes[i];
    return k;
  }

  basic_key32(const basic_key32&) noexcept = default;
  basic_key32& operator=(const basic_key32&) noexcept = default;
  // A moved-from key is wiped: only one copy of the secret survives a move.
  basic_key32(basic_key32&& other) noexcept : bytes_(other.bytes_) { other.wipe(); }
  basic_key32& operator=(basic_key32&& other) noexcept {
    if (this != &other) {
      bytes_ = other.bytes_;
      other.wipe();
    }
    return *this;
  }
  ~basic_key32() { wipe(); }

  std::uint8_t* data() noexcept { return bytes_.data(); }
  const std::uint8_t* data() const noexcept { return bytes_.data(); }
  static constexpr std::size_t size() noexcept { return key_size; }
  std::uint8_t& operator[](std::size_t i) noexcept { return bytes_[i]; }
  std::uint8_t operator[](std::size_t i) const noexcept { return bytes_[i]; }
  std::uint8_t* begin() noexcept { return bytes_.data(); }
  std::uint8_t* end() noexcept { return bytes_.data() + key_size; }
  const std::uint8_t* begin() const noexcept { return bytes_.data(); }
  const std::uint8_t* end() const noexcept { return bytes_.data() + key_size; }

  void wipe() noexcept { secure_wipe(bytes_.data(), key_size); }
  bool is_zero() const noexcept { return constant_time_is_zero(bytes_.data(), key_size); }

  // Constant time.
  friend bool operator==(const basic_key32& a, const basic_key32& b) noexcept {
    return constant_time_equal(a.bytes_.data(), b.bytes_.data(), key_size);
  }

  // WireGuard's text form: 44 characters of standard base64.
  std::string to_base64() const;
  // Exactly 44 characters of standard (padded) base64 that decode to 32
  // bytes with no stray bits; nothing else (no whitespace).
  static std::optional<basic_key32> from_base64(std::string_view text);
  std::string to_hex() const;  // 64 lower-case hex digits
  // Exactly 64 hex digits, either case.
  static std::optional<basic_key32> from_hex(std::string_view text);

 private:
  std::array<std::uint8_t, key_size> bytes_{};
};

struct symmetric_key_tag;
struct public_key_tag;
struct private_key_tag;

using key32 = basic_key32<symmetric_key_tag>;        // symmetric and preshared keys, hashes
using public_key = basic_key32<public_key_tag>;      // Curve25519 public key
using private_key = basic_key32<private_key_tag>;    // Curve25519 private key

// A fresh private key from libsodium's randomness, clamped as WireGuard does.
private_key generate_private_key();
// Clamps in place (RFC 7748: clear bits 0-2 and 255, set bit 254).
void clamp_private_key(private_key& key) noexcept;
// X25519 with the base point. An all-zero result (impossible for a clamped
// key) comes back as the all-zero key, which every handshake rejects.
public_key public_from_private(const private_key& key) noexcept;

// Free-function spellings of the text forms, for generic code.
template <class Tag>
std::string base64_encode(const basic_key32<Tag>& key) { return key.to_base64(); }
template <class Tag>
std::string hex_encode(const basic_key32<Tag>& key) { return key.to_hex(); }

extern template class basic_key32<symmetric_key_tag>;
extern template class basic_key32<public_key_tag>;
extern template class basic_key32<private_key_tag>;

}  // namespace lopower

// Hashing a public key for a peer table. Public keys are uniformly random
// and chosen by the operator, so their first bytes are a fine hash.
template <>
struct std::hash<lopower::public_key> {
  std::size_t operator()(const lopower::public_key& k) const noexcept {
    std::size_t h = 0;
    for (std::size_t i = 0; i < sizeof h; ++i) h = (h << 8) | k[i];
    return h;
  }
};
