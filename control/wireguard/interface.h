#pragma once
// A WireGuard interface as the control thread runs it: one for the devices
// (keyed with the device-side key, one peer per enrolled device) and one for
// the tailnet (keyed with the node key, one peer per netmap peer). Each has
// the handshake service (MAC1, cookies under load, per-source rate limit,
// Noise_IKpsk2 with a zero PSK), the keypair slots (previous, current, next)
// published to the workers' session table, roaming, and the protocol timers
// (keepalive, rekey, handshake retry, expiry).
//
// The workers do the transport data; everything here runs on the control
// thread and touches the fast path only through the session table and the
// RCU-published peer state.

#include <rte_cycles.h>
#include <rte_mbuf.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "control/clock.h"
#include "control/config.h"
#include "control/enrollment/device_registry.h"
#include "control/wireguard/engine/cookie.h"
#include "control/wireguard/engine/noise_handshake.h"
#include "control/wireguard/engine/ratelimiter.h"
#include "control/wireguard/engine/session_timers.h"
#include "dataplane/crypto/aead_batch.h"
#include "dataplane/dataplane.h"

namespace lopower {

// What the handshake service did, for status and tests.
#define LOPOWER_HANDSHAKE_COUNTERS(X)                                           \
  X(initiations_received) X(responses_sent) X(initiations_sent) X(responses_received) \
  X(cookie_replies_sent) X(cookie_replies_received) X(handshakes_completed)    \
  X(invalid_mac1) X(rate_limited) X(handshake_errors) X(keepalives_sent)       \
  X(keypairs_expired) X(endpoint_changes) X(rekeys_started) X(handshake_retries)          \
  X(handshakes_given_up) X(unanswered_handshakes) X(sessions_zeroed) X(peer_restarts)      \
  X(packets_staged) X(staged_sent) X(staged_dropped)

struct handshake_counters {
#define LOPOWER_HS_FIELD(name) std::uint64_t name = 0;
  LOPOWER_HANDSHAKE_COUNTERS(LOPOWER_HS_FIELD)
#undef LOPOWER_HS_FIELD
  std::array<std::uint64_t, wg::handshake_error_count> errors{};  // by wg::handshake_error
  nlohmann::json to_json() const;
};

class wireguard_interface : private wg::peer_lookup {
 public:
  // The device side: the registry's key and devices.
  wireguard_interface(dataplane& dp, const config& cfg, const enrollment::device_registry& registry);
  // Any other interface: `label` names its peers in the log ("tailnet peer").
  wireguard_interface(dataplane& dp, const wireguard_config& wg, const private_key& key, std::string label);
  ~wireguard_interface() override;
  wireguard_interface(const wireguard_interface&) = delete;
  wireguard_interface& operator=(const wireguard_interface&) = delete;

  // A handshake message a worker handed up (takes the mbuf), as the
  // dispatcher classified it: wg_handshake on the devices listener.
  // `under_load`: the handshake backlog is past the configured threshold.
  void handle_packet(rte_mbuf* m, const classify_result& r, bool under_load);
  // The workers check MAC1 (and, under load, MAC2) of what arrives on `l`
  // with this interface's keys and cookie secret (dataplane/handshake_guard.h);
  // kept current by tick(), withdrawn when the interface goes.
  void guard_on_workers(listener l);
  void handle_event(const wg_event& ev);
  // Protocol timers; call every ~100 ms.
  void tick();

  // A device (published to the workers' device directory too).
  void add_device(const enrollment::device& d);
  // The workers follow the device's egress mode from its next packet on.
  void set_device_egress(const enrollment::device& d);
  // [egress] mode: what devices without their own mode get.
  egress_mode default_egress() const { return default_egress_; }
  // Called after a device was added or removed (e.g. port forwards name
  // devices by their address: one removed must not leave its address
  // forwarded to whoever enrolls next).
  void on_devices_changed(std::function<void()> fn) { devices_changed_ = std::move(fn); }
  // A peer named `name` (unique) with static key `key`; `configure` fills in
  // what the workers check (cryptokey routing) before it is published.
  void add_peer(const std::string& name, const public_key& key, const std::function<void(wg_peer&)>& configure);
  void remove_peer(const std::string& name) { remove_device(name); }
  // Takes over retiring dropped peers (marked `removed`, unpublished):
  // spliced flows refer to devices, and must be retired first.
  void retire_peers_with(std::function<void(wg_peer*)> fn) { retire_peer_ = std::move(fn); }
  bool has_peer(const std::string& name) const { return peers_.contains(name); }
  // Where to send: a path found outside WireGuard (disco).
  void set_peer_endpoint(const std::string& name, const wg_endpoint& ep);
  // Starts a handshake unless a session exists or one is in flight.
  void ensure_session(const std::string& name);
  // The peer lost its sessions (it restarted: a new disco key, or it came
  // back online): ours are dropped and a new handshake is started; what is
  // sent meanwhile is staged, not sent into a session nobody has.
  void peer_restarted(const std::string& name);
  // The peer may have lost its sessions (it came back online): a new
  // handshake now, ours kept until it completes.
  void renew_session(const std::string& name);

