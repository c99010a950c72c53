#pragma once
// `lopower-ctl status`: what the daemon reports about itself, as JSON.

#include <chrono>
#include <string>

#include <nlohmann/json.hpp>

#include "control/config.h"
#include "control/ctl/version.h"  // the `version` command, registered beside `status`
#include "dataplane/dataplane.h"

namespace lopower {

struct daemon_info {
  std::string config_path;
  std::chrono::steady_clock::time_point started;
  unsigned main_lcore = 0;
};

nlohmann::json status_json(const daemon_info& info, const dataplane& dp);

}  // namespace lopower
