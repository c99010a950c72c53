#pragma once
// Fragments for the tests, cut from whole packets with the tests' own code
// (RFC 791 §3.2 and RFC 8200 §4.5 layouts, the RFC 1071 checksum written out
// in tests/unit/splice/packets.h), so the library is never checked against
// itself.

#include <cstdint>
#include <stdexcept>
#include <vector>

#include "tests/unit/splice/packets.h"

namespace lopower::fragments::test {

using splice::test::be16;
using splice::test::bytes;
using splice::test::put16;

// Sets a 16-bit field of an IPv4 header, and the header checksum anew.
inline void set_ipv4_field(bytes& p, std::size_t at, std::uint16_t value) {
  if (p.size() < 20 || at + 2 > p.size()) throw std::length_error("not an IPv4 header");
  std::uint8_t* h = p.data();
  put16(h + at, value);
  put16(h + 10, 0);
  put16(h + 10, splice::test::reference_checksum(h, (h[0] & 0x0fu) * 4u));
}

// A UDP datagram with `payload` bytes from the device to the tailnet peer;
// IPv4 with DF clear (as lwIP sends), so a router may cut it up.
inline bytes udp_packet(bool v6, std::size_t payload, std::uint16_t sport = 5555) {
  bytes p = splice::test::ip_packet(v6, 17, splice::test::device_addr(v6), splice::test::peer_addr(v6),
                                    splice::test::udp_datagram(sport, 9000, payload));
  if (!v6) set_ipv4_field(p, 6, 0);  // DF clear
  return p;
}

inline std::size_t header_size(const bytes& whole) { return splice::test::l4_at(whole); }

// The piece of `whole` (a packet without a Fragment header) with payload
// bytes [offset, offset + length), identification `id`; `more`: MF / M.
inline bytes fragment(const bytes& whole, std::size_t offset, std::size_t length, bool more, std::uint32_t id = 0x1c46) {
  const std::size_t h = header_size(whole);
  bytes f(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(h));
  if (splice::test::is_v6(whole)) {
    const std::uint8_t next = whole[6];
    f[6] = 44;
    put16(&f[4], static_cast<std::uint16_t>(8 + length));
    bytes fh(8);
    fh[0] = next;
    put16(&fh[2], static_cast<std::uint16_t>(offset | (more ? 1 : 0)));  // offset is in 8-byte units, 3 bits up
    put16(&fh[4], static_cast<std::uint16_t>(id >> 16));
    put16(&fh[6], static_cast<std::uint16_t>(id));
    f.insert(f.end(), fh.begin(), fh.end());
  } else {
    put16(&f[2], static_cast<std::uint16_t>(h + length));
    put16(&f[4], static_cast<std::uint16_t>(id));
    put16(&f[6], static_cast<std::uint16_t>((whole[6] & 0x40) << 8 | (more ? 0x2000 : 0) | offset / 8));
    put16(&f[10], splice::test::full_ip_checksum(f));
  }
  f.insert(f.end(), whole.begin() + static_cast<std::ptrdiff_t>(h + offset),
           whole.begin() + static_cast<std::ptrdiff_t>(h + offset + length));
  return f;
}

// `whole` as it comes out of reassembly from pieces numbered `id`: IPv4
// carries the number in its header; IPv6 in the Fragment header, which goes.
inline bytes with_id(bytes whole, std::uint32_t id) {
  if (!splice::test::is_v6(whole)) set_ipv4_field(whole, 4, static_cast<std::uint16_t>(id));
  return whole;
}

// `whole` cut at every `step` bytes of payload (a multiple of 8), in order.
inline std::vector<bytes> cut(const bytes& whole, std::size_t step, std::uint32_t id = 0x1c46) {
  const std::size_t payload = whole.size() - header_size(whole);
  std::vector<bytes> pieces;
  for (std::size_t at = 0; at < payload; at += step) {
    const std::size_t n = std::min(step, payload - at);
    pieces.push_back(fragment(whole, at, n, at + n < payload, id));
  }
  return pieces;
}

// Reads back a fragment: its payload offset, payload length and MF / M.
struct fragment_fields {
  std::size_t offset, length;
  bool more;
  std::uint32_t id;
};
inline fragment_fields fields_of(const bytes& f) {
  if (splice::test::is_v6(f)) {
    const std::uint16_t om = be16(&f[42]);
    return {static_cast<std::size_t>(om & 0xfff8), f.size() - 48, (om & 1) != 0,
            static_cast<std::uint32_t>(be16(&f[44])) << 16 | be16(&f[46])};
  }
  const std::uint16_t fo = be16(&f[6]);
  return {(fo & 0x1fffu) * 8u, f.size() - header_size(f), (fo & 0x2000) != 0, be16(&f[4])};
}

}  // namespace lopower::fragments::test
