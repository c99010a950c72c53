#include "tools/lopower-ctl/device_view.h"

#include <cstdio>
#include <iterator>
#include <optional>

namespace lopower {
namespace {

const nlohmann::json* field(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

std::string text_or(const nlohmann::json& j, const char* key, const char* otherwise) {
  const nlohmann::json* v = field(j, key);
  if (v == nullptr) return otherwise;
  return v->is_string() ? v->get<std::string>() : v->dump();
}

std::optional<std::uint64_t> unsigned_field(const nlohmann::json& j, const char* key) {
  const nlohmann::json* v = field(j, key);
  if (v == nullptr) return std::nullopt;
  if (v->is_number_unsigned()) return v->get<std::uint64_t>();
  if (v->is_number_integer() && v->get<std::int64_t>() >= 0) return static_cast<std::uint64_t>(v->get<std::int64_t>());
  return std::nullopt;
}

// How long ago the latest handshake was: the daemon's own count, else from
// its unix time; nullopt when there has been none.
std::optional<std::uint64_t> handshake_age(const nlohmann::json& wg, std::int64_t now_unix) {
  if (auto s = unsigned_field(wg, "seconds_since_handshake")) return s;
  const auto at = unsigned_field(wg, "latest_handshake");
  if (!at || *at == 0) return std::nullopt;
  const std::int64_t age = now_unix - static_cast<std::int64_t>(*at);
  return age > 0 ? static_cast<std::uint64_t>(age) : 0;
}

// "10.90.0.2/32, fd7a:115c:a1e0:9909::2/128": the daemon's allowed_ips,
// else the device's addresses as host routes (an older daemon).
std::string allowed_ips(const nlohmann::json& d) {
  std::string out;
  auto add = [&out](const std::string& s) { out += (out.empty() ? "" : ", ") + s; };
  if (const nlohmann::json* list = field(d, "allowed_ips"); list != nullptr && list->is_array()) {
    for (const auto& p : *list)
      if (p.is_string()) add(p.get<std::string>());
  } else {
    if (const nlohmann::json* v4 = field(d, "ipv4"); v4 != nullptr && v4->is_string()) add(v4->get<std::string>() + "/32");
    if (const nlohmann::json* v6 = field(d, "ipv6"); v6 != nullptr && v6->is_string()) add(v6->get<std::string>() + "/128");
  }
  return out.empty() ? "(none)" : out;
}

}  // namespace

std::string wg_duration(std::uint64_t left) {
  struct unit {
    const char* name;
    std::uint64_t seconds;
  };
  static constexpr unit units[] = {{"year", 365ull * 24 * 60 * 60}, {"day", 24 * 60 * 60}, {"hour", 60 * 60},
                                   {"minute", 60}, {"second", 1}};
  std::string out;
  for (const unit& u : units) {
    const std::uint64_t n = left / u.seconds;
    left %= u.seconds;
    if (n == 0) continue;
    out += (out.empty() ? "" : ", ") + std::to_string(n) + " " + u.name + (n == 1 ? "" : "s");
  }
  return out;
}

std::string wg_ago(std::uint64_t seconds) { return seconds == 0 ? "Now" : wg_duration(seconds) + " ago"; }

std::string wg_bytes(std::uint64_t b) {
  static constexpr const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  if (b < 1024) return std::to_string(b) + " B";
  double v = static_cast<double>(b) / 1024;
  unsigned u = 0;
  // Beyond TiB it stays in TiB, as wg.
  for (std::uint64_t limit = 1024ull * 1024; u + 1 < std::size(units) && b >= limit; limit *= 1024) {
    v /= 1024;
    ++u;
  }
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.2f %s", v, units[u]);
  return buf;
}

std::string wg_keepalive(std::uint64_t seconds) { return seconds == 0 ? "off" : "every " + wg_duration(seconds); }

std::string render_device_interface(const nlohmann::json& i) {
  std::string out = "interface: devices\n";
  out += "  public key: " + text_or(i, "public_key", "(none)") + "\n";
  out += "  listening port: " + text_or(i, "listen_port", "(none)") + "\n";
  if (const nlohmann::json* a = field(i, "addresses"); a != nullptr && a->is_array() && !a->empty()) {
    std::string addrs;
    for (const auto& v : *a)
      if (v.is_string()) addrs += (addrs.empty() ? "" : ", ") + v.get<std::string>();
    out += "  addresses: " + addrs + "\n";
  }
  out += "  devices: " + text_or(i, "devices", "0") + "\n";
  return out;
}

std::string render_device_block(const nlohmann::json& d, std::int64_t now_unix) {
  const nlohmann::json* wg_field = field(d, "wireguard");
  const nlohmann::json wg = wg_field != nullptr && wg_field->is_object() ? *wg_field : nlohmann::json::object();
  std::string out = "device: " + text_or(d, "name", "(none)") + "\n";
  out += "  public key: " + text_or(d, "public_key", "(none)") + "\n";
  out += "  allowed ips: " + allowed_ips(d) + "\n";
  out += "  endpoint: " + text_or(wg, "endpoint", "(none)") + "\n";
  const auto age = handshake_age(wg, now_unix);
  out += "  latest handshake: " + (age ? wg_ago(*age) : std::string("(none)")) + "\n";
  out += "  transfer: " + wg_bytes(unsigned_field(wg, "rx_bytes").value_or(0)) + " received, " +
         wg_bytes(unsigned_field(wg, "tx_bytes").value_or(0)) + " sent\n";
  out += "  persistent keepalive: " + wg_keepalive(unsigned_field(d, "keepalive").value_or(0)) + "\n";
  // Beyond the tailnet: the device's own mode, or the global one it follows.
  if (const nlohmann::json* e = field(d, "egress"); e != nullptr && e->is_string())
    out += "  egress: " + e->get<std::string>() + (field(d, "own_egress") == nullptr ? " (global default)" : "") + "\n";
  return out;
}

std::string render_device_list(const nlohmann::json& interface, const nlohmann::json& devices, std::int64_t now_unix) {
  std::string out = render_device_interface(interface);
  if (!devices.is_array()) return out;
  for (const auto& d : devices) out += "\n" + render_device_block(d, now_unix);
  return out;
}

}  // namespace lopower
