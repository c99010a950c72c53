#include "control/tailnet/netmap/netmap_cache.h"

#include <exception>
#include <new>

#include <nlohmann/json.hpp>

#include "control/tailnet/netmap/map_response.h"

namespace lopower::tailnet {

namespace {

using json = nlohmann::json;

// Every writer below writes what the decoder in map_response.cc reads,
// under the same names; a default value is left out (the decoder leaves
// the default for an absent field).

json prefixes(const std::vector<ip_prefix>& ps) {
  json a = json::array();
  for (const ip_prefix& p : ps) a.push_back(p.to_string());
  return a;
}

json addresses(const std::vector<ip_address>& as) {
  json a = json::array();
  for (const ip_address& x : as) a.push_back(x.to_string());
  return a;
}

json strings(const std::vector<std::string>& ss) { return json(ss); }

json caps(const cap_map& m) {
  json o = json::object();
  for (const auto& [name, values] : m) {
    json a = json::array();
    for (const std::string& v : values) a.push_back(json::parse(v, nullptr, false));  // compact JSON as read
    o[name] = std::move(a);
  }
  return o;
}

json resolver(const dns_resolver& r) {
  json o{{"Addr", r.addr}};
  if (!r.bootstrap_resolution.empty()) o["BootstrapResolution"] = addresses(r.bootstrap_resolution);
  if (r.use_with_exit_node) o["UseWithExitNode"] = true;
  return o;
}

json resolvers(const std::vector<dns_resolver>& rs) {
  json a = json::array();
  for (const dns_resolver& r : rs) a.push_back(resolver(r));
  return a;
}

json node_json(const node& n) {
  json o{{"ID", n.id}, {"Addresses", prefixes(n.addresses)}, {"AllowedIPs", prefixes(n.allowed_ips)}};
  if (!n.stable_id.empty()) o["StableID"] = n.stable_id;
  if (!n.name.empty()) o["Name"] = n.name;
  if (n.user != 0) o["User"] = n.user;
  if (n.sharer != 0) o["Sharer"] = n.sharer;
  if (!n.key.is_zero()) o["Key"] = format_prefixed_key(n.key, node_key_prefix);
  if (!n.key_expiry.is_zero()) o["KeyExpiry"] = n.key_expiry.to_string();
  if (!n.key_signature.empty()) o["KeySignature"] = n.key_signature;
  if (!n.machine.is_zero()) o["Machine"] = format_prefixed_key(n.machine, machine_key_prefix);
  if (!n.disco_key.is_zero()) o["DiscoKey"] = format_prefixed_key(n.disco_key, disco_key_prefix);
  if (!n.endpoints.empty()) {
    json eps = json::array();
    for (const endpoint& e : n.endpoints) eps.push_back(e.to_string());
    o["Endpoints"] = std::move(eps);
  }
  if (n.home_derp != 0) o["HomeDERP"] = n.home_derp;
  if (n.has_hostinfo) o["Hostinfo"] = json{{"Hostname", n.hostname}};
  if (!n.created.is_zero()) o["Created"] = n.created.to_string();
  if (n.cap != 0) o["Cap"] = n.cap;
  if (!n.tags.empty()) o["Tags"] = strings(n.tags);
  if (!n.primary_routes.empty()) o["PrimaryRoutes"] = prefixes(n.primary_routes);
  if (n.last_seen) o["LastSeen"] = n.last_seen->to_string();
  if (n.online) o["Online"] = *n.online;
  if (n.machine_authorized) o["MachineAuthorized"] = true;
  if (!n.capabilities.empty()) o["Capabilities"] = strings(n.capabilities);
  if (!n.capmap.empty()) o["CapMap"] = caps(n.capmap);
  if (n.unsigned_peer_api_only) o["UnsignedPeerAPIOnly"] = true;
  if (n.expired) o["Expired"] = true;
  if (n.self_v4_masq_addr) o["SelfNodeV4MasqAddrForThisPeer"] = n.self_v4_masq_addr->to_string();
  if (n.self_v6_masq_addr) o["SelfNodeV6MasqAddrForThisPeer"] = n.self_v6_masq_addr->to_string();
  if (n.is_wireguard_only) o["IsWireGuardOnly"] = true;
  if (n.is_jailed) o["IsJailed"] = true;
  if (!n.exit_node_dns_resolvers.empty()) o["ExitNodeDNSResolvers"] = resolvers(n.exit_node_dns_resolvers);
  return o;
}

json derp_node_json(const derp_node& n) {
  json o{{"Name", n.name}, {"RegionID", n.region_id}, {"HostName", n.host_name}};
  if (!n.cert_name.empty()) o["CertName"] = n.cert_name;
  if (!n.ipv4.empty()) o["IPv4"] = n.ipv4;
  if (!n.ipv6.empty()) o["IPv6"] = n.ipv6;
  if (n.stun_port != 0) o["STUNPort"] = n.stun_port;
  if (n.stun_only) o["STUNOnly"] = true;
  if (n.derp_port != 0) o["DERPPort"] = n.derp_port;
  if (n.insecure_for_tests) o["InsecureForTests"] = true;
  if (!n.stun_test_ip.empty()) o["STUNTestIP"] = n.stun_test_ip;
  if (n.can_port80) o["CanPort80"] = true;
  return o;
}

json derp_json(const derp_map& m) {
  json o = json::object();
  if (m.home_params) {
    json hp = json::object();
    if (m.home_params->region_score) {
      json scores = json::object();
      for (const auto& [id, score] : *m.home_params->region_score) scores[std::to_string(id)] = score;
      hp["RegionScore"] = std::move(scores);
    }
    o["HomeParams"] = std::move(hp);
  }
  if (m.regions) {
    json regions = json::object();
    for (const auto& [id, r] : *m.regions) {
      json region{{"RegionID", r.region_id}, {"RegionCode", r.region_code}, {"RegionName", r.region_name}};
      if (r.latitude != 0) region["Latitude"] = r.latitude;
      if (r.longitude != 0) region["Longitude"] = r.longitude;
      if (r.avoid) region["Avoid"] = true;
      if (r.no_measure_no_home) region["NoMeasureNoHome"] = true;
      json nodes = json::array();
      for (const derp_node& n : r.nodes) nodes.push_back(derp_node_json(n));
      region["Nodes"] = std::move(nodes);
      regions[std::to_string(id)] = std::move(region);
    }
    o["Regions"] = std::move(regions);
  }
  if (m.omit_default_regions) o["omitDefaultRegions"] = true;
  return o;
}

json dns_json(const dns_config& d) {
  json o = json::object();
  if (!d.resolvers.empty()) o["Resolvers"] = resolvers(d.resolvers);
  if (!d.routes.empty()) {
    json routes = json::object();
    for (const auto& [suffix, rs] : d.routes) routes[suffix] = resolvers(rs);
    o["Routes"] = std::move(routes);
  }
  if (!d.fallback_resolvers.empty()) o["FallbackResolvers"] = resolvers(d.fallback_resolvers);
  if (!d.domains.empty()) o["Domains"] = strings(d.domains);
  if (d.proxied) o["Proxied"] = true;
  if (!d.nameservers.empty()) o["Nameservers"] = addresses(d.nameservers);
  if (!d.cert_domains.empty()) o["CertDomains"] = strings(d.cert_domains);
  if (!d.extra_records.empty()) {
    json records = json::array();
    for (const dns_record& r : d.extra_records) {
      json rec{{"Name", r.name}, {"Value", r.value}};
      if (!r.type.empty()) rec["Type"] = r.type;
      records.push_back(std::move(rec));
    }
    o["ExtraRecords"] = std::move(records);
  }
  if (!d.exit_node_filtered_set.empty()) o["ExitNodeFilteredSet"] = strings(d.exit_node_filtered_set);
  return o;
}

json rules_json(const std::vector<filter_rule>& rules) {
  json a = json::array();
  for (const filter_rule& r : rules) {
    json o{{"SrcIPs", strings(r.src_ips)}};
    if (!r.src_bits.empty()) o["SrcBits"] = r.src_bits;
    json dsts = json::array();
    for (const net_port_range& d : r.dst_ports) {
      json dst{{"IP", d.ip}, {"Ports", {{"First", d.ports.first}, {"Last", d.ports.last}}}};
      if (d.bits) dst["Bits"] = *d.bits;
      dsts.push_back(std::move(dst));
    }
    o["DstPorts"] = std::move(dsts);
    if (!r.ip_proto.empty()) o["IPProto"] = r.ip_proto;
    if (!r.cap_grants.empty()) {
      json grants = json::array();
      for (const cap_grant& g : r.cap_grants) {
        json grant{{"Dsts", prefixes(g.dsts)}};
        if (!g.caps.empty()) grant["Caps"] = strings(g.caps);
        if (!g.capmap.empty()) grant["CapMap"] = caps(g.capmap);
        grants.push_back(std::move(grant));
      }
      o["CapGrant"] = std::move(grants);
    }
    a.push_back(std::move(o));
  }
  return a;
}

}  // namespace

std::string netmap_to_cache_json(const netmap& nm) {
  json j = json::object();
  if (nm.self() != nullptr) j["Node"] = node_json(*nm.self());
  json peers = json::array();
  for (const node& p : nm.peers()) peers.push_back(node_json(p));
  j["Peers"] = std::move(peers);
  if (nm.derp() != nullptr) j["DERPMap"] = derp_json(*nm.derp());
  j["DNSConfig"] = dns_json(nm.dns());
  if (!nm.domain().empty()) j["Domain"] = nm.domain();
  j["CollectServices"] = nm.collect_services();
  if (!nm.health().empty()) j["Health"] = strings(nm.health());
  if (!nm.domain_audit_log_id().empty()) j["DomainDataPlaneAuditLogID"] = nm.domain_audit_log_id();
  // The named filters as they are (the netmap concatenates them in name
  // order), so that the server's next delta to one of them means the same.
  json filters = json::object();
  for (const auto& [name, rules] : nm.named_packet_filters()) filters[name] = rules_json(rules);
  j["PacketFilters"] = std::move(filters);
  json users = json::array();
  for (const auto& [id, u] : nm.users()) {
    json o{{"ID", u.id}};
    if (!u.login_name.empty()) o["LoginName"] = u.login_name;
    if (!u.display_name.empty()) o["DisplayName"] = u.display_name;
    users.push_back(std::move(o));
  }
  j["UserProfiles"] = std::move(users);
  // (Strings came from parsed JSON, so they are UTF-8; replace, never throw.)
  return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

netmap_cache_load netmap_from_cache_json(std::string_view text, const public_key& node_key) {
  netmap_cache_load out;
  try {
    map_parse_result parsed = parse_map_response(text);
    if (!parsed) {
      out.message = parsed.error;
      return out;
    }
    map_response& resp = *parsed.response;
    if (!resp.self) {
      out.message = text.empty() ? "empty file" : "no self node (Node) in it";
      return out;
    }
    if (resp.keep_alive) {
      out.message = "a keep-alive, not a netmap";
      return out;
    }
    if (!(resp.self->key == node_key)) {
      out.result = netmap_cache_load::outcome::other_node;
      out.message = "kept for node key " + format_prefixed_key(resp.self->key, node_key_prefix) + ", not ours (" +
                    format_prefixed_key(node_key, node_key_prefix) + ")";
      return out;
    }
    auto nm = std::make_unique<netmap>();
    out.changes = nm->apply(std::move(resp));
    if (!out.changes.ok()) {
      out.message = "refused by the netmap: " + out.changes.error;
      return out;
    }
    out.map = std::move(nm);
    out.result = netmap_cache_load::outcome::loaded;
  } catch (const std::bad_alloc&) {
    out = {};
    out.message = "out of memory";
  } catch (const std::exception& e) {
    out = {};
    out.message = e.what();
  }
  return out;
}

}  // namespace lopower::tailnet