  // A packet a worker held back for a peer with no session (takes the
  // mbuf); false when the peer is not one of ours.
  bool stage(const staged_packet& sp);
  // Called when a peer needs a session but has no endpoint to handshake
  // with (the tailnet finds it a path, then calls ensure_session), and when
  // sent data goes unanswered (the path may be gone: check it again).
  void on_path_wanted(std::function<void(const std::string&)> fn) { path_wanted_ = std::move(fn); }
  // How messages to a peer reached through DERP leave (endpoints with a
  // relay_region): the relay frames them to the peer's static key (for a
  // tailnet peer, its node key). Without it they are not sent.
  using relay_sender = std::function<void(std::uint16_t region, const public_key& to, std::span<const std::uint8_t>)>;
  void send_relayed_with(relay_sender fn) { relay_sender_ = std::move(fn); }
  // A handshake message that came some other way than a worker's ring (a
  // DERP relay), from `from`.
  void handle_message(std::span<const std::uint8_t> message, const wg_endpoint& from, bool under_load);
  // The static key of the peer the workers know by `id` (relay_packet).
  const public_key* key_of(std::uint32_t id) const;
  // Per-peer cap on staged packets (as the Linux module's MAX_STAGED_PACKETS),
  // and on the interface's total (they hold mbufs from the shared pool: at
  // most an eighth of it).
  static constexpr std::size_t max_staged_per_peer = 128;
  static constexpr std::size_t max_staged_total = 2048;
  // Sends the initiation in flight again at the next tick (within 100 ms),
  // rather than after REKEY_TIMEOUT: the peer is about to become able to
  // answer (tailscaled pinged us: once our pong reaches it, it has a path
  // back for its response; an initiation that overtakes the pong is lost).
  void retry_handshake_soon(const std::string& name);
  // The workers' view of a peer (nullptr when unknown).
  wg_peer* dataplane_peer(const std::string& name) const;
  // The name of the peer the workers know as `wp` (empty when not ours).
  std::string name_of(const wg_peer* wp) const;
  // ... and the one they know by wg_peer::id (empty when not ours).
  std::string name_of_id(std::uint32_t id) const;
  std::int64_t last_handshake(const std::string& name) const;
  // Sends one inner packet to the peer from the control thread; false when
  // it has no session or endpoint yet.
  static constexpr std::size_t max_control_inner = 1500;
  bool send_data(const std::string& name, std::span<const std::uint8_t> inner);
  bool has_session(const std::string& name) const {
    const wg_peer* wp = dataplane_peer(name);
    return wp != nullptr && wp->current.load(std::memory_order_acquire) != nullptr;
  }
  // Ends the device's sessions at once.
  void remove_device(const std::string& name);
  void reset_timestamp(const std::string& name);

  // The clocks the interface reads (timers, the ages of keypairs and staged
  // packets, cookies, the rate limiter): tests set a fake one, before any
  // handshake, and advance it instead of sleeping. The workers' stamps
  // (last_rx_tsc ...) stay on the real TSC: a stamp newer than the clock
  // counts as zero ticks old (session_timers).
  void set_clock(control_clock clock) { clock_ = std::move(clock); }

  nlohmann::json device_json(const std::string& name) const;  // sessions, endpoint, counters
  const handshake_counters& counters() const { return counters_; }
  std::uint64_t handshakes_with(const std::string& name) const;

 private:
  struct peer {
    std::string name;
    public_key key;
    std::unique_ptr<wg::peer_handshake> hs;
    wg::cookie_maker maker;
    wg_peer* dp = nullptr;  // what the workers read
    std::uint32_t slots[3] = {0, 0, 0};
    std::uint32_t pending_index = 0;  // announced in our initiation in flight
    wg::session_timers timers;
    struct staged_entry {
      rte_mbuf* mbuf;
      std::uint64_t tsc;  // when it arrived
    };
    std::deque<staged_entry> staged;  // inner packets waiting for a session, oldest first
    std::uint64_t path_wanted_tsc = 0;
    bool retry_soon = false;
    std::int64_t last_handshake_unix = 0;
    std::uint64_t handshakes = 0;

