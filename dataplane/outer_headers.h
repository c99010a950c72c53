#pragma once
// The outer headers that carry WireGuard between lopower and a peer:
// Ethernet + IPv4/IPv6 + UDP. Written by the send stage
// (stage_encrypt_send.cc) for every frame the workers seal, and by the
// control thread's own UDP (udp_out.cc); read back from a received frame by
// the decrypt stage for roaming (stage_decrypt.cc).

#include <cstdint>

#include "dataplane/wg_session.h"

namespace lopower {

// Their size for an endpoint of either family.
constexpr unsigned outer_header_size(bool ipv6) { return 14 + (ipv6 ? 40 : 20) + 8; }
// Writes them at `frame` for a UDP payload of `payload_length` bytes that
// already follows them, checksums included.
void write_outer_headers(std::uint8_t* frame, const wg_endpoint& ep, std::uint16_t payload_length) noexcept;

// The endpoint a received WireGuard frame came from (its source, seen from
// the port it arrived on).
wg_endpoint endpoint_of_frame(const std::uint8_t* frame, std::uint16_t port_id, std::uint16_t l4_offset) noexcept;

}  // namespace lopower
