// libFuzzer target: the ts2021 record reader and the early payload reader,
// which take whatever the control server's socket delivers.
//
// The first byte picks a mode:
//   even  the input is the wire: records as they come, cut into chunks
//         whose sizes the input's own bytes choose;
//   odd   the input is plaintext: sealed into records with our writer
//         (so that mutations reach past the tag check), one byte
//         possibly flipped, then read back in chunks. Unflipped, what
//         comes out must be exactly what went in.
// Either way the plaintext goes through the early payload reader, and the
// input is parsed as early payload JSON too. Bounds are checked on every
// step; a violated invariant traps.
//
// Built by tests/fuzz (not by tests/unit/controlbase/meson.build).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "control/tailnet/controlbase/record_stream.h"

namespace tb = lopower::tailnet;

namespace {

lopower::key32 fuzz_key() {
  lopower::key32 k;
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = static_cast<std::uint8_t>(0x5a ^ i);
  return k;
}

// Feeds `wire` to a fresh reader in chunks sized by `sizes` (cycled), and
// the plaintext on to an early payload reader. Fills `plain`; true when
// every record was accepted and none was left incomplete.
bool read_all(std::span<const std::uint8_t> wire, std::span<const std::uint8_t> sizes, std::vector<std::uint8_t>& plain) {
  tb::record_reader rx(fuzz_key());
  tb::early_payload_reader early(4096);
  std::vector<std::uint8_t> rest;
  std::size_t at = 0, turn = 0;
  bool ok = true;
  while (at < wire.size()) {
    std::size_t n = sizes.empty() ? wire.size() : 1 + sizes[turn++ % sizes.size()] * 37u;
    if (n > wire.size() - at) n = wire.size() - at;
    const std::size_t before = plain.size();
    const tb::record_error e = rx.feed(wire.subspan(at, n), plain);
    at += n;
    if (plain.size() > at) __builtin_trap();  // plaintext never outgrows the wire bytes
    if (rx.buffered() > tb::max_record_size) __builtin_trap();
    if (e != tb::record_error::none) {
      ok = false;
      if (!rx.failed()) __builtin_trap();
      std::vector<std::uint8_t> none;
      if (rx.feed(wire.subspan(at), none) != tb::record_error::stream_failed || !none.empty()) __builtin_trap();
      break;
    }
    const std::size_t rest_before = rest.size();
    const auto r = early.feed(std::span(plain).subspan(before), rest);
    if (early.buffered() > tb::early_payload_header_size + 4096) __builtin_trap();
    if (!r.ok() && !early.failed()) __builtin_trap();
    if (r.ok() && !early.done() && rest.size() != rest_before) __builtin_trap();  // nothing passes before it decides
  }
  return ok && rx.buffered() == 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::span<const std::uint8_t> input(data + 1, size - 1);
  (void)tb::parse_early_payload_json(std::string_view(reinterpret_cast<const char*>(input.data()), input.size()));

  // Chunk sizes come from the input's last bytes (up to 8).
  const std::size_t nsizes = input.size() < 8 ? input.size() : 8;
  const auto sizes = input.subspan(input.size() - nsizes);

  std::vector<std::uint8_t> plain;
  if ((data[0] & 1) == 0) {
    read_all(input, sizes, plain);
    return 0;
  }

  // Odd: seal the input, split at the bytes the input chooses.
  tb::record_writer tx(fuzz_key());
  std::vector<std::uint8_t> wire;
  std::size_t at = 0, turn = 0;
  while (at < input.size()) {
    std::size_t n = sizes.empty() ? input.size() : sizes[turn++ % sizes.size()] * 23u;
    if (n > input.size() - at) n = input.size() - at;
    if (tx.seal_record(input.subspan(at, n), wire) != tb::record_error::none) __builtin_trap();
    at += n;
    if (turn > 4096) break;  // enough records: the reader has had its chance
  }
  const bool flip = (data[0] & 2) != 0 && !wire.empty();
  if (flip) wire[(static_cast<std::size_t>(data[0]) * 131 + size) % wire.size()] ^= static_cast<std::uint8_t>(1 | data[0]);
  const bool ok = read_all(wire, sizes, plain);
  if (!flip) {
    if (!ok) __builtin_trap();
    if (plain.size() != at || !std::equal(plain.begin(), plain.end(), input.begin())) __builtin_trap();
  } else if (ok) {
    __builtin_trap();  // a flipped byte in header, ciphertext or tag never goes unnoticed
  }
  return 0;
}
