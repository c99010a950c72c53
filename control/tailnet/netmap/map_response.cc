#include "control/tailnet/netmap/map_response.h"

#include <chrono>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <new>
#include <utility>

#include <nlohmann/json.hpp>

namespace lopower::tailnet {

namespace {

using json = nlohmann::json;

// ---------------------------------------------------------------------------
// Text forms.

bool parse_digits(std::string_view text, int& out) {
  if (text.empty()) return false;
  int v = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  out = v;
  return true;
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
// days_from_civil).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

void civil_from_days(std::int64_t z, std::int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
}

bool is_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int days_in_month(int y, int m) {
  static constexpr int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : days[m - 1];
}


std::uint64_t fnv1a(std::uint64_t h, const void* data, std::size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

// A hash of a JSON value's content (objects are key-sorted already), without
// rendering it to text.
std::uint64_t hash_json(const json& j, std::uint64_t h) {
  const auto tag = static_cast<unsigned char>(j.type());
  h = fnv1a(h, &tag, 1);
  switch (j.type()) {
    case json::value_t::object:
      for (const auto& [k, v] : j.items()) {
        h = fnv1a(h, k.data(), k.size() + 1);
        h = hash_json(v, h);
      }
      break;
    case json::value_t::array:
      for (const auto& v : j) h = hash_json(v, h);
      h = fnv1a(h, "]", 1);
      break;
    case json::value_t::string: {
      const auto& s = j.get_ref<const std::string&>();
      h = fnv1a(h, s.data(), s.size() + 1);
      break;
    }
    case json::value_t::boolean: {
      const unsigned char b = j.get<bool>() ? 1 : 0;
      h = fnv1a(h, &b, 1);
      break;
    }
    case json::value_t::number_integer: {
      const auto v = j.get<std::int64_t>();
      h = fnv1a(h, &v, sizeof v);
      break;
    }
    case json::value_t::number_unsigned: {
      const auto v = j.get<std::uint64_t>();
      h = fnv1a(h, &v, sizeof v);
      break;
    }
    case json::value_t::number_float: {
      const auto v = j.get<double>();
      h = fnv1a(h, &v, sizeof v);
      break;
    }
    default:
      break;
  }
  return h;
}

// The deepest nesting of arrays and objects, counted without parsing, so
// that nothing recursive ever sees a deeper document.
bool depth_within(std::string_view text, std::size_t max_depth) {
  std::size_t depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '{':
      case '[':
        if (++depth > max_depth) return false;
        break;
      case '}':
      case ']':
        if (depth > 0) --depth;
        break;
      default:
        break;
    }
  }
  return true;
}

// ---------------------------------------------------------------------------
// The decoder: typed reads with Go's json.Unmarshal rules. Null reads as
// absent. On failure each level adds its name in front of the reason.

class decoder {
 public:
  std::string error() const { return path_.empty() ? reason_ : path_ + ": " + reason_; }

  bool fail(std::string reason) {
    reason_ = std::move(reason);
    path_.clear();
    return false;
  }
  // Puts a field name in front of the failing path.
  bool in(std::string_view where) {
    std::string p(where);
    if (!path_.empty() && path_.front() != '[') p += '.';
    path_.insert(0, p);
    return false;
  }
  bool at(std::size_t index) {
    std::string p = "[" + std::to_string(index) + "]";
    if (!path_.empty() && path_.front() != '[') p += '.';
    path_.insert(0, p);
    return false;
  }

  // The field `name` of `obj`, or nullptr when absent or null.
  static const json* field(const json& obj, std::string_view name) {
    const auto it = obj.find(name);
    if (it == obj.end() || it->is_null()) return nullptr;
    return &*it;
  }

  bool object(const json& j) { return j.is_object() || fail("not an object"); }
  bool array(const json& j) { return j.is_array() || fail("not an array"); }

