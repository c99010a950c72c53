#pragma once
// A sockaddr for an address and port, for the control thread's sockets.

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstring>

#include "lopower/net_addr.h"

namespace lopower {

// Fills `sa` for `a`:`port`; its length.
inline socklen_t socket_address(const ip_address& a, std::uint16_t port, sockaddr_storage& sa) {
  sa = {};
  if (a.family == ip_family::v6) {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&sa);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(port);
    std::memcpy(&s6->sin6_addr, a.bytes.data(), 16);
    return sizeof *s6;
  }
  auto* s4 = reinterpret_cast<sockaddr_in*>(&sa);
  s4->sin_family = AF_INET;
  s4->sin_port = htons(port);
  std::memcpy(&s4->sin_addr, a.bytes.data(), 4);
  return sizeof *s4;
}

}  // namespace lopower
