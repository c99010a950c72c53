#include "dataplane/classifier.h"

#include <cstring>

#include "lopower/byte_order.h"
#include "lopower/wireguard_messages.h"

namespace lopower {
namespace {

classify_result dropped(drop_reason why) {
  classify_result r;
  r.cls = packet_class::drop;
  r.reason = why;
  return r;
}

classify_result to_kernel() { return classify_result{}; }

// WireGuard messages carry a type byte and three zero bytes, and the
// handshake messages have fixed sizes (wg::parse_message checks all of it):
// anything else is not WireGuard.
classify_result classify_wireguard(const std::uint8_t* msg, std::uint16_t len, classify_result r) {
  switch (wg::parse_message(msg, len).type) {
    case wg::message_type::handshake_initiation:
    case wg::message_type::handshake_response:
    case wg::message_type::handshake_cookie:
      r.cls = packet_class::wg_handshake;
      return r;
    case wg::message_type::data:
      r.cls = packet_class::wg_transport;
      return r;
    case wg::message_type::invalid:
      break;
  }
  return dropped(drop_reason::wg_malformed);
}

// The tailnet port multiplexes STUN, disco and WireGuard on one socket, in
// that order of checks, as Tailscale's magicsock does.
classify_result classify_tailnet_payload(const std::uint8_t* msg, std::uint16_t len, classify_result r) {
  if (is_stun(msg, len)) {
    r.cls = packet_class::stun;
    return r;
  }
  if (len >= sizeof wire::disco_magic && std::memcmp(msg, wire::disco_magic, sizeof wire::disco_magic) == 0) {
    r.cls = packet_class::disco;
    return r;
  }
  if (len >= sizeof(wg::message_header) && msg[0] >= static_cast<std::uint8_t>(wg::message_type::handshake_initiation) &&
      msg[0] <= static_cast<std::uint8_t>(wg::message_type::data))
    return classify_wireguard(msg, len, r);
  return dropped(drop_reason::tailnet_unknown_payload);
}

// UDP to one of our listeners is ours; any other UDP goes to the kernel.
classify_result classify_udp(const std::uint8_t* frame, std::uint32_t l4, std::uint32_t l4_len,
                             const port_identity& port, classify_result r) {
  if (l4_len < wire::udp_header) return dropped(drop_reason::malformed_udp);
  const std::uint8_t* udp = frame + l4;
  std::uint16_t dst_be;  // kept in network order, like port_identity's ports
  std::memcpy(&dst_be, udp + 2, 2);
  const bool to_devices = port.device_port_be != 0 && dst_be == port.device_port_be;
  const bool to_tailnet = port.tailnet_port_be != 0 && dst_be == port.tailnet_port_be;
  if (!to_devices && !to_tailnet) return to_kernel();
  const std::uint16_t udp_len = load_be16(udp + 4);
  if (udp_len < wire::udp_header || udp_len > l4_len) return dropped(drop_reason::malformed_udp);
  r.l4_offset = static_cast<std::uint16_t>(l4);
  r.payload_offset = static_cast<std::uint16_t>(l4 + wire::udp_header);
  r.payload_length = static_cast<std::uint16_t>(udp_len - wire::udp_header);
  const std::uint8_t* payload = frame + r.payload_offset;
  if (to_devices) {
    r.to = listener::devices;
    return classify_wireguard(payload, r.payload_length, r);
  }
  r.to = listener::tailnet;
  return classify_tailnet_payload(payload, r.payload_length, r);
}

// On an uplink port, to its address (not a fragment): TCP or UDP to a NAT
// port, an ICMP echo reply or an ICMP error may belong to an uplink flow.
// The worker looks the flow up and hands a miss to the kernel, so only a
// NAT port's traffic pays for the lookup, and the kernel's own connections
// (ephemeral ports, outside the NAT range) never do.
bool may_be_uplink_reply(const std::uint8_t* l4, std::uint32_t l4_len, std::uint8_t protocol, const port_identity& port) {
  constexpr std::uint8_t tcp = 6, udp = 17, icmp = 1;
  if (protocol == tcp || protocol == udp) {
    if (l4_len < 4) return false;
    const std::uint16_t dst = load_be16(l4 + 2);
    return dst >= port.nat_first_port && dst <= port.nat_last_port;
  }
  if (l4_len < 8) return false;
  const std::uint8_t type = l4[0];
  if (protocol == icmp) return type == 0 || type == 3 || type == 11 || type == 12;  // echo reply, errors
  if (protocol == wire::ipproto_icmpv6) return type == 129 || (type >= 1 && type <= 4);
  return false;
}

classify_result uplink_nat(std::uint32_t l3, std::uint32_t l4) {
  classify_result r;
  r.cls = packet_class::uplink_nat;
  r.l3_offset = static_cast<std::uint8_t>(l3);
  r.l4_offset = static_cast<std::uint16_t>(l4);
  return r;
}

classify_result classify_ipv4(const std::uint8_t* frame, std::uint32_t length, const port_identity& port) {
  const std::uint32_t l3 = wire::ethernet_header;
  if (length < l3 + 20) return dropped(drop_reason::malformed_ipv4);
  const std::uint8_t* ip = frame + l3;
  const unsigned ihl = (ip[0] & 0x0f) * 4u;
  const std::uint16_t total = load_be16(ip + 2);
  if ((ip[0] >> 4) != 4 || ihl < 20 || total < ihl || total > length - l3) return dropped(drop_reason::malformed_ipv4);
  std::uint32_t dst_be;
  std::memcpy(&dst_be, ip + 16, 4);
  const bool fragment = (load_be16(ip + 6) & 0x3fff) != 0;  // MF set or a non-zero offset
  if (port.uplink && !fragment && port.owns_v4(dst_be) && may_be_uplink_reply(ip + ihl, total - ihl, ip[9], port))
    return uplink_nat(l3, l3 + ihl);
  if (ip[9] != wire::ipproto_udp || !port.owns_v4(dst_be)) return to_kernel();
  classify_result r;
  r.l3_offset = static_cast<std::uint8_t>(l3);
  classify_result udp = classify_udp(frame, l3 + ihl, total - ihl, port, r);
  if (fragment && udp.to != listener::none) return dropped(drop_reason::fragment_to_listener);
  if (fragment) return to_kernel();
  return udp;
}

classify_result classify_ipv6(const std::uint8_t* frame, std::uint32_t length, const port_identity& port) {
  const std::uint32_t l3 = wire::ethernet_header;
  if (length < l3 + wire::ipv6_header) return dropped(drop_reason::malformed_ipv6);
  const std::uint8_t* ip = frame + l3;
  const std::uint16_t payload = load_be16(ip + 4);
  if ((ip[0] >> 4) != 6 || payload > length - l3 - wire::ipv6_header) return dropped(drop_reason::malformed_ipv6);
  const std::uint8_t next = ip[6];
  if (next == wire::ipproto_icmpv6 && payload >= 4) {
    const std::uint8_t type = ip[wire::ipv6_header];
    if (type == 135 || type == 136) {  // neighbour solicitation / advertisement
      classify_result r;
      r.cls = packet_class::neighbour;
      return r;
    }
  }
  // Extension headers (fragments included) are left to the kernel: a
  // WireGuard peer never needs them, and the NAT carries none.
  if (port.uplink && port.owns_v6(ip + 24) &&
      may_be_uplink_reply(ip + wire::ipv6_header, payload, next, port))
    return uplink_nat(l3, l3 + wire::ipv6_header);
  if (next != wire::ipproto_udp || !port.owns_v6(ip + 24)) return to_kernel();
  classify_result r;
  r.l3_offset = static_cast<std::uint8_t>(l3);
  return classify_udp(frame, l3 + wire::ipv6_header, payload, port, r);
}

}  // namespace

const char* to_string(packet_class c) {
  const auto i = static_cast<std::size_t>(c);
  return i < packet_class_count ? packet_class_names[i] : "?";
}

bool port_identity::add_address(const ip_address& a) {
  if (a.family == ip_family::v4) {
    if (v4_count == max_addresses) return false;
    std::memcpy(&v4[v4_count++], a.bytes.data(), 4);
    return true;
  }
  if (v6_count == max_addresses) return false;
  std::memcpy(v6[v6_count++], a.bytes.data(), 16);
  return true;
}

bool port_identity::owns_v6(const std::uint8_t* addr) const {
  for (unsigned i = 0; i < v6_count; ++i)
    if (std::memcmp(v6[i], addr, 16) == 0) return true;
  return false;
}

classify_result classify_frame(const std::uint8_t* frame, std::uint32_t length, const port_identity& port) noexcept {
  classify_result r;
  classify_frame(frame, length, port, r);
  return r;
}

classify_result classify_frame_walk(const std::uint8_t* frame, std::uint32_t length, const port_identity& port) noexcept {
  if (length < wire::ethernet_header) return dropped(drop_reason::malformed_ethernet);
  switch (load_be16(frame + 12)) {
    case wire::ethertype_ipv4: return classify_ipv4(frame, length, port);
    case wire::ethertype_ipv6: return classify_ipv6(frame, length, port);
    case wire::ethertype_arp: {
      classify_result r;
      r.cls = packet_class::neighbour;
      return r;
    }
    default: return to_kernel();
  }
}

namespace {

std::optional<neighbour_note> neighbour_from_arp(const std::uint8_t* arp, std::uint32_t len) {
  // Ethernet/IPv4 ARP only: htype 1, ptype 0x0800, hlen 6, plen 4.
  if (len < 28 || load_be16(arp) != 1 || load_be16(arp + 2) != wire::ethertype_ipv4 || arp[4] != 6 || arp[5] != 4)
    return std::nullopt;
  neighbour_note n;
  n.family = ip_family::v4;
  n.op = load_be16(arp + 6) == 2 ? neighbour_op::answers : neighbour_op::asks;
  std::memcpy(n.mac, arp + 8, 6);
  std::memcpy(n.ip, arp + 14, 4);
  std::memcpy(n.target, arp + 24, 4);
  if (load_be32(n.ip) == 0) return std::nullopt;  // ARP probe: no binding announced
  return n;
}

std::optional<neighbour_note> neighbour_from_nd(const std::uint8_t* frame, std::uint32_t length) {
  const std::uint8_t* ip = frame + wire::ethernet_header;
  const std::uint32_t icmp_len = load_be16(ip + 4);
  const std::uint8_t* icmp = ip + wire::ipv6_header;
  const std::uint8_t type = icmp[0];
  // NS and NA: 4-byte ICMP header, 4 reserved/flag bytes, 16-byte target, then options.
  if (ip[6] != wire::ipproto_icmpv6 || icmp_len < 24 || (type != 135 && type != 136)) return std::nullopt;
  if (wire::ethernet_header + wire::ipv6_header + icmp_len > length) return std::nullopt;
  neighbour_note n;
  n.family = ip_family::v6;
  n.op = type == 135 ? neighbour_op::asks : neighbour_op::answers;
  // Asked: the NS's target address; answered to: the NA's IP destination.
  std::memcpy(n.target, type == 135 ? icmp + 8 : ip + 24, 16);
  // A solicitation announces its sender (the IP source); an advertisement its target.
  std::memcpy(n.ip, type == 135 ? ip + 8 : icmp + 8, 16);
  static constexpr std::uint8_t unspecified[16] = {};
  if (std::memcmp(n.ip, unspecified, 16) == 0) return std::nullopt;  // DAD probe
  const std::uint8_t wanted_option = type == 135 ? 1 : 2;  // source / target link-layer address
  bool found = false;
  for (std::uint32_t off = 24; off + 8 <= icmp_len;) {
    const std::uint32_t opt_len = icmp[off + 1] * 8u;
    if (opt_len == 0 || off + opt_len > icmp_len) return std::nullopt;  // malformed options
    if (icmp[off] == wanted_option) {
      std::memcpy(n.mac, icmp + off + 2, 6);
      found = true;
    }
    off += opt_len;
  }
  if (!found && type == 136) {  // an NA without the option: its Ethernet source is the target's
    std::memcpy(n.mac, frame + 6, 6);
    found = true;
  }
  if (!found) return std::nullopt;
  return n;
}

}  // namespace

std::optional<neighbour_note> neighbour_from_frame(const std::uint8_t* frame, std::uint32_t length) noexcept {
  if (length < wire::ethernet_header) return std::nullopt;
  const std::uint16_t type = load_be16(frame + 12);
  if (type == wire::ethertype_arp) return neighbour_from_arp(frame + wire::ethernet_header, length - wire::ethernet_header);
  if (type == wire::ethertype_ipv6 && length >= wire::ethernet_header + wire::ipv6_header + 24)
    return neighbour_from_nd(frame, length);
  return std::nullopt;
}

}  // namespace lopower
