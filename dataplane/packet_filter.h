#pragma once
// The tailnet's packet filter as the workers run it: compiled match rules
// (tailscale's wgengine/filter Match) and the stateless check of an inbound
// packet against them. No DPDK: the netmap (control/tailnet/netmap), which
// compiles these from MapResponse rules, links it too.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "lopower/net_addr.h"

namespace lopower {

struct filter_dst {
  ip_prefix net;
  port_range ports;
  friend bool operator==(const filter_dst&, const filter_dst&) = default;
};

struct filter_cap_match {
  ip_prefix dst;
  std::string cap;
  std::vector<std::string> values;  // JSON text of each value
  friend bool operator==(const filter_cap_match&, const filter_cap_match&) = default;
};

// One compiled rule: a packet matches when its protocol is listed, its
// source is in srcs, and its destination address and port in one of dsts.
struct filter_match {
  std::vector<std::uint8_t> ip_proto;
  std::vector<ip_prefix> srcs;  // masked prefixes
  std::vector<std::string> src_caps;
  std::vector<filter_dst> dsts;
  std::vector<filter_cap_match> caps;
  friend bool operator==(const filter_match&, const filter_match&) = default;
};

// Whether some match admits the packet (stateless: replies to outgoing
// connections are the dataplane's business). Without a port (ICMP), only
// addresses and protocol are matched.
bool filter_allows(const std::vector<filter_match>& matches, std::uint8_t ip_proto, const ip_address& src,
                   const ip_address& dst, std::optional<std::uint16_t> dst_port);

}  // namespace lopower
