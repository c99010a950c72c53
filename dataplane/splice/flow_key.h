#pragma once
// The 5-tuple a spliced flow is looked up by.
//
// It is a key for rte_hash, which hashes and compares keys as raw bytes
// (rte_hash_parameters::key_len = sizeof(flow_key)): the type is a POD of
// fixed size with no implicit padding, and every byte is defined: build keys
// value-initialised (flow_key k{}) or with make_flow_key(), so an IPv4
// address leaves bytes 4..15 zero and the padding stays zero.
//
// Ports are in host byte order. ICMP echo has one identifier and no ports
// (RFC 792, RFC 4443 §4): it is stored in both port fields, so that a
// request's key reversed is its reply's key (the identifier is echoed back).

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "lopower/net_addr.h"
#include "lopower/raw_key.h"

namespace lopower::splice {

inline constexpr std::uint8_t ipproto_icmp = 1;
inline constexpr std::uint8_t ipproto_tcp = 6;
inline constexpr std::uint8_t ipproto_udp = 17;
inline constexpr std::uint8_t ipproto_icmpv6 = 58;

struct flow_key {
  std::uint8_t src[16];       // IPv4 in the first four bytes, the rest zero
  std::uint8_t dst[16];
  std::uint16_t src_port;     // or the ICMP echo identifier
  std::uint16_t dst_port;     // or the ICMP echo identifier again
  ip_family family;
  std::uint8_t protocol;      // IPPROTO_TCP, _UDP, _ICMP or _ICMPV6
  std::uint8_t pad[2];        // always zero: rte_hash reads every byte

  // The same flow seen from the other end: addresses and ports swapped.
  constexpr flow_key reverse() const noexcept {
    flow_key r = *this;
    for (std::size_t i = 0; i < 16; ++i) {
      r.src[i] = dst[i];
      r.dst[i] = src[i];
    }
    r.src_port = dst_port;
    r.dst_port = src_port;
    return r;
  }
  // Byte for byte, as rte_hash compares keys (lopower/raw_key.h).
  bool operator==(const flow_key& o) const noexcept { return same_key_bytes(*this, o); }
};
static_assert(std::is_trivially_copyable_v<flow_key> && std::is_standard_layout_v<flow_key>);
static_assert(sizeof(flow_key) == 40, "no implicit padding: rte_hash hashes and compares every byte");
static_assert(std::has_unique_object_representations_v<flow_key>);

// `k` made a fully defined key; `src`/`dst` are 4 or 16 bytes after the
// family. Written where the key is kept (the worker's per-burst array): a
// key built aside and copied over is read back with 16-byte loads right
// after its 2- and 4-byte stores, which the store buffer cannot forward
// (the stall was 2/3 of flow_key_of's time in a 64-byte splice profile).
// So each word the hash and the compare load comes from one store: an IPv4
// address with its zeros built in a register (not a zeroed key with four
// bytes stored into it, a copy of a variable length), the ports, family,
// protocol and padding as one 8-byte store.
inline void set_flow_key(flow_key& k, ip_family family, std::uint8_t protocol, const std::uint8_t* src,
                         std::uint16_t src_port, const std::uint8_t* dst, std::uint16_t dst_port) noexcept {
  if (family == ip_family::v6) {
    std::memcpy(k.src, src, 16);
    std::memcpy(k.dst, dst, 16);
  } else {
    std::uint8_t src16[16] = {}, dst16[16] = {};
    std::memcpy(src16, src, 4);
    std::memcpy(dst16, dst, 4);
    std::memcpy(k.src, src16, 16);
    std::memcpy(k.dst, dst16, 16);
  }
  static_assert(offsetof(flow_key, dst_port) == 34 && offsetof(flow_key, family) == 36 &&
                offsetof(flow_key, protocol) == 37 && offsetof(flow_key, pad) == 38 && sizeof(flow_key) == 40);
  if constexpr (std::endian::native == std::endian::little) {
    const std::uint64_t tail = src_port | std::uint64_t{dst_port} << 16 | std::uint64_t{static_cast<std::uint8_t>(family)} << 32 |
                               std::uint64_t{protocol} << 40;
    std::memcpy(&k.src_port, &tail, sizeof tail);
  } else {
    k.src_port = src_port;
    k.dst_port = dst_port;
    k.family = family;
    k.protocol = protocol;
    k.pad[0] = k.pad[1] = 0;
  }
}

inline flow_key make_flow_key(ip_family family, std::uint8_t protocol, const std::uint8_t* src, std::uint16_t src_port,
                              const std::uint8_t* dst, std::uint16_t dst_port) noexcept {
  flow_key k;
  set_flow_key(k, family, protocol, src, src_port, dst, dst_port);
  return k;
}

}  // namespace lopower::splice
