#pragma once
// Helpers shared by the netmap tests: the recorded fixtures and hand-made
// MapResponse JSON.

#include <array>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "control/tailnet/netmap/map_response.h"
#include "lopower/byte_order.h"
#include "lopower/hex.h"

namespace lopower::tailnet::test {

using json = nlohmann::json;

inline std::string fixture_dir() { return std::string(LOPOWER_SOURCE_DIR) + "/tests/unit/netmap/fixtures/"; }

// A missing fixture is an error, not an empty text a test would pass on.
inline std::string read_fixture(const std::string& name) {
  std::ifstream f(fixture_dir() + name, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open fixture " + fixture_dir() + name);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline json manifest() { return json::parse(read_fixture("manifest.json")); }

inline std::vector<std::string> session(const std::string& name) {
  return manifest()["sessions"][name].get<std::vector<std::string>>();
}

// A deterministic key in text form: 32 bytes of `fill`, the first two bytes
// carrying `n` so that keys differ.
inline std::string key_hex(std::uint8_t fill, unsigned n = 0) {
  std::array<std::uint8_t, 32> key;
  key.fill(fill);
  store_be16(key.data(), static_cast<std::uint16_t>(n));
  return to_hex(key);
}
inline std::string node_key(unsigned n) { return "nodekey:" + key_hex(0xa1, n); }
inline std::string disco_key(unsigned n, std::uint8_t fill = 0xd1) { return "discokey:" + key_hex(fill, n); }

// A minimal peer as headscale would send it: ID n, 100.64.0.n and
// fd7a:115c:a1e0::n.
inline json peer_json(unsigned n) {
  return json{
      {"ID", n},
      {"StableID", std::to_string(n)},
      {"Name", "node" + std::to_string(n) + ".tailnet.example."},
      {"User", 1},
      {"Key", node_key(n)},
      {"DiscoKey", disco_key(n)},
      {"Addresses", {"100.64.0." + std::to_string(n) + "/32", "fd7a:115c:a1e0::" + std::to_string(n) + "/128"}},
      {"Endpoints", {"192.0.2." + std::to_string(n) + ":41641"}},
      {"HomeDERP", 999},
      {"Hostinfo", {{"Hostname", "node" + std::to_string(n)}, {"OS", "linux"}}},
      {"Created", "2026-01-02T03:04:05Z"},
      {"Cap", 138},
      {"Online", true},
      {"LastSeen", "2026-01-02T03:04:05Z"},
      {"MachineAuthorized", true},
  };
}

inline json self_json() {
  json s = peer_json(200);
  s["Name"] = "self.tailnet.example.";
  s["CapMap"] = {{"https://tailscale.com/cap/ssh", json::array()}};
  return s;
}

inline map_response parse_ok(const std::string& text) {
  auto r = parse_map_response(text);
  if (!r) throw std::runtime_error("parse failed: " + r.error + " in " + text.substr(0, 200));
  return std::move(*r.response);
}
inline map_response parse_ok(const json& j) { return parse_ok(j.dump()); }

}  // namespace lopower::tailnet::test
