#include "control/wireguard/engine/primitives.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <sodium.h>

#include <cstdlib>
#include <cstring>

namespace lopower::wg::crypto {
namespace {

// Fetched once: fetching by name on every call would cost a provider lookup.
EVP_MD* blake2s_md() noexcept {
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "BLAKE2S-256", nullptr);
  return md;
}
EVP_MAC* hmac_algorithm() noexcept {
  static EVP_MAC* const m = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  return m;
}
EVP_MAC* blake2s_mac_algorithm() noexcept {
  static EVP_MAC* const m = EVP_MAC_fetch(nullptr, "BLAKE2SMAC", nullptr);
  return m;
}

// Runs one EVP_MAC over `parts` into out[0..out_len).
bool run_mac(EVP_MAC* algorithm, const OSSL_PARAM* params, bytes key, std::initializer_list<bytes> parts,
             std::uint8_t* out, std::size_t out_len) noexcept {
  if (algorithm == nullptr) return false;
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(algorithm);
  if (ctx == nullptr) return false;
  bool ok = EVP_MAC_init(ctx, key.data(), key.size(), params) == 1;
  for (const bytes& p : parts) {
    if (!ok) break;
    ok = EVP_MAC_update(ctx, p.data(), p.size()) == 1;
  }
  std::size_t written = 0;
  ok = ok && EVP_MAC_final(ctx, out, &written, out_len) == 1 && written == out_len;
  EVP_MAC_CTX_free(ctx);  // cleanses the keyed state
  return ok;
}

std::uint8_t* nonce12(std::uint8_t nonce[12], std::uint64_t counter) noexcept {
  std::memset(nonce, 0, 4);
  for (int i = 0; i < 8; ++i) nonce[4 + i] = static_cast<std::uint8_t>(counter >> (8 * i));
  return nonce;
}

}  // namespace

void init() noexcept {
  static const int result = sodium_init();
  if (result < 0) std::abort();
}

bool hash(std::uint8_t out[32], std::initializer_list<bytes> parts) noexcept {
  EVP_MD* md = blake2s_md();
  if (md == nullptr) return false;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr) return false;
  bool ok = EVP_DigestInit_ex2(ctx, md, nullptr) == 1;
  for (const bytes& p : parts) {
    if (!ok) break;
    ok = EVP_DigestUpdate(ctx, p.data(), p.size()) == 1;
  }
  unsigned int written = 0;
  ok = ok && EVP_DigestFinal_ex(ctx, out, &written) == 1 && written == 32;
  EVP_MD_CTX_free(ctx);
  return ok;
}

bool hmac(std::uint8_t out[32], bytes key, std::initializer_list<bytes> parts) noexcept {
  char digest[] = "BLAKE2S-256";
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                               OSSL_PARAM_construct_end()};
  return run_mac(hmac_algorithm(), params, key, parts, out, 32);
}

bool mac(std::uint8_t out[16], bytes key, std::initializer_list<bytes> parts) noexcept {
  std::size_t size = 16;
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size), OSSL_PARAM_construct_end()};
  return run_mac(blake2s_mac_algorithm(), params, key, parts, out, 16);
}

bool kdf(const std::uint8_t key[32], bytes input, std::uint8_t out1[32], std::uint8_t* out2, std::uint8_t* out3) noexcept {
  // HKDF: extract with the chaining key, then expand T1 = HMAC(t0, 0x1),
  // T2 = HMAC(t0, T1 || 0x2), T3 = HMAC(t0, T2 || 0x3).
  std::uint8_t t0[32];
  std::uint8_t t[32];
  bool ok = hmac(t0, bytes(key, 32), {input});
  const std::uint8_t one = 1, two = 2, three = 3;
  ok = ok && hmac(t, bytes(t0, 32), {bytes(&one, 1)});
  if (ok) std::memcpy(out1, t, 32);
  if (ok && out2 != nullptr) {
    ok = hmac(t, bytes(t0, 32), {bytes(t, 32), bytes(&two, 1)});
    if (ok) std::memcpy(out2, t, 32);
    if (ok && out3 != nullptr) {
      ok = hmac(t, bytes(t0, 32), {bytes(t, 32), bytes(&three, 1)});
      if (ok) std::memcpy(out3, t, 32);
    }
  }
  sodium_memzero(t0, sizeof t0);
  sodium_memzero(t, sizeof t);
  return ok;
}

void aead_encrypt(std::uint8_t* dst, bytes plain, bytes auth, std::uint64_t counter, const std::uint8_t key[32]) noexcept {
  std::uint8_t nonce[12];
  crypto_aead_chacha20poly1305_ietf_encrypt(dst, nullptr, plain.data(), plain.size(), auth.data(), auth.size(), nullptr,
                                            nonce12(nonce, counter), key);
}

bool aead_decrypt(std::uint8_t* dst, bytes cipher, bytes auth, std::uint64_t counter, const std::uint8_t key[32]) noexcept {
  if (cipher.size() < crypto_aead_chacha20poly1305_ietf_ABYTES) return false;
  std::uint8_t nonce[12];
  // libsodium wants somewhere to write even an empty plaintext.
  std::uint8_t none[1];
  return crypto_aead_chacha20poly1305_ietf_decrypt(dst != nullptr ? dst : none, nullptr, nullptr, cipher.data(),
                                                   cipher.size(), auth.data(), auth.size(), nonce12(nonce, counter),
                                                   key) == 0;
}

void xaead_encrypt(std::uint8_t* dst, bytes plain, bytes auth, const std::uint8_t nonce[24],
                   const std::uint8_t key[32]) noexcept {
  crypto_aead_xchacha20poly1305_ietf_encrypt(dst, nullptr, plain.data(), plain.size(), auth.data(), auth.size(), nullptr,
                                             nonce, key);
}

bool xaead_decrypt(std::uint8_t* dst, bytes cipher, bytes auth, const std::uint8_t nonce[24],
                   const std::uint8_t key[32]) noexcept {
  if (cipher.size() < crypto_aead_xchacha20poly1305_ietf_ABYTES) return false;
  return crypto_aead_xchacha20poly1305_ietf_decrypt(dst, nullptr, nullptr, cipher.data(), cipher.size(), auth.data(),
                                                    auth.size(), nonce, key) == 0;
}

bool dh(std::uint8_t out[32], const std::uint8_t private_key[32], const std::uint8_t public_key[32]) noexcept {
  // crypto_scalarmult fails (-1) exactly when the shared secret is all zero.
  if (crypto_scalarmult(out, private_key, public_key) != 0) {
    sodium_memzero(out, 32);
    return false;
  }
  return true;
}

}  // namespace lopower::wg::crypto
