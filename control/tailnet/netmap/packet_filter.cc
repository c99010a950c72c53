#include "control/tailnet/netmap/packet_filter.h"

#include "control/tailnet/netmap/map_response.h"

#include <algorithm>
#include <string_view>

namespace lopower::tailnet {

namespace {

__extension__ typedef unsigned __int128 u128;

unsigned width(const ip_address& a) { return a.family == ip_family::v4 ? 32 : 128; }

u128 to_int(const ip_address& a) {
  u128 v = 0;
  for (unsigned i = 0; i < width(a) / 8; ++i) v = (v << 8) | a.bytes[i];
  return v;
}

ip_address from_int(u128 v, ip_family family) {
  ip_address a;
  a.family = family;
  const unsigned n = family == ip_family::v4 ? 4 : 16;
  for (unsigned i = n; i-- > 0;) {
    a.bytes[i] = static_cast<std::uint8_t>(v & 0xff);
    v >>= 8;
  }
  return a;
}

bool is_masked(const ip_prefix& p) {
  const u128 v = to_int(p.address);
  const unsigned host_bits = width(p.address) - p.length;
  if (host_bits == 0) return true;
  const u128 mask = host_bits >= 128 ? ~u128{0} : (u128{1} << host_bits) - 1;
  return (v & mask) == 0;
}

ip_prefix any_prefix(ip_family family) {
  ip_prefix p;
  p.address.family = family;
  p.length = 0;
  return p;
}

struct ip_set {
  std::vector<ip_prefix> prefixes;
  std::string cap;
  std::string error;
};

// wgengine/filter parseIPSet.
ip_set parse_ip_set(const std::string& arg) {
  ip_set out;
  if (arg == "*") {
    out.prefixes = {any_prefix(ip_family::v4), any_prefix(ip_family::v6)};
    return out;
  }
  if (arg.rfind("cap:", 0) == 0) {
    out.cap = arg.substr(4);
    return out;
  }
  if (arg.find('/') != std::string::npos) {
    const auto p = parse_prefix_strict(arg);
    if (!p) {
      out.error = "bad prefix \"" + arg + "\"";
    } else if (!is_masked(*p)) {
      out.error = arg + " contains non-network bits set";
    } else {
      out.prefixes.push_back(*p);
    }
    return out;
  }
  if (std::count(arg.begin(), arg.end(), '-') == 1) {
    const auto dash = arg.find('-');
    const auto a = ip_address::parse(std::string_view(arg).substr(0, dash));
    const auto b = ip_address::parse(std::string_view(arg).substr(dash + 1));
    if (!a || !b) {
      out.error = "bad IP range \"" + arg + "\"";
      return out;
    }
    out.prefixes = range_to_prefixes(*a, *b);
    if (out.prefixes.empty()) out.error = "invalid IP range \"" + arg + "\"";
    return out;
  }
  const auto a = ip_address::parse(arg);
  if (!a) {
    out.error = "invalid IP address \"" + arg + "\"";
    return out;
  }
  out.prefixes.push_back(ip_prefix{*a, static_cast<std::uint8_t>(width(*a))});
  return out;
}

}  // namespace

std::vector<ip_prefix> range_to_prefixes(const ip_address& from, const ip_address& to) {
  std::vector<ip_prefix> out;
  if (from.family != to.family) return out;
  const unsigned w = width(from);
  u128 lo = to_int(from);
  const u128 hi = to_int(to);
  if (lo > hi) return out;
  for (;;) {
    // The largest block starting at lo (aligned) that does not pass hi.
    unsigned k = 0;
    while (k < w && ((lo >> k) & 1) == 0) {
      const unsigned next = k + 1;
      const u128 last = next >= 128 ? ~u128{0} : lo + ((u128{1} << next) - 1);
      if (next < 128 && last < lo) break;  // overflow
      if (last > hi) break;
      k = next;
    }
    out.push_back(ip_prefix{from_int(lo, from.family), static_cast<std::uint8_t>(w - k)});
    const u128 last = k >= 128 ? ~u128{0} : lo + ((u128{1} << k) - 1);
    if (last >= hi) break;
    lo = last + 1;
  }
  return out;
}

compiled_filter compile_filter(const std::vector<filter_rule>& rules) {
  compiled_filter out;
  out.matches.reserve(rules.size());
  for (const auto& r : rules) {
    if (!r.src_bits.empty()) {
      return compiled_filter{{}, "unexpected SrcBits; control plane should not send this to this client version"};
    }
    filter_match m;
    if (r.ip_proto.empty()) {
      m.ip_proto = {6, 17, 1, 58};
    } else {
      for (const int p : r.ip_proto) {
        if (p >= 0 && p <= 0xff) m.ip_proto.push_back(static_cast<std::uint8_t>(p));
      }
    }
    for (const auto& s : r.src_ips) {
      ip_set set = parse_ip_set(s);
      if (!set.error.empty()) {
        if (out.error.empty()) out.error = std::move(set.error);
        continue;
      }
      m.srcs.insert(m.srcs.end(), set.prefixes.begin(), set.prefixes.end());
      if (!set.cap.empty()) m.src_caps.push_back(std::move(set.cap));
    }
    for (const auto& d : r.dst_ports) {
      if (d.bits) {
        return compiled_filter{{}, "unexpected DstBits; control plane should not send this to this client version"};
      }
      ip_set set = parse_ip_set(d.ip);
      if (!set.error.empty()) {
        if (out.error.empty()) out.error = std::move(set.error);
        continue;
      }
      if (!set.cap.empty()) {
        out.error = "unexpected capability \"" + set.cap + "\" in DstPorts";
        continue;
      }
      for (const auto& net : set.prefixes) m.dsts.push_back(filter_dst{net, d.ports});
    }
    for (const auto& g : r.cap_grants) {
      for (const auto& dst : g.dsts) {
        for (const auto& c : g.caps) m.caps.push_back(filter_cap_match{dst, c, {}});
        for (const auto& [c, values] : g.capmap) m.caps.push_back(filter_cap_match{dst, c, values});
      }
    }
    out.matches.push_back(std::move(m));
  }
  return out;
}

}  // namespace lopower::tailnet
