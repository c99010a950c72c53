#pragma once
// What the dataplane reads of lopowerd's configuration. control/config.h
// parses and validates the file into its `config`, whose [[port]] and
// [dataplane] tables are these structs as they are; lopowerd hands the
// dataplane a dataplane_settings made from it (dataplane_settings_of).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "lopower/net_addr.h"

namespace lopower {

// uplink: toward the internet; no WireGuard listener, device traffic for
// the internet leaves there source-NATed to the port's address.
enum class port_role : std::uint8_t { devices, tailnet, both, uplink };

// Serves devices' WireGuard (devices, both) / the tailnet (tailnet, both).
constexpr bool serves_devices(port_role r) { return r == port_role::devices || r == port_role::both; }
constexpr bool serves_tailnet(port_role r) { return r == port_role::tailnet || r == port_role::both; }
enum class idle_policy : std::uint8_t { poll, adaptive };

constexpr const char* to_string(port_role role) {
  switch (role) {
    case port_role::devices: return "devices";
    case port_role::tailnet: return "tailnet";
    case port_role::both: return "both";
    case port_role::uplink: return "uplink";
  }
  return "?";
}

constexpr const char* to_string(idle_policy policy) {
  switch (policy) {
    case idle_policy::poll: return "poll";
    case idle_policy::adaptive: return "adaptive";
  }
  return "?";
}

// A [[port]] table.
struct port_config {
  std::string name;           // [[port]] name: letters, digits, '-', '_'; 1..12 chars; unique
  std::string device;         // PCI address ("0000:01:00.0") or vdev string ("net_af_packet0,iface=veth0")
  port_role role = port_role::both;
  std::vector<ip_prefix> addresses;          // interface addresses with prefix length (v4 and/or v6)
  std::optional<ip_address> gateway4;        // must be IPv4 and inside one of the port's v4 prefixes
  std::optional<ip_address> gateway6;        // must be IPv6 (link-local allowed, or inside a v6 prefix)
  std::uint16_t mtu = 1500;                  // 576..9000 (1280..9000 when the port has an IPv6 address)
  std::string tap_name;                      // kernel TAP of the exception path; default "lp-" + name; <= 15 chars; unique
  bool exception_path = true;                // false: no TAP, frames the dataplane does not own are dropped
  // net_af_packet ports: lopowerd keeps the host's own stack off the
  // interface (ingress drop, offloads off) unless it is shared on purpose.
  bool host_stack_bypass = true;
  std::uint16_t rx_descriptors = 1024;       // 64..16384, power of two
  std::uint16_t tx_descriptors = 1024;       // 64..16384, power of two
  // role uplink: the source ports NATed flows get on the port's address,
  // below the kernel's ephemeral range (32768..60999) the exception path's
  // TAP shares that address with.
  std::uint16_t nat_first_port = 20000;
  std::uint16_t nat_last_port = 29999;
  int line = 0;                              // where the [[port]] table starts, for later messages
};

// The [dataplane] table.
struct dataplane_config {
  std::uint16_t burst_size = 32;          // 1..256
  std::uint32_t mbufs = 16383;            // per NUMA socket, >= 1024
  std::uint16_t mbuf_cache = 256;         // 0..512
  idle_policy idle = idle_policy::adaptive;
  std::uint32_t idle_sleep_max_us = 1000; // adaptive: longest sleep when queues stay empty, 1..100000
  std::uint32_t idle_hold_us = 500;       // adaptive: no sleep within this long of the last packet, 0..100000
  std::uint32_t tx_drain_us = 100;        // buffered TX is flushed at least this often, 1..10000
  std::uint32_t ring_size = 1024;         // worker<->control rings, power of two, 64..65536
  std::uint32_t max_flows = 65536;        // spliced flows in all, 64..4194304
  std::uint32_t max_flows_per_device = 4096;  // 1..max_flows
  std::uint32_t neighbour_timeout_s = 1200;   // an ARP/ND entry not refreshed this long is dropped, 5..86400
};

// Everything the dataplane is built from: the two tables above and the few
// keys of other tables it acts on. Always made from a validated config.
struct dataplane_settings {
  std::string config_path;                   // the file, named in messages about a [[port]]
  dataplane_config dataplane;                // [dataplane]
  std::vector<port_config> ports;            // [[port]], in file order
  std::uint16_t wireguard_port = 0;          // [wireguard] listen_port: devices' WireGuard
  std::uint16_t tailnet_port = 0;            // [tailnet] listen_port: WireGuard/disco/STUN with peers
  std::string crypto_backend;                // [wireguard] crypto_backend
  std::uint32_t reject_after_seconds = 0;    // [wireguard] reject_after_seconds
  std::optional<ip_prefix> device_ipv4_prefix;  // [devices] ipv4_prefix (absent: IPv4 off); lopower is its first host
  ip_prefix device_ipv6_prefix;              // [devices] ipv6_prefix; lopower is its first host
  std::uint16_t device_mtu = 0;              // [devices] mtu
  bool device_to_device = false;             // [devices] device_to_device = "allow"
  bool inbound_routes = false;               // [inbound] advertise_routes: tailnet peers reach device addresses
  bool inbound_snat = true;                  // [inbound] snat
  std::uint32_t dns_device_query_rate = 0;   // [dns] device_query_rate: per second and device (0: not paced)
  std::uint32_t handshake_load_threshold = 0;  // [wireguard]: a worker's own handshake backlog past this is load (0: off)
};

}  // namespace lopower