  bool read(const json& j, std::int64_t& out) {
    // (is_number_integer() is true for unsigned numbers too: test those first.)
    if (j.is_number_unsigned()) {
      const auto v = j.get<std::uint64_t>();
      if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return fail("integer out of range");
      out = static_cast<std::int64_t>(v);
      return true;
    }
    if (j.is_number_integer()) {
      out = j.get<std::int64_t>();
      return true;
    }
    return fail(j.is_number() ? "not an integer" : "not a number");
  }
  bool read(const json& j, int& out) {
    std::int64_t v = 0;
    if (!read(j, v)) return false;
    if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max()) return fail("integer out of range");
    out = static_cast<int>(v);
    return true;
  }
  bool read(const json& j, std::uint16_t& out) {
    std::int64_t v = 0;
    if (!read(j, v)) return false;
    if (v < 0 || v > 65535) return fail("integer out of range");
    out = static_cast<std::uint16_t>(v);
    return true;
  }
  bool read(const json& j, double& out) {
    if (!j.is_number()) return fail("not a number");
    out = j.get<double>();
    return true;
  }
  bool read(const json& j, bool& out) {
    if (!j.is_boolean()) return fail("not a boolean");
    out = j.get<bool>();
    return true;
  }
  bool read(const json& j, std::string& out) {
    if (!j.is_string()) return fail("not a string");
    out = j.get_ref<const std::string&>();
    return true;
  }
  bool read(const json& j, timestamp& out) {
    if (!j.is_string()) return fail("not a time string");
    const auto t = timestamp::parse(j.get_ref<const std::string&>());
    if (!t) return fail("bad RFC 3339 time");
    out = *t;
    return true;
  }
  bool read(const json& j, ip_prefix& out) {
    if (!j.is_string()) return fail("not a prefix string");
    const auto p = parse_prefix_strict(j.get_ref<const std::string&>());
    if (!p) return fail("bad IP prefix");
    out = *p;
    return true;
  }
  bool read(const json& j, ip_address& out) {
    if (!j.is_string()) return fail("not an address string");
    const auto a = ip_address::parse(j.get_ref<const std::string&>());
    if (!a) return fail("bad IP address");
    out = *a;
    return true;
  }
  bool read_key(const json& j, public_key& out, std::string_view prefix) {
    if (!j.is_string()) return fail("not a key string");
    auto k = parse_prefixed_key(j.get_ref<const std::string&>(), prefix);
    if (!k) return fail("bad key (want " + std::string(prefix) + "<64 hex digits>)");
    out = *k;
    return true;
  }

  // Field helpers: absent or null leaves `out` alone.
  template <class T>
  bool get(const json& obj, std::string_view name, T& out) {
    const json* f = field(obj, name);
    if (f == nullptr) return true;
    return read(*f, out) || in(name);
  }
  template <class T>
  bool get(const json& obj, std::string_view name, std::optional<T>& out) {
    const json* f = field(obj, name);
    if (f == nullptr) return true;
    T v{};
    if (!read(*f, v)) return in(name);
    out = std::move(v);
    return true;
  }
  bool get_key(const json& obj, std::string_view name, public_key& out, std::string_view prefix) {
    const json* f = field(obj, name);
    if (f == nullptr) return true;
    return read_key(*f, out, prefix) || in(name);
  }
  template <class T, class Fn>
  bool get_list(const json& obj, std::string_view name, std::vector<T>& out, Fn&& each) {
    const json* f = field(obj, name);
    if (f == nullptr) return true;
    return list(*f, out, each) || in(name);
  }
  template <class T>
  bool get_list(const json& obj, std::string_view name, std::vector<T>& out) {
    return get_list(obj, name, out, [this](const json& e, T& v) { return read(e, v); });
  }
  template <class T, class Fn>
  bool list(const json& j, std::vector<T>& out, Fn&& each) {
    if (!array(j)) return false;
    out.clear();
    out.reserve(j.size());
    std::size_t i = 0;
    for (const auto& e : j) {
      if (e.is_null()) return fail("null element") || at(i);
      T v{};
      if (!each(e, v)) return at(i);
      out.push_back(std::move(v));
      ++i;
    }
    return true;
  }

  bool read(const json& j, cap_map& out) {
    if (!object(j)) return false;
    out.clear();
    for (const auto& [k, v] : j.items()) {
      auto& values = out[k];
      if (v.is_null()) continue;
      if (!v.is_array()) return fail("not an array") || in(k);
      values.reserve(v.size());
      for (const auto& e : v) values.push_back(e.dump());
    }
    return true;
  }

