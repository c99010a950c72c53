#pragma once
// The symmetric state of Noise (the Noise Protocol Framework, section 5.2)
// over WireGuard's primitives (primitives.h): chaining key ck, handshake
// hash h and the current cipher key k, each in a self-wiping key32. Shared
// by WireGuard's Noise_IKpsk2 (noise_handshake.cc) and ts2021's Noise_IK
// (control/tailnet/controlbase/noise_ik.cc).
//
// Every key is used for one message only in both handshakes, so the cipher
// state's nonce is always 0. Every step returns false if a primitive failed
// (or a DH gave all zeros); the state is then of no further use.

#include <cstdint>
#include <span>
#include <string_view>

#include "lopower/keys.h"

namespace lopower::wg {

class noise_symmetric_state {
 public:
  using bytes = std::span<const std::uint8_t>;

  noise_symmetric_state() = default;  // all zero: initialize() or resume from a saved (ck, h)
  noise_symmetric_state(const key32& chaining_key, const key32& hash) : chaining_key_(chaining_key), hash_(hash) {}

  // InitializeSymmetric(protocol_name): h = the name zero-padded when it
  // fits in a hash, else HASH(name); ck = h.
  [[nodiscard]] bool initialize(std::string_view protocol_name);

  // MixHash: h = HASH(h || data).
  [[nodiscard]] bool mix_hash(bytes data);
  // MixKey: ck, k = HKDF(ck, input) (KDF2).
  [[nodiscard]] bool mix_key(bytes input);
  // ck = KDF1(ck, input): MixKey where the next step replaces k before any
  // use (the `e` token of psk handshakes: WireGuard's C = KDF1(C, e)).
  [[nodiscard]] bool mix_chaining_key(bytes input);
  // MixKey(DH(priv, pub)); false when the DH is all zero.
  [[nodiscard]] bool mix_dh(const private_key& priv, const std::uint8_t pub[key_size]);
  // MixKeyAndHash (the psk token): ck, tau, k = HKDF(ck, input) (KDF3), then MixHash(tau).
  [[nodiscard]] bool mix_key_and_hash(bytes input);
  // EncryptAndHash: AEAD(k, 0, plain, h) into dst (plain.size() + 16 bytes), then MixHash(ciphertext).
  [[nodiscard]] bool encrypt_and_hash(std::uint8_t* dst, bytes plain);
  // DecryptAndHash: the plaintext (cipher.size() - 16 bytes; dst may be null when that is 0),
  // then MixHash(ciphertext). False when the tag does not authenticate.
  [[nodiscard]] bool decrypt_and_hash(std::uint8_t* dst, bytes cipher);
  // Split: (first, second) = HKDF(ck, empty).
  [[nodiscard]] bool split(key32& first, key32& second) const;

  const key32& chaining_key() const noexcept { return chaining_key_; }
  const key32& hash() const noexcept { return hash_; }

 private:
  key32 chaining_key_;  // ck
  key32 hash_;          // h
  key32 key_;           // k
};

}  // namespace lopower::wg
