#include "dataplane/crypto/sodium_backend.h"

#include <sodium.h>

#include <string>

namespace lopower::crypto {

namespace {

// libsodium is handed a valid pointer even for zero-length data (keepalives
// may carry data == nullptr): it never reads or writes through it then.
std::uint8_t* data_or_dummy(std::uint8_t* data) noexcept {
  static std::uint8_t dummy;
  return data != nullptr ? data : &dummy;
}

}  // namespace

std::unique_ptr<sodium_backend> sodium_backend::create() {
  // Thread-safe and idempotent: 0 = initialised now, 1 = already, -1 = failure.
  if (sodium_init() < 0) return nullptr;
  return std::unique_ptr<sodium_backend>(new sodium_backend());
}

std::string sodium_backend::describe() const {
  return std::string("libsodium ") + sodium_version_string();
}

bool sodium_backend::seal(const std::uint8_t* key, const std::uint8_t* nonce, const std::uint8_t* aad,
                          std::size_t aad_length, std::uint8_t* data, std::uint32_t length,
                          std::uint8_t* tag) noexcept {
  std::uint8_t* d = data_or_dummy(data);
  return crypto_aead_chacha20poly1305_ietf_encrypt_detached(d, tag, nullptr, d, length, aad, aad_length, nullptr,
                                                            nonce, key) == 0;
}

bool sodium_backend::open(const std::uint8_t* key, const std::uint8_t* nonce, const std::uint8_t* aad,
                          std::size_t aad_length, std::uint8_t* data, std::uint32_t length,
                          const std::uint8_t* tag) noexcept {
  // Verifies the tag over the ciphertext first (constant time), then decrypts
  // in place; on failure the data is left as it was.
  std::uint8_t* d = data_or_dummy(data);
  return crypto_aead_chacha20poly1305_ietf_decrypt_detached(d, nullptr, d, length, tag, aad, aad_length, nonce,
                                                            key) == 0;
}

void sodium_backend::encrypt_burst(aead_op* ops, unsigned n) noexcept {
  for (unsigned i = 0; i < n; ++i) {
    aead_op& op = ops[i];
    std::uint8_t nonce[nonce_size];
    wireguard_nonce(op.counter, nonce);
    op.ok = seal(op.key, nonce, nullptr, 0, op.data, op.length, op.tag);
  }
}

void sodium_backend::decrypt_burst(aead_op* ops, unsigned n) noexcept {
  for (unsigned i = 0; i < n; ++i) {
    aead_op& op = ops[i];
    if (i + 1 < n) prefetch_sealed(ops[i + 1]);
    std::uint8_t nonce[nonce_size];
    wireguard_nonce(op.counter, nonce);
    op.ok = open(op.key, nonce, nullptr, 0, op.data, op.length, op.tag);
  }
}

}  // namespace lopower::crypto
