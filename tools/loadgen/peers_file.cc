#include "tools/loadgen/peers_file.h"

#include <arpa/inet.h>

#include <charconv>
#include <fstream>
#include <sstream>
#include <toml++/toml.h>

namespace lopower::loadgen {
namespace {

// The devices are counted in 16 bits of UDP port space (--first-udp-port + i).
constexpr std::size_t max_devices = 65535;

[[noreturn]] void refuse(const std::string& path, std::uint32_t line, std::string_view key, const std::string& why) {
  throw peers_file_error(path + ":" + std::to_string(line) + ": " + std::string(key) + ": " + why);
}

std::uint32_t line_of(const toml::node& node, std::uint32_t fallback) {
  const auto line = node.source().begin.line;
  return line != 0 ? line : fallback;
}

// A table's string value; refused when missing or not a string.
std::string string_at(const std::string& path, const toml::table& table, std::uint32_t table_line,
                      std::string_view key, const std::string& qualified) {
  const toml::node* node = table.get(key);
  if (node == nullptr) refuse(path, table_line, qualified, "missing");
  const auto* value = node->as_string();
  if (value == nullptr) refuse(path, line_of(*node, table_line), qualified, "expected a string");
  return value->get();
}

std::uint32_t ipv4_at(const std::string& path, const toml::table& table, std::uint32_t table_line, std::string_view key,
                      const std::string& qualified) {
  const std::string text = string_at(path, table, table_line, key, qualified);
  in_addr a{};
  if (text.find('\0') != std::string::npos || inet_pton(AF_INET, text.c_str(), &a) != 1)
    refuse(path, line_of(*table.get(key), table_line), qualified, "not an IPv4 address");
  return a.s_addr;
}

template <class Key>
Key key_at(const std::string& path, const toml::table& table, std::uint32_t table_line, std::string_view key,
           const std::string& qualified) {
  auto parsed = Key::from_base64(string_at(path, table, table_line, key, qualified));
  if (!parsed) refuse(path, line_of(*table.get(key), table_line), qualified, "not a base64 WireGuard key (44 characters)");
  return std::move(*parsed);
}

// "A.B.C.D:PORT", port 1..65535.
void read_endpoint(const std::string& path, const toml::table& gateway, std::uint32_t table_line, static_peers& out) {
  const std::string text = string_at(path, gateway, table_line, "endpoint", "gateway.endpoint");
  const std::uint32_t line = line_of(*gateway.get("endpoint"), table_line);
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) refuse(path, line, "gateway.endpoint", "expected A.B.C.D:PORT");
  const std::string host = text.substr(0, colon);
  in_addr a{};
  if (host.find('\0') != std::string::npos || inet_pton(AF_INET, host.c_str(), &a) != 1)
    refuse(path, line, "gateway.endpoint", "not an IPv4 address before the port");
  const char* first = text.data() + colon + 1;
  const char* last = text.data() + text.size();
  std::uint16_t port = 0;
  const auto [end, ec] = std::from_chars(first, last, port);
  if (ec != std::errc() || end != last || port == 0) refuse(path, line, "gateway.endpoint", "port must be 1..65535");
  out.gateway_endpoint_ip_be = a.s_addr;
  out.gateway_endpoint_port = port;
}

void read_gateway(const std::string& path, const toml::table& root, static_peers& out) {
  const toml::node* node = root.get("gateway");
  if (node == nullptr) refuse(path, 1, "gateway", "missing: a [gateway] table");
  const auto* gateway = node->as_table();
  if (gateway == nullptr) refuse(path, line_of(*node, 1), "gateway", "expected a table [gateway]");
  const std::uint32_t line = line_of(*node, 1);
  out.gateway_key = key_at<public_key>(path, *gateway, line, "public_key", "gateway.public_key");
  read_endpoint(path, *gateway, line, out);
  out.gateway_inner_ip_be = ipv4_at(path, *gateway, line, "inner_ip", "gateway.inner_ip");
}

void read_devices(const std::string& path, const toml::table& root, static_peers& out) {
  const toml::node* node = root.get("device");
  if (node == nullptr) refuse(path, 1, "device", "missing: at least one [[device]]");
  const auto* devices = node->as_array();
  if (devices == nullptr || devices->empty()) refuse(path, line_of(*node, 1), "device", "expected [[device]] tables");
  if (devices->size() > max_devices) refuse(path, line_of(*node, 1), "device", "more than 65535 devices");
  for (std::size_t i = 0; i < devices->size(); ++i) {
    const toml::node& entry = *devices->get(i);
    const std::string name = "device[" + std::to_string(i) + "]";
    const auto* table = entry.as_table();
    if (table == nullptr) refuse(path, line_of(entry, 1), name, "expected a table [[device]]");
    const std::uint32_t line = line_of(entry, 1);
    static_device d;
    d.key = key_at<private_key>(path, *table, line, "private_key", name + ".private_key");
    d.inner_ip_be = ipv4_at(path, *table, line, "address", name + ".address");
    out.devices.push_back(std::move(d));
  }
}

}  // namespace

static_peers parse_peers_file(std::string_view text, const std::string& path) {
  toml::table root;
  try {
    root = toml::parse(text, std::string_view(path));
  } catch (const toml::parse_error& e) {
    refuse(path, e.source().begin.line, "(syntax)", std::string(e.description()));
  }
  static_peers out;
  read_gateway(path, root, out);
  read_devices(path, root, out);
  return out;
}

static_peers load_peers_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw peers_file_error(path + ": cannot be read");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_peers_file(text.str(), path);
}

}  // namespace lopower::loadgen
