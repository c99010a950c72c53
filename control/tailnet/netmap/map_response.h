#pragma once
// One MapResponse from the coordination server, parsed from its JSON.
//
// The types mirror what tailcfg (tailscale's Go package) decodes, keeping only
// what a node acts on, and the distinctions the merge rules need: a field that
// was absent or null ("unchanged") is an empty std::optional, while an empty
// array or object that was sent ("now empty") is a present, empty value.
//
// Nodes come out already "upgraded" as tailscale's mapSession does before it
// merges anything (control/controlclient/map.go, upgradeNode): the legacy
// `DERP: "127.3.3.40:<region>"` string fills HomeDERP when HomeDERP is 0, and
// an absent or null AllowedIPs becomes a copy of Addresses.
//
// JSON names are matched exactly as Go's encoder writes them (Go's decoder
// would also accept other letter cases; no server sends those). Unknown
// fields are ignored. A field of the wrong JSON type, a bad key, address or
// time is an error for the whole response, as json.Unmarshal makes it in Go.

#include <compare>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lopower/keys.h"
#include "lopower/net_addr.h"

namespace lopower::tailnet {

using node_id = std::int64_t;
using user_id = std::int64_t;

// A point in time as Go's time.Time carries it, in UTC. The default value is
// Go's zero time (0001-01-01T00:00:00Z), which tailcfg uses for "none" (a key
// that does not expire, for one).
struct timestamp {
  static constexpr std::int64_t go_zero_unix = -62135596800;  // 0001-01-01T00:00:00Z
  std::int64_t unix_seconds = go_zero_unix;
  std::int32_t nanos = 0;  // 0 .. 999'999'999

  bool is_zero() const noexcept { return unix_seconds == go_zero_unix && nanos == 0; }
  // RFC 3339 with optional fraction and a Z or numeric offset, as Go writes
  // and reads time.Time in JSON; years 0000-9999.
  static std::optional<timestamp> parse(std::string_view text);
  static timestamp from_unix(std::int64_t seconds, std::int32_t nanos = 0) noexcept { return {seconds, nanos}; }
  static timestamp now() noexcept;
  std::string to_string() const;  // RFC 3339 in UTC, nanoseconds when not zero
  friend bool operator==(const timestamp&, const timestamp&) = default;
  friend auto operator<=>(const timestamp&, const timestamp&) = default;
};

// An IP address and UDP port: a peer endpoint ("1.2.3.4:41641", "[::1]:41641").
struct endpoint {
  ip_address address;
  std::uint16_t port = 0;

  static std::optional<endpoint> parse(std::string_view text);
  std::string to_string() const;
  friend bool operator==(const endpoint&, const endpoint&) = default;
};

// Capability names mapped to their JSON values, each value kept as compact
// JSON text (tailcfg.NodeCapMap and PeerCapMap: map[string][]RawMessage).
using cap_map = std::map<std::string, std::vector<std::string>>;

// tailcfg's dnstype.Resolver.
struct dns_resolver {
  std::string addr;  // "1.2.3.4", "1.2.3.4:53", "[::1]:53", "https://...", "tls://..."
  std::vector<ip_address> bootstrap_resolution;
  bool use_with_exit_node = false;
  friend bool operator==(const dns_resolver&, const dns_resolver&) = default;
};

// One node: the self node or a peer (tailcfg.Node).
struct node {
  node_id id = 0;
  std::string stable_id;
  std::string name;  // MagicDNS FQDN with its trailing dot, "host.tailnet.example."
  user_id user = 0;
  user_id sharer = 0;
  public_key key;                  // WireGuard static key and DERP identity ("nodekey:")
  timestamp key_expiry;            // zero: does not expire
  std::string key_signature;       // tailnet lock signature, base64 as sent
  public_key machine;              // "mkey:"; zero when not sent
  public_key disco_key;            // "discokey:"; zero when not sent
  std::vector<ip_prefix> addresses;
  std::vector<ip_prefix> allowed_ips;  // Addresses when the server sent none
  std::vector<endpoint> endpoints;
  int home_derp = 0;  // DERP region ID; 0 = none
  bool has_hostinfo = false;
  std::string hostname;  // Hostinfo.Hostname
  std::uint64_t hostinfo_digest = 0;  // hash of the whole Hostinfo, to tell when it changed
  timestamp created;
  std::int64_t cap = 0;  // the node's capability version, 0 when not sent
  std::vector<std::string> tags;
  std::vector<ip_prefix> primary_routes;
  std::optional<timestamp> last_seen;
  std::optional<bool> online;
  bool machine_authorized = false;
  std::vector<std::string> capabilities;  // deprecated list form of cap_map
  cap_map capmap;
  bool unsigned_peer_api_only = false;
  bool expired = false;
  std::optional<ip_address> self_v4_masq_addr;  // SelfNodeV4MasqAddrForThisPeer
  std::optional<ip_address> self_v6_masq_addr;  // SelfNodeV6MasqAddrForThisPeer
  bool is_wireguard_only = false;
  bool is_jailed = false;
  std::vector<dns_resolver> exit_node_dns_resolvers;

