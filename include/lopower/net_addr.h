#pragma once
// IP addresses and prefixes as the config and the dataplane see them: a family
// tag plus 16 bytes (IPv4 in the first four), so one type serves both families.

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "lopower/byte_order.h"

namespace lopower {

enum class ip_family : std::uint8_t { v4 = 4, v6 = 6 };

struct ip_address {
  ip_family family = ip_family::v4;
  std::array<std::uint8_t, 16> bytes{};

  // Parses "198.18.0.1" or "fd00::1"; nullopt on anything else.
  static std::optional<ip_address> parse(std::string_view text);
  static ip_address v4(std::uint32_t host_order);
  // 4 (IPv4) or 16 (IPv6) bytes in network order, as packets carry them.
  // Inline: the splice builds one for every packet it rewrites.
  static ip_address from_bytes(bool ipv6, const std::uint8_t* bytes) noexcept {
    ip_address out;
    out.family = ipv6 ? ip_family::v6 : ip_family::v4;
    std::memcpy(out.bytes.data(), bytes, ipv6 ? 16 : 4);
    return out;
  }
  std::string to_string() const;
  std::uint32_t v4_host_order() const;
  bool operator==(const ip_address&) const = default;
};

struct ip_prefix {
  ip_address address;  // the address as written (host bits kept: "198.18.0.1/24" is an interface address)
  std::uint8_t length = 0;

  // Parses "198.18.0.1/24" or "fd00::1/64"; nullopt on anything else,
  // including a length beyond the family's width.
  static std::optional<ip_prefix> parse(std::string_view text);
  std::string to_string() const;
  bool contains(const ip_address& other) const;
  // The same of an address given as two big-endian 64-bit words (IPv4 in
  // the high half of the first, the rest zero): what a packet's bytes load
  // as, with no ip_address built from them first (the worker's per-packet
  // AllowedIPs check; a built one is read back as words right after its
  // narrow stores, which the store buffer cannot forward).
  bool contains(ip_family family, const std::uint64_t words[2]) const noexcept;
  bool operator==(const ip_prefix&) const = default;
};

// Two big-endian 64-bit words masked to the prefix, not a loop over bytes,
// and inline: a tailnet peer's AllowedIPs are checked this way for every
// packet it sends (allowed_prefixes::contains), where the call per prefix
// cost as much as the compare.
inline bool ip_prefix::contains(ip_family family, const std::uint64_t words[2]) const noexcept {
  if (family != address.family) return false;
  unsigned bits = length < 128 ? length : 128u;
  for (std::size_t word = 0; bits > 0; ++word) {
    const unsigned take = bits < 64 ? bits : 64u;
    const std::uint64_t mask = ~std::uint64_t{0} << (64 - take);
    if (((load_be64(address.bytes.data() + 8 * word) ^ words[word]) & mask) != 0) return false;
    bits -= take;
  }
  return true;
}

// A range of ports, both ends included (a filter rule's destination ports).
struct port_range {
  std::uint16_t first = 0;
  std::uint16_t last = 0;
  bool contains(std::uint16_t port) const noexcept { return port >= first && port <= last; }
  friend bool operator==(const port_range&, const port_range&) = default;
};

}  // namespace lopower
