#pragma once
// The workers' first line against handshake floods (whitepaper 5.3):
// initiations and responses are checked on the worker that receives them,
// so the control thread sees only what is worth its time.
//   - MAC1 wrong for lopower's key: junk, dropped and counted (wg_bad_mac1).
//     Making a right one needs lopower's public key, so random junk -- the
//     cheapest flood there is -- never leaves the worker.
//   - Under load (the control thread says so), a message whose MAC2 was
//     made with the cookie lopower handed its source is `proven` and goes up
//     the handshake ring; one without is `unproven` and goes up a ring of
//     its own, which the control thread answers with cookie replies only. A
//     flood of forged-but-MAC1-valid initiations fills that ring, never the
//     one proven devices use.
// The keys (each listener's MAC1 key and current cookie secret) are
// published by the control thread (RCU, as the tailnet view) whenever one
// changes; the workers read them lock-free.

#include <cstdint>

#include "dataplane/classifier.h"
#include "lopower/keys.h"

namespace lopower {

struct handshake_guard {
  struct listener_keys {
    bool known = false;      // false: not checked here (the control thread does)
    key32 mac1_key;          // HASH("mac1----" || the listener's static public key)
    key32 cookie_secret;     // Rm, renewed every 120 s
  };
  listener_keys devices, tailnet;

  listener_keys& of(listener l) noexcept { return l == listener::tailnet ? tailnet : devices; }
  const listener_keys& of(listener l) const noexcept { return l == listener::tailnet ? tailnet : devices; }
};

enum class handshake_verdict : std::uint8_t {
  junk,      // MAC1 wrong: drop on the worker
  unproven,  // under load without a valid MAC2, or not checkable here: cookie replies only
  proven,    // worth the Diffie-Hellman work
};

// The verdict on one handshake frame (classified wg_handshake), from its UDP
// payload. Cookie replies carry no MACs: they are unproven (the control
// thread authenticates them against the peer they claim to answer).
// `guard` may be null (nothing published yet): unproven.
handshake_verdict judge_handshake(const std::uint8_t* frame, const classify_result& r, const handshake_guard* guard,
                                  bool under_load) noexcept;

}  // namespace lopower