  bool read(const json& j, endpoint& out, bool& skip) {
    if (!j.is_string()) return fail("not an endpoint string");
    const auto& s = j.get_ref<const std::string&>();
    // Go reads "" as the zero AddrPort; a zoned address (link-local) is
    // of no use without its interface. Neither is an error; both are left out.
    if (s.empty() || s.find('%') != std::string::npos) {
      skip = true;
      return true;
    }
    const auto e = endpoint::parse(s);
    if (!e) return fail("bad endpoint \"" + s + "\"");
    out = *e;
    return true;
  }
  bool read_endpoints(const json& j, std::vector<endpoint>& out) {
    if (!array(j)) return false;
    out.clear();
    out.reserve(j.size());
    std::size_t i = 0;
    for (const auto& e : j) {
      endpoint ep;
      bool skip = false;
      if (e.is_null()) return fail("null element") || at(i);
      if (!read(e, ep, skip)) return at(i);
      if (!skip) out.push_back(ep);
      ++i;
    }
    return true;
  }

  bool read(const json& j, dns_resolver& out) {
    if (!object(j)) return false;
    return get(j, "Addr", out.addr) && get_list(j, "BootstrapResolution", out.bootstrap_resolution) &&
           get(j, "UseWithExitNode", out.use_with_exit_node);
  }
  bool read(const json& j, dns_record& out) {
    if (!object(j)) return false;
    return get(j, "Name", out.name) && get(j, "Type", out.type) && get(j, "Value", out.value);
  }

  bool read(const json& j, node& out) {
    if (!object(j)) return false;
    if (!get(j, "ID", out.id) || !get(j, "StableID", out.stable_id) || !get(j, "Name", out.name) ||
        !get(j, "User", out.user) || !get(j, "Sharer", out.sharer) ||
        !get_key(j, "Key", out.key, node_key_prefix) || !get(j, "KeyExpiry", out.key_expiry) ||
        !get(j, "KeySignature", out.key_signature) || !get_key(j, "Machine", out.machine, machine_key_prefix) ||
        !get_key(j, "DiscoKey", out.disco_key, disco_key_prefix) || !get_list(j, "Addresses", out.addresses)) {
      return false;
    }
    // AllowedIPs: only null (or absent) means "the addresses"; [] is empty.
    if (field(j, "AllowedIPs") != nullptr) {
      if (!get_list(j, "AllowedIPs", out.allowed_ips)) return false;
    } else {
      out.allowed_ips = out.addresses;
    }
    if (const json* f = field(j, "Endpoints")) {
      if (!read_endpoints(*f, out.endpoints)) return in("Endpoints");
    }
    std::string legacy_derp;
    if (!get(j, "DERP", legacy_derp) || !get(j, "HomeDERP", out.home_derp)) return false;
    if (out.home_derp == 0 && !legacy_derp.empty()) out.home_derp = home_derp_from_legacy(legacy_derp);
    if (const json* h = field(j, "Hostinfo")) {
      if (!h->is_object()) return fail("not an object") || in("Hostinfo");
      out.has_hostinfo = true;
      out.hostinfo_digest = hash_json(*h, 0xcbf29ce484222325ULL);
      if (!get(*h, "Hostname", out.hostname)) return in("Hostinfo");
    }
    if (!get(j, "Created", out.created) || !get(j, "Cap", out.cap) || !get_list(j, "Tags", out.tags) ||
        !get_list(j, "PrimaryRoutes", out.primary_routes) || !get(j, "LastSeen", out.last_seen) ||
        !get(j, "Online", out.online) || !get(j, "MachineAuthorized", out.machine_authorized) ||
        !get_list(j, "Capabilities", out.capabilities) || !get(j, "CapMap", out.capmap) ||
        !get(j, "UnsignedPeerAPIOnly", out.unsigned_peer_api_only) || !get(j, "Expired", out.expired) ||
        !get_masq(j, "SelfNodeV4MasqAddrForThisPeer", out.self_v4_masq_addr) ||
        !get_masq(j, "SelfNodeV6MasqAddrForThisPeer", out.self_v6_masq_addr) ||
        !get(j, "IsWireGuardOnly", out.is_wireguard_only) || !get(j, "IsJailed", out.is_jailed) ||
        !get_list(j, "ExitNodeDNSResolvers", out.exit_node_dns_resolvers)) {
      return false;
    }
    return true;
  }

