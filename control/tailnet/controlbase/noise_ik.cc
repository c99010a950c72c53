#include "control/tailnet/controlbase/noise_ik.h"

#include <cstring>
#include <utility>

#include "control/tailnet/controlbase/printable.h"
#include "control/wireguard/engine/primitives.h"

namespace lopower::tailnet {
namespace {

namespace crypto = lopower::wg::crypto;
using crypto::bytes;

constexpr std::size_t tag_size = 16;
constexpr std::size_t initiation_payload = initiation_size - initiation_header_size;  // 96
constexpr std::size_t response_payload = response_size - message_header_size;         // 48

std::uint16_t read_be16(const std::uint8_t* p) noexcept { return static_cast<std::uint16_t>(p[0] << 8 | p[1]); }
void write_be16(std::uint8_t* p, std::uint16_t v) noexcept {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}

bytes of(const key32& k) { return bytes(k.data(), k.size()); }
bytes of(const public_key& k) { return bytes(k.data(), k.size()); }

// The symmetric state of Noise (section 5.2) over the WireGuard
// primitives: h and ck live in self-wiping keys.
struct symmetric_state {
  key32& h;
  key32& ck;

  // MixHash: h = HASH(h || data).
  bool mix_hash(bytes data) { return crypto::hash(h.data(), {of(h), data}); }

  // MixKey(DH(priv, pub)): ck, k = HKDF(ck, dh). False on an all-zero DH.
  bool mix_dh(key32& k, const private_key& priv, const public_key& pub) {
    key32 shared;
    if (!crypto::dh(shared.data(), priv.data(), pub.data())) return false;
    return crypto::kdf(ck.data(), of(shared), ck.data(), k.data());
  }

  // EncryptAndHash with a fresh key (nonce 0), h as associated data.
  bool encrypt_and_hash(std::uint8_t* out, bytes plain, const key32& k) {
    crypto::aead_encrypt(out, plain, of(h), 0, k.data());
    return mix_hash(bytes(out, plain.size() + tag_size));
  }

