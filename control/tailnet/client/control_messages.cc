#include "control/tailnet/client/control_messages.h"

#include <nlohmann/json.hpp>

#include "control/tailnet/controlbase/key_text.h"

namespace lopower::tailnet {

namespace {

constexpr std::size_t max_register_response = 64 * 1024;
// tailcfg.EndpointType: lopower's endpoints are its own port addresses
// unless the caller says otherwise (2: found with STUN).
constexpr int endpoint_type_local = 1;

nlohmann::json hostinfo_json(const host_info& h) {
  nlohmann::json net_info{{"PreferredDERP", h.preferred_derp}};
  if (!h.derp_latency.empty()) net_info["DERPLatency"] = h.derp_latency;
  nlohmann::json j{{"Hostname", h.hostname}, {"OS", h.os}, {"IPNVersion", h.ipn_version}, {"NetInfo", net_info}};
  if (!h.request_tags.empty()) j["RequestTags"] = h.request_tags;
  if (!h.routable_ips.empty()) j["RoutableIPs"] = h.routable_ips;
  return j;
}

std::string string_member(const nlohmann::json& obj, const char* name) {
  if (!obj.is_object()) return {};
  auto it = obj.find(name);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

std::string to_json(const register_request& r) {
  nlohmann::json j{{"Version", lopower_capability_version},
                   {"NodeKey", format_node_key(r.node_key)},
                   {"OldNodeKey", format_node_key(r.old_node_key ? *r.old_node_key : public_key{})},
                   {"Hostinfo", hostinfo_json(r.hostinfo)},
                   {"Ephemeral", r.ephemeral}};
  if (!r.auth_key.empty()) j["Auth"] = {{"AuthKey", r.auth_key}};
  if (!r.followup.empty()) j["Followup"] = r.followup;
  if (r.expiry) j["Expiry"] = r.expiry->to_string();
  return j.dump();
}

std::string to_json(const map_request& r) {
  nlohmann::json endpoints = nlohmann::json::array();
  nlohmann::json types = nlohmann::json::array();
  for (std::size_t i = 0; i < r.endpoints.size(); ++i) {
    endpoints.push_back(r.endpoints[i].to_string());
    types.push_back(i < r.endpoint_types.size() ? r.endpoint_types[i] : endpoint_type_local);
  }
  nlohmann::json j{{"Version", lopower_capability_version},
                   {"NodeKey", format_node_key(r.node_key)},
                   {"DiscoKey", format_disco_key(r.disco_key)},
                   {"Stream", r.stream},
                   {"KeepAlive", r.stream},
                   {"Compress", "zstd"},
                   {"Hostinfo", hostinfo_json(r.hostinfo)},
                   {"Endpoints", endpoints},
                   {"EndpointTypes", types}};
  if (r.omit_peers) j["OmitPeers"] = true;
  return j.dump();
}

result<register_response> parse_register_response(std::string_view json) {
  if (json.size() > max_register_response) return fail("register response larger than 64 KiB");
  const nlohmann::json j = nlohmann::json::parse(json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return fail("register response is not a JSON object");
  register_response r;
  for (const auto& [name, flag] : {std::pair{"MachineAuthorized", &r.machine_authorized},
                                   std::pair{"NodeKeyExpired", &r.node_key_expired}}) {
    auto it = j.find(name);
    if (it == j.end() || it->is_null()) continue;
    if (!it->is_boolean()) return fail(std::string(name) + " is not a boolean");
    *flag = it->get<bool>();
  }
  r.auth_url = string_member(j, "AuthURL");
  r.error = string_member(j, "Error");
  if (auto it = j.find("Login"); it != j.end()) r.login_name = string_member(*it, "LoginName");
  if (auto it = j.find("User"); it != j.end()) r.user_display = string_member(*it, "DisplayName");
  return r;
}

}  // namespace lopower::tailnet
