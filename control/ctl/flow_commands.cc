#include "control/ctl/flow_commands.h"

#include <rte_cycles.h>

#include <map>

namespace lopower {

namespace {

constexpr std::size_t max_listed = 10000;  // an answer stays a few MB at most

std::string endpoint_text(const splice::flow_key& k, bool source) {
  ip_address a;
  a.family = k.family;
  std::memcpy(a.bytes.data(), source ? k.src : k.dst, k.family == ip_family::v6 ? 16 : 4);
  const std::string host = k.family == ip_family::v6 ? "[" + a.to_string() + "]" : a.to_string();
  return host + ":" + std::to_string(source ? k.src_port : k.dst_port);
}

const char* protocol_name(std::uint8_t p) {
  switch (p) {
    case splice::ipproto_tcp: return "tcp";
    case splice::ipproto_udp: return "udp";
    case splice::ipproto_icmp: return "icmp";
    case splice::ipproto_icmpv6: return "icmpv6";
  }
  return "?";
}

}  // namespace

void register_flow_commands(ctl_server& ctl, const dataplane& dp, const wireguard_interface& devices) {
  ctl.handle("flows", [&dp, &devices](const nlohmann::json& args) -> nlohmann::json {
    std::string only;
    if (args.contains("device")) {
      if (!args["device"].is_string()) throw ctl_command_error("device: expected a device name");
      only = args["device"].get<std::string>();
    }
    const std::uint64_t now = rte_rdtsc(), hz = rte_get_tsc_hz();
    std::map<const wg_peer*, std::string> names;
    nlohmann::json list = nlohmann::json::array();
    bool truncated = false;
    dp.flows().for_each([&](flow& f) {
      auto [it, fresh] = names.try_emplace(f.device);
      if (fresh) it->second = devices.name_of(f.device);
      if (!only.empty() && it->second != only) return;
      if (list.size() >= max_listed) return void(truncated = true);
      const bool tcp = f.device_key.protocol == splice::ipproto_tcp;
      // Inbound flows (opened by a tailnet peer): their tailnet side is the peer.
      const bool inbound = f.kind != flow_kind::spliced;
      list.push_back({{"device", it->second},
                      {"direction", inbound ? "inbound" : "outbound"},
                      {"protocol", protocol_name(f.device_key.protocol)},
                      {"kind", f.uplink ? "uplink" : inbound ? "inbound" : "splice"},
                      {"device_side", endpoint_text(f.device_key, true)},
                      {"destination", endpoint_text(f.device_key, false)},
                      {"tailnet_side", endpoint_text(f.tailnet_key, inbound)},
                      {"state", tcp ? splice::to_string(f.state.load(std::memory_order_relaxed)) : "active"},
                      {"age_seconds", splice::seconds_since(f.created_tsc, now, hz)},
                      {"idle_seconds", splice::seconds_since(f.last_tsc.load(std::memory_order_relaxed), now, hz)},
                      {"packets_out", f.traffic.packets_out()},
                      {"bytes_out", f.traffic.bytes_out()},
                      {"packets_in", f.traffic.packets_in()},
                      {"bytes_in", f.traffic.bytes_in()}});
      // What the peer addressed: the device (route mode) or a forwarded port of lopower's.
      if (inbound) list.back()["addressed"] = endpoint_text(f.tailnet_key, false);
    });
    return {{"flows", list}, {"count", dp.flows().size()}, {"capacity", dp.flows().capacity()}, {"truncated", truncated}};
  });
}

}  // namespace lopower
