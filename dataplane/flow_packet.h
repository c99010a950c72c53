#pragma once
// What the stages that carry packets on flows (splice, inbound, uplink NAT)
// do alike with each packet: read its TCP flags, move the flow's TCP state,
// stamp the flow and count the packet. Inline: the fast path of all three.

#include <cstdint>

#include "dataplane/flow_table.h"
#include "dataplane/fragments/fragment_header.h"
#include "dataplane/inner_packet.h"
#include "dataplane/splice/translate.h"

namespace lopower {

inline splice::packet_info packet_info_of(const inner_info& info) noexcept {
  return {info.ipv6 ? ip_family::v6 : ip_family::v4, info.protocol, false, info.length, info.l4_offset};
}

// The same with the fragment flag read from `p`, the packet parse_inner
// described: all splice::flow_key_of needs, so the header is not parsed twice
// (tests/fuzz/fuzz_inner_packet.cc holds it to splice::parse_ip's reading).
inline splice::packet_info packet_info_of(const std::uint8_t* p, const inner_info& info) noexcept {
  splice::packet_info ip = packet_info_of(info);
  ip.fragment = fragments::is_fragment(p, info.ipv6);
  return ip;
}

// The state moves in the table (a compare-and-swap when it changes, counted
// for the census; a shorter timeout queues the flow for expiry's wheel).
inline void track_tcp(flow_table& flows, flow& f, const std::uint8_t* p, const inner_info& info,
                      splice::flow_direction dir, unsigned worker) noexcept {
  if (info.protocol != splice::ipproto_tcp) return;
  flows.track_tcp(f, splice::tcp_flags(p, packet_info_of(info)), dir, worker);
}

// A packet of the flow that arrived at `now` (its burst's stamp: one clock
// read per burst): the flow's stamp (expiry reads it) and this worker's
// slots of the flow's counters. `toward_device`: the device receives it.
// The stamp is stored only when it moves: the flow's other packets in the
// burst, and the other direction's worker, keep their copy of the line.
inline void count_flow_packet(flow& f, bool toward_device, unsigned worker, std::uint32_t bytes,
                              std::uint64_t now) noexcept {
  if (f.last_tsc.load(std::memory_order_relaxed) != now) f.last_tsc.store(now, std::memory_order_relaxed);
  f.traffic.add(worker, toward_device, bytes);
}

}  // namespace lopower