  // DecryptAndHash of a ciphertext carrying no plaintext (just its tag).
  bool decrypt_and_hash_empty(bytes tag, const key32& k) {
    if (!crypto::aead_decrypt(nullptr, tag, of(h), 0, k.data())) return false;
    return mix_hash(tag);
  }
};

}  // namespace

std::string noise_prologue(std::uint16_t version) {
  return std::string(noise_prologue_prefix) + std::to_string(version);
}

control_result<noise_ik_initiator> noise_ik_initiator::start(const private_key& machine, const public_key& control,
                                                             std::uint16_t version,
                                                             const std::optional<private_key>& ephemeral) {
  crypto::init();
  noise_ik_initiator st;
  st.version_ = version;
  st.machine_ = machine;
  st.control_ = control;
  if (ephemeral) {
    st.ephemeral_ = *ephemeral;
  } else {
    st.ephemeral_ = generate_private_key();
  }
  const public_key machine_public = public_from_private(st.machine_);
  const public_key ephemeral_public = public_from_private(st.ephemeral_);
  if (machine_public.is_zero() || ephemeral_public.is_zero()) return control_fail("ts2021: unusable machine or ephemeral key");

  symmetric_state s{st.hash_, st.chaining_key_};
  // Initialize: the name is longer than a hash, so h = HASH(name); ck = h.
  const std::string_view name = noise_protocol_name;
  if (!crypto::hash(st.hash_.data(), {bytes(reinterpret_cast<const std::uint8_t*>(name.data()), name.size())}))
    return control_fail("ts2021: BLAKE2s failed");
  st.chaining_key_ = st.hash_;

  const std::string prologue = noise_prologue(version);
  auto& msg = st.initiation_;
  write_be16(&msg[0], version);
  msg[2] = msg_type_initiation;
  write_be16(&msg[3], static_cast<std::uint16_t>(initiation_payload));
  std::uint8_t* const e_field = &msg[initiation_header_size];
  std::uint8_t* const s_field = e_field + key_size;
  std::uint8_t* const tag_field = s_field + key_size + tag_size;

  key32 k;
  bool ok = s.mix_hash(bytes(reinterpret_cast<const std::uint8_t*>(prologue.data()), prologue.size()));
  ok = ok && s.mix_hash(of(control));  // <- s
  std::memcpy(e_field, ephemeral_public.data(), key_size);
  ok = ok && s.mix_hash(of(ephemeral_public));  // -> e
  if (!ok) return control_fail("ts2021: BLAKE2s failed");
  if (!s.mix_dh(k, st.ephemeral_, control))  // es
    return control_fail("ts2021: the control server's key gives an all-zero DH (es)");
  ok = s.encrypt_and_hash(s_field, of(machine_public), k);  // s
  if (ok && !s.mix_dh(k, st.machine_, control))              // ss
    return control_fail("ts2021: the control server's key gives an all-zero DH (ss)");
  ok = ok && s.encrypt_and_hash(tag_field, bytes(), k);  // {} (empty payload)
  if (!ok) return control_fail("ts2021: BLAKE2s failed");
  return st;
}

control_result<std::size_t> noise_ik_initiator::reply_size(std::span<const std::uint8_t> header) {
  if (header.size() < message_header_size) return control_fail("ts2021: handshake reply header is 3 bytes");
  const std::uint16_t length = read_be16(&header[1]);
  switch (header[0]) {
    case msg_type_response:
      if (length != response_payload)
        return control_fail("ts2021: handshake response announces " + std::to_string(length) + " bytes, want 48");
      return response_size;
    case msg_type_error:
      if (length > max_error_text)
        return control_fail("ts2021: the server refused the handshake with an error of " + std::to_string(length) +
                            " bytes (too long to read)");
      return message_header_size + length;
    default:
      return control_fail("ts2021: unexpected handshake reply type " + std::to_string(header[0]));
  }
}

control_result<transport_keys> noise_ik_initiator::finish(std::span<const std::uint8_t> reply) {
  if (finished_) return control_fail("ts2021: the handshake was already finished");
  finished_ = true;
  // Whatever the outcome, the handshake's secrets are of no further use.
  struct wipe_on_exit {
    noise_ik_initiator& st;
    ~wipe_on_exit() {
      st.ephemeral_.wipe();
      st.machine_.wipe();
      st.chaining_key_.wipe();
    }
  } wipe{*this};
  const auto size = reply_size(reply);
  if (!size) return size.error();
  if (reply.size() != *size)
    return control_fail("ts2021: handshake reply of " + std::to_string(reply.size()) + " bytes, its header says " +
                        std::to_string(*size));
  if (reply[0] == msg_type_error) {
    const auto text = reply.subspan(message_header_size);
    return control_fail("ts2021: server error: " +
                        detail::printable(std::string_view(reinterpret_cast<const char*>(text.data()), text.size()),
                                          max_error_text));
  }

  symmetric_state s{hash_, chaining_key_};
  const public_key server_ephemeral = public_key::from_bytes(&reply[message_header_size]);
  const bytes tag(&reply[message_header_size + key_size], tag_size);
  key32 k;
  if (!s.mix_hash(of(server_ephemeral)))  // <- e
    return control_fail("ts2021: BLAKE2s failed");
  if (!s.mix_dh(k, ephemeral_, server_ephemeral))  // ee
    return control_fail("ts2021: the server's ephemeral key gives an all-zero DH (ee)");
  if (!s.mix_dh(k, machine_, server_ephemeral))  // se
    return control_fail("ts2021: the server's ephemeral key gives an all-zero DH (se)");
  if (!s.decrypt_and_hash_empty(tag, k))  // {}
    return control_fail("ts2021: the handshake response does not authenticate (wrong server key?)");

  transport_keys keys;
  if (!crypto::kdf(chaining_key_.data(), bytes(), keys.send.data(), keys.receive.data()))
    return control_fail("ts2021: BLAKE2s failed");
  keys.handshake_hash = hash_;
  keys.version = version_;
  keys.peer = control_;
  return keys;
}

}  // namespace lopower::tailnet
