#pragma once
// IP fragments, read from their headers: which datagram a fragment belongs
// to and where in it it lies. Pure functions over bytes, no DPDK, so the
// ledger, the unit tests and the fuzzer use exactly what the workers use.
//
// A fragment is an IPv4 packet with MF set or a non-zero offset (RFC 791
// §3.2), or an IPv6 packet whose fixed header is followed directly by a
// Fragment header (RFC 8200 §4.5). A Fragment header behind other extension
// headers is not looked for: the splice carries no extension headers, so
// such packets stay `splice_unsupported`, as does DPDK's reassembly, which
// also expects the Fragment header first.

#include <cstdint>

#include "lopower/net_addr.h"
#include "lopower/raw_key.h"

namespace lopower::fragments {

inline constexpr std::uint8_t ipproto_fragment = 44;  // IPv6 Fragment header
inline constexpr std::uint16_t ipv6_header_size = 40;
inline constexpr std::uint16_t fragment_header_size = 8;

// Which datagram a fragment belongs to: source, destination and
// identification, the key DPDK's table uses (RFC 791 adds the protocol;
// DPDK does not, and the ledger must name the same datagrams as the table).
// Every byte is defined (IPv4 addresses leave bytes 4..15 zero): it is
// hashed and compared as raw bytes.
struct datagram_key {
  std::uint8_t src[16];
  std::uint8_t dst[16];
  std::uint32_t id;  // IPv4's 16 bits, or IPv6's 32, in host order
  ip_family family;
  std::uint8_t pad[3];
  // Byte for byte (lopower/raw_key.h): every fragment's ledger lookup.
  bool operator==(const datagram_key& o) const noexcept { return same_key_bytes(*this, o); }
};
static_assert(sizeof(datagram_key) == 40);

// One fragment: its datagram, and the bytes of the datagram's payload it
// carries (after the headers every fragment repeats).
struct fragment_view {
  datagram_key key{};
  std::uint16_t offset = 0;         // bytes of payload before this fragment's
  std::uint16_t length = 0;         // payload bytes this fragment carries
  std::uint16_t header_length = 0;  // before the payload: the IPv4 header, or IPv6's 40 + 8
  bool more = false;                // MF / M: more fragments follow
};

enum class fragment_kind : std::uint8_t {
  whole,      // not a fragment
  fragment,   // a piece of a datagram: to be reassembled
  atomic,     // IPv6 Fragment header with offset 0 and M clear: the whole datagram (RFC 6946)
  malformed,  // a fragment no sender makes: empty, not a multiple of 8 bytes
              // before the last (RFC 791, RFC 8200 §4.5), or reaching past 65535 bytes
};

// Cheap test for the fast path: is this (whole, parsed) IP packet a fragment?
inline bool is_fragment(const std::uint8_t* p, bool ipv6) noexcept {
  return ipv6 ? p[6] == ipproto_fragment : ((p[6] & 0x3f) | p[7]) != 0;  // MF or offset
}

// What `p`, an IP packet of exactly `len` bytes (its own length, a whole
// header: parse_inner's checks), is; `view` is filled for fragment and atomic.
fragment_kind inspect(const std::uint8_t* p, std::uint16_t len, fragment_view& view) noexcept;

// An atomic fragment without its Fragment header: the fixed header moves
// 8 bytes up (to `p + 8`, where the packet now starts), takes the Fragment
// header's next header, and its payload length drops by 8.
void strip_atomic_fragment_header(std::uint8_t* p) noexcept;

// Whether a router may cut this packet up: IPv4 without DF (RFC 791);
// IPv6 only when it arrived in pieces and lopower put it together, since
// IPv6 is never fragmented in transit (RFC 8200 §5).
inline bool may_fragment(const std::uint8_t* p, bool ipv6, bool reassembled) noexcept {
  return ipv6 ? reassembled : (p[6] & 0x40) == 0;
}

}  // namespace lopower::fragments
