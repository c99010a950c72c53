#pragma once
// The splice's packet translation: pure in-place rewrites of whole inner IP
// packets (no Ethernet; WireGuard padding may follow), with no DPDK types,
// so the unit tests and the fuzzer drive exactly the code the workers run.
//
// Every function takes the buffer and its length, reads and writes only
// inside the IP packet's own length (IPv4 total length, 40 + IPv6 payload
// length), which must fit in that buffer, and reports what it refused.
//
// What a spliced flow looks like (DESIGN.md "Splicing"):
//   device → tailnet  source rewritten to lopower's tailnet address and an
//                     allocated port (rewrite_source);
//   tailnet → device  destination rewritten back to the device's address and
//                     port (rewrite_destination), found by the reverse tuple.
// A flow stays in the family of its destination: IPv4 to IPv4, IPv6 to IPv6.
// TCP and UDP carry ports; ICMP/ICMPv6 echo carries an identifier instead
// (RFC 792, RFC 4443 §4.1), mapped the same way. Checksums are updated
// incrementally (RFC 1624), so a segment corrupted before lopower stays
// detectably corrupt after it, as end-to-end checksums intend.
//
// Not carried here: IPv4 fragments and IPv6 packets with extension headers
// (their ports are not at a fixed place, or not present at all). Like Linux
// NAT, the workers put fragments together before they get here
// (dataplane/fragments); what still comes is refused, see translate_status.

#include <cstddef>
#include <cstdint>
#include <optional>

#include "dataplane/splice/flow_key.h"
#include "lopower/net_addr.h"

