// libFuzzer target: a DERP server's byte stream after the upgrade, cut into
// chunks of 1 + data[0] % 64 bytes, through the frame reader (under a small
// body bound so that the bound is reached too), and every frame body
// through every parser. Nothing may crash, over-read, or hold more than its
// bound.
//
// Built by tests/fuzz (not by tests/unit/derp/meson.build).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>

#include "control/tailnet/derp/derp_frames.h"

namespace derp = lopower::tailnet::derp;

namespace {

const lopower::private_key& node_key() {
  static const lopower::private_key k = lopower::generate_private_key();
  return k;
}
const lopower::public_key& server_public() {
  static const lopower::public_key k = lopower::public_from_private(lopower::generate_private_key());
  return k;
}

void parse_every_way(std::span<const std::uint8_t> body) {
  if (const auto k = derp::parse_server_key(body); k.ok() && body.size() < derp::server_key_body_size) __builtin_trap();
  (void)derp::open_server_info(body, node_key(), server_public());
  (void)derp::open_client_info(body, node_key());
  if (const auto p = derp::parse_recv_packet(body); p.ok() && p->packet.size() + lopower::key_size != body.size())
    __builtin_trap();
  if (const auto g = derp::parse_peer_gone(body); g.ok() && body.size() < lopower::key_size) __builtin_trap();
  (void)derp::parse_restarting(body);
  (void)derp::parse_ping_data(body);
  if (derp::parse_health(body).size() > derp::max_health_text) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::span<const std::uint8_t> input(data + 1, size - 1);
  constexpr std::size_t max_body = 2048;
  derp::frame_reader r(max_body);
  const std::size_t chunk = 1 + data[0] % 64;
  for (std::size_t at = 0; at < input.size(); at += chunk) {
    r.feed(input.subspan(at, std::min(chunk, input.size() - at)));
    if (r.buffered() > derp::frame_header_size + max_body + chunk) __builtin_trap();
    for (;;) {
      auto next = r.next();
      if (!next.ok()) {
        if (!r.failed() || r.next().ok()) __builtin_trap();
        return 0;
      }
      if (!*next) break;
      if ((*next)->body.size() > max_body) __builtin_trap();
      parse_every_way((*next)->body);
    }
  }
  return 0;
}