  bool has_cap(std::string_view name) const;
  friend bool operator==(const node&, const node&) = default;
};

// A field-wise update of one known peer (tailcfg.PeerChange).
struct peer_change {
  node_id id = 0;
  int derp_region = 0;  // 0 = unchanged
  std::int64_t cap = 0;  // 0 = unchanged
  std::optional<cap_map> capmap;
  std::optional<std::vector<endpoint>> endpoints;
  std::optional<public_key> key;
  std::optional<std::string> key_signature;
  std::optional<public_key> disco_key;
  std::optional<bool> online;
  std::optional<timestamp> last_seen;
  std::optional<timestamp> key_expiry;
  friend bool operator==(const peer_change&, const peer_change&) = default;
};

struct derp_node {
  std::string name;
  int region_id = 0;
  std::string host_name;
  std::string cert_name;  // empty: host_name
  std::string ipv4;  // "", an address, or "none"
  std::string ipv6;
  int stun_port = 0;  // 0 = 3478, -1 = none
  bool stun_only = false;
  int derp_port = 0;  // 0 = 443
  bool insecure_for_tests = false;
  std::string stun_test_ip;
  bool can_port80 = false;
  friend bool operator==(const derp_node&, const derp_node&) = default;
};

struct derp_region {
  int region_id = 0;
  std::string region_code;
  std::string region_name;
  double latitude = 0;
  double longitude = 0;
  bool avoid = false;
  bool no_measure_no_home = false;
  std::vector<derp_node> nodes;
  friend bool operator==(const derp_region&, const derp_region&) = default;
};

struct derp_home_params {
  std::optional<std::map<int, double>> region_score;
  friend bool operator==(const derp_home_params&, const derp_home_params&) = default;
};

struct derp_map {
  std::optional<derp_home_params> home_params;
  // Absent means "keep the previous regions"; null regions were dropped.
  std::optional<std::map<int, derp_region>> regions;
  bool omit_default_regions = false;
  friend bool operator==(const derp_map&, const derp_map&) = default;
};

struct dns_record {
  std::string name;
  std::string type;  // "" = A or AAAA by the value
  std::string value;
  friend bool operator==(const dns_record&, const dns_record&) = default;
};

struct dns_config {
  std::vector<dns_resolver> resolvers;
  // Split DNS: suffix -> resolvers; an empty list means "answered by the
  // node's own resolver" (MagicDNS, the reverse zones).
  std::map<std::string, std::vector<dns_resolver>> routes;
  std::vector<dns_resolver> fallback_resolvers;
  std::vector<std::string> domains;  // search domains
  bool proxied = false;  // MagicDNS on
  std::vector<ip_address> nameservers;  // deprecated
  std::vector<std::string> cert_domains;
  std::vector<dns_record> extra_records;
  std::vector<std::string> exit_node_filtered_set;
  friend bool operator==(const dns_config&, const dns_config&) = default;
};

// A packet filter rule as sent (tailcfg.FilterRule); packet_filter.h has
// the compiled form.
struct net_port_range {
  std::string ip;  // address, CIDR, "a-b" range, "*"
  std::optional<int> bits;  // deprecated; rejected when compiling
  port_range ports;
  friend bool operator==(const net_port_range&, const net_port_range&) = default;
};

struct cap_grant {
  std::vector<ip_prefix> dsts;
  std::vector<std::string> caps;
  cap_map capmap;
  friend bool operator==(const cap_grant&, const cap_grant&) = default;
};

struct filter_rule {
  std::vector<std::string> src_ips;
  std::vector<int> src_bits;  // deprecated; rejected when compiling
  std::vector<net_port_range> dst_ports;
  std::vector<int> ip_proto;  // empty: TCP, UDP, ICMPv4, ICMPv6
  std::vector<cap_grant> cap_grants;
  friend bool operator==(const filter_rule&, const filter_rule&) = default;
};

struct user_profile {
  user_id id = 0;
  std::string login_name;
  std::string display_name;
  friend bool operator==(const user_profile&, const user_profile&) = default;
};

struct ping_request {
  std::string url;
  bool log = false;
  std::string types;  // comma-separated: "disco", "TSMP", "ICMP", "peerapi", "c2n"
  std::optional<ip_address> ip;
  int size = 0;
  friend bool operator==(const ping_request&, const ping_request&) = default;
};

struct map_response {
  // Per-response fields (valid on KeepAlive frames too).
  bool keep_alive = false;
  std::optional<timestamp> control_time;
  std::optional<ping_request> ping;
  std::string pop_browser_url;
  std::string map_session_handle;
  std::int64_t seq = 0;

