#pragma once
// The outer headers that carry WireGuard between lopower and a peer:
// Ethernet + IPv4/IPv6 + UDP. Written by the send stage
// (stage_encrypt_send.cc) for every frame the workers seal, and by the
// control thread's own UDP (udp_out.cc); read back from a received frame by
// the decrypt stage for roaming (stage_decrypt.cc).

#include <bit>
#include <cstdint>
#include <cstring>

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
// compare was a hundred instructions a packet there. Inline, and an IPv4
// endpoint's addresses compared as words: the call and the byte compares
// were 40 instructions a packet among 1 000 devices.
inline bool frame_on_path(const wg_endpoint& known, const std::uint8_t* frame, std::uint16_t port_id,
                          std::uint16_t l4_offset) noexcept {
  const std::uint8_t* ip = frame + 14;
  const bool ipv6 = (ip[0] >> 4) == 6;
  if (known.relay_region != 0 || known.port_id != port_id || known.ipv6 != ipv6) return false;
  if (std::memcmp(&known.peer_port_be, frame + l4_offset, 2) != 0 || std::memcmp(known.peer_mac, frame + 6, 6) != 0)
    return false;
  if (ipv6) return std::memcmp(known.peer_ip, ip + 8, 16) == 0 && std::memcmp(known.local_ip, ip + 24, 16) == 0;
  // An IPv4 endpoint's addresses are four bytes and twelve zeros: each
  // known address's first word holds the four bytes and four zeros.
  std::uint32_t peer_4, local_4;
  std::memcpy(&peer_4, ip + 12, 4);
  std::memcpy(&local_4, ip + 16, 4);
  std::uint64_t known_peer[2], known_local[2];
  std::memcpy(known_peer, known.peer_ip, 16);
  std::memcpy(known_local, known.local_ip, 16);
  if constexpr (std::endian::native == std::endian::little)
    return ((known_peer[0] ^ peer_4) | known_peer[1] | (known_local[0] ^ local_4) | known_local[1]) == 0;
  else
    return ((known_peer[0] ^ (std::uint64_t{peer_4} << 32)) | known_peer[1] |
            (known_local[0] ^ (std::uint64_t{local_4} << 32)) | known_local[1]) == 0;
}

}  // namespace lopower
