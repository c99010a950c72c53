// libFuzzer target: whatever arrives on the WireGuard port that might be a
// STUN answer, through is_binding_response and parse_binding_response.
// Nothing may crash or over-read; a parsed response must have passed the
// cheap check and carry the packet's transaction ID.
//
// Built by tests/fuzz.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>

#include "control/tailnet/stun/stun.h"

namespace stun = lopower::tailnet::stun;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> packet(data, size);
  const bool looks = stun::is_binding_response(packet);
  const auto r = stun::parse_binding_response(packet);
  if (r) {
    if (!looks) __builtin_trap();
    if (!std::equal(r->txid.begin(), r->txid.end(), data + 8)) __builtin_trap();
    if (r->address.family != lopower::ip_family::v4 && r->address.family != lopower::ip_family::v6) __builtin_trap();
  }
  return 0;
}
