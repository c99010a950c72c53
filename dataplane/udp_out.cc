// The control plane's own UDP out of the dataplane ports (handshake replies,
// keepalives, disco): the route to a destination, the next hop's MAC from
// the neighbour table (asking for it with ARP or neighbour solicitation when
// it is not known yet), and the frame handed to a worker to send.

#include <rte_ether.h>
#include <rte_ip.h>

#include <cstring>

#include "control/clock.h"
#include "dataplane/dataplane.h"
#include "dataplane/outer_headers.h"
#include "lopower/byte_order.h"

namespace lopower {

namespace {

bool serves(const port_runtime& p, bool tailnet_side) {
  return tailnet_side ? serves_tailnet(p.config.role) : serves_devices(p.config.role);
}

// The port's own address of `family`, preferring one whose prefix holds `dst`.
std::optional<ip_prefix> local_address(const port_runtime& p, const ip_address& dst, bool& on_link) {
  std::optional<ip_prefix> any;
  for (const ip_prefix& a : p.config.addresses) {
    if (a.address.family != dst.family) continue;
    if (a.contains(dst)) {
      on_link = true;
      return a;
    }
    if (!any) any = a;
  }
  on_link = false;
  return any;
}

// ARP request (v4) or neighbour solicitation (v6) for `target`, from `self`.
rte_mbuf* solicitation(rte_mempool* pool, const port_runtime& port, const ip_address& self, const ip_address& target) {
  rte_mbuf* m = rte_pktmbuf_alloc(pool);
  if (m == nullptr) return nullptr;
  const bool v6 = target.family == ip_family::v6;
  const std::uint16_t len = v6 ? 14 + 40 + 32 : 14 + 28;
  auto* f = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(m, len));
  if (f == nullptr) {
    rte_pktmbuf_free(m);
    return nullptr;
  }
  std::memset(f, 0, len);
  std::memcpy(f + 6, port.mac.addr_bytes, 6);
  if (!v6) {
    std::memset(f, 0xff, 6);
    store_be16(f + 12, RTE_ETHER_TYPE_ARP);
    std::uint8_t* a = f + 14;
    store_be16(a, 1);          // Ethernet
    store_be16(a + 2, 0x0800);  // IPv4
    a[4] = 6;
    a[5] = 4;
    store_be16(a + 6, 1);  // request
    std::memcpy(a + 8, port.mac.addr_bytes, 6);
    std::memcpy(a + 14, self.bytes.data(), 4);
    std::memcpy(a + 24, target.bytes.data(), 4);
  } else {
    // To the target's solicited-node multicast group (RFC 4291 2.7.1).
    const std::uint8_t group[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff,
                                    target.bytes[13], target.bytes[14], target.bytes[15]};
    const std::uint8_t mac[6] = {0x33, 0x33, group[12], group[13], group[14], group[15]};
    std::memcpy(f, mac, 6);
    store_be16(f + 12, RTE_ETHER_TYPE_IPV6);
    std::uint8_t* ip = f + 14;
    ip[0] = 0x60;
    store_be16(ip + 4, 32);
    ip[6] = 58;    // ICMPv6
    ip[7] = 255;   // hop limit ND requires
    std::memcpy(ip + 8, self.bytes.data(), 16);
    std::memcpy(ip + 24, group, 16);
    std::uint8_t* icmp = ip + 40;
    icmp[0] = 135;  // neighbour solicitation
    std::memcpy(icmp + 8, target.bytes.data(), 16);
    icmp[24] = 1;  // source link-layer address option, 8 bytes
    icmp[25] = 1;
    std::memcpy(icmp + 26, port.mac.addr_bytes, 6);
    const std::uint16_t sum = rte_ipv6_udptcp_cksum(reinterpret_cast<const rte_ipv6_hdr*>(ip), icmp);
    std::memcpy(icmp + 2, &sum, 2);
  }
  m->port = port.port_id;
  return m;
}

}  // namespace

bool dataplane::send_udp(const wg_endpoint& to, std::span<const std::uint8_t> payload) {
  rte_mbuf* m = rte_pktmbuf_alloc(pool_);
  if (m == nullptr) return false;
  const unsigned outer = outer_header_size(to.ipv6);
  auto* frame = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(m, static_cast<std::uint16_t>(outer + payload.size())));
  if (frame == nullptr) {
    rte_pktmbuf_free(m);
    return false;
  }
  std::memcpy(frame + outer, payload.data(), payload.size());
  write_outer_headers(frame, to, static_cast<std::uint16_t>(payload.size()));
  m->port = to.port_id;
  return transmit(m);
}

std::optional<wg_endpoint> dataplane::route_udp(const ip_address& dst, std::uint16_t dst_port, std::uint16_t local_port,
                                                bool tailnet_side) {
  const bool v6 = dst.family == ip_family::v6;
  for (const port_runtime& p : ports_) {
    if (!serves(p, tailnet_side)) continue;
    bool on_link = false;
    const auto self = local_address(p, dst, on_link);
    if (!self) continue;
    const std::optional<ip_address>& gateway = v6 ? p.config.gateway6 : p.config.gateway4;
    if (!on_link && !gateway) continue;
    const ip_address next_hop = on_link ? dst : *gateway;
    wg_endpoint ep;
    ep.port_id = p.port_id;
    ep.ipv6 = v6;
    std::memcpy(ep.local_mac, p.mac.addr_bytes, 6);
    std::memcpy(ep.peer_ip, dst.bytes.data(), v6 ? 16 : 4);
    std::memcpy(ep.local_ip, self->address.bytes.data(), v6 ? 16 : 4);
    ep.peer_port_be = rte_cpu_to_be_16(dst_port);
    ep.local_port_be = rte_cpu_to_be_16(local_port);
    rte_ether_addr mac;
    if (neighbours_.lookup(p.port_id, next_hop, &mac)) {
      std::memcpy(ep.peer_mac, mac.addr_bytes, 6);
      return ep;
    }
    if (rte_mbuf* m = solicitation(pool_, p, self->address, next_hop)) {
      solicited_[{p.port_id, next_hop.bytes}] = monotonic_ms();  // its answer may add the neighbour (drain_neighbour_notes' clock)
      transmit(m);
    }
    return std::nullopt;
  }
  return std::nullopt;
}

void dataplane::solicit_uplink_gateways(std::uint64_t now_ms) {
  for (const port_runtime& p : ports_) {
    if (p.config.role != port_role::uplink) continue;
    for (const std::optional<ip_address>& gateway : {p.config.gateway4, p.config.gateway6}) {
      if (!gateway) continue;
      bool on_link = false;
      const auto self = local_address(p, *gateway, on_link);
      if (!self) continue;
      rte_ether_addr mac;
      std::uint64_t& asked = gateway_asked_ms_[{p.port_id, gateway->bytes}];
      if (neighbours_.lookup(p.port_id, *gateway, &mac) && now_ms - asked < neighbour_timeout_ms_ / 4) continue;
      if (rte_mbuf* m = solicitation(pool_, p, self->address, *gateway)) {
        solicited_[{p.port_id, gateway->bytes}] = now_ms;  // its answer may add the neighbour
        asked = now_ms;
        transmit(m);
      }
    }
  }
}

}  // namespace lopower
