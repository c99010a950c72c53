#pragma once
// Cutting a packet up for a smaller MTU, with DPDK's rte_ip_frag, into
// fragments the rest of the path can take: each in one segment of its own,
// with the pool's headroom in front (WireGuard's outer headers are prepended
// in place) and room behind (its padding and tag are appended).

#include <rte_mbuf.h>

#include <cstdint>

namespace lopower::fragments {

// At most this many pieces come out of one packet (a packet fits one mbuf,
// 2 KB, and MTUs are at least 1280: two are the most seen).
inline constexpr unsigned max_pieces = 8;

// Splits `m`, a whole IPv4 packet without DF (the caller checks: may_fragment)
// or a whole IPv6 packet without extension headers, into fragments of at
// most `mtu` bytes that carry identification `id` (IPv4: its low 16 bits):
// IPv4 fragments repeat the header (options copied where RFC 791 says so),
// IPv6 fragments get a Fragment header after the fixed header. Checksums are
// set. On success `m` is freed and the number of pieces (2..max) returned;
// on failure (no buffers, or more than `max` pieces) nothing is made and
// `m` is left to the caller: 0.
unsigned fragment_packet(rte_mbuf* m, bool ipv6, std::uint16_t mtu, std::uint32_t id, rte_mbuf** pieces,
                         unsigned max) noexcept;

}  // namespace lopower::fragments
