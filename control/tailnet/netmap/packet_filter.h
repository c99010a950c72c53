#pragma once
// The packet filter compiled from MapResponse filter rules, as tailscale's
// wgengine/filter MatchesFromFilterRules does: "*" becomes 0.0.0.0/0 and ::/0,
// single addresses become /32 or /128, "a-b" ranges become the smallest set
// of prefixes, "cap:" sources become source capabilities, and an empty
// IPProto means TCP, UDP, ICMPv4 and ICMPv6. A bad entry is skipped and the
// first such problem is reported; a rule using the deprecated SrcBits or
// DstPorts[].Bits throws away the whole filter (deny everything), as there.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "control/tailnet/netmap/map_response.h"
#include "lopower/net_addr.h"

namespace lopower::tailnet {

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

struct compiled_filter {
  std::vector<filter_match> matches;
  std::string error;  // the first problem met; empty when none
};

compiled_filter compile_filter(const std::vector<filter_rule>& rules);

// Whether some match admits the packet (stateless: replies to outgoing
// connections are the dataplane's business). Without a port (ICMP), only
// addresses and protocol are matched.
bool filter_allows(const std::vector<filter_match>& matches, std::uint8_t ip_proto, const ip_address& src,
                   const ip_address& dst, std::optional<std::uint16_t> dst_port);

// The smallest list of prefixes covering exactly [from, to]; empty when the
// two are of different families or from > to.
std::vector<ip_prefix> range_to_prefixes(const ip_address& from, const ip_address& to);

}  // namespace lopower::tailnet
