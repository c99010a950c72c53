#pragma once
// `lopower-ctl device ...`: enrollment from the operator's terminal.

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lopower/ctl_protocol.h"

namespace lopower {

// Sends a request; prints the daemon's error itself and returns nullopt on failure.
using ctl_requester = std::function<std::optional<nlohmann::json>(const ctl::request&)>;

// Runs `device SUBCOMMAND ARGS...`; returns the exit code.
int run_device_command(const std::vector<std::string>& args, const ctl_requester& request);

}  // namespace lopower
