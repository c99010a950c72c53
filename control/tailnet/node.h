#pragma once
// lopower as a node of its tailnet, as lopowerd runs it: the coordination
// client (identity, register, map stream, netmap) fed from the config, the
// endpoints it announces (the tailnet ports' addresses); from each netmap,
// the WireGuard peers keyed with node keys (AllowedIPs, filtered), the
// workers' tailnet view (own addresses, packet filter) and the disco peers;
// `lopower-ctl status` and `ping` for the tailnet.

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "control/config.h"
#include "control/state_store.h"
#include "control/event_loop.h"
#include "control/tailnet/client/coordination_client.h"
#include "control/tailnet/derp_relays.h"
#include "control/tailnet/disco_paths.h"
#include "control/wireguard/interface.h"
#include "dataplane/dataplane.h"

namespace lopower {

// The pre-auth key: from tailnet.auth_key_file, else $LOPOWER_AUTHKEY
// (then removed from the environment), else none. Throws, naming the file,
// when the file cannot be read or holds no key.
std::string read_auth_key(const tailnet_config& cfg);

class tailnet_node {
 public:
  tailnet_node(event_loop& loop, dataplane& dp, const config& cfg);
  ~tailnet_node();
  tailnet_node(const tailnet_node&) = delete;
  tailnet_node& operator=(const tailnet_node&) = delete;

  void start();
  nlohmann::json status_json() const;

  // A packet the workers passed up from the tailnet listener (takes the mbuf).
  void handle_packet(rte_mbuf* m, const classify_result& r, bool under_load);
  void handle_event(const wg_event& ev);
  // A packet a worker held back for a tailnet peer with no session (takes
  // the mbuf); false when the peer is not a tailnet peer.
  bool stage(const staged_packet& sp);
  // A sealed message a worker handed up for a peer reached through DERP
  // (takes the mbuf).
  void relay(const relay_packet& rp);
  // Protocol timers; every ~100 ms.
  void tick();

  // `lopower-ctl ping PEER`: a disco ping round to the peer named (MagicDNS
  // name, host name or tailnet IP); its id, or an error. The outcome is
  // picked up with ping_result() (null while waiting).
  enum class ping_mode : std::uint8_t { disco, icmp };
  result<std::uint64_t> start_ping(const std::string& peer, std::chrono::milliseconds timeout, ping_mode mode);
  // An inner packet a worker handed up (the reply to one of our pings).
  void handle_inner(rte_mbuf* m);
  nlohmann::json ping_result(std::uint64_t id);
  // The exit node in use and those offered, for `lopower-ctl status`:
  // {"exit_node": {"name", "ip"} or null, "offered": [{"name", "ip", "online", "in_use"}]}.
  nlohmann::json exit_nodes_json() const;
  // `lopower-ctl netcheck`.
  nlohmann::json netcheck_json() const;
  result<void> logout() { return client_->logout(); }
  result<void> login() { return client_->login(); }
  tailnet::coordination_client& client() { return *client_; }
  // The WireGuard interface toward the tailnet's peers (nullptr before the
  // node has its key): lopower's services answer peers through it.
  wireguard_interface* wireguard() const { return wg_.get(); }
  // Called with each netmap applied (the DNS server's names follow it).
  void on_netmap_applied(std::function<void(const tailnet::netmap&)> fn) { netmap_listener_ = std::move(fn); }

 private:
  nlohmann::json routes_json(const tailnet::node& self) const;
  void on_netmap(const tailnet::netmap& nm, const tailnet::netmap_changes& changes);
  std::vector<tailnet::endpoint> local_endpoints() const;
  // Adds and updates the WireGuard peers (all, or those `only` names: see
  // on_netmap); returns those to remove once the view no longer routes to
  // them. `routes_moved` is set when a peer was added or its AllowedIPs
  // replaced.
  std::vector<tailnet::node_id> sync_wireguard(const tailnet::netmap& nm, const std::vector<tailnet::node_id>* only,
                                               bool& routes_moved);
  void publish_view(const tailnet::netmap& nm, const std::vector<tailnet::node_id>& stale);
  std::unique_ptr<allowed_prefixes> allowed_for(const tailnet::node& peer) const;
  // Follows the netmap's exit nodes (control/tailnet/exit_nodes.h; all, or as far as the peers `only`
  // names can move them); true (and the old and new chosen added to
  // `touched`, whose AllowedIPs change) when the choice moved.
  bool follow_exit_node(const tailnet::netmap& nm, const std::vector<tailnet::node_id>* only,
                        std::vector<tailnet::node_id>& touched);
  const tailnet::node* find_peer(const std::string& what) const;
  void find_path(const std::string& wg_name);
  void follow_restarts(const tailnet::netmap& nm, const std::vector<tailnet::node_id>* only);
  // DERP: the relays follow the node key (a new login dials again).
  void sync_relays(const tailnet::netmap& nm);
  void on_relayed(int region, const public_key& src, std::span<const std::uint8_t> packet);
  void send_relayed(int region, const public_key& to, std::span<const std::uint8_t> packet);
  // The region to reach a peer through: where it last reached us, else its home (0: none).
  int relay_region_for(const tailnet::node& peer) const;
  // Peers whose direct path stopped answering go over their relay.
  void fall_back_to_relays();
  void report_endpoints();
  struct peer_liveness {
    public_key disco_key;
    bool online = true;
  };
  // What a peer's restart is told by: its disco key and its online flag (a
  // peer that does not say is taken for online).
  static peer_liveness liveness_of(const tailnet::node& n) { return {n.disco_key, n.online.value_or(true)}; }
  std::map<tailnet::node_id, peer_liveness> liveness_;  // as of the last netmap
  void follow_restart(const tailnet::node& n, const peer_liveness& before);
  bool busy(tailnet::node_id id) const;
  // ICMP over WireGuard: a disco path first, then a handshake, then the echo.
  struct icmp_ping {
    std::uint64_t id = 0;
    tailnet::node_id peer = 0;
    std::string name;
    ip_address src, dst;
    std::uint16_t seq = 0;
    bool sent = false, disco_asked = false;
    std::chrono::steady_clock::time_point sent_at, deadline;
  };
  void advance(icmp_ping& p);
  void finish_ping(std::uint64_t id, nlohmann::json outcome);
  std::vector<icmp_ping> icmp_pings_;
  std::uint16_t next_seq_ = 1;
  std::function<void(const tailnet::netmap&)> netmap_listener_;

  event_loop& loop_;
  dataplane& dp_;
  const config& cfg_;
  state_store store_;
  std::unique_ptr<tailnet::coordination_client> client_;
  // Keyed with the node key: rebuilt when a login brings a new one.
  std::unique_ptr<wireguard_interface> wg_;
  public_key wg_key_;
  std::unique_ptr<disco_paths> disco_;
  derp_settings derp_settings_;
  std::unique_ptr<derp_relays> relays_;
  public_key relays_key_;
  std::map<tailnet::node_id, public_key> wg_peers_;  // what wg_ holds, by node ID
  std::set<tailnet::node_id> refused_;               // wanted, but their key was taken (sync_wireguard)
  std::uint64_t synced_serial_ = 0;                  // of the netmap on_netmap synced last
  tailnet::node_id exit_node_ = 0;                   // chosen for egress "exit"; 0: none available
  std::map<std::uint64_t, nlohmann::json> pings_;    // ping id -> outcome (null while waiting)
  std::uint64_t next_ping_ = 1;
  std::uint64_t tsc_hz_;
};

}  // namespace lopower
