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
#include "dataplane/packet_filter.h"
#include "lopower/net_addr.h"

namespace lopower::tailnet {

// The compiled form is the dataplane's (dataplane/packet_filter.h, which
// also has filter_allows); the names stay valid in this namespace.
using lopower::filter_cap_match;
using lopower::filter_dst;
using lopower::filter_match;
using lopower::filter_allows;

struct compiled_filter {
  std::vector<filter_match> matches;
  std::string error;  // the first problem met; empty when none
};

compiled_filter compile_filter(const std::vector<filter_rule>& rules);

// The smallest list of prefixes covering exactly [from, to]; empty when the
// two are of different families or from > to.
std::vector<ip_prefix> range_to_prefixes(const ip_address& from, const ip_address& to);

}  // namespace lopower::tailnet
