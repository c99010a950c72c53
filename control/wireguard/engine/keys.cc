#include "lopower/keys.h"

#include <sodium.h>

#include "control/wireguard/engine/primitives.h"

namespace lopower {

void secure_wipe(void* data, std::size_t length) noexcept { sodium_memzero(data, length); }

bool constant_time_equal(const void* a, const void* b, std::size_t length) noexcept {
  return sodium_memcmp(a, b, length) == 0;
}

bool constant_time_is_zero(const void* data, std::size_t length) noexcept {
  return sodium_is_zero(static_cast<const unsigned char*>(data), length) == 1;
}

template <class Tag>
std::string basic_key32<Tag>::to_base64() const {
  char text[key_base64_length + 1];
  sodium_bin2base64(text, sizeof text, bytes_.data(), key_size, sodium_base64_VARIANT_ORIGINAL);
  std::string out(text, key_base64_length);
  sodium_memzero(text, sizeof text);
  return out;
}

template <class Tag>
std::optional<basic_key32<Tag>> basic_key32<Tag>::from_base64(std::string_view text) {
  if (text.size() != key_base64_length || text.back() != '=') return std::nullopt;
  basic_key32 key;
  std::size_t decoded = 0;
  const char* end = nullptr;
  // libsodium refuses leftover non-zero bits and, with no characters to
  // ignore, anything outside the alphabet; `end` shows it consumed it all.
  if (sodium_base642bin(key.bytes_.data(), key_size, text.data(), text.size(), nullptr, &decoded, &end,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      decoded != key_size || end != text.data() + text.size())
    return std::nullopt;
  return key;
}

template <class Tag>
std::string basic_key32<Tag>::to_hex() const {
  char text[key_hex_length + 1];
  sodium_bin2hex(text, sizeof text, bytes_.data(), key_size);
  std::string out(text, key_hex_length);
  sodium_memzero(text, sizeof text);
  return out;
}

template <class Tag>
std::optional<basic_key32<Tag>> basic_key32<Tag>::from_hex(std::string_view text) {
  if (text.size() != key_hex_length) return std::nullopt;
  basic_key32 key;
  std::size_t decoded = 0;
  const char* end = nullptr;
  if (sodium_hex2bin(key.bytes_.data(), key_size, text.data(), text.size(), nullptr, &decoded, &end) != 0 ||
      decoded != key_size || end != text.data() + text.size())
    return std::nullopt;
  return key;
}

template class basic_key32<symmetric_key_tag>;
template class basic_key32<public_key_tag>;
template class basic_key32<private_key_tag>;

void clamp_private_key(private_key& key) noexcept {
  key[0] &= 248;
  key[31] &= 127;
  key[31] |= 64;
}

private_key generate_private_key() {
  wg::crypto::init();
  private_key key;
  randombytes_buf(key.data(), key.size());
  clamp_private_key(key);
  return key;
}

public_key public_from_private(const private_key& key) noexcept {
  wg::crypto::init();
  public_key pub;
  if (crypto_scalarmult_base(pub.data(), key.data()) != 0) pub.wipe();
  return pub;
}

}  // namespace lopower
