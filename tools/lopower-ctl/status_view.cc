#include "tools/lopower-ctl/status_view.h"

#include <cstdio>
#include <sstream>

namespace lopower {
namespace {

std::string text(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) return "-";
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "-";
  if (it->is_string()) return it->get<std::string>();
  return it->dump();
}

std::uint64_t number(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) return 0;
  auto it = j.find(key);
  return it != j.end() && it->is_number_unsigned() ? it->get<std::uint64_t>() : 0;
}

std::string human_duration(std::uint64_t s) {
  char buf[64];
  if (s >= 86400) std::snprintf(buf, sizeof buf, "%llud%02lluh", static_cast<unsigned long long>(s / 86400), static_cast<unsigned long long>(s % 86400 / 3600));
  else std::snprintf(buf, sizeof buf, "%02llu:%02llu:%02llu", static_cast<unsigned long long>(s / 3600), static_cast<unsigned long long>(s / 60 % 60), static_cast<unsigned long long>(s % 60));
  return buf;
}

// The member if it has the expected kind, else an empty value of that kind.
nlohmann::json member(const nlohmann::json& j, const char* key, nlohmann::json::value_t kind) {
  if (j.is_object()) {
    auto it = j.find(key);
    if (it != j.end() && it->type() == kind) return *it;
  }
  return nlohmann::json(kind);
}

std::string join_array(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) return "-";
  auto it = j.find(key);
  if (it == j.end() || !it->is_array() || it->empty()) return "-";
  std::string out;
  for (const auto& v : *it) out += (out.empty() ? "" : ", ") + (v.is_string() ? v.get<std::string>() : v.dump());
  return out;
}

void render_port(std::ostringstream& out, const nlohmann::json& p) {
  const auto link = member(p, "link", nlohmann::json::value_t::object);
  char line[512];
  std::snprintf(line, sizeof line, "  %-8s %-8s link %-4s %s  %s (%s)\n", text(p, "name").c_str(), text(p, "role").c_str(),
                (link.contains("up") && link["up"].is_boolean() && link["up"].get<bool>()) ? "up" : "down", text(p, "mac").c_str(), text(p, "device").c_str(), text(p, "driver").c_str());
  out << line;
  out << "           addresses " << join_array(p, "addresses") << "\n";
  auto exc = p.find("exception_path");
  out << "           exception path " << (exc != p.end() && exc->is_object() ? text(*exc, "tap") : "none") << "\n";
  std::snprintf(line, sizeof line, "           rx %llu pkts %llu bytes   tx %llu pkts %llu bytes   kernel in/out %llu/%llu\n",
                static_cast<unsigned long long>(number(p, "rx_packets")), static_cast<unsigned long long>(number(p, "rx_bytes")),
                static_cast<unsigned long long>(number(p, "tx_packets")), static_cast<unsigned long long>(number(p, "tx_bytes")),
                static_cast<unsigned long long>(number(p, "from_kernel")), static_cast<unsigned long long>(number(p, "to_kernel")));
  out << line;
  const auto drops = member(p, "drops", nlohmann::json::value_t::object);
  std::string nonzero;
  for (auto it = drops.begin(); it != drops.end(); ++it)
    if (it->is_number_unsigned() && it->get<std::uint64_t>() > 0)
      nonzero += (nonzero.empty() ? "" : ", ") + it.key() + " " + std::to_string(it->get<std::uint64_t>());
  out << "           drops " << (nonzero.empty() ? "none" : nonzero) << "\n";
}

std::string first_address(const nlohmann::json& node) {
  const auto addrs = member(node, "addresses", nlohmann::json::value_t::array);
  return addrs.empty() || !addrs[0].is_string() ? "-" : addrs[0].get<std::string>();
}

// One line per peer, like `tailscale status`: address, name, state, path.
void render_peer(std::ostringstream& out, const nlohmann::json& p) {
  const auto online = p.find("online");
  const char* presence = online == p.end() || !online->is_boolean() ? "-" : online->get<bool>() ? "online" : "offline";
  std::string path = text(p, "path");
  if (path.empty()) path = "-";
  char line[512];
  std::snprintf(line, sizeof line, "  %-16s %-32s %-8s %s", first_address(p).c_str(), text(p, "name").c_str(), presence,
                path.c_str());
  out << line;
  if (p.contains("last_handshake_seconds") && p["last_handshake_seconds"].is_number())
    out << "  handshake " << human_duration(number(p, "last_handshake_seconds")) << " ago";
  if (number(p, "rx_bytes") + number(p, "tx_bytes") > 0)
    out << "  rx " << number(p, "rx_bytes") << " B  tx " << number(p, "tx_bytes") << " B";
  out << "\n";
}

