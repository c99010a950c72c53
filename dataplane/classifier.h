#pragma once
// Frame classification: what the dataplane does with one received frame.
// Pure functions over bytes (no DPDK types), so the unit tests and the fuzzer
// drive exactly the code the workers run.

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>

#include "lopower/byte_order.h"
#include "lopower/enum_list.h"
#include "lopower/drop_reasons.h"
#include "lopower/net_addr.h"
#include "lopower/wireguard_messages.h"

namespace lopower {

// X(identifier, "what the dataplane does with it"). The enum, the count that
// sizes per-class arrays and the names in `lopower-ctl status` come from
// this one list.
#define LOPOWER_PACKET_CLASSES(X)                                                                                    \
  X(wg_handshake, "WireGuard initiation, response or cookie reply: handshake service (control plane)")              \
  X(wg_transport, "WireGuard transport data: decrypted on the worker")                                              \
  X(disco, "Tailscale disco on the tailnet port: control plane")                                                    \
  X(stun, "STUN on the tailnet port: control plane")                                                                \
  X(neighbour, "ARP / IPv6 neighbour discovery: learned from, then handed to the kernel")                           \
  X(uplink_nat, "on an uplink port, to its address and a NAT port (or ICMP): an uplink flow's, if the flow table has it") \
  X(exception, "everything the dataplane does not own: the kernel via the TAP")                                     \
  X(drop, "malformed input addressed to the dataplane; see classify_result::reason")

enum class packet_class : std::uint8_t { LOPOWER_PACKET_CLASSES(LOPOWER_ENUM_ENUMERATOR) };

inline constexpr std::size_t packet_class_count = LOPOWER_ENUM_COUNT(LOPOWER_PACKET_CLASSES);

inline constexpr std::array<const char*, packet_class_count> packet_class_names{LOPOWER_PACKET_CLASSES(LOPOWER_ENUM_NAME)};

inline constexpr std::array<const char*, packet_class_count> packet_class_descriptions{LOPOWER_PACKET_CLASSES(LOPOWER_ENUM_TEXT)};

// The class's name ("wg_handshake", ...), or "?" for a value outside the list.
const char* to_string(packet_class c);

// Which listener a UDP datagram was addressed to.
enum class listener : std::uint8_t { none, devices, tailnet };

// What one port owns: its addresses and the UDP ports it listens on. Kept
// small and flat: every worker reads it for every frame.
struct port_identity {
  static constexpr unsigned max_addresses = 4;
  std::uint8_t v4_count = 0;
  std::uint8_t v6_count = 0;
  std::uint32_t v4[max_addresses]{};           // network byte order
  std::uint8_t v6[max_addresses][16]{};
  std::uint16_t device_port_be = 0;            // WireGuard for devices; 0 = not on this port
  std::uint16_t tailnet_port_be = 0;           // WireGuard/disco/STUN with the tailnet; 0 = not on this port
  // An uplink port: TCP/UDP to its address within [nat_first_port,
  // nat_last_port] and ICMP to its address may be replies on NATed flows.
  bool uplink = false;
  std::uint16_t nat_first_port = 0, nat_last_port = 0;  // host order

