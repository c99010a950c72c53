#pragma once
// lopower's counters in Prometheus form. Rendered from the same JSON the
// control socket answers with (what `lopower-ctl status` and `device list`
// show), so a number has one source whichever way the operator reads it, and
// nothing here touches the workers: the JSON is built from counters they
// already keep.

#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

namespace lopower::metrics {

struct build_labels {
  std::string version, revision, dpdk, crypto_backend;
};

struct metrics_input {
  nlohmann::json status;   // the status command's answer (ports, lcores, wireguard, tailnet, dns, control_socket)
  nlohmann::json devices;  // per device: its summary (name, public_key, ipv4, ipv6) and "wireguard" (live counters)
  std::map<std::pair<std::string, std::string>, std::uint64_t> flows;  // (protocol, state) -> spliced flows now
  std::uint64_t flows_expired = 0;
  std::map<unsigned, double> lcore_busy_ratio;  // worker lcore -> busy polls / polls over the last second
  build_labels build;
  std::int64_t now_unix = 0;
};

std::string render_prometheus(const metrics_input& in);

}  // namespace lopower::metrics
