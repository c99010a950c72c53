#pragma once
// The daemon's `flows` reply as the table `lopower-ctl flows` and
// `lopower-ctl device show` print: one line per spliced flow.

#include <string>

#include <nlohmann/json.hpp>

namespace lopower {

// Tolerates missing or mistyped fields: they show as empty or 0.
std::string render_flows(const nlohmann::json& flows_reply);

}  // namespace lopower
