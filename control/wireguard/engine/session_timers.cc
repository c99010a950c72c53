#include "control/wireguard/engine/session_timers.h"

#include <algorithm>

namespace lopower::wg {
namespace {

// Workers stamp concurrently: a stamp later than the `now` read before it
// is zero ticks old, not 2^64.
std::uint64_t since(std::uint64_t now, std::uint64_t then) { return then > now ? 0 : now - then; }

}  // namespace

const char* to_string(handshake_reason r) { return name_in(handshake_reason_names, r, "?"); }

void session_timers::initiation_sent(std::uint64_t now, std::uint64_t jitter, bool retry) {
  if (!retry || !pending_) first_attempt_ = now;
  pending_ = true;
  next_retry_ = now + seconds(s_.rekey_timeout_s) + jitter;
}

void session_timers::session_made(std::uint64_t now) {
  pending_ = false;
  last_session_ = now;
  // What was sent before the session is not waiting for an answer on it.
  unanswered_since_ = 0;
  quiet_until_ = now;
}

void session_timers::reset() {
  pending_ = false;
  last_session_ = 0;
  unanswered_since_ = 0;
}

handshake_reason session_timers::rekey_due(std::uint64_t now, const keypair_state& kp, const traffic_stamps& t) const {
  if (kp.index == rekeyed_) return handshake_reason::none;
  const std::uint64_t old = kp.created + seconds(s_.rekey_after_s);
  if (kp.initiator && ((now >= old && t.last_data_tx >= old) || kp.sent_messages >= s_.rekey_after_messages))
    return handshake_reason::keypair_aged;
  // Close to expiry and still in use: the initiator renews it, as the
  // protocol says; so does the responder, for an initiator (a small device's
  // library, say) that never rekeys -- with one that does, it never gets here.
  const std::uint64_t margin = s_.keepalive_timeout_s + s_.rekey_timeout_s;
  if (s_.reject_after_s > margin) {
    const std::uint64_t late = kp.created + seconds(s_.reject_after_s - margin);
    const bool in_use = t.last_rx >= late || (!kp.initiator && t.last_data_tx >= late);
    if (now >= late && in_use) return handshake_reason::keypair_near_expiry;
  }
  return handshake_reason::none;
}

timer_actions session_timers::evaluate(std::uint64_t now, const keypair_state* const slots[3],
                                       const keypair_state* current, const traffic_stamps& t) {
  timer_actions a;
  for (int s = 0; s < 3; ++s)
    a.expire[s] = slots[s] != nullptr && since(now, slots[s]->created) >= seconds(s_.reject_after_s);
  if (last_session_ != 0 && since(now, last_session_) >= 3 * seconds(s_.reject_after_s)) {
    a.zero_all = true;
    reset();
    return a;
  }
  for (int s = 0; s < 3; ++s)
    if (a.expire[s] && slots[s] == current) current = nullptr;

  if (pending_ && now >= next_retry_) {
    if (since(now, first_attempt_) >= seconds(s_.rekey_attempt_s)) {
      a.give_up = true;
      pending_ = false;
    } else {
      a.initiate = handshake_reason::retry;
    }
  }

  // Passive keepalive: the peer sent data and heard nothing back.
  if (current != nullptr && t.last_data_rx > std::max(t.last_data_tx, last_keepalive_) &&
      since(now, t.last_data_rx) >= seconds(s_.keepalive_timeout_s))
    a.keepalive = true;

  // Sent, and nothing came back since: armed by the first such send.
  if (unanswered_since_ != 0 && t.last_rx >= unanswered_since_) unanswered_since_ = 0;
  if (unanswered_since_ == 0 && t.last_data_tx > std::max(t.last_rx, quiet_until_)) unanswered_since_ = t.last_data_tx;
  if (pending_ || a.give_up || a.initiate != handshake_reason::none) return a;
  if (unanswered_since_ != 0 && since(now, unanswered_since_) >= seconds(s_.keepalive_timeout_s + s_.rekey_timeout_s)) {
    a.initiate = handshake_reason::unanswered;
    unanswered_since_ = 0;
    quiet_until_ = now;  // the next send arms it again
    return a;
  }
  if (current != nullptr) {
    a.initiate = rekey_due(now, *current, t);
    if (a.initiate != handshake_reason::none) rekeyed_ = current->index;
  }
  return a;
}

}  // namespace lopower::wg
