#pragma once
// The cryptographic primitives of WireGuard (whitepaper 5.4), each a thin
// wrapper over one library call: X25519, ChaCha20-Poly1305 and
// XChaCha20-Poly1305 from libsodium; BLAKE2s, HMAC-BLAKE2s and keyed
// BLAKE2s-128 from OpenSSL 3 (libsodium has no BLAKE2s). Private to
// control/wireguard. Every function that can fail says so in its result;
// the only failures are an all-zero DH result, a bad tag, or OpenSSL
// running out of memory.

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>

namespace lopower::wg::crypto {

using bytes = std::span<const std::uint8_t>;

// sodium_init(); idempotent and thread-safe. Aborts if libsodium cannot
// start, as nothing here would be safe.
void init() noexcept;

// HASH(parts...) = BLAKE2s-256 of the concatenation.
[[nodiscard]] bool hash(std::uint8_t out[32], std::initializer_list<bytes> parts) noexcept;
// HMAC-BLAKE2s-256.
[[nodiscard]] bool hmac(std::uint8_t out[32], bytes key, std::initializer_list<bytes> parts) noexcept;
// MAC(key, data) = keyed BLAKE2s with a 16-byte output (key 1..32 bytes).
[[nodiscard]] bool mac(std::uint8_t out[16], bytes key, std::initializer_list<bytes> parts) noexcept;
// KDF_n(key, input) for n = 1..3 (HKDF with HMAC-BLAKE2s): fills out1 and,
// when not null, out2 and out3. The outputs may alias `key`.
[[nodiscard]] bool kdf(const std::uint8_t key[32], bytes input, std::uint8_t out1[32], std::uint8_t* out2 = nullptr,
                       std::uint8_t* out3 = nullptr) noexcept;

// AEAD(key, counter, plain, auth): ChaCha20-Poly1305 IETF with the nonce
// 32 zero bits || little-endian 64-bit counter. dst holds plain.size() + 16.
void aead_encrypt(std::uint8_t* dst, bytes plain, bytes auth, std::uint64_t counter, const std::uint8_t key[32]) noexcept;
// dst holds cipher.size() - 16 bytes (may be null when that is zero).
[[nodiscard]] bool aead_decrypt(std::uint8_t* dst, bytes cipher, bytes auth, std::uint64_t counter,
                                const std::uint8_t key[32]) noexcept;
// XAEAD: XChaCha20-Poly1305 with a 24-byte nonce.
void xaead_encrypt(std::uint8_t* dst, bytes plain, bytes auth, const std::uint8_t nonce[24],
                   const std::uint8_t key[32]) noexcept;
[[nodiscard]] bool xaead_decrypt(std::uint8_t* dst, bytes cipher, bytes auth, const std::uint8_t nonce[24],
                                 const std::uint8_t key[32]) noexcept;

// DH(private, public) = X25519; false when the result is all zero (a
// low-order public key), as the whitepaper requires.
[[nodiscard]] bool dh(std::uint8_t out[32], const std::uint8_t private_key[32], const std::uint8_t public_key[32]) noexcept;

}  // namespace lopower::wg::crypto
