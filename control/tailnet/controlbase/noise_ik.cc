#include "control/tailnet/controlbase/noise_ik.h"

#include <algorithm>

#include <cstring>
#include <utility>

#include "control/tailnet/controlbase/printable.h"
#include "control/wireguard/engine/noise_symmetric.h"
#include "control/wireguard/engine/primitives.h"
#include "lopower/byte_order.h"

namespace lopower::tailnet {
namespace {

namespace crypto = lopower::wg::crypto;
using crypto::bytes;

constexpr std::size_t tag_size = 16;
constexpr std::size_t initiation_payload = initiation_size - initiation_header_size;  // 96
constexpr std::size_t response_payload = response_size - message_header_size;         // 48

bytes of(const public_key& k) { return bytes(k.data(), k.size()); }

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

  // Initialize: the name is longer than a hash, so h = HASH(name); ck = h.
  wg::noise_symmetric_state& s = st.symmetric_;
  if (!s.initialize(noise_protocol_name)) return control_fail("ts2021: BLAKE2s failed");

  const std::string prologue = noise_prologue(version);
  auto& msg = st.initiation_;
  store_be16(&msg[0], version);
  msg[2] = msg_type_initiation;
  store_be16(&msg[3], static_cast<std::uint16_t>(initiation_payload));
  std::uint8_t* const e_field = &msg[initiation_header_size];
  std::uint8_t* const s_field = e_field + key_size;
  std::uint8_t* const tag_field = s_field + key_size + tag_size;

  bool ok = s.mix_hash(bytes(reinterpret_cast<const std::uint8_t*>(prologue.data()), prologue.size()));
  ok = ok && s.mix_hash(of(control));  // <- s
  std::memcpy(e_field, ephemeral_public.data(), key_size);
  ok = ok && s.mix_hash(of(ephemeral_public));  // -> e
  if (!ok) return control_fail("ts2021: BLAKE2s failed");
  if (!s.mix_dh(st.ephemeral_, control.data()))  // es
    return control_fail("ts2021: the control server's key gives an all-zero DH (es)");
  ok = s.encrypt_and_hash(s_field, of(machine_public));  // s
  if (ok && !s.mix_dh(st.machine_, control.data()))       // ss
    return control_fail("ts2021: the control server's key gives an all-zero DH (ss)");
  ok = ok && s.encrypt_and_hash(tag_field, bytes());  // {} (empty payload)
  if (!ok) return control_fail("ts2021: BLAKE2s failed");
  return st;
}

control_result<std::size_t> noise_ik_initiator::reply_size(std::span<const std::uint8_t> header) {
  if (header.size() < message_header_size) return control_fail("ts2021: handshake reply header is 3 bytes");
  const std::uint16_t length = load_be16(&header[1]);
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

control_result<std::size_t> noise_reply_reader::feed(std::span<const std::uint8_t> bytes) {
  std::size_t used = 0;
  while (used < bytes.size()) {
    std::size_t want = message_header_size;
    if (reply_.size() >= message_header_size) {
      const auto size = noise_ik_initiator::reply_size(reply_);
      if (!size) return control_fail(size.message());
      want = *size;
    }
    if (reply_.size() >= want) break;
    const std::size_t take = std::min(want - reply_.size(), bytes.size() - used);
    reply_.insert(reply_.end(), bytes.begin() + static_cast<std::ptrdiff_t>(used),
                  bytes.begin() + static_cast<std::ptrdiff_t>(used + take));
    used += take;
  }
  // The header may have been completed by the last piece taken.
  if (reply_.size() >= message_header_size) {
    const auto size = noise_ik_initiator::reply_size(reply_);
    if (!size) return control_fail(size.message());
  }
  return used;
}

bool noise_reply_reader::whole() const noexcept {
  if (reply_.size() < message_header_size) return false;
  const auto size = noise_ik_initiator::reply_size(reply_);
  return size && reply_.size() == *size;
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
      st.symmetric_ = {};  // wipes ck, h and k
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

  wg::noise_symmetric_state& s = symmetric_;
  const public_key server_ephemeral = public_key::from_bytes(&reply[message_header_size]);
  const bytes tag(&reply[message_header_size + key_size], tag_size);
  if (!s.mix_hash(of(server_ephemeral)))  // <- e
    return control_fail("ts2021: BLAKE2s failed");
  if (!s.mix_dh(ephemeral_, server_ephemeral.data()))  // ee
    return control_fail("ts2021: the server's ephemeral key gives an all-zero DH (ee)");
  if (!s.mix_dh(machine_, server_ephemeral.data()))  // se
    return control_fail("ts2021: the server's ephemeral key gives an all-zero DH (se)");
  if (!s.decrypt_and_hash(nullptr, tag))  // {}
    return control_fail("ts2021: the handshake response does not authenticate (wrong server key?)");

  transport_keys keys;
  if (!s.split(keys.send, keys.receive)) return control_fail("ts2021: BLAKE2s failed");
  keys.handshake_hash = s.hash();
  keys.version = version_;
  keys.peer = control_;
  return keys;
}

}  // namespace lopower::tailnet
