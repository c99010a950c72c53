#pragma once
// The reference backend: libsodium's crypto_aead_chacha20poly1305_ietf_*
// (detached), one call per packet. libsodium picks its own SIMD code for
// ChaCha20 (AVX2/SSSE3) and Poly1305 (SSE2) at sodium_init().

#include <memory>

#include "dataplane/crypto/aead_batch.h"

namespace lopower::crypto {

class sodium_backend final : public aead_backend {
 public:
  // nullptr if sodium_init() fails.
  static std::unique_ptr<sodium_backend> create();

  std::string_view name() const noexcept override { return "libsodium"; }
  std::string describe() const override;
  void encrypt_burst(aead_op* ops, unsigned n) noexcept override;
  void decrypt_burst(aead_op* ops, unsigned n) noexcept override;
  bool seal(const std::uint8_t* key, const std::uint8_t* nonce, const std::uint8_t* aad, std::size_t aad_length,
            std::uint8_t* data, std::uint32_t length, std::uint8_t* tag) noexcept override;
  bool open(const std::uint8_t* key, const std::uint8_t* nonce, const std::uint8_t* aad, std::size_t aad_length,
            std::uint8_t* data, std::uint32_t length, const std::uint8_t* tag) noexcept override;

 private:
  sodium_backend() = default;
};

}  // namespace lopower::crypto