// Sessions being made: packets held for them, and handshakes that had to
// be sent again, started because data went unanswered, or given up.
void render_sessions(std::ostringstream& out, const nlohmann::json& hs) {
  if (hs.empty()) return;
  out << "  sessions: staged " << number(hs, "packets_staged") << " (sent " << number(hs, "staged_sent") << ", dropped "
      << number(hs, "staged_dropped") << ")  retries " << number(hs, "handshake_retries") << "  unanswered "
      << number(hs, "unanswered_handshakes") << "  peer restarts " << number(hs, "peer_restarts") << "  given up "
      << number(hs, "handshakes_given_up") << "\n";
}

// The home relay and its latency, then any other region open, like
// `tailscale netcheck`'s "Nearest DERP".
void render_derp(std::ostringstream& out, const nlohmann::json& d) {
  if (d.empty()) return;
  out << "  derp: ";
  if (!d.value("enabled", false)) {
    out << "off\n";
    return;
  }
  const auto home = number(d, "home");
  if (home == 0) out << "no home region yet";
  else out << "home " << home;
  if (d.contains("home_latency_ms") && d["home_latency_ms"].is_number()) {
    char ms[32];
    std::snprintf(ms, sizeof ms, " (%.1f ms)", d["home_latency_ms"].get<double>());
    out << ms;
  }
  const nlohmann::json connections = member(d, "connections", nlohmann::json::value_t::object);
  for (auto it = connections.begin(); it != connections.end(); ++it) {
    const nlohmann::json& c = *it;
    out << "  derp(" << it.key() << ") " << (c.value("connected", false) ? "connected" : "connecting");
    if (c.contains("error") && c["error"].is_string()) out << " (" << c["error"].get<std::string>() << ")";
  }
  out << "\n";
}

void render_tailnet(std::ostringstream& out, const nlohmann::json& t) {
  if (t.empty()) return;
  out << "\ntailnet: " << text(t, "backend_state");
  if (text(t, "backend_state") == "Disabled") {
    out << " (no tailnet.control_url)\n";
    return;
  }
  const auto cache = member(t, "netmap_cache", nlohmann::json::value_t::object);
  if (text(t, "netmap_source") == "cache") {
    out << " (cached netmap";
    if (cache.contains("age_seconds")) out << ", saved " << human_duration(number(cache, "age_seconds")) << " ago";
    out << ")";
  }
  const auto self = member(t, "self", nlohmann::json::value_t::object);
  if (!self.empty()) out << "  " << text(self, "name") << "  " << join_array(self, "addresses");
  if (!text(t, "tailnet").empty() && text(t, "tailnet") != "-") out << "  tailnet " << text(t, "tailnet");
  out << "\n  control " << text(t, "control_url") << (t.value("connected", false) ? " (connected)" : " (not connected)")
      << "\n  node key " << text(t, "node_key");
  if (!self.empty() && self.contains("key_expiry") && self["key_expiry"].is_string())
    out << "  expires " << text(self, "key_expiry");
  out << "\n";
  for (const auto& r : member(t, "routes", nlohmann::json::value_t::array))
    out << "  route " << text(r, "prefix") << (r.value("approved", false) ? " (approved)" : " (not approved in the last full netmap)") << "\n";
  if (t.contains("auth_url")) out << "  to log in, visit: " << text(t, "auth_url") << "\n";
  if (t.contains("last_error")) out << "  last error: " << text(t, "last_error") << "\n";
  if (text(cache, "at_start") == "refused") out << "  netmap cache refused at start: " << text(cache, "error") << "\n";
  if (cache.contains("last_write_error")) out << "  netmap cache not written: " << text(cache, "last_write_error") << "\n";
  render_derp(out, member(t, "derp", nlohmann::json::value_t::object));
  render_sessions(out, member(t, "handshakes", nlohmann::json::value_t::object));
  const auto peers = member(t, "peers", nlohmann::json::value_t::array);
  out << "  peers: " << (peers.empty() ? "none" : std::to_string(peers.size())) << "\n";
  for (const auto& p : peers) render_peer(out, p);
}

// Beyond the tailnet: the global mode, the exit node in use, those offered.
void render_egress(std::ostringstream& out, const nlohmann::json& e) {
  if (e.empty()) return;
  out << "\negress: " << text(e, "mode") << "  exit nodes wanted " << join_array(e, "exit_nodes") << "\n";
  const auto in_use = member(e, "exit_node", nlohmann::json::value_t::object);
  out << "  exit node in use: " << (in_use.empty() ? "none" : text(in_use, "name") + " " + text(in_use, "ip")) << "\n";
  for (const auto& o : member(e, "offered", nlohmann::json::value_t::array))
    out << "  offered: " << text(o, "name") << " " << text(o, "ip") << (o.value("online", false) ? "  online" : "  offline")
        << (o.value("in_use", false) ? "  in use" : "") << "\n";
}

