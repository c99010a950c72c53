// WireGuard's timer rules (session_timers) on a clock of whole milliseconds:
// each test walks one rule through the moments before and after it is due.

#include "control/wireguard/engine/session_timers.h"

#include <gtest/gtest.h>

namespace lopower::wg {
namespace {

constexpr std::uint64_t ms = 1;
constexpr std::uint64_t s = 1000 * ms;
constexpr std::uint64_t t0 = 1'000'000 * s;  // far from zero: 0 means "never"

timer_settings settings() {
  timer_settings st;
  st.hz = s;
  return st;
}

struct peer_fixture {
  session_timers timers{settings()};
  keypair_state kp{7, true, t0, 0};
  traffic_stamps t;

  timer_actions at(std::uint64_t now, const keypair_state* current) {
    const keypair_state* slots[3] = {nullptr, current, nullptr};
    return timers.evaluate(now, slots, current, t);
  }
};

TEST(session_timers, nothing_due_on_a_quiet_fresh_session) {
  peer_fixture p;
  p.timers.session_made(t0);
  const timer_actions a = p.at(t0 + 30 * s, &p.kp);
  EXPECT_EQ(a.initiate, handshake_reason::none);
  EXPECT_FALSE(a.keepalive);
  EXPECT_FALSE(a.give_up);
  EXPECT_FALSE(a.zero_all);
  EXPECT_FALSE(a.expire[1]);
}

// The restarted peer: we keep sending, it never answers.
TEST(session_timers, data_sent_and_nothing_received_starts_a_handshake_after_15_seconds) {
  peer_fixture p;
  p.timers.session_made(t0);
  p.t.last_rx = t0 + 1 * s;
  p.t.last_data_tx = t0 + 2 * s;  // the first unanswered packet
  EXPECT_EQ(p.at(t0 + 2 * s, &p.kp).initiate, handshake_reason::none);
  p.t.last_data_tx = t0 + 16 * s;  // more sent since: the clock runs from the first
  EXPECT_EQ(p.at(t0 + 16 * s + 999 * ms, &p.kp).initiate, handshake_reason::none);
  EXPECT_EQ(p.at(t0 + 17 * s, &p.kp).initiate, handshake_reason::unanswered);
  // Fired once; armed again only by data sent after that.
  EXPECT_EQ(p.at(t0 + 40 * s, &p.kp).initiate, handshake_reason::none);
  p.t.last_data_tx = t0 + 41 * s;
  EXPECT_EQ(p.at(t0 + 41 * s, &p.kp).initiate, handshake_reason::none);
  EXPECT_EQ(p.at(t0 + 56 * s, &p.kp).initiate, handshake_reason::unanswered);
}

TEST(session_timers, an_answer_disarms_the_unanswered_rule) {
  peer_fixture p;
  p.timers.session_made(t0);
  p.t.last_data_tx = t0 + 2 * s;
  EXPECT_EQ(p.at(t0 + 3 * s, &p.kp).initiate, handshake_reason::none);
  p.t.last_rx = t0 + 4 * s;  // a keepalive counts
  EXPECT_EQ(p.at(t0 + 20 * s, &p.kp).initiate, handshake_reason::none);
}

TEST(session_timers, data_sent_before_the_session_was_made_does_not_count) {
  peer_fixture p;
  p.t.last_data_tx = t0 - 1 * s;
  p.timers.session_made(t0);
  EXPECT_EQ(p.at(t0 + 60 * s, &p.kp).initiate, handshake_reason::none);
}

TEST(session_timers, a_stamp_newer_than_now_is_not_ancient) {
  peer_fixture p;
  p.timers.session_made(t0);
  p.t.last_data_rx = t0 + 5 * s;
  p.t.last_data_tx = t0 + 5 * s;
  // A worker stamped after `now` was read: no keepalive, no handshake.
  const timer_actions a = p.at(t0 + 5 * s - 1, &p.kp);
  EXPECT_FALSE(a.keepalive);
  EXPECT_EQ(a.initiate, handshake_reason::none);
}

TEST(session_timers, retries_every_rekey_timeout_plus_jitter_and_gives_up_after_90_seconds) {
  peer_fixture p;
  p.timers.initiation_sent(t0, 200 * ms, false);
  EXPECT_TRUE(p.timers.handshake_pending());
  EXPECT_EQ(p.at(t0 + 5 * s + 199 * ms, nullptr).initiate, handshake_reason::none);
  EXPECT_EQ(p.at(t0 + 5 * s + 200 * ms, nullptr).initiate, handshake_reason::retry);
  std::uint64_t now = t0 + 5 * s + 200 * ms;
  int retries = 1;
  for (;;) {
    p.timers.initiation_sent(now, 333 * ms, true);
    now += 5 * s + 333 * ms;
    const timer_actions a = p.at(now, nullptr);
    if (a.give_up) break;
    ASSERT_EQ(a.initiate, handshake_reason::retry);
    ++retries;
    ASSERT_LT(retries, 30);
  }
  EXPECT_GE(now - t0, 90 * s);
  EXPECT_EQ(retries, 16);  // 90 s / (5 s + jitter)
  EXPECT_FALSE(p.timers.handshake_pending());
  EXPECT_EQ(p.at(now + 10 * s, nullptr).initiate, handshake_reason::none);
}

TEST(session_timers, a_completed_handshake_stops_the_retries) {
  peer_fixture p;
  p.timers.initiation_sent(t0, 0, false);
  p.timers.session_made(t0 + 1 * s);
  EXPECT_FALSE(p.timers.handshake_pending());
  EXPECT_EQ(p.at(t0 + 6 * s, &p.kp).initiate, handshake_reason::none);
}

TEST(session_timers, the_initiator_rekeys_when_sending_after_rekey_after_time) {
  peer_fixture p;
  p.timers.session_made(t0);
  p.t.last_rx = t0 + 119 * s;
  p.t.last_data_tx = t0 + 119 * s;
  EXPECT_EQ(p.at(t0 + 120 * s, &p.kp).initiate, handshake_reason::none);  // nothing sent since it got old
  p.t.last_data_tx = t0 + 121 * s;
  p.t.last_rx = t0 + 121 * s;
  EXPECT_EQ(p.at(t0 + 121 * s, &p.kp).initiate, handshake_reason::keypair_aged);
  EXPECT_EQ(p.at(t0 + 122 * s, &p.kp).initiate, handshake_reason::none);  // once per keypair
}

TEST(session_timers, the_responder_leaves_rekey_after_time_to_the_initiator) {
  peer_fixture p;
  p.kp.initiator = false;
  p.timers.session_made(t0);
  p.t.last_rx = p.t.last_data_tx = t0 + 150 * s;
  EXPECT_EQ(p.at(t0 + 150 * s, &p.kp).initiate, handshake_reason::none);
}

// An initiator that never rekeys (some small devices' libraries): the
// session is renewed before it expires under traffic.
TEST(session_timers, the_responder_renews_a_keypair_in_use_close_to_expiry) {
  peer_fixture p;
  p.kp.initiator = false;
  p.timers.session_made(t0);
  p.t.last_data_tx = t0 + 165 * s;
  EXPECT_EQ(p.at(t0 + 165 * s, &p.kp).initiate, handshake_reason::keypair_near_expiry);
  EXPECT_EQ(p.at(t0 + 166 * s, &p.kp).initiate, handshake_reason::none);  // once per keypair
}

TEST(session_timers, the_initiator_rekeys_when_receiving_close_to_expiry) {
  peer_fixture p;
  p.timers.session_made(t0);
  p.t.last_rx = t0 + 164 * s;
  EXPECT_EQ(p.at(t0 + 164 * s, &p.kp).initiate, handshake_reason::none);
  p.t.last_rx = t0 + 165 * s;
  EXPECT_EQ(p.at(t0 + 165 * s, &p.kp).initiate, handshake_reason::keypair_near_expiry);
}

TEST(session_timers, rekey_after_messages) {
  peer_fixture p;
  p.timers.session_made(t0);
  p.kp.sent_messages = (std::uint64_t{1} << 60) - 1;
  EXPECT_EQ(p.at(t0 + 1 * s, &p.kp).initiate, handshake_reason::none);
  p.kp.sent_messages = std::uint64_t{1} << 60;
  EXPECT_EQ(p.at(t0 + 1 * s, &p.kp).initiate, handshake_reason::keypair_aged);
}

TEST(session_timers, keypairs_expire_at_reject_after_time) {
  peer_fixture p;
  keypair_state prev{3, false, t0 - 100 * s, 0};
  const keypair_state* slots[3] = {&prev, &p.kp, nullptr};
  timer_actions a = p.timers.evaluate(t0 + 79 * s, slots, &p.kp, p.t);
  EXPECT_FALSE(a.expire[0]);
  a = p.timers.evaluate(t0 + 80 * s, slots, &p.kp, p.t);
  EXPECT_TRUE(a.expire[0]);
  EXPECT_FALSE(a.expire[1]);
  a = p.timers.evaluate(t0 + 180 * s, slots, &p.kp, p.t);
  EXPECT_TRUE(a.expire[1]);
  EXPECT_FALSE(a.keepalive);  // nothing is sent on an expired keypair
}

TEST(session_timers, passive_keepalive_after_data_received_and_nothing_sent) {
  peer_fixture p;
  p.timers.session_made(t0);
  p.t.last_rx = p.t.last_data_rx = t0 + 1 * s;
  EXPECT_FALSE(p.at(t0 + 10 * s, &p.kp).keepalive);
  EXPECT_TRUE(p.at(t0 + 11 * s, &p.kp).keepalive);
  p.timers.keepalive_sent(t0 + 11 * s);
  EXPECT_FALSE(p.at(t0 + 12 * s, &p.kp).keepalive);
  p.t.last_data_tx = t0 + 13 * s;
  p.t.last_data_rx = t0 + 14 * s;
  EXPECT_FALSE(p.at(t0 + 23 * s, &p.kp).keepalive);
  EXPECT_TRUE(p.at(t0 + 24 * s, &p.kp).keepalive);
}

TEST(session_timers, keys_are_zeroed_after_three_times_reject_after_time) {
  peer_fixture p;
  p.timers.session_made(t0);
  EXPECT_FALSE(p.at(t0 + 539 * s, nullptr).zero_all);
  EXPECT_TRUE(p.at(t0 + 540 * s, nullptr).zero_all);
  EXPECT_FALSE(p.at(t0 + 541 * s, nullptr).zero_all);  // once
}

}  // namespace
}  // namespace lopower::wg
