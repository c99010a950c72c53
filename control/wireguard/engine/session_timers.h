#pragma once
// WireGuard's timer rules for one peer (whitepaper §6, as the Linux module's
// timers.c and wireguard-go's timers.go apply them), as a pure state machine:
// the interface feeds it what happened (handshakes sent and made, keepalives
// sent) and what the workers stamped (last packet received, last data sent
// and received), asks it every tick what to do, and does it. Times are in
// ticks of one monotonic clock (`hz` per second); 0 means "never".
//
//   - a handshake in flight is sent again after REKEY_TIMEOUT plus up to a
//     third of a second of jitter, until REKEY_ATTEMPT_TIME, then given up;
//   - data sent and nothing received for KEEPALIVE_TIMEOUT + REKEY_TIMEOUT:
//     a new handshake (the peer may have lost the session: a restart);
//   - the initiator of the current keypair renews it when it sends on it
//     after REKEY_AFTER_TIME or REKEY_AFTER_MESSAGES, or receives on it past
//     REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT (once per keypair);
//     the responder too at that point, should the initiator never rekey;
//   - every keypair expires at REJECT_AFTER_TIME;
//   - data received and nothing sent back for KEEPALIVE_TIMEOUT: a keepalive;
//   - no new session for 3 x REJECT_AFTER_TIME: every key is forgotten.

#include <cstdint>

namespace lopower::wg {

struct timer_settings {
  std::uint64_t hz = 1'000'000'000;  // ticks per second of every time given
  std::uint64_t rekey_after_s = 120;
  std::uint64_t reject_after_s = 180;
  std::uint64_t keepalive_timeout_s = 10;
  std::uint64_t rekey_timeout_s = 5;
  std::uint64_t rekey_attempt_s = 90;
  std::uint64_t rekey_after_messages = std::uint64_t{1} << 60;
};

// A live keypair, as the timers need to see it.
struct keypair_state {
  std::uint32_t index = 0;  // identifies it (our receiver index)
  bool initiator = false;
  std::uint64_t created = 0;
  std::uint64_t sent_messages = 0;
};

// The workers' stamps for the peer (0: never).
struct traffic_stamps {
  std::uint64_t last_rx = 0;       // any authenticated transport packet, keepalives too
  std::uint64_t last_data_rx = 0;  // a packet with a payload
  std::uint64_t last_data_tx = 0;  // data we sent (keepalives not)
};

enum class handshake_reason : std::uint8_t {
  none,
  retry,              // the one in flight had no answer within REKEY_TIMEOUT
  unanswered,         // data sent, nothing back
  keypair_aged,       // sending on an old keypair (or one near its message limit)
  keypair_near_expiry,  // receiving on a keypair close to expiry
};
const char* to_string(handshake_reason r);

struct timer_actions {
  bool expire[3] = {false, false, false};  // keypair slots (previous, current, next) past REJECT_AFTER_TIME
  bool zero_all = false;                   // forget every key and the handshake state
  bool give_up = false;                    // the handshake in flight ran out of attempts
  handshake_reason initiate = handshake_reason::none;
  bool keepalive = false;
};

class session_timers {
 public:
  explicit session_timers(const timer_settings& s) : s_(s) {}

  // An initiation went out: the first of a series, or a retry of it.
  // `jitter` (ticks, up to a third of a second) spreads the retries.
  void initiation_sent(std::uint64_t now, std::uint64_t jitter, bool retry);
  // A handshake completed, in either role: a new session.
  void session_made(std::uint64_t now);
  void keepalive_sent(std::uint64_t now) { last_keepalive_ = now; }
  // The handshake in flight was abandoned by the interface.
  void abandon_handshake() { pending_ = false; }
  // The keys were forgotten (or the peer lost its own): start over.
  void reset();
  bool handshake_pending() const { return pending_; }

  // What is due at `now`. `slots`: previous, current, next (nullptr: empty);
  // `current`: the keypair data is sent with (one of them, or nullptr).
  timer_actions evaluate(std::uint64_t now, const keypair_state* const slots[3], const keypair_state* current,
                         const traffic_stamps& t);

 private:
  std::uint64_t seconds(std::uint64_t s) const { return s * s_.hz; }
  handshake_reason rekey_due(std::uint64_t now, const keypair_state& kp, const traffic_stamps& t) const;

  timer_settings s_;
  bool pending_ = false;
  std::uint64_t first_attempt_ = 0, next_retry_ = 0;
  std::uint64_t last_session_ = 0;
  std::uint64_t last_keepalive_ = 0;
  std::uint64_t unanswered_since_ = 0;  // the first data sent after the last packet received
  std::uint64_t quiet_until_ = 0;       // data sent before this does not count as unanswered
  std::uint32_t rekeyed_ = 0;           // the keypair a rekey was started for (once each)
};

}  // namespace lopower::wg