  bool get_masq(const json& obj, std::string_view name, std::optional<ip_address>& out) {
    const json* f = field(obj, name);
    if (f == nullptr) return true;
    if (!f->is_string()) return fail("not an address string") || in(name);
    if (f->get_ref<const std::string&>().empty()) return true;  // Go's zero Addr
    ip_address a;
    if (!read(*f, a)) return in(name);
    out = a;
    return true;
  }

  // upgradeNode: "127.3.3.40:<region>" (the magic DERP address) becomes the
  // region; anything else is dropped, as tailscale does. The port is read
  // with Go's strconv.Atoi (an optional sign, decimal digits).
  static int home_derp_from_legacy(std::string_view s) {
    const auto colon = s.rfind(':');
    if (colon == std::string_view::npos) return 0;
    std::string_view host = s.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    if (host != "127.3.3.40") return 0;
    std::string_view port = s.substr(colon + 1);
    bool negative = false;
    if (!port.empty() && (port[0] == '+' || port[0] == '-')) {
      negative = port[0] == '-';
      port.remove_prefix(1);
    }
    int v = 0;
    const auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
    if (ec != std::errc() || p != port.data() + port.size() || port.empty()) return 0;
    return negative ? -v : v;
  }

  bool read(const json& j, peer_change& out) {
    if (!object(j)) return false;
    if (!get(j, "NodeID", out.id) || !get(j, "DERPRegion", out.derp_region) || !get(j, "Cap", out.cap) ||
        !get(j, "CapMap", out.capmap) || !get(j, "KeySignature", out.key_signature) ||
        !get(j, "Online", out.online) || !get(j, "LastSeen", out.last_seen) || !get(j, "KeyExpiry", out.key_expiry)) {
      return false;
    }
    if (const json* f = field(j, "Endpoints")) {
      std::vector<endpoint> eps;
      if (!read_endpoints(*f, eps)) return in("Endpoints");
      out.endpoints = std::move(eps);
    }
    if (const json* f = field(j, "Key")) {
      public_key k;
      if (!read_key(*f, k, node_key_prefix)) return in("Key");
      out.key = k;
    }
    if (const json* f = field(j, "DiscoKey")) {
      public_key k;
      if (!read_key(*f, k, disco_key_prefix)) return in("DiscoKey");
      out.disco_key = k;
    }
    return true;
  }

  bool read(const json& j, derp_node& out) {
    if (!object(j)) return false;
    return get(j, "Name", out.name) && get(j, "RegionID", out.region_id) && get(j, "HostName", out.host_name) &&
           get(j, "CertName", out.cert_name) && get(j, "IPv4", out.ipv4) && get(j, "IPv6", out.ipv6) &&
           get(j, "STUNPort", out.stun_port) && get(j, "STUNOnly", out.stun_only) && get(j, "DERPPort", out.derp_port) &&
           get(j, "InsecureForTests", out.insecure_for_tests) && get(j, "STUNTestIP", out.stun_test_ip) &&
           get(j, "CanPort80", out.can_port80);
  }
  bool read(const json& j, derp_region& out) {
    if (!object(j)) return false;
    return get(j, "RegionID", out.region_id) && get(j, "RegionCode", out.region_code) &&
           get(j, "RegionName", out.region_name) && get(j, "Latitude", out.latitude) &&
           get(j, "Longitude", out.longitude) && get(j, "Avoid", out.avoid) &&
           get(j, "NoMeasureNoHome", out.no_measure_no_home) && get_list(j, "Nodes", out.nodes);
  }
  // Go reads the keys of a map[int]... with strconv.ParseInt.
  bool int_key(const std::string& k, int& out) {
    std::string_view s = k;
    if (!s.empty() && s[0] == '+') s.remove_prefix(1);
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return fail("bad integer key \"" + k + "\"");
    return true;
  }
  bool int_key(const std::string& k, std::int64_t& out) {
    std::string_view s = k;
    if (!s.empty() && s[0] == '+') s.remove_prefix(1);
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return fail("bad integer key \"" + k + "\"");
    return true;
  }
  bool read(const json& j, derp_home_params& out) {
    if (!object(j)) return false;
    if (const json* f = field(j, "RegionScore")) {
      if (!f->is_object()) return fail("not an object") || in("RegionScore");
      std::map<int, double> scores;
      for (const auto& [k, v] : f->items()) {
        int id = 0;
        double score = 0;
        if (!int_key(k, id)) return in("RegionScore");
        if (!v.is_null() && !read(v, score)) return in(k) || in("RegionScore");
        scores[id] = score;
      }
      out.region_score = std::move(scores);
    }
    return true;
  }
  bool read(const json& j, derp_map& out) {
    if (!object(j)) return false;
    if (!get(j, "HomeParams", out.home_params) || !get(j, "omitDefaultRegions", out.omit_default_regions)) return false;
    if (const json* f = field(j, "Regions")) {
      if (!f->is_object()) return fail("not an object") || in("Regions");
      std::map<int, derp_region> regions;
      for (const auto& [k, v] : f->items()) {
        int id = 0;
        if (!int_key(k, id)) return in("Regions");
        // A null region is dropped (map.go guards against what headscale
        // was once seen to send).
        if (v.is_null()) continue;
        derp_region r;
        if (!read(v, r)) return in(k) || in("Regions");
        regions[id] = std::move(r);
      }
      out.regions = std::move(regions);
    }
    return true;
  }

