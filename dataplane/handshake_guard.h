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

// Whether a worker is under handshake load. The control thread's flag is
// set on its tick, from every worker's backlog; a burst of forgeries with a
// valid MAC1 arriving between two ticks would meanwhile all be `proven` and
// could fill the ring real devices use. So each worker also looks at its
// own rings, per frame, as the Linux module looks at its queue: past the
// threshold it is under load at once, and stays so for `hold` cycles so
// that cookies do not flicker on and off.
struct handshake_load {
  std::uint32_t threshold = 0;  // 0: the control thread's flag only
  std::uint64_t hold = 0;       // cycles
  std::uint64_t loaded_until = 0;

  bool under_load(std::uint64_t now, std::size_t backlog, bool control_says) noexcept {
    if (threshold != 0 && backlog > threshold) loaded_until = now + hold;
    return control_says || now < loaded_until;
  }
};

// The verdict on one handshake frame (classified wg_handshake), from its UDP
// payload. Cookie replies carry no MACs: they are unproven (the control
// thread authenticates them against the peer they claim to answer).
// `guard` may be null (nothing published yet): unproven.
handshake_verdict judge_handshake(const std::uint8_t* frame, const classify_result& r, const handshake_guard* guard,
                                  bool under_load) noexcept;

}  // namespace lopower
