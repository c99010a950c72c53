#pragma once
// The netmap: what one map session (one streamed /machine/map response) has
// said so far, with every MapResponse merged in as tailscale's mapSession
// does (control/controlclient/map.go). The rules, in the order applied:
//
//   - KeepAlive frames change nothing (their PingRequest, ControlTime and
//     PopBrowserURL are per-response, read from the map_response itself).
//   - The first other response of a session must carry Node (direct.go).
//   - PeersChanged entries for known peers whose differences are all
//     patchable (key, disco key, endpoints, home DERP, capability version,
//     cap map, online, last seen, key expiry, key signature) become patches:
//     such a "change" never clears a field the new copy merely omits (an
//     Online or LastSeen left out, no endpoints, home DERP 0).
//   - Patches that would move a peer's disco key backwards in time (offline,
//     not seen since what we hold) are dropped, and a full peer list does not
//     roll back a disco key the session holds for an offline peer.
//   - Peers non-empty: the whole list (nothing else about peers is read).
//     Otherwise PeersRemoved, then PeersChanged (upsert), PeerSeenChange,
//     OnlineChange, then PeersChangedPatch on known peers.
//   - Node replaces the self node. DERPMap replaces the DERP map, keeping the
//     previous regions when it has none and the previous home parameters
//     (and their region scores) when absent. DNSConfig replaces the DNS
//     config. PacketFilter is the named filter "base"; PacketFilters sets or
//     (null) deletes named filters, "*": null first clearing them all; the
//     filter is every named filter concatenated in name order. A non-empty
//     Domain, a set CollectServices, a non-null Health replace theirs.
//
// A node keeps one netmap per map stream, as tailscale makes one mapSession
// per stream; diff_peers tells what a fresh stream changed against the old.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "control/tailnet/netmap/map_response.h"
#include "control/tailnet/netmap/packet_filter.h"
#include "lopower/keys.h"
#include "lopower/net_addr.h"

namespace lopower::tailnet {

// What one apply() changed, for updating the dataplane incrementally.
struct netmap_changes {
  std::string error;  // the response was refused and nothing changed
  bool keep_alive = false;
  bool full_peer_list = false;  // Peers was sent
  std::vector<node_id> added;    // sorted
  std::vector<node_id> removed;  // sorted
  std::vector<node_id> changed;  // sorted; peers whose stored copy differs
  bool self_changed = false;
  // What names resolve to is not what it was: a peer added or removed, a
  // peer's (or the self node's) Name or Addresses changed, or the first
  // self node (DNSConfig is dns_changed).
  bool names_changed = false;
  bool derp_map_changed = false;
  bool dns_changed = false;
  bool packet_filter_changed = false;
  bool domain_changed = false;
  bool collect_services_changed = false;
  bool health_changed = false;
  bool user_profiles_changed = false;

  bool ok() const noexcept { return error.empty(); }
  bool peers_changed() const noexcept { return !added.empty() || !removed.empty() || !changed.empty(); }
  bool anything_changed() const noexcept {
    return peers_changed() || self_changed || derp_map_changed || dns_changed || packet_filter_changed ||
           domain_changed || collect_services_changed || health_changed || user_profiles_changed;
  }
};

struct peer_diff {
  std::vector<node_id> added, removed, changed;
};

class netmap {
 public:
  // Tells netmaps apart (a copy is another netmap): a consumer that saw
  // every change of the netmap with this serial may apply the next
  // netmap_changes as a delta; any other netmap must be taken as a whole.
  std::uint64_t serial() const noexcept { return serial_.value; }

  // Merges one response. `now` stands for the clock (PeerSeenChange sets
  // LastSeen to it).
  netmap_changes apply(const map_response& resp, timestamp now = timestamp::now());
  netmap_changes apply(map_response&& resp, timestamp now = timestamp::now());

  // True once a non-KeepAlive response has been applied.
  bool started() const noexcept { return self_.has_value(); }
  const node* self() const noexcept { return self_ ? &*self_ : nullptr; }

  std::span<const node> peers() const noexcept { return peers_; }  // sorted by ID
  std::size_t peer_count() const noexcept { return peers_.size(); }
  const node* peer_by_id(node_id id) const noexcept;
  // The lowest-ID peer with this node key.
  const node* peer_by_key(const public_key& key) const noexcept;
  // The lowest-ID peer with this address among its Addresses (its tailnet
  // IPs, not routes), as tailscale's PeerByTailscaleIP.
  const node* peer_by_address(const ip_address& address) const noexcept;

  // Nullptr until the server sent one. Regions never hold null entries.
  const derp_map* derp() const noexcept { return derp_ ? &*derp_ : nullptr; }
  const dns_config& dns() const noexcept { return dns_; }
  const std::string& domain() const noexcept { return domain_; }
  bool collect_services() const noexcept { return collect_services_; }
  const std::vector<std::string>& health() const noexcept { return health_; }
  const user_profile* user(user_id id) const noexcept;
  const std::map<user_id, user_profile>& users() const noexcept { return users_; }
  const std::string& domain_audit_log_id() const noexcept { return domain_audit_log_id_; }

  // The filter rules as sent (named filters concatenated in name order) and
  // compiled. packet_filter_error() is the compiler's complaint, if any.
  const std::vector<filter_rule>& packet_filter_rules() const noexcept { return filter_rules_; }
  const std::vector<filter_match>& packet_filter() const noexcept { return filter_; }
  const std::string& packet_filter_error() const noexcept { return filter_error_; }
  const std::map<std::string, std::vector<filter_rule>>& named_packet_filters() const noexcept {
    return named_filters_;
  }

 private:
  struct addr_hash {
    std::size_t operator()(const ip_address& a) const noexcept;
  };

  node* find_peer(node_id id) noexcept;
  void index_peer(const node& n);
  void unindex_peer(const node& n);
  void rebuild_indexes();
  void upsert_peer(node&& n, std::vector<node_id>& added, std::vector<node_id>& changed);
  bool apply_patch(const peer_change& pc);

  struct serial_number {
    std::uint64_t value = next();
    serial_number() = default;
    serial_number(const serial_number&) : value(next()) {}
    serial_number& operator=(const serial_number&) {
      value = next();
      return *this;
    }
    static std::uint64_t next();
  };

  serial_number serial_;
  std::optional<node> self_;
  std::vector<node> peers_;  // sorted by id, ids unique
  std::unordered_multimap<public_key, node_id> by_key_;
  std::unordered_multimap<ip_address, node_id, addr_hash> by_address_;
  std::optional<derp_map> derp_;
  dns_config dns_;
  std::string domain_;
  std::string domain_audit_log_id_;
  bool collect_services_ = false;
  std::vector<std::string> health_;
  std::map<user_id, user_profile> users_;
  std::map<std::string, std::vector<filter_rule>> named_filters_;
  std::vector<filter_rule> filter_rules_;
  std::vector<filter_match> filter_;
  std::string filter_error_;
};

// Peers added, removed, or different in `after` compared with `before`.
peer_diff diff_peers(const netmap& before, const netmap& after);

}  // namespace lopower::tailnet