  bool read(const json& j, dns_config& out) {
    if (!object(j)) return false;
    if (!get_list(j, "Resolvers", out.resolvers) || !get_list(j, "FallbackResolvers", out.fallback_resolvers) ||
        !get_list(j, "Domains", out.domains) || !get(j, "Proxied", out.proxied) ||
        !get_list(j, "Nameservers", out.nameservers) || !get_list(j, "CertDomains", out.cert_domains) ||
        !get_list(j, "ExtraRecords", out.extra_records) ||
        !get_list(j, "ExitNodeFilteredSet", out.exit_node_filtered_set)) {
      return false;
    }
    if (const json* f = field(j, "Routes")) {
      if (!f->is_object()) return fail("not an object") || in("Routes");
      for (const auto& [k, v] : f->items()) {
        auto& rs = out.routes[k];
        if (!v.is_null() && !list(v, rs, [this](const json& e, dns_resolver& r) { return read(e, r); })) {
          return in(k) || in("Routes");
        }
      }
    }
    return true;
  }

  bool read(const json& j, port_range& out) {
    if (!object(j)) return false;
    return get(j, "First", out.first) && get(j, "Last", out.last);
  }
  bool read(const json& j, net_port_range& out) {
    if (!object(j)) return false;
    return get(j, "IP", out.ip) && get(j, "Bits", out.bits) && get(j, "Ports", out.ports);
  }
  bool read(const json& j, cap_grant& out) {
    if (!object(j)) return false;
    return get_list(j, "Dsts", out.dsts) && get_list(j, "Caps", out.caps) && get(j, "CapMap", out.capmap);
  }
  bool read(const json& j, filter_rule& out) {
    if (!object(j)) return false;
    return get_list(j, "SrcIPs", out.src_ips) && get_list(j, "SrcBits", out.src_bits) &&
           get_list(j, "DstPorts", out.dst_ports) && get_list(j, "IPProto", out.ip_proto) &&
           get_list(j, "CapGrant", out.cap_grants);
  }
  bool read(const json& j, std::vector<filter_rule>& out) {
    return list(j, out, [this](const json& e, filter_rule& r) { return read(e, r); });
  }

  bool read(const json& j, user_profile& out) {
    if (!object(j)) return false;
    return get(j, "ID", out.id) && get(j, "LoginName", out.login_name) && get(j, "DisplayName", out.display_name);
  }
  bool read(const json& j, ping_request& out) {
    if (!object(j)) return false;
    if (!get(j, "URL", out.url) || !get(j, "Log", out.log) || !get(j, "Types", out.types) || !get(j, "Size", out.size)) {
      return false;
    }
    return get_masq(j, "IP", out.ip);
  }

