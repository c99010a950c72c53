// The protocol timers of a WireGuard interface: every tick, each peer's
// wg::session_timers is shown the workers' stamps and its keypairs, and
// what it finds due is done here (expiry, retries, new handshakes,
// keepalives, giving up, zeroing).

#include <rte_cycles.h>

#include "control/clock.h"
#include "control/log.h"
#include "control/wireguard/interface.h"

namespace lopower {

void wireguard_interface::tick() {
  const std::uint64_t now = now_tsc();
  for (auto& [name, p] : peers_) peer_timers(*p, now);
  limiter_.expire(now_ns());
  publish_guard(false);
}

void wireguard_interface::peer_timers(peer& p, std::uint64_t now) {
  wg::keypair_state states[3];
  const wg::keypair_state* slots[3] = {nullptr, nullptr, nullptr};
  const wg_keypair* current_kp = p.dp->current.load(std::memory_order_relaxed);
  const wg::keypair_state* current_state = nullptr;
  for (int s = 0; s < 3; ++s) {
    const wg_keypair* kp = dp_.sessions().find(p.slots[s]);
    if (kp == nullptr) continue;
    states[s] = {kp->local_index, kp->initiator, kp->created_tsc, kp->send_counter.load(std::memory_order_relaxed)};
    slots[s] = &states[s];
    if (kp == current_kp) current_state = &states[s];
  }
  const wg::traffic_stamps stamps{p.dp->last_rx_tsc.load(std::memory_order_relaxed),
                                  p.dp->last_data_rx_tsc.load(std::memory_order_relaxed),
                                  p.dp->last_tx_tsc.load(std::memory_order_relaxed)};
  apply_timers(p, p.timers.evaluate(now, slots, current_state, stamps));
  expire_staged(p, now);
}

void wireguard_interface::apply_timers(peer& p, const wg::timer_actions& a) {
  if (a.zero_all) return zero_keys(p);
  for (slot s : {previous, current, next}) {
    if (!a.expire[s]) continue;
    erase_slot(p, s);
    ++counters_.keypairs_expired;
  }
  if (a.give_up) {
    LOG_INFO("%s %s: no answer to the handshake for %u s, giving up until there is traffic again", label_.c_str(),
             p.name.c_str(), static_cast<unsigned>(timer_settings_.rekey_attempt_s));
    ++counters_.handshakes_given_up;
    abandon_handshake(p);
  }
  if (a.keepalive) send_keepalive(p);
  if (a.initiate != wg::handshake_reason::none) {
    start_handshake(p, a.initiate);
  } else if (p.retry_soon && p.pending_index != 0) {
    start_handshake(p, wg::handshake_reason::retry);
  }
  p.retry_soon = false;
}

void wireguard_interface::start_handshake(peer& p, wg::handshake_reason why) {
  switch (why) {
    case wg::handshake_reason::retry: ++counters_.handshake_retries; break;
    case wg::handshake_reason::unanswered:
      ++counters_.unanswered_handshakes;
      LOG_INFO("%s %s: data sent and nothing received for %u s: new handshake", label_.c_str(), p.name.c_str(),
               static_cast<unsigned>(timer_settings_.keepalive_timeout_s + timer_settings_.rekey_timeout_s));
      // The path may be what broke: let the owner check it again.
      ask_for_path(p);
      break;
    case wg::handshake_reason::keypair_aged:
    case wg::handshake_reason::keypair_near_expiry: ++counters_.rekeys_started; break;
    case wg::handshake_reason::none: return;
  }
  initiate(p, why == wg::handshake_reason::retry);
}

// Nothing new for 3 x REJECT_AFTER_TIME: no key material is kept around.
void wireguard_interface::zero_keys(peer& p) {
  for (slot s : {previous, current, next}) erase_slot(p, s);
  abandon_handshake(p);
  ++counters_.sessions_zeroed;
}

// No session is coming: the handshake state is wiped and what waited for it dropped.
void wireguard_interface::abandon_handshake(peer& p) {
  forget_pending(p);
  p.hs->clear();
  drop_staged(p, drop_reason::wg_staged_gave_up);
}

}  // namespace lopower