  // Netmap state; absent = unchanged.
  std::optional<node> self;
  std::optional<derp_map> derp;
  std::vector<node> peers;  // non-empty: the whole peer list
  std::vector<node> peers_changed;
  std::vector<node_id> peers_removed;
  std::vector<peer_change> peers_changed_patch;
  std::map<node_id, bool> peer_seen_change;
  std::map<node_id, bool> online_change;
  std::optional<dns_config> dns;
  std::string domain;  // empty = unchanged
  std::optional<bool> collect_services;
  std::optional<std::vector<filter_rule>> packet_filter;  // older single blob ("base")
  // Named chunks; a null chunk deletes that name, "*": null clears them all.
  std::optional<std::map<std::string, std::optional<std::vector<filter_rule>>>> packet_filters;
  std::vector<user_profile> user_profiles;
  std::optional<std::vector<std::string>> health;
  std::string domain_audit_log_id;
};

struct parse_limits {
  std::size_t max_bytes = std::size_t{64} << 20;  // the decompressed limit of the stream
  std::size_t max_depth = 64;  // tailcfg needs about 8
};

struct map_parse_result {
  std::optional<map_response> response;
  std::string error;  // why, when response is empty
  explicit operator bool() const noexcept { return response.has_value(); }
};

// Parses one MapResponse. Never throws; bad input gives an error, never a
// partial response.
map_parse_result parse_map_response(std::string_view json_text, const parse_limits& limits = {});

// "nodekey:<64 hex>" and friends: the text forms of tailscale's keys
// (types/key). Either case of hex, as tailscale accepts.
std::optional<public_key> parse_prefixed_key(std::string_view text, std::string_view prefix);

// Go's netip.ParsePrefix: like ip_prefix::parse, but the bits must be plain
// decimal ("0" or without a leading zero).
std::optional<ip_prefix> parse_prefix_strict(std::string_view text);
std::string format_prefixed_key(const public_key& key, std::string_view prefix);
inline constexpr std::string_view node_key_prefix = "nodekey:";
inline constexpr std::string_view disco_key_prefix = "discokey:";
inline constexpr std::string_view machine_key_prefix = "mkey:";

}  // namespace lopower::tailnet
