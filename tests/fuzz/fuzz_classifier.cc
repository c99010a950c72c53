// Any frame off the wire goes through classify_frame and, for ARP/ND,
// neighbour_from_frame: neither may read out of bounds or crash. The frame
// is classified as a devices/tailnet port sees it and as an uplink port
// does (replies on NATed flows: uplink_nat, whose IP packet the worker
// then reads from l3_offset; its translation is fuzz_splice's). And
// classify_frame's shortcut for transport data must decide every frame as
// the full walk does.
#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>

#include "dataplane/classifier.h"

namespace {

lopower::port_identity make_identity() {
  lopower::port_identity p;
  p.add_address(*lopower::ip_address::parse("198.18.0.1"));
  p.add_address(*lopower::ip_address::parse("fd00:198:18::1"));
  p.device_port_be = htons(51820);
  p.tailnet_port_be = htons(41641);
  return p;
}

lopower::port_identity make_uplink_identity() {
  lopower::port_identity p;
  p.add_address(*lopower::ip_address::parse("192.0.2.2"));
  p.add_address(*lopower::ip_address::parse("2001:db8::2"));
  p.uplink = true;
  p.nat_first_port = 20000;
  p.nat_last_port = 29999;
  return p;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const lopower::port_identity identity = make_identity();
  const auto len = static_cast<std::uint32_t>(size);
  const lopower::classify_result r = lopower::classify_frame(data, len, identity);
  if (!(r == lopower::classify_frame_walk(data, len, identity))) __builtin_trap();
  if (r.cls != lopower::packet_class::drop && r.to != lopower::listener::none) {
    // Offsets handed to later stages must lie inside the frame.
    if (r.payload_offset + r.payload_length > size) __builtin_trap();
  }
  static const lopower::port_identity uplink = make_uplink_identity();
  const lopower::classify_result u = lopower::classify_frame(data, len, uplink);
  if (!(u == lopower::classify_frame_walk(data, len, uplink))) __builtin_trap();
  if (u.cls == lopower::packet_class::uplink_nat && (u.l3_offset != 14 || u.l4_offset + 4u > size)) __builtin_trap();
  if (u.cls != lopower::packet_class::uplink_nat && u.cls != lopower::packet_class::drop && u.to != lopower::listener::none)
    __builtin_trap();  // an uplink has no listener of its own
  (void)lopower::neighbour_from_frame(data, len);
  return 0;
}
