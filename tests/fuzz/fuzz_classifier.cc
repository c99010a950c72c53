// Any frame off the wire goes through classify_frame and, for ARP/ND,
// neighbour_from_frame: neither may read out of bounds or crash.
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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const lopower::port_identity identity = make_identity();
  const auto len = static_cast<std::uint32_t>(size);
  const lopower::classify_result r = lopower::classify_frame(data, len, identity);
  if (r.cls != lopower::packet_class::drop && r.to != lopower::listener::none) {
    // Offsets handed to later stages must lie inside the frame.
    if (r.payload_offset + r.payload_length > size) __builtin_trap();
  }
  (void)lopower::neighbour_from_frame(data, len);
  return 0;
}
