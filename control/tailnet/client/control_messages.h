#pragma once
// The JSON bodies of /machine/register and /machine/map (tailscale's
// tailcfg.RegisterRequest, RegisterResponse and MapRequest; JSON member
// names are the Go field names). Builders and a bounded parser only.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "control/tailnet/netmap/map_response.h"
#include "lopower/keys.h"
#include "lopower/result.h"

namespace lopower::tailnet {

// lopower's capability version: what it announces in ts2021 and in every
// request. headscale 0.29 accepts 113 and up; 119 asks for nothing lopower
// does not handle (tailcfg.go's CurrentCapabilityVersion history).
inline constexpr std::uint16_t lopower_capability_version = 119;

// tailcfg.Hostinfo, the parts lopower fills in.
struct host_info {
  std::string hostname;
  std::string os = "linux";
  std::string ipn_version;              // "lopower <version>"
  std::vector<std::string> request_tags;  // "tag:name"
  std::vector<std::string> routable_ips;  // subnet routes offered ("10.90.0.0/24"); approved by the server
  int preferred_derp = 0;               // NetInfo.PreferredDERP; 0 = none yet
  std::map<std::string, double> derp_latency;  // NetInfo.DERPLatency: "999-v4" -> seconds
};

struct register_request {
  public_key node_key;
  std::optional<public_key> old_node_key;
  std::string auth_key;  // empty: none (interactive login)
  std::string followup;  // the AuthURL being waited on
  std::optional<timestamp> expiry;  // a past time logs out
  bool ephemeral = false;
  host_info hostinfo;
};

struct register_response {
  bool machine_authorized = false;
  bool node_key_expired = false;
  std::string auth_url;
  std::string error;
  std::string login_name;   // Login.LoginName
  std::string user_display; // User.DisplayName
};

struct map_request {
  public_key node_key;
  public_key disco_key;
  bool stream = true;
  bool omit_peers = false;
  std::vector<endpoint> endpoints;
  std::vector<int> endpoint_types;  // tailcfg.EndpointType per endpoint; missing ones are 1 (local)
  host_info hostinfo;
};

// The moment tailscale sends as Expiry to log out (a time long past).
inline timestamp logout_expiry() { return timestamp::from_unix(123); }

std::string to_json(const register_request& r);
std::string to_json(const map_request& r);

// Bounded (64 KiB) and strict about types; unknown members are ignored.
result<register_response> parse_register_response(std::string_view json);

}  // namespace lopower::tailnet
