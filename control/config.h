#pragma once
// lopowerd's configuration: one TOML file, parsed and validated completely at
// start. Every refusal names the file, the line and the key at fault, so a
// typo is never silently replaced by a default.

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "lopower/dataplane_config.h"
#include "lopower/egress_mode.h"
#include "lopower/net_addr.h"
#include "lopower/wireguard_messages.h"

namespace lopower {

// Thrown for any invalid configuration; what() is the full operator-facing
// message: "FILE:LINE: KEY: problem (expected ...)".
class config_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// port_role, idle_policy, port_config ([[port]]) and dataplane_config
// ([dataplane]) are the dataplane's: lopower/dataplane_config.h.

struct dpdk_config {
  // Used only when lopowerd was started without EAL options on its command line.
  std::string lcores = "0-1";            // EAL -l; the main lcore runs the control plane, the rest are workers
  std::optional<unsigned> main_lcore;    // EAL --main-lcore; default: lowest lcore of the list
  std::vector<unsigned> lcore_list;      // `lcores` expanded, sorted, unique (filled by the parser)
  bool no_huge = false;                  // --no-huge
  bool in_memory = true;                 // --in-memory (no files in /dev/hugepages or /var/run/dpdk)
  bool no_pci = false;                   // --no-pci
  std::string file_prefix;               // --file-prefix (several instances on one machine)
  std::uint32_t memory_mb = 0;           // -m; 0 = EAL's default (with no_huge, 512 is used)
  std::vector<std::string> extra_args;   // passed verbatim after the generated ones
  int line = 0;
};

struct daemon_config {
  std::string state_dir = "/var/lib/lopower";
  std::string ctl_socket = "/run/lopower/lopower.sock";
  std::string ctl_group;                 // empty: root only; else the socket is group-accessible
  std::string log_level = "info";        // error, warning, info, debug
  bool core_dumps = false;               // false: lopowerd is not dumpable (dumps would hold keys)
};

struct wireguard_config {
  std::uint16_t listen_port = 51820;     // UDP port devices connect to (ports with role devices/both)
  std::string crypto_backend = "auto";   // "auto" (fastest available), "ipsec-mb", "libsodium"
  // Protocol timers (whitepaper §6.1). Only tests should shorten them: a
  // short rekey shows a rekey inside a test. reject_after > rekey_after.
  std::uint32_t rekey_after_seconds = wg::rekey_after_time.count();
  std::uint32_t reject_after_seconds = wg::reject_after_time.count();
  std::uint32_t keepalive_timeout_seconds = wg::keepalive_timeout.count();
  // Initiations queued for the handshake service beyond which lopower answers
  // with cookie replies instead of doing the work (the device must prove its
  // address first).
  std::uint32_t handshake_load_threshold = 64;
};

// The device side: addresses devices get and what goes into their configs.
struct devices_config {
  std::optional<ip_prefix> ipv4_prefix = ip_prefix{ip_address::v4(0x0a5a0000), 24};  // absent: IPv4 off
  ip_prefix ipv6_prefix = *ip_prefix::parse("fd7a:115c:a1e0:9909::/64");
  std::string endpoint;                  // "host:port" written into device configs; required to print one
  std::uint16_t mtu = 1420;              // device tunnel MTU (ESP32 libraries use 1420)
  bool route_all_ipv4 = false;           // add 0.0.0.0/0 to devices' AllowedIPs (ESP32 libraries route everything)
  std::uint16_t keepalive = 25;          // PersistentKeepalive for new devices, 0 = off
  bool device_to_device = false;         // "allow": devices reach each other; "deny" (default): IoT isolation
  int line = 0;
};

// [inbound]: tailnet peers reaching devices.
struct inbound_config {
  // Advertise the device prefixes as subnet routes (Hostinfo.RoutableIPs)
  // and carry peers' traffic to device addresses.
  bool advertise_routes = false;
  // Such traffic reaches a device from lopower's device-side address (like
  // tailscaled's --snat-subnet-routes): the device needs no route back. Off:
  // from the peer's own address, and devices' AllowedIPs cover the tailnet.
  bool snat = true;
  int line = 0;
};

struct dns_config_table {
  // Where names lopower does not answer itself go: "198.18.0.53" or
  // "198.18.0.53:5353" / "[fd00::53]:53". Empty: only the tailnet's own
  // resolvers (if it sets any); otherwise such names get SERVFAIL.
  std::vector<std::string> upstreams;
  // Queries per second one device may send lopower's DNS server, paced on
  // the worker (a second's worth at once); 0: not paced.
  std::uint32_t device_query_rate = 200;
  // Devices answered by name under this domain ("esp32.lopower.internal"),
  // to devices and to tailnet peers that ask lopower's tailnet address.
  // Empty: device names are not answered (and the tailnet gets REFUSED).
  std::string device_domain = "lopower.internal";
  int line = 0;
};

// [egress]: where device traffic not addressed to the tailnet goes (a
// device may override the mode: the device registry).
struct egress_config {
  egress_mode mode = egress_mode::none;  // without a mode: uplink when a port has that role
  // Tailnet peers (MagicDNS name, short or full, or tailnet IP) offering an
  // exit node, in failover order; {"auto"}: the online one with the lowest
  // latency.
  std::vector<std::string> exit_nodes{"auto"};
  int line = 0;
  int mode_line = 0;  // 0: no mode given (an uplink port, if any, is the default)
};

struct tailnet_config {
  std::uint16_t listen_port = 41641;     // UDP port for WireGuard/disco/STUN with tailnet peers
  // The coordination server, "http://host[:port]" or "https://host[:port]".
  // Empty: lopower does not join a tailnet (device side only).
  std::string control_url;
  std::string ca_file;                   // https: a PEM bundle trusted besides the system roots
  std::string hostname = "lopower";      // the node's name in the tailnet (Hostinfo.Hostname)
  std::string auth_key_file;             // a pre-auth key; else $LOPOWER_AUTHKEY; else interactive login
  std::vector<std::string> advertise_tags;  // "tag:name", requested at registration
  bool ephemeral = false;                // the node goes away when lopower logs out or stays offline
  bool accept_routes = false;            // use peers' subnet routes
  // Endpoints announced to peers ("ip:port"); empty: the tailnet ports'
  // addresses at listen_port. Set them when lopower sits behind a NAT.
  std::vector<std::string> advertise_endpoints;
  int line = 0;                          // where [tailnet] starts
};

// [derp]: relays for tailnet peers with no direct path (on by default; the
// regions come from the coordination server's DERP map).
struct derp_config {
  bool enabled = true;
  // DERP servers dialled over plain HTTP (labs; tailscaled's
  // TS_DEBUG_USE_DERP_HTTP=1). Off: TLS, verified as the DERP map says.
  bool plain_http = false;
  // A DERP map (tailcfg.DERPMap JSON) used instead of the server's.
  std::string map_file;
  int line = 0;
};

// [metrics]: a Prometheus endpoint (off unless `listen` is set).
struct metrics_config {
  std::string listen;                    // "127.0.0.1:9586", "[::1]:9586"; empty: off
  ip_address address;                    // parsed from listen
  std::uint16_t port = 0;
  int line = 0;
  bool enabled() const { return port != 0; }
};

// [[forward]]: a port on lopower's tailnet address carried to a device
// (besides those `lopower-ctl forward add` keeps in the state directory).
struct forward_config {
  std::string protocol;           // "tcp" or "udp"
  std::uint16_t port = 0;         // on lopower's tailnet address
  std::string device;             // an enrolled device's name (checked at start)
  std::uint16_t device_port = 0;
  int line = 0;
};

struct config {
  std::string path;                      // the file it came from (for messages)
  daemon_config daemon;
  dpdk_config dpdk;
  dataplane_config dataplane;
  wireguard_config wireguard;
  devices_config devices;
  tailnet_config tailnet;
  derp_config derp;
  inbound_config inbound;
  dns_config_table dns;
  egress_config egress;
  metrics_config metrics;
  std::vector<port_config> ports;        // at least one; in file order
  std::vector<forward_config> forwards;  // [[forward]], in file order

  // Worker lcores: dpdk.lcore_list without the main lcore.
  std::vector<unsigned> worker_lcores() const;
  unsigned main_lcore() const;
  // The port with role uplink (at most one), or nullptr.
  const port_config* uplink_port() const;
};

// Parses and validates; throws config_error.
// A configuration file is small; anything larger is refused unread.
inline constexpr std::size_t max_config_bytes = 1024 * 1024;
config load_config_file(const std::string& path);

// What the file alone cannot show but start-up would fail on: the named
// control-socket group exists, the auth key file is a readable, non-empty
// file. One message per problem, "FILE: key: problem"; empty when none.
std::vector<std::string> environment_problems(const config& cfg);
// Same, from text; `path` is used in messages only.
config parse_config(std::string_view text, const std::string& path);

// The EAL argv that lopowerd passes to rte_eal_init when the command line
// carries none (argv[0] first).
std::vector<std::string> eal_arguments(const config& cfg, const std::string& program);

// What the dataplane is built from.
dataplane_settings dataplane_settings_of(const config& cfg);

}  // namespace lopower
