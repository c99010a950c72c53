#include "dataplane/wg_session.h"

#include <sodium.h>

#include <cstring>

#include "lopower/byte_order.h"

namespace lopower {

bool wg_endpoint::same_path(const wg_endpoint& o) const noexcept {
  if (relay_region != 0 || o.relay_region != 0) return relay_region == o.relay_region;
  return port_id == o.port_id && ipv6 == o.ipv6 && peer_port_be == o.peer_port_be &&
         std::memcmp(peer_ip, o.peer_ip, 16) == 0 && std::memcmp(peer_mac, o.peer_mac, 6) == 0 &&
         std::memcmp(local_ip, o.local_ip, 16) == 0;
}

std::string endpoint_string(const wg_endpoint& ep) {
  if (ep.relay_region != 0) return "derp(" + std::to_string(ep.relay_region) + ")";
  const ip_address a = ip_address::from_bytes(ep.ipv6, ep.peer_ip);
  const std::string host = ep.ipv6 ? "[" + a.to_string() + "]" : a.to_string();
  return host + ":" + std::to_string(load_be16(reinterpret_cast<const std::uint8_t*>(&ep.peer_port_be)));
}

wg_keypair::~wg_keypair() {
  sodium_memzero(send_key, sizeof send_key);
  sodium_memzero(receive_key, sizeof receive_key);
}

wg_peer::~wg_peer() { delete allowed.load(std::memory_order_relaxed); }

bool wg_peer::source_allowed_v6(const std::uint8_t* src) const noexcept {
  return has_v6 && std::memcmp(src, v6, 16) == 0;
}

}  // namespace lopower
