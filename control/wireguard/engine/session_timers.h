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

#include <chrono>
#include <cstdint>

#include "lopower/enum_list.h"
#include "lopower/wireguard_messages.h"

namespace lopower::wg {

// The protocol's times (lopower/wireguard_messages.h) in whole seconds.
constexpr std::uint64_t whole_seconds(std::chrono::seconds s) { return static_cast<std::uint64_t>(s.count()); }

struct timer_settings {
  std::uint64_t hz = 1'000'000'000;  // ticks per second of every time given
  std::uint64_t rekey_after_s = whole_seconds(rekey_after_time);
  std::uint64_t reject_after_s = whole_seconds(reject_after_time);
  std::uint64_t keepalive_timeout_s = whole_seconds(keepalive_timeout);
  std::uint64_t rekey_timeout_s = whole_seconds(rekey_timeout);
  std::uint64_t rekey_attempt_s = whole_seconds(rekey_attempt_time);
  std::uint64_t rekey_after_messages = lopower::wg::rekey_after_messages;
};

// A retry's jitter is drawn in whole milliseconds from 0 to
// rekey_timeout_jitter_max: this many choices.
inline constexpr std::uint32_t rekey_jitter_choices_ms =
    static_cast<std::uint32_t>(rekey_timeout_jitter_max.count()) + 1;

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

// X(identifier): the enum, the names and the count come from this list.
#define LOPOWER_HANDSHAKE_REASONS(X)                                                        \
  X(none)                                                                                   \
  X(retry)               /* the one in flight had no answer within REKEY_TIMEOUT */         \
  X(unanswered)          /* data sent, nothing back */                                      \
  X(keypair_aged)        /* sending on an old keypair (or one near its message limit) */    \
  X(keypair_near_expiry) /* receiving on a keypair close to expiry */

enum class handshake_reason : std::uint8_t { LOPOWER_HANDSHAKE_REASONS(LOPOWER_ENUM_ENUMERATOR) };
inline constexpr std::size_t handshake_reason_count = LOPOWER_ENUM_COUNT(LOPOWER_HANDSHAKE_REASONS);
inline constexpr std::array<const char*, handshake_reason_count> handshake_reason_names{
    LOPOWER_HANDSHAKE_REASONS(LOPOWER_ENUM_NAME)};
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
  // `jitter` (ticks, up to rekey_timeout_jitter_max) spreads the retries.
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
