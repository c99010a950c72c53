#include "control/wireguard/engine/cookie.h"

#include <chrono>
#include <cstring>

#include "control/wireguard/engine/primitives.h"
#include "lopower/byte_order.h"

namespace lopower::wg {
namespace {

using crypto::bytes;

constexpr std::uint64_t ns(std::chrono::seconds s) {
  return static_cast<std::uint64_t>(std::chrono::nanoseconds(s).count());
}
constexpr std::uint64_t secret_max_age_ns = ns(cookie_refresh_time);
constexpr std::uint64_t cookie_use_max_age_ns = ns(cookie_refresh_time - cookie_secret_latency);

// Handshake messages carry MACs; cookie replies and data do not.
bool has_macs(const std::uint8_t* message, std::size_t length) {
  if (message == nullptr) return false;
  if (length == sizeof(message_handshake_initiation))
    return message[0] == static_cast<std::uint8_t>(message_type::handshake_initiation);
  if (length == sizeof(message_handshake_response))
    return message[0] == static_cast<std::uint8_t>(message_type::handshake_response);
  return false;
}

bool compute_mac1(std::uint8_t out[cookie_size], const std::uint8_t* message, std::size_t length, const key32& key) {
  return crypto::mac(out, bytes(key.data(), key.size()), {bytes(message, mac1_offset(length))});
}

bool compute_mac2(std::uint8_t out[cookie_size], const std::uint8_t* message, std::size_t length,
                  const std::uint8_t cookie[cookie_size]) {
  return crypto::mac(out, bytes(cookie, cookie_size), {bytes(message, mac2_offset(length))});
}

}  // namespace

packet_source packet_source::v4(const std::uint8_t address[4], std::uint16_t port) noexcept {
  packet_source s;
  std::memcpy(s.ip.data(), address, 4);
  s.port = port;
  return s;
}

packet_source packet_source::v6(const std::uint8_t address[16], std::uint16_t port) noexcept {
  packet_source s;
  std::memcpy(s.ip.data(), address, 16);
  s.ipv6 = true;
  s.port = port;
  return s;
}

bool cookie_for(std::uint8_t out[cookie_size], const key32& secret, const packet_source& source) noexcept {
  // The port as it is on the wire: big-endian.
  std::uint8_t port[2];
  store_be16(port, source.port);
  return crypto::mac(out, bytes(secret.data(), secret.size()),
                     {bytes(source.ip.data(), source.ipv6 ? 16 : 4), bytes(port, 2)});
}

mac_status check_macs(const std::uint8_t* message, std::size_t length, const key32& mac1_key,
                      const key32* cookie_secret, const packet_source& source) noexcept {
  if (!has_macs(message, length)) return mac_status::invalid_mac;
  std::uint8_t computed[cookie_size];
  if (!compute_mac1(computed, message, length, mac1_key) ||
      !constant_time_equal(computed, message + mac1_offset(length), cookie_size))
    return mac_status::invalid_mac;
  if (cookie_secret == nullptr) return mac_status::valid_mac_no_cookie;
  std::uint8_t cookie[cookie_size];
  const bool ok = cookie_for(cookie, *cookie_secret, source) && compute_mac2(computed, message, length, cookie) &&
                  constant_time_equal(computed, message + mac2_offset(length), cookie_size);
  secure_wipe(cookie, sizeof cookie);
  return ok ? mac_status::valid_mac_with_cookie : mac_status::valid_mac_no_cookie;
}

const char* to_string(mac_status s) noexcept {
  switch (s) {
    case mac_status::invalid_mac: return "invalid_mac";
    case mac_status::valid_mac_no_cookie: return "valid_mac_no_cookie";
    case mac_status::valid_mac_with_cookie: return "valid_mac_with_cookie";
  }
  return "?";
}

// --- Responder side ----------------------------------------------------------

void cookie_checker::set_secret(const key32& secret, std::uint64_t now_ns) noexcept {
  secret_ = secret;
  secret_birth_ns_ = now_ns;
  have_secret_ = true;
}

const key32& cookie_checker::secret(std::uint64_t now_ns) {
  if (!have_secret_ || now_ns - secret_birth_ns_ >= secret_max_age_ns) {
    rng_->fill(secret_.data(), secret_.size());
    secret_birth_ns_ = now_ns;
    have_secret_ = true;
  }
  return secret_;
}

bool cookie_checker::make_cookie(std::uint8_t out[cookie_size], const packet_source& source, std::uint64_t now_ns) {
  return cookie_for(out, secret(now_ns), source);
}

mac_status cookie_checker::validate(const static_identity& local, const std::uint8_t* message, std::size_t length,
                                    const packet_source& source, bool check_cookie, std::uint64_t now_ns) {
  if (!local.valid()) return mac_status::invalid_mac;
  return check_macs(message, length, local.mac1_key(), check_cookie ? &secret(now_ns) : nullptr, source);
}

bool cookie_checker::create_reply(message_handshake_cookie& out, const static_identity& local,
                                  const std::uint8_t* message, std::size_t length, const packet_source& source,
                                  std::uint64_t now_ns) {
  if (!local.valid() || !has_macs(message, length)) return false;
  std::memset(&out, 0, sizeof out);
  out.header.type = static_cast<std::uint8_t>(message_type::handshake_cookie);
  // The sender index sits at the same place in initiations and responses.
  std::memcpy(out.receiver_index.b, message + sizeof(message_header), sizeof out.receiver_index);
  rng_->fill(out.nonce, sizeof out.nonce);

  std::uint8_t cookie[cookie_size];
  if (!make_cookie(cookie, source, now_ns)) return false;
  crypto::xaead_encrypt(out.encrypted_cookie, bytes(cookie, cookie_size),
                        bytes(message + mac1_offset(length), cookie_size), out.nonce, local.cookie_key().data());
  secure_wipe(cookie, sizeof cookie);
  return true;
}

// --- Initiator side ----------------------------------------------------------

cookie_maker::cookie_maker(const public_key& remote_static) {
  crypto::init();
  auto mac1 = mac1_key_for(remote_static);
  auto cookie = cookie_key_for(remote_static);
  if (!mac1 || !cookie) return;
  mac1_key_ = *mac1;
  cookie_key_ = *cookie;
  valid_ = true;
}

bool cookie_maker::has_cookie(std::uint64_t now_ns) const noexcept {
  return cookie_valid_ && now_ns - cookie_birth_ns_ < cookie_use_max_age_ns;
}

bool cookie_maker::add_macs(std::uint8_t* message, std::size_t length, std::uint64_t now_ns) {
  if (!valid_ || !has_macs(message, length)) return false;
  std::uint8_t* mac1 = message + mac1_offset(length);
  std::uint8_t* mac2 = message + mac2_offset(length);
  if (!compute_mac1(mac1, message, length, mac1_key_)) return false;
  std::memcpy(last_mac1_sent_, mac1, cookie_size);
  have_sent_mac1_ = true;
  if (has_cookie(now_ns)) return compute_mac2(mac2, message, length, cookie_);
  std::memset(mac2, 0, cookie_size);
  return true;
}

bool cookie_maker::consume_reply(const message_handshake_cookie& reply, std::uint64_t now_ns) {
  if (!valid_ || !have_sent_mac1_) return false;
  std::uint8_t cookie[cookie_size];
  if (!crypto::xaead_decrypt(cookie, bytes(reply.encrypted_cookie, sizeof reply.encrypted_cookie),
                             bytes(last_mac1_sent_, cookie_size), reply.nonce, cookie_key_.data())) {
    secure_wipe(cookie, sizeof cookie);
    return false;
  }
  std::memcpy(cookie_, cookie, cookie_size);
  secure_wipe(cookie, sizeof cookie);
  cookie_birth_ns_ = now_ns;
  cookie_valid_ = true;
  have_sent_mac1_ = false;
  return true;
}

}  // namespace lopower::wg