  bool read(const json& j, map_response& out) {
    if (!object(j)) return false;
    if (!get(j, "KeepAlive", out.keep_alive) || !get(j, "ControlTime", out.control_time) ||
        !get(j, "PingRequest", out.ping) || !get(j, "PopBrowserURL", out.pop_browser_url) ||
        !get(j, "MapSessionHandle", out.map_session_handle) || !get(j, "Seq", out.seq) || !get(j, "Node", out.self) ||
        !get(j, "DERPMap", out.derp) || !get_list(j, "Peers", out.peers) ||
        !get_list(j, "PeersChanged", out.peers_changed) || !get_list(j, "PeersRemoved", out.peers_removed) ||
        !get_list(j, "PeersChangedPatch", out.peers_changed_patch) ||
        !id_bool_map(j, "PeerSeenChange", out.peer_seen_change) ||
        !id_bool_map(j, "OnlineChange", out.online_change) || !get(j, "DNSConfig", out.dns) ||
        !get(j, "Domain", out.domain) || !get(j, "CollectServices", out.collect_services) ||
        !get(j, "UserProfiles", out.user_profiles) || !get(j, "Health", out.health) ||
        !get(j, "DomainDataPlaneAuditLogID", out.domain_audit_log_id)) {
      return false;
    }
    if (const json* f = field(j, "PacketFilter")) {
      std::vector<filter_rule> rules;
      if (!read(*f, rules)) return in("PacketFilter");
      out.packet_filter = std::move(rules);
    }
    if (const json* f = field(j, "PacketFilters")) {
      if (!f->is_object()) return fail("not an object") || in("PacketFilters");
      std::map<std::string, std::optional<std::vector<filter_rule>>> named;
      for (const auto& [k, v] : f->items()) {
        auto& slot = named[k];
        if (v.is_null()) continue;
        std::vector<filter_rule> rules;
        if (!read(v, rules)) return in(k) || in("PacketFilters");
        slot = std::move(rules);
      }
      out.packet_filters = std::move(named);
    }
    return true;
  }
  bool read(const json& j, std::vector<user_profile>& out) {
    return list(j, out, [this](const json& e, user_profile& p) { return read(e, p); });
  }
  bool read(const json& j, std::vector<std::string>& out) {
    return list(j, out, [this](const json& e, std::string& s) { return read(e, s); });
  }
  bool id_bool_map(const json& obj, std::string_view name, std::map<node_id, bool>& out) {
    const json* f = field(obj, name);
    if (f == nullptr) return true;
    if (!f->is_object()) return fail("not an object") || in(name);
    for (const auto& [k, v] : f->items()) {
      node_id id = 0;
      bool b = false;
      if (!int_key(k, id)) return in(name);
      if (!v.is_null() && !read(v, b)) return in(k) || in(name);
      out[id] = b;
    }
    return true;
  }

 private:
  std::string reason_;
  std::string path_;
};

}  // namespace

// ---------------------------------------------------------------------------

std::optional<timestamp> timestamp::parse(std::string_view s) {
  // 2006-01-02T15:04:05[.999999999](Z|+07:00)
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':') return std::nullopt;
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!parse_digits(s.substr(0, 4), year) || !parse_digits(s.substr(5, 2), month) ||
      !parse_digits(s.substr(8, 2), day) || !parse_digits(s.substr(11, 2), hour) ||
      !parse_digits(s.substr(14, 2), minute) || !parse_digits(s.substr(17, 2), second)) {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) || hour > 23 || minute > 59 || second > 59) {
    return std::nullopt;
  }
  std::size_t i = 19;
  std::int32_t nanos = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    std::size_t digits = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      if (digits < 9) nanos = nanos * 10 + (s[i] - '0');
      ++digits;
      ++i;
    }
    if (digits == 0) return std::nullopt;
    for (std::size_t d = digits; d < 9; ++d) nanos *= 10;
  }
  if (i >= s.size()) return std::nullopt;
  int offset = 0;
  if (s[i] == 'Z') {
    ++i;
  } else if (s[i] == '+' || s[i] == '-') {
    int oh = 0, om = 0;
    if (s.size() - i != 6 || s[i + 3] != ':' || !parse_digits(s.substr(i + 1, 2), oh) ||
        !parse_digits(s.substr(i + 4, 2), om) || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset = (oh * 60 + om) * 60 * (s[i] == '-' ? -1 : 1);
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  const std::int64_t days = days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  const std::int64_t secs = days * 86400 + hour * 3600 + minute * 60 + second - offset;
  return timestamp{secs, nanos};
}

timestamp timestamp::now() noexcept {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  std::int64_t secs = ns / 1'000'000'000;
  std::int64_t rem = ns % 1'000'000'000;
  if (rem < 0) {
    rem += 1'000'000'000;
    --secs;
  }
  return timestamp{secs, static_cast<std::int32_t>(rem)};
}

std::string timestamp::to_string() const {
  std::int64_t days = unix_seconds / 86400;
  std::int64_t rem = unix_seconds % 86400;
  if (rem < 0) {
    rem += 86400;
    --days;
  }
  std::int64_t y = 0;
  unsigned m = 0, d = 0;
  civil_from_days(days, y, m, d);
  char buf[64];
  int n = std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02d:%02d:%02d", static_cast<long long>(y), m, d,
                        static_cast<int>(rem / 3600), static_cast<int>(rem / 60 % 60), static_cast<int>(rem % 60));
  std::string out(buf, static_cast<std::size_t>(n));
  if (nanos != 0) {
    n = std::snprintf(buf, sizeof buf, ".%09d", nanos);
    std::string frac(buf, static_cast<std::size_t>(n));
    while (frac.back() == '0') frac.pop_back();
    out += frac;
  }
  out += 'Z';
  return out;
}

