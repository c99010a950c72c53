#pragma once
// Decrypted tunnel packets (the "inner" IP packets devices send). Pure
// functions over bytes, shared by the workers, the control plane and tests.
// The outer headers that carry them are dataplane/outer_headers.h (included
// here for the callers that want both).

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "dataplane/outer_headers.h"
#include "dataplane/wg_session.h"
#include "lopower/net_addr.h"

namespace lopower {

struct inner_info {
  bool ipv6 = false;
  std::uint16_t length = 0;        // the IP packet's own length (WireGuard padding excluded)
  std::uint16_t l4_offset = 0;
  std::uint8_t protocol = 0;       // IPv4 protocol / IPv6 next header
  const std::uint8_t* src = nullptr;
  const std::uint8_t* dst = nullptr;
  bool reassembled = false;        // came in fragments, put together by lopower (IPv6: may be cut up again)
};

// nullopt when the plaintext is not a whole IPv4/IPv6 packet.
std::optional<inner_info> parse_inner(const std::uint8_t* p, std::uint32_t plaintext_length) noexcept;
// The same written into `info` (false: not a packet; `info` then holds
// nothing of use). The worker's burst keeps its own: an inner_info returned
// by value is copied over with 16-byte loads right after parse_inner's
// narrow stores, which the store buffer cannot forward (a stall the splice
// profile showed).
bool parse_inner(const std::uint8_t* p, std::uint32_t plaintext_length, inner_info& info) noexcept;

// Turns an ICMP/ICMPv6 echo request in place into the reply lopower sends
// back (addresses swapped, TTL reset, checksum recomputed). False if `p` is
// not an echo request.
bool make_echo_reply(std::uint8_t* p, const inner_info& info) noexcept;

// The ICMP echo identifier of lopower's own pings (`lopower-ctl ping --icmp`):
// replies carrying it go to the control plane, not to a device.
inline constexpr std::uint16_t lopower_echo_ident = 0x4c50;  // "LP"
bool is_lopower_echo_reply(const std::uint8_t* p, const inner_info& info) noexcept;
// An ICMP/ICMPv6 echo request from `src` to `dst` (same family) with
// lopower_echo_ident, `seq` and `payload_len` bytes of pattern; written at
// `out` (room for 40 + 8 + payload_len bytes), its length returned.
std::uint16_t write_echo_request(std::uint8_t* out, const ip_address& src, const ip_address& dst, std::uint16_t seq,
                                 std::uint16_t payload_len) noexcept;

// A UDP datagram or TCP segment to port 53 (a device asking lopower's DNS server).
bool is_dns_query(const std::uint8_t* p, const inner_info& info) noexcept;
// A whole IPv4/IPv6 UDP packet at `out` (room for 48 + payload bytes), with
// checksums; its length, or 0 when the families differ or it would exceed
// 65535 bytes.
std::uint16_t write_udp_packet(std::uint8_t* out, const ip_address& src, std::uint16_t src_port, const ip_address& dst,
                               std::uint16_t dst_port, std::span<const std::uint8_t> payload) noexcept;

// TSMP (IP protocol 99, tailscale's net/packet/tsmp.go): a ping is 'p' and
// 8 opaque bytes after the IP header; the pong is 'o', the same 8 bytes and
// a u16 peerAPI port (0: lopower has none), 11 bytes.
inline constexpr std::uint8_t ipproto_tsmp = 99;
inline constexpr std::uint16_t tsmp_pong_l4_size = 11;
bool is_tsmp_ping(const std::uint8_t* p, const inner_info& info) noexcept;
// Turns a TSMP ping in place into its pong (addresses swapped, lengths and
// IPv4 checksum redone). `p` must have room for info.l4_offset + 11 bytes;
// returns the pong's length.
std::uint16_t make_tsmp_pong(std::uint8_t* p, const inner_info& info) noexcept;

}  // namespace lopower
