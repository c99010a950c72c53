#include "control/ctl/status.h"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mempool.h>
#include <rte_version.h>
#include <unistd.h>

#include <ctime>

#include "control/clock.h"
#include "lopower/build_info.h"
#include "lopower_build_config.h"

namespace lopower {
namespace {

// Sums one port's counters over every worker and the control thread.
nlohmann::json port_counters_json(const dataplane& dp, std::size_t index) {
  std::uint64_t to_kernel = 0, from_kernel = 0, to_control = 0, device_to_device = 0;
  std::uint64_t classes[packet_class_count] = {};
  std::uint64_t drops[drop_reason_count] = {};
  for (const auto& w : dp.workers()) {
    const port_counters& pc = w->stats().ports[index];
    to_kernel += pc.to_kernel.get();
    from_kernel += pc.from_kernel.get();
    to_control += pc.to_control.get();
    device_to_device += pc.device_to_device.get();
    for (unsigned c = 0; c < packet_class_count; ++c) classes[c] += pc.by_class[c].get();
    for (unsigned r = 0; r < drop_reason_count; ++r) drops[r] += pc.drops[r].get();
  }
  for (unsigned r = 0; r < drop_reason_count; ++r) drops[r] += dp.control_counters().drops[index][r].get();
  nlohmann::json j;
  j["to_kernel"] = to_kernel;
  j["from_kernel"] = from_kernel;
  j["to_control"] = to_control;
  j["device_to_device"] = device_to_device;  // device packets delivered to another device
  nlohmann::json cls = nlohmann::json::object();
  for (unsigned c = 0; c < packet_class_count; ++c) cls[to_string(static_cast<packet_class>(c))] = classes[c];
  j["classes"] = cls;
  nlohmann::json dj = nlohmann::json::object();
  std::uint64_t total = 0;
  for (unsigned r = 0; r < drop_reason_count; ++r) {
    dj[std::string(drop_reason_names[r])] = drops[r];
    total += drops[r];
  }
  j["drops"] = dj;
  j["drops_total"] = total;
  return j;
}

nlohmann::json port_json(const dataplane& dp, const port_runtime& p) {
  nlohmann::json j;
  j["name"] = p.config.name;
  j["device"] = p.config.device;
  j["driver"] = p.driver;
  j["port_id"] = p.port_id;
  j["role"] = to_string(p.config.role);
  j["mac"] = mac_to_string(p.mac);
  j["mtu"] = p.config.mtu;
  j["queues"] = p.queues;
  j["rss"] = p.rss;
  const port_link link = link_of(p.port_id);
  j["link"] = {{"up", link.up}, {"speed_mbps", link.speed_mbps}, {"full_duplex", link.full_duplex}};
  nlohmann::json addrs = nlohmann::json::array();
  for (const ip_prefix& a : p.config.addresses) addrs.push_back(a.to_string());
  j["addresses"] = addrs;
  j["gateway4"] = p.config.gateway4 ? nlohmann::json(p.config.gateway4->to_string()) : nlohmann::json();
  j["gateway6"] = p.config.gateway6 ? nlohmann::json(p.config.gateway6->to_string()) : nlohmann::json();
  j["exception_path"] = p.tap_id == no_port ? nlohmann::json() : nlohmann::json{{"tap", p.config.tap_name}, {"port_id", p.tap_id}};
  rte_eth_stats st{};
  rte_eth_stats_get(p.port_id, &st);
  j["rx_packets"] = st.ipackets;
  j["rx_bytes"] = st.ibytes;
  j["tx_packets"] = st.opackets;
  j["tx_bytes"] = st.obytes;
  j["rx_missed"] = st.imissed;
  j["rx_errors"] = st.ierrors;
  j["tx_errors"] = st.oerrors;
  j["rx_no_mbuf"] = st.rx_nombuf;
  j.update(port_counters_json(dp, p.index));
  return j;
}

nlohmann::json lcores_json(const daemon_info& info, const dataplane& dp) {
  nlohmann::json out = nlohmann::json::array();
  out.push_back({{"lcore", info.main_lcore}, {"role", "control"}});
  for (const auto& w : dp.workers()) {
    const lcore_stats& s = w->stats();
    std::uint64_t rx = 0;
    for (std::size_t i = 0; i < dp.ports().size(); ++i) rx += s.ports[i].rx_packets.get();
    out.push_back({{"lcore", w->setup().lcore_id},
                   {"role", "worker"},
                   {"queue", w->setup().queue},
                   {"rx_packets", rx},
                   {"polls", s.polls.get()},
                   {"busy_polls", s.busy_polls.get()},
                   // Cycles of the busy polls (lcore_stats.h); / tsc_hz = seconds of work.
                   {"busy_cycles", s.busy_cycles.get()},
                   {"tsc_hz", rte_get_tsc_hz()},
                   {"sleeps", s.sleeps.get()}});
  }
  return out;
}

nlohmann::json neighbours_json(const dataplane& dp) {
  nlohmann::json out = nlohmann::json::array();
  const std::uint64_t now = monotonic_ms();
  for (const auto& e : dp.neighbours().entries()) {
    const std::size_t idx = dp.port_index_of(e.port_id);
    out.push_back({{"port", idx < dp.ports().size() ? dp.ports()[idx].config.name : "?"},
                   {"ip", e.ip.to_string()},
                   {"mac", mac_to_string(e.mac)},
                   {"age_seconds", (now - e.updated_ms) / 1000}});
  }
  return out;
}

// The uplink port (role uplink) and its NAT: the addresses flows are NATed
// to, the gateways and whether their MACs are known (without one, NATed
// packets are dropped as uplink_no_neighbour), and the flows NATed now.
nlohmann::json uplink_json(const dataplane& dp) {
  for (const port_runtime& p : dp.ports()) {
    if (p.config.role != port_role::uplink) continue;
    nlohmann::json j;
    j["port"] = p.config.name;
    nlohmann::json addrs = nlohmann::json::array();
    for (const ip_prefix& a : p.config.addresses) addrs.push_back(a.to_string());
    j["address"] = addrs;
    j["nat_ports"] = std::to_string(p.config.nat_first_port) + "-" + std::to_string(p.config.nat_last_port);
    for (const auto& [key, gateway] : {std::pair{"gateway4", p.config.gateway4}, std::pair{"gateway6", p.config.gateway6}}) {
      j[key] = gateway ? nlohmann::json(gateway->to_string()) : nlohmann::json();
      rte_ether_addr mac;
      const bool known = gateway && dp.neighbours().lookup(p.port_id, *gateway, &mac);
      j[std::string(key) + "_neighbour"] = known ? nlohmann::json(mac_to_string(mac)) : nlohmann::json();
    }
    j["flows"] = dp.flows().census().uplink;
    return j;
  }
  return nullptr;
}

}  // namespace

nlohmann::json status_json(const daemon_info& info, const dataplane& dp) {
  nlohmann::json j;
  j["version"] = LOPOWER_VERSION;
  j["revision"] = build_revision();
  j["dpdk"] = rte_version();
  j["pid"] = getpid();
  j["config"] = info.config_path;
  j["uptime_seconds"] =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - info.started).count();
  nlohmann::json ports = nlohmann::json::array();
  for (const port_runtime& p : dp.ports()) ports.push_back(port_json(dp, p));
  j["ports"] = ports;
  j["lcores"] = lcores_json(info, dp);
  j["neighbours"] = neighbours_json(dp);
  j["uplink"] = uplink_json(dp);
  // Buffers held anywhere (rings, staged packets, reassembly, TX queues):
  // what a leak or a flood that is not bounded would show first.
  j["packet_pool"] = {{"size", dp.pool()->size}, {"in_use", rte_mempool_in_use_count(dp.pool())}};
  nlohmann::json reasons = nlohmann::json::object();
  for (unsigned r = 0; r < drop_reason_count; ++r)
    reasons[std::string(drop_reason_names[r])] = std::string(drop_reason_descriptions[r]);
  j["drop_reasons"] = reasons;
  return j;
}

}  // namespace lopower
