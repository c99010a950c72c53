#pragma once
// Builds Ethernet frames for tests: IPv4/IPv6 + UDP with a chosen payload,
// ARP, and neighbour discovery. Checksums are left zero: the classifier does
// not read them.

#include <arpa/inet.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "lopower/byte_order.h"

namespace lopower::test {

using bytes = std::vector<std::uint8_t>;

// Appends v big-endian.
inline void put16(bytes& b, std::uint16_t v) {
  b.resize(b.size() + 2);
  store_be16(b.data() + b.size() - 2, v);
}

inline bytes ethernet(std::uint16_t type) {
  bytes f = {0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2};
  put16(f, type);
  return f;
}

inline std::uint32_t v4(const char* text) {
  std::uint32_t a;
  inet_pton(AF_INET, text, &a);
  return a;
}

inline void put_v6(bytes& b, const char* text) {
  std::uint8_t a[16];
  inet_pton(AF_INET6, text, a);
  b.insert(b.end(), a, a + 16);
}

inline bytes udp_header(std::uint16_t dst_port, std::size_t payload_len) {
  bytes u;
  put16(u, 40000);
  put16(u, dst_port);
  put16(u, static_cast<std::uint16_t>(8 + payload_len));
  put16(u, 0);
  return u;
}

inline bytes udp4(const char* dst, std::uint16_t dst_port, const bytes& payload, std::uint16_t frag = 0) {
  bytes f = ethernet(0x0800);
  const std::size_t total = 20 + 8 + payload.size();
  f.insert(f.end(), {0x45, 0});
  put16(f, static_cast<std::uint16_t>(total));
  put16(f, 1);
  put16(f, frag);
  f.insert(f.end(), {64, 17, 0, 0});
  const std::uint32_t src = v4("198.18.0.2"), d = v4(dst);
  f.insert(f.end(), reinterpret_cast<const std::uint8_t*>(&src), reinterpret_cast<const std::uint8_t*>(&src) + 4);
  f.insert(f.end(), reinterpret_cast<const std::uint8_t*>(&d), reinterpret_cast<const std::uint8_t*>(&d) + 4);
  const bytes u = udp_header(dst_port, payload.size());
  f.insert(f.end(), u.begin(), u.end());
  f.insert(f.end(), payload.begin(), payload.end());
  return f;
}

inline bytes ipv6(const char* src, const char* dst, std::uint8_t next, const bytes& payload) {
  bytes f = ethernet(0x86dd);
  f.insert(f.end(), {0x60, 0, 0, 0});
  put16(f, static_cast<std::uint16_t>(payload.size()));
  f.push_back(next);
  f.push_back(64);
  put_v6(f, src);
  put_v6(f, dst);
  f.insert(f.end(), payload.begin(), payload.end());
  return f;
}

inline bytes udp6(const char* dst, std::uint16_t dst_port, const bytes& payload) {
  bytes l4 = udp_header(dst_port, payload.size());
  l4.insert(l4.end(), payload.begin(), payload.end());
  return ipv6("fd00:198:18::2", dst, 17, l4);
}

// A WireGuard message of `type` and `size` bytes (header then zeros).
inline bytes wg_message(std::uint8_t type, std::size_t size) {
  bytes m(size, 0);
  if (size > 0) m[0] = type;
  return m;
}

inline bytes stun_binding_request() {
  bytes m = {0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42};
  m.resize(20, 0x5a);
  return m;
}

inline bytes disco_message() {
  bytes m = {'T', 'S', 0xf0, 0x9f, 0x92, 0xac};
  m.resize(6 + 32 + 24 + 16 + 2, 0x11);
  return m;
}

inline bytes arp(std::uint16_t op, const char* sender_ip, const std::uint8_t sender_mac[6]) {
  bytes f = ethernet(0x0806);
  f.insert(f.end(), {0, 1, 8, 0, 6, 4});
  put16(f, op);
  f.insert(f.end(), sender_mac, sender_mac + 6);
  const std::uint32_t s = v4(sender_ip), t = v4("198.18.0.1");
  f.insert(f.end(), reinterpret_cast<const std::uint8_t*>(&s), reinterpret_cast<const std::uint8_t*>(&s) + 4);
  f.insert(f.end(), 6, 0);
  f.insert(f.end(), reinterpret_cast<const std::uint8_t*>(&t), reinterpret_cast<const std::uint8_t*>(&t) + 4);
  return f;
}

// Neighbour solicitation (135) or advertisement (136) with an optional link-layer option.
inline bytes nd(std::uint8_t type, const char* src, const char* target, const std::uint8_t* lladdr) {
  bytes icmp = {type, 0, 0, 0, 0, 0, 0, 0};
  std::uint8_t t[16];
  inet_pton(AF_INET6, target, t);
  icmp.insert(icmp.end(), t, t + 16);
  if (lladdr != nullptr) {
    icmp.push_back(type == 135 ? 1 : 2);
    icmp.push_back(1);
    icmp.insert(icmp.end(), lladdr, lladdr + 6);
  }
  return ipv6(src, "ff02::1:ff00:1", 58, icmp);
}

}  // namespace lopower::test
