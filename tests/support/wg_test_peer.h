#pragma once
// The other end of a WireGuard session with lopower, for tests: a device
// (or tailnet peer) with its own static key, running the handshake engine
// (control/wireguard/engine) from its side, and sealing and opening
// transport data with the keys it derived. Its initiations carry
// timestamps of its own (one second apart), so lopower never sees a replay.

#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <optional>
#include <vector>

#include "control/wireguard/engine/cookie.h"
#include "control/wireguard/engine/noise_handshake.h"
#include "control/wireguard/engine/tai64n.h"
#include "lopower/keys.h"
#include "lopower/wireguard_messages.h"

namespace lopower::test_support {

class wg_test_peer final : private wg::peer_lookup {
 public:
  // `lopower`: the public key of the interface it talks to.
  explicit wg_test_peer(const public_key& lopower)
      : key_(generate_private_key()), id_(key_), hs_(std::make_unique<wg::peer_handshake>(id_, lopower)), maker_(lopower),
        lopower_(lopower) {}

  const public_key& static_public() const { return id_.static_public(); }

  // An initiation to lopower (MAC1 filled in).
  wg::message_handshake_initiation initiation(std::uint64_t now_ns) {
    wg::message_handshake_initiation m{};
    ++tai_seconds_;
    if (wg::create_initiation(m, *hs_, id_, ++next_index_, wg::tai64n::from_unix(tai_seconds_, 0)) != wg::handshake_error::none)
      throw std::runtime_error("create_initiation failed");
    maker_.add_macs(m, now_ns);
    return m;
  }
  // lopower's response to our initiation: the session's keys (we initiated).
  std::optional<wg::transport_keys> consume(const wg::message_handshake_response& m) {
    if (!wg::consume_response(m, id_, *this)) return std::nullopt;
    return wg::derive_keypair(*hs_);
  }
  // lopower's initiation: our response (MAC1 filled in) in `out`, and the
  // keys. The test peer keeps no replay or flood state for lopower's
  // initiations (lopower stamps them with the wall clock, and tests send
  // several within the same instant): lopower is under test, not the peer.
  std::optional<wg::transport_keys> respond(const wg::message_handshake_initiation& m, std::uint64_t now_ns,
                                            wg::message_handshake_response& out) {
    hs_ = std::make_unique<wg::peer_handshake>(id_, lopower_);
    if (!wg::consume_initiation(m, id_, *this, now_ns)) return std::nullopt;
    out = {};
    if (wg::create_response(out, *hs_, id_, ++next_index_) != wg::handshake_error::none) return std::nullopt;
    maker_.add_macs(out, now_ns);
    return wg::derive_keypair(*hs_);
  }

 private:
  wg::peer_handshake* by_static(const public_key& k) override { return k == lopower_ ? hs_.get() : nullptr; }
  wg::peer_handshake* by_index(std::uint32_t i) override { return i == hs_->local_index() ? hs_.get() : nullptr; }

  private_key key_;
  wg::static_identity id_;
  std::unique_ptr<wg::peer_handshake> hs_;
  wg::cookie_maker maker_;
  public_key lopower_;
  std::int64_t tai_seconds_ = 1'700'000'000;
  std::uint32_t next_index_ = 0x5000;
};

// One side's view of a session: what it seals with and opens with.
struct test_session {
  wg::transport_keys keys;
  std::uint64_t next_counter = 0;
};

}  // namespace lopower::test_support
