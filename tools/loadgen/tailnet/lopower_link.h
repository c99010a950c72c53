#pragma once
// The protocol half of tailnet_node (tailnet_node.h): given our node and
// disco keys and lopower's netmap entry, the disco rounds and WireGuard
// handshakes with lopower, and the session they give. No control server,
// no threads, no clock of its own (the caller's monotonic now_ns), so the
// unit tests drive it with lopower's side played by the same engine.
//
// Disco (tailscale's magicsock, as lopower's disco_paths.cc expects of a
// peer): every 3 s a ping to each of lopower's endpoints of our family;
// lopower's pings are answered with a pong naming where they came from
// (lopower trusts a direct path only once a ping of its own there was
// answered); a call-me-maybe gets pings to the endpoints it lists.
//
// WireGuard: we initiate when there is no session, to the endpoint that
// answered our last disco ping (else lopower's first endpoint of our
// family), again after rekey_timeout without an answer, and rekey after
// rekey_after_time (a session lopower started: a little later, so lopower's
// own rekey comes first); we answer lopower's initiations as the
// responder. A session older than reject_after_time is dropped.

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "control/tailnet/disco/disco_message.h"
#include "control/wireguard/engine/cookie.h"
#include "control/wireguard/engine/noise_handshake.h"
#include "lopower/keys.h"
#include "lopower/wireguard_messages.h"
#include "tools/loadgen/tailnet/tailnet_node.h"

namespace lopower::loadgen {

// `a`:`port` as the seam's endpoint (netmap endpoints and addresses).
udp_endpoint to_udp(const ip_address& a, std::uint16_t port);

// What the link needs of lopower's netmap entry.
struct lopower_peer {
  public_key node_key, disco_key;
  std::vector<udp_endpoint> endpoints;
};

class lopower_link final : wg::peer_lookup {
 public:
  // `local`: where our datagrams come from (its family picks lopower's endpoints).
  lopower_link(const private_key& node_private, const private_key& disco_private, const udp_endpoint& local);

  bool valid() const noexcept { return identity_.valid(); }
  // The control server took a new disco key of ours.
  void set_disco_key(const private_key& disco_private);
  // lopower as the last netmap has it (nullopt: not in it). A new node key
  // starts over (no session, no handshake).
  void set_lopower(std::optional<lopower_peer> peer);

  void receive(const datagram& in, std::uint64_t now_ns, std::vector<datagram>& out);
  void poll(std::uint64_t now_ns, std::vector<datagram>& out);
  const std::optional<tailnet_session>& session() const noexcept { return current_; }
  const tailnet_node_counters& counters() const noexcept { return stats_; }

 private:
  wg::peer_handshake* by_static(const public_key& key) override;
  wg::peer_handshake* by_index(std::uint32_t index) override;

  void on_disco(const datagram& in, std::uint64_t now, std::vector<datagram>& out);
  void on_handshake(const wg::parsed_message& msg, const datagram& in, std::uint64_t now, std::vector<datagram>& out);
  void on_initiation(const wg::message_handshake_initiation& msg, const udp_endpoint& from, std::uint64_t now,
                     std::vector<datagram>& out);
  void on_response(const wg::message_handshake_response& msg, const udp_endpoint& from, std::uint64_t now,
                   std::vector<datagram>& out);
  void ping_endpoints(std::uint64_t now, std::vector<datagram>& out);
  void send_ping(const udp_endpoint& to, std::uint64_t now, std::vector<datagram>& out);
  void initiate(std::uint64_t now, std::vector<datagram>& out);
  void install(const wg::transport_keys& keys, const udp_endpoint& lopower, std::uint64_t now);
  bool seal_keepalive(std::vector<datagram>& out);
  bool rekey_due(std::uint64_t now) const;
  std::optional<udp_endpoint> handshake_destination() const;

  wg::static_identity identity_;
  public_key node_public_;
  private_key disco_private_;
  public_key disco_public_;
  udp_endpoint local_;
  wg::cookie_checker cookies_;

  std::optional<lopower_peer> lopower_;
  std::optional<wg::peer_handshake> peer_;   // with lopower_
  std::optional<wg::cookie_maker> maker_;
  std::optional<key32> disco_shared_;        // with lopower's disco key

  std::map<tailnet::disco::transaction_id, std::pair<udp_endpoint, std::uint64_t>> pending_pings_;  // tx -> (to, sent)
  std::optional<udp_endpoint> best_;  // lopower's endpoint that answered our last ping
  std::optional<std::uint64_t> last_ping_round_;

  std::uint32_t pending_index_ = 0;  // our initiation in flight (0: none)
  std::uint64_t initiation_sent_at_ = 0;
  std::optional<tailnet_session> current_;
  bool current_initiator_ = false;
  std::uint64_t session_born_at_ = 0;
  std::uint64_t generation_ = 0;
  tailnet_node_counters stats_;
};

}  // namespace lopower::loadgen
