#include "control/wireguard/engine/noise_symmetric.h"

#include <algorithm>

#include "control/wireguard/engine/primitives.h"
#include "lopower/wireguard_messages.h"

namespace lopower::wg {
namespace {

template <class K>
crypto::bytes of(const K& key) {
  return crypto::bytes(key.data(), key.size());
}

}  // namespace

bool noise_symmetric_state::initialize(std::string_view protocol_name) {
  crypto::init();
  const crypto::bytes name(reinterpret_cast<const std::uint8_t*>(protocol_name.data()), protocol_name.size());
  if (name.size() <= hash_.size()) {
    hash_.wipe();
    std::copy(name.begin(), name.end(), hash_.data());
  } else if (!crypto::hash(hash_.data(), {name})) {
    return false;
  }
  chaining_key_ = hash_;
  return true;
}

bool noise_symmetric_state::mix_hash(bytes data) { return crypto::hash(hash_.data(), {of(hash_), data}); }

bool noise_symmetric_state::mix_key(bytes input) {
  return crypto::kdf(chaining_key_.data(), input, chaining_key_.data(), key_.data());
}

bool noise_symmetric_state::mix_chaining_key(bytes input) {
  return crypto::kdf(chaining_key_.data(), input, chaining_key_.data());
}

bool noise_symmetric_state::mix_dh(const private_key& priv, const std::uint8_t pub[key_size]) {
  key32 shared;
  if (!crypto::dh(shared.data(), priv.data(), pub)) return false;
  return mix_key(of(shared));
}

bool noise_symmetric_state::mix_key_and_hash(bytes input) {
  key32 tau;
  return crypto::kdf(chaining_key_.data(), input, chaining_key_.data(), tau.data(), key_.data()) && mix_hash(of(tau));
}

bool noise_symmetric_state::encrypt_and_hash(std::uint8_t* dst, bytes plain) {
  crypto::aead_encrypt(dst, plain, of(hash_), 0, key_.data());
  return mix_hash(bytes(dst, encrypted_size(plain.size())));
}

bool noise_symmetric_state::decrypt_and_hash(std::uint8_t* dst, bytes cipher) {
  return crypto::aead_decrypt(dst, cipher, of(hash_), 0, key_.data()) && mix_hash(cipher);
}

bool noise_symmetric_state::split(key32& first, key32& second) const {
  return crypto::kdf(chaining_key_.data(), bytes(), first.data(), second.data());
}

}  // namespace lopower::wg