// A worker's busy cycles in seconds (0 from a daemon that does not count them).
double busy_seconds(const nlohmann::json& lcore) {
  const double hz = static_cast<double>(number(lcore, "tsc_hz"));
  return hz > 0 ? static_cast<double>(number(lcore, "busy_cycles")) / hz : 0;
}

}  // namespace

// The uplink port lopower NATs device traffic out of, and its gateways'
// neighbour state (none until the gateway answers lopower's question).
void render_uplink(std::ostringstream& out, const nlohmann::json& up) {
  if (up.empty()) return;
  std::string addrs;
  for (const auto& a : member(up, "address", nlohmann::json::value_t::array))
    if (a.is_string()) addrs += (addrs.empty() ? "" : ", ") + a.get<std::string>();
  out << "\nuplink (NAT): port " << text(up, "port") << "  address " << addrs << "  NAT ports " << text(up, "nat_ports")
      << "  flows " << number(up, "flows") << "\n";
  for (const std::string gw : {"gateway4", "gateway6"}) {
    if (text(up, gw.c_str()) == "-") continue;
    const std::string mac = text(up, (gw + "_neighbour").c_str());
    out << "  " << gw << " " << text(up, gw.c_str()) << "  neighbour " << (mac == "-" ? "unknown (asking)" : mac) << "\n";
  }
}

std::string render_status(const nlohmann::json& s) {
  std::ostringstream out;
  out << "lopowerd " << text(s, "version");
  if (text(s, "revision") != "-") out << " (" << text(s, "revision") << ")";
  if (text(s, "dpdk") != "-") out << "  " << text(s, "dpdk");
  out << "  pid " << text(s, "pid") << "  up " << human_duration(number(s, "uptime_seconds")) << "\n\nports:\n";
  for (const auto& p : member(s, "ports", nlohmann::json::value_t::array)) render_port(out, p);
  out << "\nlcores:\n";
  for (const auto& l : member(s, "lcores", nlohmann::json::value_t::array)) {
    char line[256];
    if (text(l, "role") == "worker")
      std::snprintf(line, sizeof line, "  %-3s worker  queue %s  rx %llu pkts  busy %llu/%llu polls (%.3f s)  sleeps %llu\n",
                    text(l, "lcore").c_str(), text(l, "queue").c_str(), static_cast<unsigned long long>(number(l, "rx_packets")),
                    static_cast<unsigned long long>(number(l, "busy_polls")), static_cast<unsigned long long>(number(l, "polls")),
                    busy_seconds(l), static_cast<unsigned long long>(number(l, "sleeps")));
    else
      std::snprintf(line, sizeof line, "  %-3s %s\n", text(l, "lcore").c_str(), text(l, "role").c_str());
    out << line;
  }
  const auto wg = member(s, "wireguard", nlohmann::json::value_t::object);
  if (!wg.empty()) {
    const auto hs = member(wg, "handshakes", nlohmann::json::value_t::object);
    out << "\nwireguard (devices): port " << text(wg, "listen_port") << "  public key " << text(wg, "public_key")
        << "\n  crypto " << text(wg, "crypto_backend") << "  devices " << text(wg, "devices") << "  handshakes "
        << number(hs, "handshakes_completed") << "  cookie replies " << number(hs, "cookie_replies_sent")
        << "  refused " << number(hs, "invalid_mac1") + number(hs, "handshake_errors") + number(hs, "rate_limited")
        << "\n";
    render_sessions(out, hs);
  }
  render_tailnet(out, member(s, "tailnet", nlohmann::json::value_t::object));
  render_egress(out, member(s, "egress", nlohmann::json::value_t::object));
  render_uplink(out, member(s, "uplink", nlohmann::json::value_t::object));
  const auto pool = member(s, "packet_pool", nlohmann::json::value_t::object);
  if (!pool.empty()) out << "\npacket pool: " << number(pool, "in_use") << " of " << number(pool, "size") << " buffers in use\n";
  const auto neighbours = member(s, "neighbours", nlohmann::json::value_t::array);
  out << "\nneighbours: " << (neighbours.empty() ? "none" : "") << "\n";
  for (const auto& n : neighbours)
    out << "  " << text(n, "port") << "  " << text(n, "ip") << "  " << text(n, "mac") << "  " << text(n, "age_seconds") << "s ago\n";
  return out.str();
}

}  // namespace lopower
