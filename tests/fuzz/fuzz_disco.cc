// libFuzzer target: the disco message parser and the packet opener, which
// take whatever arrives on UDP or DERP behind the disco magic.
//
// The input is used three ways:
//   as a plaintext  parsed; when it parses, encoded again: never longer than
//                   the input, and it parses back to the same message (a
//                   keyless ping with 32+ bytes of padding reads back 32
//                   less, by the format: see ping::padding);
//   as a packet     opened with a fixed key pair, by keys and by the shared
//                   key: both must give the same verdict when the header
//                   names the fixed sender (mutations rarely pass the tag);
//   sealed          a message that parsed is sealed with the fixed keys and
//                   opened again: the crypto path on every valid input.
// Every refusal must name a parse_error. A violated invariant traps.
//
// Built by tests/fuzz (not by tests/unit/disco/meson.build).

#include <cstddef>
#include <cstdint>
#include <span>
#include <variant>
#include <vector>

#include "control/tailnet/disco/disco_message.h"

namespace dm = lopower::tailnet::disco;

namespace {

template <class K>
K fixed_key(std::uint8_t seed) {
  K k;
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = static_cast<std::uint8_t>(seed ^ (i * 29));
  return k;
}

struct fuzz_keys {
  lopower::private_key sender_private = fixed_key<lopower::private_key>(0x11);
  lopower::public_key sender_public = lopower::public_from_private(sender_private);
  lopower::private_key receiver_private = fixed_key<lopower::private_key>(0x22);
  lopower::public_key receiver_public = lopower::public_from_private(receiver_private);
  lopower::key32 shared = *dm::shared_key(receiver_private, sender_public);
};

const fuzz_keys& keys() {
  static const fuzz_keys k;
  return k;
}

template <class T>
void check_refusal_is_named(const lopower::result<T>& r) {
  if (!r.ok() && !dm::parse_error_of(r.error())) __builtin_trap();
}

bool keyless_padded_ping(const dm::message& m) {
  const auto* p = std::get_if<dm::ping>(&m);
  return p && !p->node_key && p->padding >= 32;
}

// Re-encoding is bounded and reads back as the same message.
void check_reencoding(const dm::message& m, std::size_t input_size) {
  const std::vector<std::uint8_t> again = dm::encode_plaintext(m);
  if (again.empty() || again.size() > input_size || again.size() != dm::plaintext_size(m)) __builtin_trap();
  const auto back = dm::parse_plaintext(again);
  if (!back.ok()) __builtin_trap();
  if (!keyless_padded_ping(m)) {
    if (!(*back == m)) __builtin_trap();
    return;
  }
  const auto* p = std::get_if<dm::ping>(&*back);
  if (!p || p->node_key || p->padding != std::get<dm::ping>(m).padding - 32) __builtin_trap();
}

void check_open(std::span<const std::uint8_t> packet) {
  const auto by_shared = dm::open(packet, keys().shared);
  check_refusal_is_named(by_shared);
  const auto by_keys = dm::open(packet, keys().receiver_private, keys().sender_public);
  check_refusal_is_named(by_keys);
  const auto sender = dm::sender_key(packet);
  if (!sender || !(*sender == keys().sender_public)) return;
  if (by_shared.ok() != by_keys.ok()) __builtin_trap();
  if (by_shared.ok() ? !(*by_shared == *by_keys) : by_shared.message() != by_keys.message()) __builtin_trap();
}

// Sealed with the fixed keys, the message opens to itself (or, for the
// keyless padded ping, to what its encoding reads back as).
void check_seal(const dm::message& m) {
  dm::nonce n{};
  const auto packet = dm::seal(m, keys().shared, keys().sender_public, n);
  if (packet.size() != dm::packet_overhead + dm::plaintext_size(m)) __builtin_trap();
  const auto opened = dm::open(packet, keys().receiver_private, keys().sender_public);
  if (!opened.ok()) __builtin_trap();
  if (!keyless_padded_ping(m) && !(*opened == m)) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> input(data, size);
  const auto parsed = dm::parse_plaintext(input);
  check_refusal_is_named(parsed);
  if (parsed.ok()) {
    check_reencoding(*parsed, size);
    check_seal(*parsed);
  }
  (void)dm::looks_like_disco(input);
  check_open(input);
  return 0;
}
