// Every UDP payload on a WireGuard port reaches parse_message first.
#include <cstddef>
#include <cstdint>

#include "lopower/replay_window.h"
#include "lopower/wireguard_messages.h"

namespace wg = lopower::wg;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const wg::parsed_message m = wg::parse_message(data, size);
  if (!m.valid()) {
    if (m.initiation() || m.response() || m.cookie_reply() || m.transport()) __builtin_trap();
    return 0;
  }
  // What was accepted is exactly one message of the type it claims.
  if (m.data != data || m.length != size || data[0] != static_cast<std::uint8_t>(m.type)) __builtin_trap();
  if (data[1] != 0 || data[2] != 0 || data[3] != 0) __builtin_trap();
  unsigned accessors = 0;
  if (const auto* i = m.initiation()) {
    accessors++;
    if (size != sizeof *i) __builtin_trap();
    (void)i->sender_index.get();
  }
  if (const auto* r = m.response()) {
    accessors++;
    if (size != sizeof *r) __builtin_trap();
    (void)(r->sender_index.get() ^ r->receiver_index.get());
  }
  if (const auto* c = m.cookie_reply()) {
    accessors++;
    if (size != sizeof *c) __builtin_trap();
    (void)c->receiver_index.get();
  }
  if (const auto* d = m.transport()) {
    accessors++;
    if (size < wg::message_data_min_size || m.transport_payload_length() + sizeof *d != size) __builtin_trap();
    // The counter then goes to a replay window, as on the dataplane.
    lopower::replay_window w;
    const std::uint64_t counter = d->counter.get();
    const bool fresh = w.validate(counter);
    if (fresh != (counter < wg::reject_after_messages) || w.validate(counter)) __builtin_trap();
  }
  if (accessors != 1) __builtin_trap();
  return 0;
}
