#pragma once
// The wg-quick configuration a device is enrolled with:
//
//   [Interface]
//   PrivateKey = <base64>
//   Address = 10.90.0.2/32, fd7a:115c:a1e0:9909::2/128
//   DNS = 10.90.0.1, fd7a:115c:a1e0:9909::1
//   MTU = 1420
//
//   [Peer]
//   PublicKey = <lopower's device-side public key>
//   AllowedIPs = 10.90.0.1/32, fd7a:115c:a1e0:9909::1/128, 100.64.0.0/10, fd7a:115c:a1e0::/48
//   Endpoint = gw.example.com:51820
//   PersistentKeepalive = 25
//
// Families: a line carries a family only when both the device and lopower
// have an address of it. A device without IPv4 (IPv4 off, or --ipv6-only)
// gets no IPv4 at all: not lopower's 10.90.0.1/32, not 100.64.0.0/10, not
// 0.0.0.0/0. Likewise an IPv4-only device gets only IPv4 AllowedIPs: it has
// no IPv6 source address, so IPv6 routes into the tunnel would only black-hole
// its IPv6 traffic.
//
// When lopower does not hold the device's private key (it gave its own public
// key), PrivateKey is a placeholder with a comment saying to fill it in on the
// device. PersistentKeepalive is left out when it is 0.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "control/enrollment/device_registry.h"
#include "control/enrollment/keys.h"
#include "control/enrollment/result.h"
#include "lopower/net_addr.h"

namespace lopower::enrollment {

// The config key the endpoint comes from, named in errors.
inline constexpr std::string_view endpoint_config_key = "devices.endpoint";
inline constexpr std::string_view private_key_placeholder = "<the device's private key>";
// The tailnet's address ranges (CGNAT range and Tailscale's ULA).
inline constexpr std::string_view tailnet_ipv4_range = "100.64.0.0/10";
inline constexpr std::string_view tailnet_ipv6_range = "fd7a:115c:a1e0::/48";

struct server_addresses {
  std::optional<ip_address> ipv4;  // absent when IPv4 is off
  std::optional<ip_address> ipv6;
};

struct wg_quick_options {
  std::uint16_t mtu = 1420;
  bool route_all_ipv4 = false;  // add 0.0.0.0/0 for devices with IPv4 ([devices] route_all_ipv4)
  // The device's egress carries traffic beyond the tailnet (an exit node,
  // the uplink): its default route of that family goes into the tunnel,
  // else such traffic would never reach lopower.
  bool default_route_v4 = false, default_route_v6 = false;
  // [devices] device_to_device = "allow": the devices' prefixes (each kept
  // for a device with an address of its family).
  std::vector<ip_prefix> device_prefixes;
  std::string endpoint;         // "host:port" from [devices] endpoint
};

struct endpoint {
  std::string host;  // a DNS name, an IPv4 address, or an IPv6 address in brackets ("[fd00::1]")
  std::uint16_t port = 0;
  std::string to_string() const { return host + ":" + std::to_string(port); }
};

// Checks "host:port": host a DNS name, IPv4 address or bracketed IPv6
// address; port 1..65535. Errors name `devices.endpoint`.
result<endpoint> parse_endpoint(std::string_view text);

// The config text. Fails, naming the key to set, when the endpoint is
// missing or unusable: a config with a placeholder endpoint is never made.
// The text holds the device's private key: wipe() it when done.
result<std::string> render_wg_quick_config(const device& d, const public_key& server_public_key,
                                           const server_addresses& server, const wg_quick_options& options);

}  // namespace lopower::enrollment
