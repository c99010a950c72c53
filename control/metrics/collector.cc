#include "control/metrics/collector.h"

#include <string_view>
#include <vector>

#include "control/metrics/exposition.h"

namespace lopower::metrics {
namespace {

using kind = exposition::kind;
using json = nlohmann::json;

// A number from untrusted-shaped JSON: absent or not a number reads as 0.
double number(const json& j, std::string_view key) {
  if (!j.is_object()) return 0;
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : 0;
}

std::string text(const json& j, std::string_view key) {
  if (!j.is_object()) return {};
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

const json& member(const json& j, std::string_view key) {
  static const json none;
  if (!j.is_object()) return none;
  auto it = j.find(key);
  return it != j.end() ? *it : none;
}

// A device's or peer's allowed IPs, comma separated, as the WireGuard exporters write them.
std::string device_allowed_ips(const json& d) {
  std::string out;
  for (const char* k : {"ipv4", "ipv6"}) {
    const std::string a = text(d, k);
    if (a.empty()) continue;
    if (!out.empty()) out += ',';
    out += a + (a.find(':') == std::string::npos ? "/32" : "/128");
  }
  return out;
}

std::string joined(const json& list) {
  std::string out;
  if (!list.is_array()) return out;
  for (const json& e : list)
    if (e.is_string()) out += (out.empty() ? "" : ",") + e.get<std::string>();
  return out;
}

void write_build(exposition& e, const metrics_input& in) {
  e.family("lopower_build_info", kind::gauge, "lopower's version, git revision, DPDK version and crypto backend (always 1)");
  e.sample({{"version", in.build.version},
            {"revision", in.build.revision},
            {"dpdk", in.build.dpdk},
            {"crypto_backend", in.build.crypto_backend}},
           1);
  e.single("lopower_uptime_seconds", kind::gauge, "Seconds since lopowerd started", number(in.status, "uptime_seconds"));
}

void write_ports(exposition& e, const json& ports) {
  struct nic_stat {
    const char* metric;
    const char* key;
    const char* help;
  };
  static constexpr nic_stat stats[] = {
      {"lopower_port_rx_packets_total", "rx_packets", "Packets the port received (NIC counters)"},
      {"lopower_port_rx_bytes_total", "rx_bytes", "Bytes the port received (NIC counters)"},
      {"lopower_port_tx_packets_total", "tx_packets", "Packets the port sent (NIC counters)"},
      {"lopower_port_tx_bytes_total", "tx_bytes", "Bytes the port sent (NIC counters)"},
      {"lopower_port_rx_missed_total", "rx_missed", "Packets the NIC dropped for want of room: the workers fell behind"},
  };
  for (const nic_stat& s : stats) {
    e.family(s.metric, kind::counter, s.help);
    for (const json& p : ports) e.sample({{"port", text(p, "name")}}, number(p, s.key));
  }
  e.family("lopower_port_errors_total", kind::counter, "Receive and transmit errors the NIC reported");
  for (const json& p : ports) {
    const std::string name = text(p, "name");
    e.sample({{"port", name}, {"direction", "rx"}}, number(p, "rx_errors"));
    e.sample({{"port", name}, {"direction", "tx"}}, number(p, "tx_errors"));
  }
  e.family("lopower_port_link_up", kind::gauge, "1 when the port's link is up");
  for (const json& p : ports) e.sample({{"port", text(p, "name")}}, member(member(p, "link"), "up") == true ? 1 : 0);
  e.family("lopower_packets_by_class_total", kind::counter, "Frames the workers received, by the class they sorted them into");
  for (const json& p : ports)
    for (const auto& [cls, n] : member(p, "classes").items())
      e.sample({{"port", text(p, "name")}, {"class", cls}}, n.is_number() ? n.get<double>() : 0);
  e.family("lopower_drops_total", kind::counter, "Packets dropped, by port and reason (lopower-ctl status explains each reason)");
  for (const json& p : ports)
    for (const auto& [reason, n] : member(p, "drops").items())
      e.sample({{"port", text(p, "name")}, {"reason", reason}}, n.is_number() ? n.get<double>() : 0);
}

void write_lcores(exposition& e, const metrics_input& in) {
  const json& pool = member(in.status, "packet_pool");
  e.single("lopower_packet_pool_size", kind::gauge, "Packet buffers in the pool", number(pool, "size"));
  e.single("lopower_packet_pool_in_use", kind::gauge, "Packet buffers held anywhere (rings, queues, staged, reassembly)",
           number(pool, "in_use"));
  std::vector<const json*> workers;
  for (const json& l : member(in.status, "lcores"))
    if (text(l, "role") == "worker") workers.push_back(&l);
  e.family("lopower_lcore_polls_total", kind::counter, "Receive polls a worker lcore made");
  for (const json* l : workers) e.sample({{"lcore", std::to_string(int(number(*l, "lcore")))}, {"role", "worker"}}, number(*l, "polls"));
  e.family("lopower_lcore_busy_polls_total", kind::counter, "Polls that found packets");
  for (const json* l : workers)
    e.sample({{"lcore", std::to_string(int(number(*l, "lcore")))}, {"role", "worker"}}, number(*l, "busy_polls"));
  // Busy cycles over the TSC rate: seconds of packet work, as against the
  // polling a DPDK lcore spends the rest of its time on.
  e.family("lopower_lcore_busy_seconds_total", kind::counter, "Time a worker spent in polls that found packets (TSC)");
  for (const json* l : workers) {
    const double hz = number(*l, "tsc_hz");
    e.sample({{"lcore", std::to_string(int(number(*l, "lcore")))}, {"role", "worker"}},
             hz > 0 ? number(*l, "busy_cycles") / hz : 0);
  }
  e.family("lopower_lcore_busy_ratio", kind::gauge, "Busy polls / polls over the last second (how loaded a worker is)");
  for (const auto& [lcore, ratio] : in.lcore_busy_ratio) e.sample({{"lcore", std::to_string(lcore)}}, ratio);
}

// One WireGuard peer in the exporters' shape.
struct wg_peer_row {
  std::string interface, public_key, allowed_ips, friendly_name;
  double rx_bytes, tx_bytes, latest_handshake;  // handshake as UNIX time, 0 = never
};

void write_wireguard(exposition& e, const std::vector<wg_peer_row>& rows) {
  auto labels = [](const wg_peer_row& r) {
    return std::vector<label>{{"interface", r.interface},
                              {"public_key", r.public_key},
                              {"allowed_ips", r.allowed_ips},
                              {"friendly_name", r.friendly_name}};
  };
  e.family("wireguard_received_bytes_total", kind::counter, "Bytes received from the peer (as the WireGuard exporters name it)");
  for (const auto& r : rows) e.sample(labels(r), r.rx_bytes);
  e.family("wireguard_sent_bytes_total", kind::counter, "Bytes sent to the peer");
  for (const auto& r : rows) e.sample(labels(r), r.tx_bytes);
  e.family("wireguard_latest_handshake_seconds", kind::gauge, "UNIX time of the latest handshake with the peer (0: never)");
  for (const auto& r : rows) e.sample(labels(r), r.latest_handshake);
}

std::vector<wg_peer_row> device_rows(const json& devices) {
  std::vector<wg_peer_row> rows;
  for (const json& d : devices) {
    const json& wg = member(d, "wireguard");
    rows.push_back({"devices", text(d, "public_key"), device_allowed_ips(d), text(d, "name"), number(wg, "rx_bytes"),
                    number(wg, "tx_bytes"), number(wg, "latest_handshake")});
  }
  return rows;
}

std::vector<wg_peer_row> peer_rows(const json& peers, std::int64_t now) {
  std::vector<wg_peer_row> rows;
  for (const json& p : peers) {
    const json& age = member(p, "last_handshake_seconds");
    rows.push_back({"tailnet", text(p, "node_key"), joined(member(p, "allowed_ips")), text(p, "name"), number(p, "rx_bytes"),
                    number(p, "tx_bytes"), age.is_number() ? double(now) - age.get<double>() : 0});
  }
  return rows;
}

void write_devices(exposition& e, const metrics_input& in) {
  const json& devices = in.devices;
  e.single("lopower_devices", kind::gauge, "Devices enrolled", devices.is_array() ? double(devices.size()) : 0);
  e.family("lopower_device_rx_packets_total", kind::counter, "Packets received from the device");
  for (const json& d : devices) e.sample({{"device", text(d, "name")}}, number(member(d, "wireguard"), "rx_packets"));
  e.family("lopower_device_tx_packets_total", kind::counter, "Packets sent to the device");
  for (const json& d : devices) e.sample({{"device", text(d, "name")}}, number(member(d, "wireguard"), "tx_packets"));
  e.family("lopower_device_handshake_age_seconds", kind::gauge, "Seconds since the device's latest handshake (absent: never)");
  for (const json& d : devices) {
    const double hs = number(member(d, "wireguard"), "latest_handshake");
    if (hs > 0) e.sample({{"device", text(d, "name")}}, std::max(0.0, double(in.now_unix) - hs));
  }
  e.family("lopower_device_endpoint_info", kind::gauge, "The device's current endpoint (address:port it was last seen at)");
  for (const json& d : devices) {
    const std::string ep = text(member(d, "wireguard"), "endpoint");
    if (!ep.empty()) e.sample({{"device", text(d, "name")}, {"endpoint", ep}}, 1);
  }
}

void write_handshakes(exposition& e, const metrics_input& in) {
  e.family("lopower_handshakes_total", kind::counter, "WireGuard handshake events by interface and result");
  const std::pair<const char*, const json*> sides[] = {
      {"devices", &member(member(in.status, "wireguard"), "handshakes")},
      {"tailnet", &member(member(in.status, "tailnet"), "handshakes")}};
  for (const auto& [interface, counters] : sides) {
    for (const auto& [result, n] : counters->items())
      if (n.is_number()) e.sample({{"interface", interface}, {"result", result}}, n.get<double>());
    for (const auto& [error, n] : member(*counters, "errors").items())
      if (n.is_number()) e.sample({{"interface", interface}, {"result", error}}, n.get<double>());
  }
}

// "direct 192.0.2.1:41641" / "derp(1) ..." / "" -> direct, derp, none.
const char* path_kind(const std::string& path) {
  if (path.rfind("direct", 0) == 0) return "direct";
  if (path.find("derp") != std::string::npos) return "derp";
  return "none";
}

void write_tailnet(exposition& e, const metrics_input& in) {
  const json& t = member(in.status, "tailnet");
  const json& peers = member(t, "peers");
  e.family("lopower_tailnet_backend_state", kind::gauge, "1 for the tailnet node's current state (Running, NeedsLogin, ...)");
  e.sample({{"state", text(t, "backend_state")}}, 1);
  e.single("lopower_tailnet_peers", kind::gauge, "Tailnet peers in the netmap", peers.is_array() ? double(peers.size()) : 0);
  e.family("lopower_tailnet_peer_path", kind::gauge, "The path traffic to the peer takes (direct, derp, none)");
  for (const json& p : peers) e.sample({{"peer", text(p, "name")}, {"path", path_kind(text(p, "path"))}}, 1);
  e.family("lopower_tailnet_peer_latency_seconds", kind::gauge, "Disco ping latency to the peer, when measured");
  for (const json& p : peers)
    if (member(p, "latency_ms").is_number()) e.sample({{"peer", text(p, "name")}}, number(p, "latency_ms") / 1000);
  e.single("lopower_tailnet_map_updates_total", kind::counter, "Map responses received from the coordination server",
           number(t, "map_responses"));
  e.single("lopower_tailnet_control_reconnects_total", kind::counter, "Connections to the coordination server after the first",
           std::max(0.0, number(t, "connects") - 1));
  const json& derp = member(t, "derp");
  e.single("lopower_derp_home_region", kind::gauge, "The home DERP region (0: none)", number(derp, "home"));
  e.family("lopower_derp_connected", kind::gauge, "1 while lopower holds a connection to the DERP region");
  for (const auto& [region, r] : member(derp, "connections").items())
    e.sample({{"region", region}}, member(r, "connected") == true ? 1 : 0);
  write_wireguard(e, [&] {
    auto rows = device_rows(in.devices);
    for (auto& r : peer_rows(peers, in.now_unix)) rows.push_back(std::move(r));
    return rows;
  }());
}

void write_flows_and_dns(exposition& e, const metrics_input& in) {
  e.family("lopower_flows", kind::gauge, "Spliced flows now, by protocol and state");
  for (const auto& [key, n] : in.flows) e.sample({{"protocol", key.first}, {"state", key.second}}, double(n));
  e.single("lopower_flows_expired_total", kind::counter, "Flows removed after idling past their timeout", double(in.flows_expired));
  e.family("lopower_dns_queries_total", kind::counter, "Device DNS queries by outcome");
  const json& dns = member(in.status, "dns");
  for (const auto& [outcome, n] : member(dns, "outcomes").items())
    if (n.is_number()) e.sample({{"outcome", outcome}}, n.get<double>());
  e.sample({{"outcome", "refused_device_limit"}}, number(dns, "forwards_refused_device_limit"));
  const json& ctl = member(in.status, "control_socket");
  e.family("lopower_control_socket_requests_total", kind::counter, "Control socket connections by how they ended");
  for (const char* r : {"served", "refused", "evicted"}) e.sample({{"result", r}}, number(ctl, r));
}

}  // namespace

std::string render_prometheus(const metrics_input& in) {
  exposition e;
  write_build(e, in);
  write_ports(e, member(in.status, "ports"));
  write_lcores(e, in);
  write_devices(e, in);
  write_handshakes(e, in);
  write_tailnet(e, in);
  write_flows_and_dns(e, in);
  return e.text();
}

}  // namespace lopower::metrics
