#pragma once
// Direct paths to tailnet peers, found with disco (tailscale's
// wgengine/magicsock endpoint.go, in the parts a node without DERP needs):
//
//   - a peer's ping (sealed with its disco key, which the netmap gives) is
//     answered with a pong to where it came from;
//   - peers are pinged on their advertised endpoints when a path is wanted
//     (`lopower-ctl ping`, a handshake to start) and every few seconds while
//     traffic flows; a pong makes its source a candidate, the lowest latency
//     wins, and it is trusted for a while past each pong;
//   - call-me-maybe makes us ping what it lists;
//   - through DERP (send_relay; what a relay brings comes in at handle()
//     with a relay endpoint): while a peer has no trusted direct path, each
//     ping round also goes through its relay, with a call-me-maybe listing
//     our endpoints, so that a peer behind NAT pings us too and the two
//     pings open the way (hole punching). A pong through a relay answers a
//     ping but is never a direct path.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "control/tailnet/disco/disco_message.h"
#include "control/tailnet/netmap/netmap.h"
#include "dataplane/wg_session.h"

// What disco did, for status (counters_json): the fields and their names
// come from this list.
#define LOPOWER_DISCO_COUNTERS(X)                                                                      \
  X(pings_received) X(pongs_sent) X(pings_sent) X(pongs_received) X(call_me_maybe) X(unknown_sender) \
  X(undecryptable) X(no_route) X(relayed_sent) X(relayed_received) X(call_me_maybe_sent)

namespace lopower {

class disco_paths {
 public:
  using clock = std::chrono::steady_clock;
  struct hooks {
    // Sends a disco packet to ip:port; false when there is no way there yet.
    std::function<bool(const ip_address&, std::uint16_t, std::span<const std::uint8_t>)> send_to;
    // Sends to a source a frame came from (its MACs known).
    std::function<void(const wg_endpoint&, std::span<const std::uint8_t>)> reply_to;
    // The best direct path to peer `id` is now `ep`.
    std::function<void(tailnet::node_id id, const wg_endpoint& ep)> on_path;
    // Peer `id` pinged us or answered our ping: it is checking its way to
    // us, and may only now be able to answer a handshake (tailscaled drops
    // its handshake responses while it has no path back).
    std::function<void(tailnet::node_id id)> on_peer_heard;
    // Sends to peer `id` through a DERP relay (region 0: the node picks
    // the peer's); false when there is none.
    std::function<bool(tailnet::node_id id, int region, std::span<const std::uint8_t>)> send_relay;
  };
  struct ping_outcome {
    tailnet::node_id peer = 0;
    bool answered = false;
    double latency_ms = 0;
    std::string path;  // "198.18.40.11:41641", or "derp(999)" when the pong came through a relay
    bool relayed = false;
  };
  using ping_callback = std::function<void(const ping_outcome&)>;

  disco_paths(private_key disco_private, public_key disco_public, public_key node_public, hooks h);

  // The peers and their disco keys, endpoints, node keys (from the netmap).
  void set_peers(const tailnet::netmap& nm);
  // Our disco key changed (coordination_client: the fresh one of this
  // start): every peer's box key is made again; the paths stay.
  void set_key(private_key disco_private, public_key disco_public);
  // The same for peers `ids` only (sorted), when nothing else in the netmap
  // changed since the last call: their node keys and endpoints. False (and
  // nothing done) when one of them came, went or has a new disco key:
  // set_peers() then.
  bool update_peers(const tailnet::netmap& nm, std::span<const tailnet::node_id> ids);
  // A disco packet from `from` (UDP on the tailnet port). False when it was
  // not disco we could open (unknown sender, bad box): the caller counts it.
  bool handle(std::span<const std::uint8_t> packet, const wg_endpoint& from);
  // Pings every endpoint of the peer; `done` runs once, on the first pong
  // or after `timeout` (answered = false).
  void ping(tailnet::node_id peer, std::chrono::milliseconds timeout, ping_callback done);
  // Heartbeats for peers `busy` says carry traffic; expiry of pending pings.
  void tick(const std::function<bool(tailnet::node_id)>& busy);

  // Our endpoints, listed in the call-me-maybe we send through relays.
  void set_own_endpoints(std::vector<tailnet::endpoint> eps) { own_endpoints_ = std::move(eps); }
  // A pong vouched for the peer's direct path within trust_path_for.
  bool direct_trusted(tailnet::node_id peer) const;
  // Pings to the peer's direct endpoints have gone unanswered for a few
  // seconds (the path it had is gone, or it never had one).
  bool direct_lost(tailnet::node_id peer) const;

  // "direct 198.18.40.11:41641", or empty when no path is known.
  std::string path_text(tailnet::node_id peer) const;
  std::optional<double> latency_ms(tailnet::node_id peer) const;
  nlohmann::json counters_json() const;

 private:
  struct peer_state {
    public_key node_key;
    public_key disco_key;
    key32 shared;
    std::vector<tailnet::endpoint> endpoints;
    std::optional<wg_endpoint> best;
    std::string best_text;
    double best_latency_ms = 0;
    clock::time_point best_until{};
    clock::time_point last_ping_round{};
    std::uint8_t missed_rounds = 0;  // in a row, where a ping found no way out (neighbour unknown yet)
    clock::time_point unanswered_since{};  // the first direct ping since the last direct pong (epoch: none)
  };
  struct pending_ping {
    tailnet::node_id peer = 0;
    clock::time_point sent;
    std::string to;
  };
  struct waiter {
    tailnet::node_id peer = 0;
    clock::time_point deadline;
    ping_callback done;
  };

  void ping_endpoints(tailnet::node_id id, peer_state& p);
  void ping_through_relay(tailnet::node_id id, peer_state& p);
  bool send_ping(tailnet::node_id id, peer_state& p, const ip_address& ip, std::uint16_t port);
  void on_ping(const tailnet::disco::ping& m, peer_state& p, const wg_endpoint& from);
  void on_pong(const tailnet::disco::pong& m, tailnet::node_id id, peer_state& p, const wg_endpoint& from);
  void finish_waiters(tailnet::node_id id, const ping_outcome& outcome);

  private_key disco_private_;
  public_key disco_public_;
  public_key node_public_;
  hooks hooks_;
  std::map<tailnet::node_id, peer_state> peers_;
  std::unordered_map<public_key, tailnet::node_id> by_disco_;
  std::map<std::array<std::uint8_t, 12>, pending_ping> pending_;
  std::vector<waiter> waiters_;
  std::vector<tailnet::endpoint> own_endpoints_;
  struct {
#define LOPOWER_DISCO_COUNTER_FIELD(name) std::uint64_t name = 0;
    LOPOWER_DISCO_COUNTERS(LOPOWER_DISCO_COUNTER_FIELD)
#undef LOPOWER_DISCO_COUNTER_FIELD
  } counters_;
};

}  // namespace lopower
