// Handshake messages from anyone reach the engine: MAC checks, cookie
// replies, and the Noise consumption of initiations and responses. One
// fixed identity per side and one known peer (the with-PSK keys of
// tests/unit/wireguard/vectors.json), so that the seed corpus (that file's
// messages) reaches the deep paths and mutations of it explore them.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

#include "control/wireguard/engine/cookie.h"
#include "control/wireguard/engine/noise_handshake.h"
#include "control/wireguard/engine/tai64n.h"
#include "lopower/wireguard_messages.h"

namespace {

using namespace lopower;
using namespace lopower::wg;

template <class K>
K key(std::string_view hex) {
  return *K::from_hex(hex);
}

// Initiator and responder of the vectors' first handshake.
const static_identity& initiator() {
  static const static_identity id(key<private_key>("b057a5e84e3d2895491b61974309ded67f2d7a4ea1f3d0ce984ef2cb56d86d7a"));
  return id;
}
const static_identity& responder() {
  static const static_identity id(key<private_key>("f07f6248e2fb9c51f1a54b1022f31c6e46101972b0d7ba4e87ff83e38e83cb6a"));
  return id;
}
const key32 psk = key<key32>("b9b30ef0fe3bc8d88dad889ba39d0792dbb94c7e37d2690eabdee8645fcb9694");
constexpr std::uint32_t initiator_index = 3651740774u;
constexpr std::uint64_t now_ns = 1'000'000'000'000;

// Fixed randomness: the vectors' initiator ephemeral first, then a pattern.
class fixed_random final : public random_source {
 public:
  void fill(std::uint8_t* out, std::size_t length) noexcept override {
    const auto eph = key<private_key>("605ee1286a43a0014422c9c91e5d0240b517cc17fd3f0134496ec0b9a4324043");
    for (std::size_t i = 0; i < length; ++i)
      out[i] = calls_ == 0 && i < eph.size() ? eph[i] : static_cast<std::uint8_t>(i * 29 + calls_);
    ++calls_;
  }

 private:
  unsigned calls_ = 0;
};

class one_peer final : public peer_lookup {
 public:
  explicit one_peer(peer_handshake& p) : peer_(p) {}
  peer_handshake* by_static(const public_key& k) override { return k == peer_.remote_static() ? &peer_ : nullptr; }
  peer_handshake* by_index(std::uint32_t i) override { return i == peer_.local_index() ? &peer_ : nullptr; }

 private:
  peer_handshake& peer_;
};

void check_macs(const static_identity& local, const std::uint8_t* data, std::size_t size) {
  cookie_checker checker;
  const std::uint8_t ip[16] = {0x20, 0x01, 0x0d, 0xb8};
  const auto v4 = packet_source::v4(ip, 51820);
  const auto v6 = packet_source::v6(ip, 51820);
  const mac_status a = checker.validate(local, data, size, v4, false, now_ns);
  const mac_status b = checker.validate(local, data, size, v6, true, now_ns);
  // MAC1 alone decides validity; MAC2 can only add the cookie.
  if ((a == mac_status::invalid_mac) != (b == mac_status::invalid_mac)) __builtin_trap();
  message_handshake_cookie reply;
  if (checker.create_reply(reply, local, data, size, v4, now_ns) &&
      !parse_message(reinterpret_cast<const std::uint8_t*>(&reply), sizeof reply).cookie_reply())
    __builtin_trap();
}

// We are the responder; the input is an initiation.
void as_responder(const message_handshake_initiation& in) {
  peer_handshake peer(responder(), initiator().static_public(), psk);
  one_peer peers(peer);
  const consume_result r = consume_initiation(in, responder(), peers, now_ns);
  if (!r) {
    if (r.peer != nullptr || peer.state() != handshake_state::zeroed) __builtin_trap();
    return;
  }
  if (r.peer != &peer || peer.state() != handshake_state::consumed_initiation) __builtin_trap();
  // The same initiation again is a replay.
  if (consume_initiation(in, responder(), peers, now_ns + 1'000'000'000).error != handshake_error::replayed_timestamp)
    __builtin_trap();
  fixed_random rng;
  message_handshake_response resp;
  if (create_response(resp, peer, responder(), 7, rng) != handshake_error::none) __builtin_trap();
  if (!derive_keypair(peer) || peer.state() != handshake_state::zeroed) __builtin_trap();
}

// We are the initiator with the vectors' initiation pending; the input is a
// response (or, to the cookie maker, a cookie reply).
void as_initiator(const std::uint8_t* data, std::size_t size) {
  peer_handshake peer(initiator(), responder().static_public(), psk);
  one_peer peers(peer);
  fixed_random rng;
  message_handshake_initiation init;
  if (create_initiation(init, peer, initiator(), initiator_index, tai64n::from_unix(1700000000, 5u << 24), rng) !=
      handshake_error::none)
    __builtin_trap();
  cookie_maker maker(responder().static_public());
  if (!maker.add_macs(init, now_ns)) __builtin_trap();

  const parsed_message m = parse_message(data, size);
  if (const auto* resp = m.response()) {
    const consume_result r = consume_response(*resp, initiator(), peers);
    if (r) {
      const auto keys = derive_keypair(peer);
      if (!keys || !keys->initiator || keys->local_index != initiator_index) __builtin_trap();
    } else if (peer.state() != handshake_state::created_initiation) {
      __builtin_trap();
    }
  }
  if (const auto* reply = m.cookie_reply()) {
    if (maker.consume_reply(*reply, now_ns)) {
      // A cookie was taken: the next message carries MAC2, and the same
      // reply cannot be used twice.
      if (!maker.has_cookie(now_ns) || maker.consume_reply(*reply, now_ns)) __builtin_trap();
      if (!maker.add_macs(init, now_ns)) __builtin_trap();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // MAC checks take any bytes of any length.
  check_macs(responder(), data, size);
  check_macs(initiator(), data, size);

  // The Noise steps see what the parser lets through; to reach them
  // without forging MAC1, they are driven with the MACs unchecked, as if
  // the attacker knew the public keys (MAC1 is no secret to such a one).
  const parsed_message m = parse_message(data, size);
  if (const auto* in = m.initiation()) as_responder(*in);
  if (m.response() || m.cookie_reply()) as_initiator(data, size);
  // Also read any 148/92/64 bytes whatever their type byte says.
  if (size == sizeof(message_handshake_initiation)) {
    message_handshake_initiation copy;
    std::memcpy(&copy, data, sizeof copy);
    as_responder(copy);
  }
  return 0;
}