  bool add_address(const ip_address& a);       // false when full
  bool owns_v4(std::uint32_t addr_be) const noexcept {  // inline: every frame asks
    for (unsigned i = 0; i < v4_count; ++i)
      if (v4[i] == addr_be) return true;
    return false;
  }
  bool owns_v6(const std::uint8_t* addr) const;
};

struct classify_result {
  packet_class cls = packet_class::exception;
  drop_reason reason = drop_reason::malformed_ethernet;  // meaningful only for packet_class::drop
  listener to = listener::none;
  std::uint8_t l3_offset = 0;
  std::uint16_t l4_offset = 0;
  std::uint16_t payload_offset = 0;   // UDP payload, from the frame start
  std::uint16_t payload_length = 0;
  bool operator==(const classify_result&) const = default;
};

// A frame's class: transport data in IPv4 UDP to one of the port's
// WireGuard listeners (nearly every frame under load) is recognised first,
// in a few loads and compares; everything else takes classify_frame_walk.
classify_result classify_frame(const std::uint8_t* frame, std::uint32_t length, const port_identity& port) noexcept;
// The same written into `r`: the worker classifies each frame straight into
// the transport sub-burst's next slot (nearly every frame lands there), so
// no result is packed for return and copied on (its narrow stores read
// back as wide loads stalled on store forwarding: 2/3 of classify_frame's
// time at 64 bytes).
inline void classify_frame(const std::uint8_t* frame, std::uint32_t length, const port_identity& port,
                           classify_result& r) noexcept;
// The full walk (Ethernet, IP, UDP, the listener's payload) that decides
// every frame, and decides those classify_frame takes first the same way:
// fuzz_classifier compares the two on every input.
classify_result classify_frame_walk(const std::uint8_t* frame, std::uint32_t length, const port_identity& port) noexcept;

// A neighbour's address as an ARP or ND message announces it, with what the
// message was: a question (ARP request, neighbour solicitation) for
// `target`, or an answer (ARP reply, neighbour advertisement) to `target`
// (the ARP target protocol address, the NA's IP destination). The control
// thread learns from questions for lopower's own addresses and from answers
// to them (lopower's, or the host stack's on the same address, asked).
enum class neighbour_op : std::uint8_t { asks = 1, answers = 2 };
struct neighbour_note {
  std::uint16_t port = 0;
  ip_family family = ip_family::v4;
  neighbour_op op = neighbour_op::asks;
  std::uint8_t mac[6]{};
  std::uint8_t ip[16]{};
  std::uint8_t target[16]{};
  std::uint8_t reserved[2]{};  // rte_ring element sizes are multiples of four bytes
};
static_assert(sizeof(neighbour_note) % 4 == 0);

// Extracts the sender binding from ARP (request or reply) or from an IPv6
// neighbour solicitation/advertisement with a link-layer option; nullopt if
// the frame carries none (e.g. a DAD probe from ::).
std::optional<neighbour_note> neighbour_from_frame(const std::uint8_t* frame, std::uint32_t length) noexcept;

namespace wire {
inline constexpr std::uint16_t ethertype_ipv4 = 0x0800;
inline constexpr std::uint16_t ethertype_arp = 0x0806;
inline constexpr std::uint16_t ethertype_ipv6 = 0x86dd;
inline constexpr std::uint8_t ipproto_udp = 17;
inline constexpr std::uint8_t ipproto_icmpv6 = 58;
inline constexpr unsigned ethernet_header = 14;
inline constexpr unsigned ipv6_header = 40;
inline constexpr unsigned udp_header = 8;
// WireGuard's messages are lopower/wireguard_messages.h (namespace wg).
inline constexpr std::uint32_t stun_magic_cookie = 0x2112A442;
inline constexpr std::uint8_t disco_magic[6] = {'T', 'S', 0xf0, 0x9f, 0x92, 0xac};
}  // namespace wire

// STUN (RFC 5389): the top two bits are zero, and the magic cookie follows the length.
inline bool is_stun(const std::uint8_t* msg, std::uint16_t len) noexcept {
  return len >= 20 && (msg[0] & 0xc0) == 0 && load_be32(msg + 4) == wire::stun_magic_cookie;
}

// Transport data in IPv4 without options, not a fragment, UDP to one of the
// port's WireGuard listeners, on a port that is no uplink (there UDP to its
// address may be a NATed reply first): the common case, decided in a few
// loads. False for anything else, and for anything unusual about these
// (a receiver index that is STUN's cookie, short or inconsistent lengths):
// the walk decides those. Inline, with classify_frame, in the worker's
// classifying loop: as a call of its own, saving and restoring registers
// was a fifth of its instructions.
inline bool classify_transport_v4(const std::uint8_t* frame, std::uint32_t length, const port_identity& port,
                                  classify_result& r) noexcept {
  constexpr std::uint32_t l3 = wire::ethernet_header, l4 = l3 + 20, payload = l4 + wire::udp_header;
  if (port.uplink || length < payload + wg::message_data_min_size) return false;
  const std::uint8_t* ip = frame + l3;
  // Two words: the Ethernet type and IPv4's version and header length (08 00 45), then the
  // fragment field (flags and offset: only DF may be set), TTL and protocol (UDP).
  if ((load_be32(frame + 12) >> 8) != (std::uint32_t{wire::ethertype_ipv4} << 8 | 0x45) ||
      (load_be32(ip + 6) & 0x3fff00ffu) != wire::ipproto_udp)
    return false;
  const std::uint32_t total = load_be16(ip + 2);
  const std::uint8_t* udp = frame + l4;
  const std::uint32_t udp_len = load_be16(udp + 4);
  if (total < 20 || total > length - l3 || udp_len < wire::udp_header + wg::message_data_min_size ||
      udp_len > total - 20)
    return false;
  std::uint16_t dst_port_be;
  std::memcpy(&dst_port_be, udp + 2, 2);
  listener to;
  if (port.device_port_be != 0 && dst_port_be == port.device_port_be) to = listener::devices;
  else if (port.tailnet_port_be != 0 && dst_port_be == port.tailnet_port_be) to = listener::tailnet;
  else return false;
  const std::uint8_t* msg = frame + payload;
  if (load_le32(msg) != static_cast<std::uint32_t>(wg::message_type::data)) return false;  // type 4, three zero bytes
  if (to == listener::tailnet && is_stun(msg, static_cast<std::uint16_t>(udp_len - wire::udp_header))) return false;
  std::uint32_t dst_be;
  std::memcpy(&dst_be, ip + 16, 4);
  if (!port.owns_v4(dst_be)) return false;
  r = classify_result{};
  r.cls = packet_class::wg_transport;
  r.to = to;
  r.l3_offset = static_cast<std::uint8_t>(l3);
  r.l4_offset = static_cast<std::uint16_t>(l4);
  r.payload_offset = static_cast<std::uint16_t>(payload);
  r.payload_length = static_cast<std::uint16_t>(udp_len - wire::udp_header);
  return true;
}

inline void classify_frame(const std::uint8_t* frame, std::uint32_t length, const port_identity& port,
                           classify_result& r) noexcept {
  if (classify_transport_v4(frame, length, port, r)) return;
  r = classify_frame_walk(frame, length, port);
}

}  // namespace lopower
