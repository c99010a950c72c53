#pragma once
// The operator's view from outside the control socket: the Prometheus
// endpoint ([metrics] listen) and the DPDK telemetry commands, fed from the
// same JSON the control socket answers with, plus what only a clock can give
// (lcore busy ratio over the last second) and what the flow-expiry walk
// counted.

#include <functional>
#include <map>
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "control/config.h"
#include "control/event_loop.h"
#include "control/metrics/collector.h"
#include "control/metrics/http_server.h"
#include "dataplane/dataplane.h"

namespace lopower::metrics {

struct sources {
  std::function<nlohmann::json()> status;   // the status command's answer
  std::function<nlohmann::json()> devices;  // the device list command's answer
};

class service {
 public:
  // Listens when cfg.enabled() (throws std::runtime_error if it cannot);
  // registers the telemetry commands either way.
  service(event_loop& loop, const metrics_config& cfg, const dataplane& dp, sources src, build_labels build);

  // Once a second, after the flow-expiry walk: its census and how many flows it took.
  void second_passed(const flow_census& census, unsigned expired);
  std::string render() const;
  const http_server* endpoint() const { return http_.get(); }

 private:
  void sample_lcores();
  nlohmann::json telemetry_snapshot(const metrics_input& in) const;
  metrics_input gather() const;

  const dataplane& dp_;
  sources src_;
  build_labels build_;
  std::unique_ptr<http_server> http_;
  flow_census census_;
  std::uint64_t flows_expired_ = 0;
  struct poll_sample {
    std::uint64_t polls = 0, busy = 0;
  };
  std::vector<poll_sample> last_polls_;  // per worker
  std::map<unsigned, double> busy_ratio_;
};

}  // namespace lopower::metrics
