#pragma once
// Renders the daemon's status JSON as the table an operator reads.

#include <string>

#include <nlohmann/json.hpp>

namespace lopower {

// Tolerates missing or mistyped fields (an older or newer daemon): they show
// as "-" rather than failing.
std::string render_status(const nlohmann::json& status);

}  // namespace lopower
