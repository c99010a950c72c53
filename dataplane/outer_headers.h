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

// The same headers for a run of frames to one endpoint: built once (the
// Ethernet, IPv4 and UDP fields and the IPv4 header's sum without its
// length), then per frame a copy, the two lengths and the checksum finished
// with the length added (RFC 1624's incremental update, from a sum of zero
// for the length). write_outer_headers writes IPv4 through it (one layout
// of those headers); IPv6 frames are written by write_outer_headers itself:
// their UDP checksum covers the payload, so nothing per frame would be saved.
class outer_header_writer {
 public:
  void write(std::uint8_t* frame, const wg_endpoint& ep, std::uint16_t payload_length) noexcept;

 private:
  static constexpr unsigned v4_size = 14 + 20 + 8;
  void build(const wg_endpoint& ep) noexcept;

  const wg_endpoint* built_for_ = nullptr;
  std::uint32_t ip_sum_ = 0;  // the IPv4 header's 16-bit words summed, total length and checksum as zero
  std::uint8_t v4_[v4_size]{};
};

// The endpoint a received WireGuard frame came from (its source, seen from
// the port it arrived on).
wg_endpoint endpoint_of_frame(const std::uint8_t* frame, std::uint16_t port_id, std::uint16_t l4_offset) noexcept;

// known.same_path(endpoint_of_frame(frame, port_id, l4_offset)), read from
// the frame in place: a peer's every run of packets asks (roaming), and
// among many devices every run is one packet; building the endpoint to
// compare was a hundred instructions a packet there.
bool frame_on_path(const wg_endpoint& known, const std::uint8_t* frame, std::uint16_t port_id,
                   std::uint16_t l4_offset) noexcept;

}  // namespace lopower
