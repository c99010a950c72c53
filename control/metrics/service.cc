#include "control/metrics/service.h"

#include <ctime>

#include "control/log.h"
#include "control/metrics/telemetry.h"
#include "dataplane/splice/translate.h"

namespace lopower::metrics {
namespace {

std::map<std::pair<std::string, std::string>, std::uint64_t> flows_by_kind(const flow_census& c) {
  std::map<std::pair<std::string, std::string>, std::uint64_t> out;
  for (unsigned s = 0; s < std::size(c.tcp); ++s)
    out[{"tcp", splice::to_string(static_cast<splice::tcp_state>(s))}] = c.tcp[s];
  out[{"udp", "active"}] = c.udp;
  out[{"icmp", "active"}] = c.icmp;
  return out;
}

// A member of an object, or null (which iterates as nothing).
const nlohmann::json& field(const nlohmann::json& j, const char* key) {
  static const nlohmann::json none;
  if (!j.is_object()) return none;
  const auto it = j.find(key);
  return it == j.end() ? none : *it;
}

std::string name_of(const nlohmann::json& j) {
  const nlohmann::json& n = field(j, "name");
  return n.is_string() ? n.get<std::string>() : "?";
}

// Every drop reason summed over the ports.
nlohmann::json drops_of(const nlohmann::json& ports) {
  nlohmann::json total = nlohmann::json::object();
  for (const auto& p : ports)
    for (const auto& [reason, n] : field(p, "drops").items())
      if (n.is_number_unsigned()) total[reason] = total.value(reason, std::uint64_t{0}) + n.get<std::uint64_t>();
  return total;
}

}  // namespace

service::service(event_loop& loop, const metrics_config& cfg, const dataplane& dp, sources src, build_labels build)
    : dp_(dp), src_(std::move(src)), build_(std::move(build)) {
  if (cfg.enabled()) {
    http_ = std::make_unique<http_server>(loop, cfg.address, cfg.port, [this] { return render(); });
    LOG_INFO("metrics on http://%s%s%s:%u/metrics", cfg.address.family == ip_family::v6 ? "[" : "",
             cfg.address.to_string().c_str(), cfg.address.family == ip_family::v6 ? "]" : "", http_->port());
  }
  register_telemetry_commands();
  sample_lcores();
}

void service::second_passed(const flow_census& census, unsigned expired) {
  census_ = census;
  flows_expired_ += expired;
  sample_lcores();
  if (telemetry_wanted()) publish_telemetry(telemetry_snapshot(gather()));
}

void service::sample_lcores() {
  const auto& workers = dp_.workers();
  last_polls_.resize(workers.size());
  for (std::size_t i = 0; i < workers.size(); ++i) {
    const lcore_stats& s = workers[i]->stats();
    const poll_sample now{s.polls.get(), s.busy_polls.get()};
    const std::uint64_t polls = now.polls - last_polls_[i].polls, busy = now.busy - last_polls_[i].busy;
    busy_ratio_[workers[i]->setup().lcore_id] = polls == 0 ? 0.0 : double(busy) / double(polls);
    last_polls_[i] = now;
  }
}

metrics_input service::gather() const {
  metrics_input in;
  in.status = src_.status();
  in.devices = src_.devices();
  in.flows = flows_by_kind(census_);
  in.flows_expired = flows_expired_;
  in.lcore_busy_ratio = busy_ratio_;
  in.build = build_;
  in.now_unix = std::time(nullptr);
  return in;
}

std::string service::render() const { return render_prometheus(gather()); }

nlohmann::json service::telemetry_snapshot(const metrics_input& in) const {
  nlohmann::json ports = nlohmann::json::object();
  for (const auto& p : field(in.status, "ports")) {
    nlohmann::json row = nlohmann::json::object();
    for (const char* k : {"rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "rx_missed", "rx_errors", "tx_errors",
                          "rx_no_mbuf", "to_control", "to_kernel", "from_kernel", "drops_total"})
      if (p.contains(k)) row[k] = p[k];
    ports[name_of(p)] = row;
  }
  nlohmann::json devices = nlohmann::json::object();
  for (const auto& d : in.devices) {
    const nlohmann::json& wg = field(d, "wireguard");
    nlohmann::json row = nlohmann::json::object();
    for (const char* k : {"rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "latest_handshake", "endpoint"})
      if (wg.is_object() && wg.contains(k) && !wg[k].is_null()) row[k] = wg[k];
    devices[name_of(d)] = row;
  }
  const nlohmann::json& tailnet_status = field(in.status, "tailnet");
  nlohmann::json peers = nlohmann::json::object();
  for (const auto& p : field(tailnet_status, "peers")) peers[name_of(p)] = field(p, "path");
  nlohmann::json tailnet{{"backend_state", field(tailnet_status, "backend_state")},
                         {"map_responses", field(tailnet_status, "map_responses")},
                         {"derp_home_region", field(field(tailnet_status, "derp"), "home")},
                         {"peers", peers}};
  nlohmann::json flows = nlohmann::json::object();
  for (const auto& [key, n] : in.flows) flows[key.first + "_" + key.second] = n;
  flows["expired_total"] = in.flows_expired;
  return {{"ports", ports},
          {"drops", drops_of(field(in.status, "ports"))},
          {"devices", devices},
          {"tailnet", tailnet},
          {"flows", flows},
          {"dns", field(field(in.status, "dns"), "outcomes")}};
}

}  // namespace lopower::metrics