std::optional<endpoint> endpoint::parse(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  std::string_view host = text.substr(0, colon);
  const std::string_view port = text.substr(colon + 1);
  std::optional<ip_address> addr;
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return std::nullopt;
    addr = ip_address::parse(host.substr(1, host.size() - 2));
    if (!addr || addr->family != ip_family::v6) return std::nullopt;
  } else {
    addr = ip_address::parse(host);
    if (!addr || addr->family != ip_family::v4) return std::nullopt;  // IPv6 must be bracketed
  }
  unsigned v = 0;
  const auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
  if (port.empty() || ec != std::errc() || p != port.data() + port.size() || v > 65535) return std::nullopt;
  return endpoint{*addr, static_cast<std::uint16_t>(v)};
}

std::string endpoint::to_string() const {
  if (address.family == ip_family::v6) return "[" + address.to_string() + "]:" + std::to_string(port);
  return address.to_string() + ":" + std::to_string(port);
}

bool node::has_cap(std::string_view cap_name) const {
  if (capmap.find(std::string(cap_name)) != capmap.end()) return true;
  for (const auto& c : capabilities) {
    if (c == cap_name) return true;
  }
  return false;
}

std::optional<public_key> parse_prefixed_key(std::string_view text, std::string_view prefix) {
  if (text.size() != prefix.size() + key_hex_length || text.substr(0, prefix.size()) != prefix) return std::nullopt;
  return public_key::from_hex(text.substr(prefix.size()));
}

std::string format_prefixed_key(const public_key& key, std::string_view prefix) {
  return std::string(prefix) + key.to_hex();
}

map_parse_result parse_map_response(std::string_view json_text, const parse_limits& limits) {
  map_parse_result result;
  try {
    if (json_text.size() > limits.max_bytes) {
      result.error = "map response of " + std::to_string(json_text.size()) + " bytes exceeds the limit of " +
                     std::to_string(limits.max_bytes);
      return result;
    }
    if (!depth_within(json_text, limits.max_depth)) {
      result.error = "MapResponse nests deeper than " + std::to_string(limits.max_depth) + " levels";
      return result;
    }
    const json doc = json::parse(json_text.begin(), json_text.end(), nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) {
      result.error = "MapResponse is not valid JSON";
      return result;
    }
    decoder d;
    map_response resp;
    // Go's json.Unmarshal reads a bare null as an empty response.
    if (!doc.is_null() && !d.read(doc, resp)) {
      result.error = "MapResponse: " + d.error();
      return result;
    }
    result.response = std::move(resp);
  } catch (const std::bad_alloc&) {
    result.response.reset();
    result.error = "MapResponse: out of memory";
  } catch (const std::exception& e) {
    result.response.reset();
    result.error = std::string("MapResponse: ") + e.what();
  }
  return result;
}

// Go's netip.ParsePrefix: the bits are plain decimal, "0" or without a
// leading zero; no zone.
std::optional<ip_prefix> parse_prefix_strict(std::string_view text) {
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  const std::string_view bits = text.substr(slash + 1);
  if (bits.empty() || bits.size() > 3 || (bits.size() > 1 && bits[0] == '0')) return std::nullopt;
  for (const char c : bits) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  return ip_prefix::parse(text);
}

}  // namespace lopower::tailnet
