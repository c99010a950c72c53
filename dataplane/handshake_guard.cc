#include "dataplane/handshake_guard.h"

#include "control/wireguard/engine/cookie.h"
#include "lopower/byte_order.h"
#include "lopower/wireguard_messages.h"

namespace lopower {

namespace {

// The outer source the cookie is bound to: the frame's IP source and UDP port.
wg::packet_source source_of(const std::uint8_t* frame, const classify_result& r) noexcept {
  const std::uint8_t* ip = frame + r.l3_offset;
  const std::uint16_t port = load_be16(frame + r.l4_offset);
  return (ip[0] >> 4) == 6 ? wg::packet_source::v6(ip + 8, port) : wg::packet_source::v4(ip + 12, port);
}

}  // namespace

handshake_verdict judge_handshake(const std::uint8_t* frame, const classify_result& r, const handshake_guard* guard,
                                  bool under_load) noexcept {
  const std::uint8_t* message = frame + r.payload_offset;
  const std::size_t length = r.payload_length;
  const bool cookie_reply = length != 0 && message[0] == static_cast<std::uint8_t>(wg::message_type::handshake_cookie);
  if (cookie_reply || guard == nullptr || !guard->of(r.to).known) return handshake_verdict::unproven;
  const handshake_guard::listener_keys& keys = guard->of(r.to);
  const wg::mac_status s =
      wg::check_macs(message, length, keys.mac1_key, under_load ? &keys.cookie_secret : nullptr, source_of(frame, r));
  switch (s) {
    case wg::mac_status::invalid_mac: return handshake_verdict::junk;
    case wg::mac_status::valid_mac_no_cookie: return under_load ? handshake_verdict::unproven : handshake_verdict::proven;
    case wg::mac_status::valid_mac_with_cookie: return handshake_verdict::proven;
  }
  return handshake_verdict::unproven;
}

}  // namespace lopower
