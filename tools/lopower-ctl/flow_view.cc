#include "tools/lopower-ctl/flow_view.h"

#include <cstdio>

namespace lopower {
namespace {

std::string text(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

unsigned long long number(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_unsigned() ? it->get<unsigned long long>() : 0ull;
}

}  // namespace

std::string render_flows(const nlohmann::json& reply) {
  std::string out;
  char line[512];
  std::snprintf(line, sizeof line, "%-12s %-6s %-6s %-62s %-30s %-11s %8s %12s %12s\n", "DEVICE", "KIND", "PROTO",
                "DEVICE SIDE -> DESTINATION", "NAT SIDE", "STATE", "AGE", "BYTES OUT", "BYTES IN");
  out += line;
  if (!reply.is_object()) return out;
  auto flows = reply.find("flows");
  unsigned long long listed = 0;
  if (flows != reply.end() && flows->is_array())
    for (const auto& f : *flows) {
      if (!f.is_object()) continue;
      ++listed;
      // An inbound flow: the peer opened it toward the device.
      const bool inbound = text(f, "direction") == "inbound";
      const std::string device_side = text(f, "device_side") + (inbound ? " <- " : " -> ") + text(f, "destination");
      std::snprintf(line, sizeof line, "%-12s %-6s %-6s %-62s %-30s %-11s %7llus %12llu %12llu\n",
                    text(f, "device").c_str(), text(f, "kind").c_str(), text(f, "protocol").c_str(), device_side.c_str(), text(f, "tailnet_side").c_str(),
                    text(f, "state").c_str(), number(f, "age_seconds"), number(f, "bytes_out"), number(f, "bytes_in"));
      out += line;
    }
  // With a --device filter the table holds more than was listed: say both.
  const unsigned long long count = number(reply, "count");
  if (listed != count) out += std::to_string(listed) + " listed, ";
  const auto truncated = reply.find("truncated");
  std::snprintf(line, sizeof line, "%llu flow(s) of %llu%s\n", count, number(reply, "capacity"),
                truncated != reply.end() && truncated->is_boolean() && truncated->get<bool>() ? " (list truncated)" : "");
  out += line;
  return out;
}

}  // namespace lopower