namespace lopower::splice {

enum class translate_status : std::uint8_t {
  ok,
  malformed,        // not a whole IPv4/IPv6 packet, or its L4 header is cut short
  fragment,         // an IPv4 fragment or an IPv6 fragment header: no ports to translate
  unsupported,      // a protocol, ICMP type or IPv6 extension header the splice does not carry
  family_mismatch,  // the address given is of the other family than the packet
};
const char* to_string(translate_status s) noexcept;

// The IP header of an inner packet.
struct packet_info {
  ip_family family = ip_family::v4;
  std::uint8_t protocol = 0;   // IPv4 protocol / the IPv6 header's next header
  bool fragment = false;       // IPv4 MF or fragment offset set; IPv6 next header 44
  std::uint16_t length = 0;    // the packet's own length (padding after it excluded)
  std::uint16_t l4_offset = 0; // IPv4 IHL; 40 for IPv6 (extension headers not skipped)
  std::uint16_t l4_length() const noexcept { return static_cast<std::uint16_t>(length - l4_offset); }
};

// nullopt unless `p` holds a whole IPv4 packet (IHL >= 5, IHL <= total length
// <= len) or IPv6 packet (40 + payload length <= len).
std::optional<packet_info> parse_ip(const std::uint8_t* p, std::uint32_t len) noexcept;

// The 5-tuple of a packet the splice carries: TCP (a whole header, data
// offset >= 5), UDP (8 bytes) or an ICMP/ICMPv6 echo request or reply
// (identifier in both port fields). Anything else is refused with a status.
translate_status flow_key_of(const std::uint8_t* p, std::uint32_t len, flow_key& key) noexcept;

// Where the fields a rewrite touches lie in a packet flow_key_of accepted
// (offsets from the packet start), so that rewriting it does not parse it
// again. Valid while the packet's headers stay as they were.
struct flow_fields {
  ip_family family = ip_family::v4;
  std::uint16_t src_port_at = 0;  // ICMP echo: the identifier, also dst_port_at
  std::uint16_t dst_port_at = 0;
  std::uint16_t checksum_at = 0;  // 0: not present (a quote cut short)
  bool pseudo_header = true;      // ICMPv4 has none
  bool udp = false;               // zero means "no checksum"
};
// flow_key_of, and where the packet's fields lie.
translate_status flow_key_of(const std::uint8_t* p, std::uint32_t len, flow_key& key, flow_fields& fields) noexcept;
// The same of a packet whose IP header is parsed already (`ip`, as parse_ip
// gives it, fragment flag included): the worker parsed it on delivery and
// does not parse it twice.
translate_status flow_key_of(const std::uint8_t* p, const packet_info& ip, flow_key& key, flow_fields& fields) noexcept;

// Device → tailnet: the source address and port (ICMP echo: identifier)
// become `new_src`/`new_port`. Updates the IPv4 header checksum and the L4
// checksum: TCP and UDP over the pseudo-header, ICMPv6 likewise, ICMPv4
// over the ICMP message only (no pseudo-header). A UDP checksum of zero
// means "none" (RFC 768) and stays zero; over IPv6 a zero checksum is
// invalid (RFC 8200 §8.1) and also stays zero: the receiver drops it, as it
// would have without lopower.
translate_status rewrite_source(std::uint8_t* p, std::uint32_t len, const ip_address& new_src,
                                std::uint16_t new_port) noexcept;
// Tailnet → device: the destination address and port (ICMP echo:
// identifier) become the device's. Same checksum rules.
translate_status rewrite_destination(std::uint8_t* p, std::uint32_t len, const ip_address& new_dst,
                                     std::uint16_t new_port) noexcept;
// The same of a packet whose fields flow_key_of found (`fields`): nothing
// is parsed; only the family is checked.
translate_status rewrite_source(std::uint8_t* p, const flow_fields& fields, const ip_address& new_src,
                                std::uint16_t new_port) noexcept;
translate_status rewrite_destination(std::uint8_t* p, const flow_fields& fields, const ip_address& new_dst,
                                     std::uint16_t new_port) noexcept;

// A flow's rewrite with its checksum differences computed once. Every
// packet of a flow has the same address and port replaced by the same new
// ones (in each direction), so the differences (RFC 1624) are the flow's:
// taken when the flow is made, a packet's rewrite is then two stores and two
// checksum updates, with nothing of the old header read.
struct rewrite_deltas {
  std::uint16_t ip = 0;  // the IPv4 header checksum's: the address alone
  std::uint16_t l4 = 0;  // the transport checksum's: the port, and the address where a pseudo-header covers it
};
// The differences of replacing `old_addr` and `old_port` by `new_addr` and
// `new_port` (addresses of `family`'s size) in a packet of `protocol`.
rewrite_deltas rewrite_deltas_of(ip_family family, std::uint8_t protocol, const std::uint8_t* old_addr,
                                 std::uint16_t old_port, const std::uint8_t* new_addr, std::uint16_t new_port) noexcept;
// rewrite_source / rewrite_destination of a packet whose fields flow_key_of
// found, on a flow whose differences are `deltas`: the packet's old address
// and port must be those `deltas` were taken from (the flow's key says so).
// `new_addr`: of `family`'s size, which must be the packet's.
translate_status rewrite_source(std::uint8_t* p, const flow_fields& fields, ip_family family, const std::uint8_t* new_src,
                                std::uint16_t new_port, rewrite_deltas deltas) noexcept;
translate_status rewrite_destination(std::uint8_t* p, const flow_fields& fields, ip_family family,
                                     const std::uint8_t* new_dst, std::uint16_t new_port, rewrite_deltas deltas) noexcept;

// ---- TCP ----------------------------------------------------------------

inline constexpr std::uint16_t tailnet_mtu = 1280;  // tailscale's TUN MTU; also the IPv6 minimum

// The largest MSS whose segments fit `mtu`: IP header (20 / 40) and TCP
// header (20) off, so 1240 (IPv4) and 1220 (IPv6) for the tailnet MTU.
constexpr std::uint16_t max_mss_for_mtu(ip_family family, std::uint16_t mtu) noexcept {
  return static_cast<std::uint16_t>(mtu - (family == ip_family::v6 ? 60 : 40));
}

// Lowers the MSS option (kind 2, length 4: RFC 9293 §3.7.1) of a TCP segment
// with SYN set to `max_mss` when it is larger, updating the checksum; true if
// anything changed. Options are walked up to the data offset: EOL ends them,
// NOP is one byte, every other option must carry a length >= 2 that stays
// inside the header, else the walk stops there (a malformed option list is
// left to the receiver). Every MSS option is clamped, in case a receiver
// takes the last one. A SYN without the option needs nothing: the default
// MSS is 536 (IPv4) and 1220 (IPv6) (RFC 9293 §3.7.1, MUST-15), both within
// the tailnet MTU.
bool clamp_tcp_mss(std::uint8_t* p, std::uint32_t len, std::uint16_t max_mss) noexcept;

namespace tcp_flag {
inline constexpr std::uint8_t fin = 0x01, syn = 0x02, rst = 0x04, psh = 0x08, ack = 0x10;
}

// The flags byte of a TCP segment parsed by parse_ip; 0 when `info` is not
// TCP or the segment is too short to hold it.
std::uint8_t tcp_flags(const std::uint8_t* p, const packet_info& info) noexcept;

// Which end sent a segment: the one that opened the flow (a device, for a
// spliced flow) or the other.
enum class flow_direction : std::uint8_t { original, reply };

// A small TCP state tracker, for expiry only: no sequence numbers are
// checked (the endpoints do that; the flow only has to live as long as the
// connection and not much longer).
//   syn_sent          SYN from the original side, no SYN-ACK yet (half-open)
//   established       the reply side answered with SYN-ACK
//   fin_wait_*        a FIN from one side (the direction is kept, so that a
//                     retransmitted FIN is not taken for the other side's)
//   closed            FINs from both sides, or a RST from either
enum class tcp_state : std::uint8_t { syn_sent, established, fin_wait_original, fin_wait_reply, closed };
const char* to_string(tcp_state s) noexcept;

// Whether a segment may open a flow: a bare SYN (no ACK, FIN or RST).
// Anything else without a flow belongs to a connection the splice never saw.
constexpr bool opens_tcp_flow(std::uint8_t flags) noexcept {
  return (flags & (tcp_flag::syn | tcp_flag::ack | tcp_flag::fin | tcp_flag::rst)) == tcp_flag::syn;
}

// The state after a segment with `flags` in direction `dir`. A bare SYN from
// the original side reopens a closed flow (the same 4-tuple reused, as a
// client may do once its TIME-WAIT is over).
tcp_state next_state(tcp_state state, std::uint8_t flags, flow_direction dir) noexcept;

// Idle timeouts in seconds: a flow expires when no packet has refreshed it
// for that long. Chosen against the NAT behaviour RFCs:
namespace timeout {
// Half-open: one SYN unanswered for 30 s. Linux retransmits a SYN after 1,
// 2, 4, 8 and 16 s, each refreshing the flow; a SYN retransmitted later
// after expiry just opens a new flow with a new port, and nothing is lost,
// since no connection exists yet. Shorter than RFC 5382's 4-minute
// transitory minimum on purpose: half-open flows are what a SYN flood from
// a device leaves behind, and they hold ports toward one destination.
inline constexpr std::uint32_t tcp_syn_sent = 30;
// RFC 5382 REQ-5: at least 2 hours 4 minutes, so a connection idle but for
// TCP keep-alives (first probe after 2 h, RFC 1122 §4.2.3.6) survives.
inline constexpr std::uint32_t tcp_established = 7440;
// One side has closed; the other may still send (half-close). RFC 5382's
// transitory minimum of 4 minutes, 2 MSL.
inline constexpr std::uint32_t tcp_fin_wait = 240;
// Both FINs or a RST: long enough to carry the last ACK and retransmitted
// FINs, then the port is free. The allocator does not hand the same port
// to the same destination again until its cursor has gone round the whole
// range, so the peer's TIME-WAIT does not meet a new connection.
inline constexpr std::uint32_t tcp_closed = 10;
// RFC 4787 REQ-5: a UDP mapping lives at least 2 minutes...
inline constexpr std::uint32_t udp = 120;
// ...except toward well-known ports (REQ-5a). DNS gets 30 s: every query
// has its own source port, and holding each for 2 minutes would only use
// up ports toward the one resolver.
inline constexpr std::uint32_t udp_dns = 30;
// RFC 5508 REQ-1: an ICMP query mapping lives at least 60 seconds.
inline constexpr std::uint32_t icmp_echo = 60;
}  // namespace timeout

// Whole seconds from TSC stamp `since` to `now` (`hz` ticks a second); 0
// when `since` is the later one. Workers stamp flows while the expiry walk
// runs, after it read the clock: unsigned subtraction would make the
// busiest flow look idle for centuries and expire it mid-transfer.
constexpr std::uint64_t seconds_since(std::uint64_t since, std::uint64_t now, std::uint64_t hz) noexcept {
  return now > since ? (now - since) / hz : 0;
}

std::uint32_t tcp_timeout(tcp_state state) noexcept;
// The idle timeout of a flow of `protocol` toward `dst_port` (TCP: in `state`).
std::uint32_t idle_timeout(std::uint8_t protocol, std::uint16_t dst_port, tcp_state state) noexcept;

// A router's hop (RFC 1812 §5.3.1, RFC 8200 §3): the IPv4 TTL less one (the
// header checksum updated incrementally) or the IPv6 hop limit less one.
// False, nothing changed, when it is 1 or less: the packet dies here.
bool decrement_hop_limit(std::uint8_t* p, std::uint32_t len) noexcept;

// ---- ICMP errors ----------------------------------------------------------

enum class icmp_error_kind : std::uint8_t {
  admin_prohibited,  // refused by policy: ICMP 3/13 (RFC 1812 §5.2.7.1), ICMPv6 1/1
  host_unreachable,  // no way to the destination: ICMP 3/1, ICMPv6 1/3 (address unreachable)
  packet_too_big,    // larger than the next hop's MTU: ICMP 3/4 with the MTU (RFC 1191), ICMPv6 2 (RFC 8201)
  time_exceeded,     // TTL / hop limit ran out in transit: ICMP 11/0, ICMPv6 3/0
};

// Limits on an ICMP error's size: RFC 1812 §4.3.2.3 (IPv4: as much of the
// original as fits in 576 bytes) and RFC 4443 §2.4 (c) (IPv6: as much as
// fits in the minimum MTU, 1280).
inline constexpr std::uint16_t icmp_error_max_v4 = 576;
inline constexpr std::uint16_t icmp_error_max_v6 = 1280;

// Writes at `out` the ICMP/ICMPv6 error answering `original` (an inner
// packet of either family), from `from` (lopower's address, same family) to
// the original's source; returns its length, or 0 when none may be sent:
// - the original is malformed, or `from` is of the other family, or `out`
//   cannot hold the IP header, the ICMP header and the original's IP
//   header plus 8 bytes (or all of it when shorter);
// - RFC 1122 §3.2.2 / RFC 1812 §4.3.2.7 / RFC 4443 §2.4 (e): the original is
//   an ICMP error (or an ICMP type not known as a query, as Linux does),
//   an ICMPv6 error or redirect, a non-first fragment, from an address
//   that does not name one host (unspecified, loopback, multicast, IPv4
//   limited broadcast) or to a multicast/broadcast address (IPv6 Packet Too
//   Big excepted, RFC 4443 §2.4 (e.3)).
// `mtu` is used by packet_too_big only: IPv4 puts it in the next-hop MTU
// field (RFC 1191 §4), IPv6 in the 32-bit MTU field. The quote is as much
// of the original as the limit above, and `out_capacity`, allow. `out` and
// `original` must not overlap.
std::uint16_t build_icmp_error(std::uint8_t* out, std::size_t out_capacity, const std::uint8_t* original,
                               std::uint32_t original_len, icmp_error_kind kind, std::uint16_t mtu,
                               const ip_address& from) noexcept;

// ICMP errors from the tailnet about a spliced flow: destination unreachable,
// time exceeded and parameter problem (ICMP 3, 11, 12; ICMPv6 1, 2, 3, 4).
// They quote the packet lopower sent, whose source is lopower's tailnet
// address and the allocated port.
//
// The quoted packet's 5-tuple as it was sent (tailnet side, original
// direction: quoted.reverse() is the key a reply on the flow would have).
// The quote must hold the quoted IP header and 8 bytes of TCP, UDP or ICMP
// echo, in the outer packet's family, and not be a non-first fragment.
translate_status quoted_flow_key(const std::uint8_t* p, std::uint32_t len, flow_key& quoted) noexcept;

// Delivers such an error to the device: the outer destination and the
// quoted packet's source address and port become the device's. Updates the
// outer IPv4 header checksum, the outer ICMP checksum (ICMPv6: pseudo-header
// included), the quoted IPv4 header checksum and, where the quote holds it,
// the quoted L4 checksum (which Linux NAT leaves alone; fixing it makes the
// quote read as exactly what the device sent). The outer source (the router
// or peer that reported) stays.
translate_status translate_icmp_error_inner(std::uint8_t* p, std::uint32_t len, const ip_address& device_addr,
                                            std::uint16_t device_port) noexcept;

// The other way (the uplink NAT): a device's ICMP error about an answer it
// got on a NATed flow (it quotes remote -> device) leaves from lopower: the
// outer source and the quoted destination address and port become
// `our_addr`/`our_port`, the same checksums updated.
translate_status translate_icmp_error_outbound(std::uint8_t* p, std::uint32_t len, const ip_address& our_addr,
                                               std::uint16_t our_port) noexcept;

}  // namespace lopower::splice
