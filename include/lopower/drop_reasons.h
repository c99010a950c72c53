#pragma once
// Every packet lopower drops is counted under one of these names. The list is
// declared once; the enum, the operator-facing names and the descriptions are
// generated from it, so a new reason cannot be added without a name.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "lopower/enum_list.h"

// X(identifier, "description shown by lopower-ctl")
#define LOPOWER_DROP_REASONS(X)                                                              \
  X(malformed_ethernet, "frame shorter than an Ethernet header")                             \
  X(malformed_ipv4, "IPv4 header truncated, bad version/IHL or total length")                \
  X(malformed_ipv6, "IPv6 header truncated or payload length beyond the frame")              \
  X(malformed_udp, "UDP header truncated or its length disagrees with the IP length")        \
  X(fragment_to_listener, "IP fragment addressed to a WireGuard/tailnet listen port")        \
  X(wg_malformed, "WireGuard message of unknown type, bad reserved bytes or length")         \
  X(wg_unknown_receiver, "WireGuard transport data for no known session")                    \
  X(tailnet_unknown_payload, "UDP on the tailnet port that is not WireGuard, disco or STUN") \
  X(wg_bad_mac1, "WireGuard initiation or response whose MAC1 is not for lopower's key: junk, dropped on the worker") \
  X(control_ring_full, "handshake ring to the control plane full (initiations and responses worth answering)") \
  X(unproven_ring_full, "under load: ring of handshakes without a cookie (MAC2) to the control plane full") \
  X(path_ring_full, "disco/STUN ring to the control plane full")                               \
  X(inner_ring_full, "ring of lopower's own inner packets (device DNS, ping replies) to the control plane full") \
  X(dns_device_rate, "DNS query over its device's rate (dns.device_query_rate): dropped on the worker") \
  X(dns_tailnet_rate, "DNS query from a tailnet peer over the peer's rate (dns.device_query_rate): dropped on the worker") \
  X(control_unhandled, "control plane has no handler for this packet class yet")             \
  X(no_exception_path, "frame for the kernel on a port configured without a TAP")            \
  X(exception_tx_full, "TAP (exception path) TX queue full")                                 \
  X(port_tx_full, "port TX queue full")                                                     \
  X(neighbour_ring_full, "neighbour-learning ring to the control plane full")                \
  X(neighbour_off_link, "ARP/ND binding for an address outside the port's prefixes: not learned") \
  X(neighbour_unsolicited, "ARP/ND binding lopower neither asked for nor was asked by: not learned") \
  X(multi_segment, "WireGuard frame spread over several buffers (not expected below 2 KB)")  \
  X(wg_keypair_expired, "transport data for a keypair past REJECT_AFTER_TIME or its message limit") \
  X(wg_decrypt_failed, "transport data that failed authentication")                          \
  X(wg_replay, "transport counter already seen or too old (replay window)")                 \
  X(wg_replay_handover, "transport data arriving on a second worker while the keypair's replay window changed hands (a peer moved between receive queues)") \
  X(wg_source_not_allowed, "inner source address not among the peer's allowed IPs")          \
  X(inner_malformed, "decrypted data that is not a whole IPv4/IPv6 packet")                  \
  X(inner_no_route, "inner destination lopower does not serve (yet)")                         \
  X(wg_encrypt_failed, "the crypto backend refused to encrypt (a bug: reported, never sent)")  \
  X(wg_event_ring_full, "session-event ring to the control plane full")                     \
  X(tailnet_filtered, "inbound tailnet packet refused by the tailnet's packet filter (ACLs)") \
  X(tailnet_not_for_us, "inbound tailnet packet for an address lopower does not serve (yet)") \
  X(tailnet_tsmp_ignored, "TSMP message lopower does not act on (disco key advertisements, rejections)") \
  X(splice_no_route, "device packet to an address no tailnet peer serves: ICMP unreachable sent back")     \
  X(egress_refused, "device packet to a destination outside the tailnet, device egress \"none\": ICMP administratively prohibited sent back") \
  X(egress_no_exit_node, "device packet for the exit node (egress \"exit\") while none is available: ICMP unreachable sent back") \
  X(egress_no_uplink, "device packet for the uplink (egress \"uplink\") while lopower has none: ICMP unreachable sent back") \
  X(splice_too_big, "device packet larger than the tailnet MTU: ICMP too-big sent back")                   \
  X(splice_unsupported, "device packet the splice does not carry (fragment, other protocol or ICMP type)") \
  X(splice_no_flow, "TCP segment of a connection the splice never saw open (no SYN)")                      \
  X(splice_flow_limit, "new flow refused: the device or the whole table is at its flow limit")              \
  X(splice_flow_pool_empty, "new flow refused: no flow storage left (erased flows still in their grace period)") \
  X(splice_ports_exhausted, "new flow refused: every port of the worker's share is in use toward that destination (address, port, protocol)") \
  X(splice_no_tailnet_address, "new flow refused: lopower has no tailnet address of the packet's family (or no device-side one, for inbound SNAT)") \
  X(inbound_no_device, "packet to an address in a device prefix that no device holds (from the tailnet, or another device)") \
  X(device_to_device_denied, "device packet to another device refused ([devices] device_to_device = \"deny\"): ICMP prohibited sent back") \
  X(wg_stage_ring_full, "packet for a peer with no session: the ring to the control plane was full") \
  X(wg_staged_overflow, "staged packet dropped (oldest first): the peer's queue awaiting a handshake was full") \
  X(wg_staged_gave_up, "staged packet dropped: no session could be made with the peer (handshake gave up, no path)") \
  X(fragment_malformed, "IP fragment no sender makes: empty, not a multiple of 8 bytes before the last, or past 65535 bytes") \
  X(fragment_duplicate, "IP fragment inside one already held for its datagram (a duplicate)") \
  X(fragment_overlap, "IP fragment overlapping or contradicting the others of its datagram, or past 8 of them: the datagram is given up") \
  X(fragment_peer_limit, "new reassembly refused: the device or tailnet peer has its share of the worker's table in progress") \
  X(fragment_table_full, "reassembly refused: the worker's reassembly table (or the bucket the datagram hashes to) is full") \
  X(fragment_timeout, "IP fragment held for reassembly until its datagram timed out (2 s)") \
  X(fragment_too_big, "reassembled datagram larger than a packet buffer leaves room for") \
  X(fragment_no_buffer, "no packet buffer to cut a packet into fragments for a smaller MTU") \
  X(relay_ring_full, "packet for a peer reached through DERP: the ring to the control plane was full") \
  X(relay_unavailable, "packet for a peer reached through DERP: no connection to its region could take it") \
  X(relay_in_ring_full, "packet received through DERP: the ring to the worker was full") \
  X(uplink_no_neighbour, "device packet for the uplink: the next hop's MAC is not known yet (lopower asks for the gateway's)") \
  X(uplink_too_big, "device packet larger than the uplink's MTU: ICMP too-big sent back") \
  X(uplink_ttl_expired, "device packet whose TTL/hop limit runs out at lopower: ICMP time exceeded sent back") \
  X(uplink_unsupported, "NATed packet the uplink does not carry or cannot translate (fragment, other protocol or ICMP type)") \
  X(no_headroom, "no room left in the packet buffer for the headers or trailer to add (WireGuard and outer headers, tag, padding)")

namespace lopower {

enum class drop_reason : std::uint16_t { LOPOWER_DROP_REASONS(LOPOWER_ENUM_ENUMERATOR) };

inline constexpr std::size_t drop_reason_count = LOPOWER_ENUM_COUNT(LOPOWER_DROP_REASONS);

inline constexpr std::array<std::string_view, drop_reason_count> drop_reason_names{LOPOWER_DROP_REASONS(LOPOWER_ENUM_NAME)};

inline constexpr std::array<std::string_view, drop_reason_count> drop_reason_descriptions{LOPOWER_DROP_REASONS(LOPOWER_ENUM_TEXT)};

constexpr std::string_view name_of(drop_reason r) { return drop_reason_names[static_cast<std::size_t>(r)]; }
constexpr std::string_view description_of(drop_reason r) {
  return drop_reason_descriptions[static_cast<std::size_t>(r)];
}

}  // namespace lopower
