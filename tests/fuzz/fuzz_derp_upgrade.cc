// libFuzzer target: a DERP server's side of the connection as the client
// sees it — the HTTP reply head and the frames behind it, or (data[0] bit 7)
// the frames after a real handshake, so that ready-state handling is reached
// too — fed in chunks of 1 + data[0] % 64 bytes into a derp::client over an
// in-memory stream. With bit 6 set, a received packet destroys the client
// (handlers may). Nothing may crash; on_closed comes at most once, and a
// closed client is not ready.
//
// Built by tests/fuzz.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "control/event_loop.h"
#include "control/tailnet/derp/derp_client.h"
#include "control/tailnet/derp/derp_frames.h"
#include "tests/unit/derp/fake_stream.h"

namespace tb = lopower::tailnet;
namespace derp = lopower::tailnet::derp;

namespace {

struct keys {
  lopower::private_key node = lopower::generate_private_key();
  lopower::private_key server = lopower::generate_private_key();
  lopower::public_key node_public = lopower::public_from_private(node);
  lopower::public_key server_public = lopower::public_from_private(server);
};

const keys& fixed_keys() {
  static const keys k;
  return k;
}

const std::string switching = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: DERP\r\n\r\n";

// The 101, ServerKey, and a ServerInfo the client can open.
std::vector<std::uint8_t> good_handshake() {
  std::vector<std::uint8_t> out(switching.begin(), switching.end());
  const auto key_frame = derp::server_key_frame(fixed_keys().server_public);
  out.insert(out.end(), key_frame.begin(), key_frame.end());
  auto info = derp::server_info_frame(fixed_keys().server, fixed_keys().node_public);
  out.insert(out.end(), info->begin(), info->end());
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static lopower::event_loop loop;
  const bool after_handshake = (data[0] & 0x80) != 0;
  const bool destroy_on_packet = (data[0] & 0x40) != 0;
  const std::size_t chunk = 1 + data[0] % 64;
  const std::span<const std::uint8_t> input(data + 1, size - 1);

  tb::test_support::fake_stream::state stream;
  std::unique_ptr<derp::client> c;
  int closes = 0;
  derp::client::handlers h;
  h.on_packet = [&](const lopower::public_key&, std::span<const std::uint8_t> p) {
    if (p.size() > derp::max_frame_body) __builtin_trap();
    if (destroy_on_packet) c.reset();
  };
  h.on_closed = [&](const std::string&) {
    ++closes;
    if (c && c->ready()) __builtin_trap();
  };
  c = std::make_unique<derp::client>(
      loop, fixed_keys().node,
      [&](tb::byte_stream::handlers sh) { return std::make_unique<tb::test_support::fake_stream>(stream, std::move(sh)); },
      std::move(h));
  if (!c->connect("127.0.0.1", 3340, "derp.test", /*preferred=*/true).ok()) __builtin_trap();
  stream.connected = true;
  stream.h.on_connected();
  if (after_handshake) {
    stream.h.on_data(good_handshake());
    if (!c->ready()) __builtin_trap();
  }
  for (std::size_t at = 0; at < input.size() && c; at += chunk) {
    const auto on_data = stream.h.on_data;  // the stream may die with the client
    on_data(input.subspan(at, std::min(chunk, input.size() - at)));
    if (closes > 1) __builtin_trap();
  }
  if (c && c->ready()) {
    const std::uint8_t packet[1] = {0};
    (void)c->send_packet(fixed_keys().server_public, packet);
  }
  return 0;
}
