#include "control/enrollment/keys.h"

#include <sodium.h>

#include <cstdio>
#include <cstdlib>

namespace lopower::enrollment {

void ensure_sodium() {
  if (sodium_init() < 0) {
    std::fputs("lopower: libsodium failed to initialise\n", stderr);
    std::abort();
  }
}

private_key& private_key::operator=(const private_key& other) {
  bytes_ = other.bytes_;
  return *this;
}

private_key::~private_key() { sodium_memzero(bytes_.data(), bytes_.size()); }

private_key private_key::generate() {
  ensure_sodium();
  private_key k;
  randombytes_buf(k.bytes_.data(), k.bytes_.size());
  // Curve25519 clamping, as `wg genkey` does.
  k.bytes_[0] &= 248;
  k.bytes_[31] &= 127;
  k.bytes_[31] |= 64;
  return k;
}

key32 private_key::public_key() const {
  ensure_sodium();
  key32 pub{};
  if (crypto_scalarmult_base(pub.data(), bytes_.data()) != 0) pub.fill(0);
  return pub;
}

bool private_key::operator==(const private_key& other) const {
  return sodium_memcmp(bytes_.data(), other.bytes_.data(), bytes_.size()) == 0;
}

namespace {

std::string encode(const std::uint8_t* bytes, std::size_t n) {
  const std::size_t len = sodium_base64_encoded_len(n, sodium_base64_VARIANT_ORIGINAL);
  std::string out(len, '\0');
  sodium_bin2base64(out.data(), out.size(), bytes, n, sodium_base64_VARIANT_ORIGINAL);
  out.resize(len - 1);  // the encoded length counts the terminating NUL
  return out;
}

}  // namespace

std::string key_to_base64(const key32& key) { return encode(key.data(), key.size()); }

std::string key_to_base64(const private_key& key) { return encode(key.bytes().data(), key.bytes().size()); }

result<key32> key_from_base64(std::string_view text, std::string_view what) {
  ensure_sodium();
  const std::string prefix(what);
  if (text.size() != key_base64_length)
    return fail(prefix + " is not 44 characters of base64 (it has " + std::to_string(text.size()) + ")");
  key32 key{};
  std::size_t bin_len = 0;
  const char* end = nullptr;
  const int rc = sodium_base642bin(key.data(), key.size(), text.data(), text.size(), nullptr, &bin_len, &end,
                                   sodium_base64_VARIANT_ORIGINAL);
  if (rc != 0 || bin_len != key.size() || end != text.data() + text.size()) {
    sodium_memzero(key.data(), key.size());
    return fail(prefix + " is not 44 characters of base64 (it does not decode to 32 bytes)");
  }
  if (sodium_is_zero(key.data(), key.size())) return fail(prefix + " is all zeros, which is not a usable key");
  return key;
}

void wipe(std::string& s) {
  if (!s.empty()) sodium_memzero(s.data(), s.size());
  s.clear();
}

}  // namespace lopower::enrollment