    peer(std::string n, const public_key& k, const wg::static_identity& id, const wg::timer_settings& ts)
        : name(std::move(n)), key(k), hs(std::make_unique<wg::peer_handshake>(id, k)), maker(k), timers(ts) {}
  };
  enum slot { previous = 0, current = 1, next = 2 };

  wg::peer_handshake* by_static(const public_key& remote_static) override;
  wg::peer_handshake* by_index(std::uint32_t local_index) override;

  void on_initiation(const wg::message_handshake_initiation& msg, const wg_endpoint& from);
  void on_response(const wg::message_handshake_response& msg, const wg_endpoint& from);
  void on_cookie_reply(const wg::message_handshake_cookie& msg);
  void send_cookie_reply(const std::uint8_t* msg, std::size_t len, const wg::packet_source& src, const wg_endpoint& to);
  bool initiate(peer& p, bool retry);
  void start_handshake(peer& p, wg::handshake_reason why);
  void want_session(peer& p);
  void flush_staged(peer& p, wg_keypair* kp);
  void drop_staged(peer& p, drop_reason why);
  void enqueue_staged(peer& p, rte_mbuf* m);
  void discard_oldest_staged(peer& p, drop_reason why);
  void forget_pending(peer& p);
  void abandon_handshake(peer& p);
  void expire_staged(peer& p, std::uint64_t now_tsc);
  void ask_for_path(peer& p);
  void count_drop(const rte_mbuf* m, drop_reason why);
  void install_keypair(peer& p, const wg::transport_keys& keys);
  void promote_next(peer& p);
  void erase_slot(peer& p, slot s);
  void set_endpoint(peer& p, const wg_endpoint& ep);
  void learn_endpoint(peer& p, const wg_endpoint& from);
  void send_keepalive(peer& p);
  bool seal_and_send(peer& p, std::span<const std::uint8_t> inner, bool data);
  bool seal_with(peer& p, wg_keypair* kp, const wg_endpoint& ep, std::span<const std::uint8_t> inner, bool data);
  // `to_key`: the peer's static key (nullptr for a cookie reply, which a
  // relay cannot carry: the sender is not known yet).
  void send_frame(const wg_endpoint& to, const public_key* to_key, const std::uint8_t* payload, std::size_t len);
  void peer_timers(peer& p, std::uint64_t now_tsc);
  void apply_timers(peer& p, const wg::timer_actions& a);
  void zero_keys(peer& p);
  void drop_peer(peer& p);
  std::uint32_t fresh_index();
  std::uint64_t now_tsc() const { return clock_.tsc ? clock_.tsc() : rte_rdtsc(); }
  std::uint64_t now_ns() const { return clock_.ns ? clock_.ns() : monotonic_ns(); }

  egress_mode default_egress_ = egress_mode::none;
  dataplane& dp_;
  std::string label_;
  std::function<void()> devices_changed_;
  bool devices_side_ = false;  // the devices' interface: its peers make the workers' device directory
  void add_device_peer(const enrollment::device& d);
  void publish_devices();
  std::function<void(wg_peer*)> retire_peer_;
  wg::static_identity identity_;
  wg::cookie_checker cookies_;
  std::optional<listener> guarded_;                 // guard_on_workers
  std::uint64_t guarded_secret_birth_ns_ = 0;       // of the cookie secret the workers have
  void publish_guard(bool always);
  wg::ratelimiter limiter_;
  std::unique_ptr<crypto::aead_backend> aead_;  // keepalives sent from here
  std::uint64_t tsc_hz_;
  wg::timer_settings timer_settings_;
  std::function<void(const std::string&)> path_wanted_;
  relay_sender relay_sender_;
  std::size_t staged_total_ = 0;
  std::size_t max_staged_total_;
  std::map<std::string, std::unique_ptr<peer>> peers_;        // by device name
  std::unordered_map<std::uint32_t, peer*> by_id_;            // by wg_peer::id (staged packets name it)
  std::unordered_map<public_key, peer*> by_key_;
  std::unordered_map<std::uint32_t, peer*> by_index_;          // every live or pending local index
  handshake_counters counters_;
  control_clock clock_;  // empty: the real clocks
};

}  // namespace lopower
