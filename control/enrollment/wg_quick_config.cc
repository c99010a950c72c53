#include "control/enrollment/wg_quick_config.h"

#include <algorithm>
#include <charconv>
#include <vector>

namespace lopower::enrollment {

namespace {

std::string quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

bool is_alnum(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// A DNS name as RFC 1123 allows it (one trailing dot allowed). A last label
// of digits only is refused: that is a mistyped IPv4 address, not a name.
bool valid_dns_name(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > 253) return false;
  std::string_view last;
  while (!name.empty()) {
    const auto dot = name.find('.');
    const std::string_view label = name.substr(0, dot);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    if (!std::all_of(label.begin(), label.end(), [](char c) { return is_alnum(c) || c == '-'; })) return false;
    last = label;
    if (dot == std::string_view::npos) break;
    name.remove_prefix(dot + 1);
    if (name.empty()) return false;  // "a..b" style empty label at the end
  }
  return !std::all_of(last.begin(), last.end(), is_digit);
}

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) {
    if (!out.empty()) out += ", ";
    out += p;
  }
  return out;
}

}  // namespace

result<endpoint> parse_endpoint(std::string_view text) {
  const std::string key(endpoint_config_key);
  if (text.empty())
    return fail(key + " is not set: set endpoint = \"host:port\" in the [devices] table of the config (the address "
                      "and port devices reach lopower at, e.g. \"gw.example.com:51820\"); a device config cannot be "
                      "made without it");
  const auto bad = [&](const std::string& why) {
    return fail(key + " " + quote(text) + " is not a usable endpoint: " + why +
                " (expected \"host:port\", \"198.18.0.1:51820\" or \"[fd00::1]:51820\")");
  };

  std::string_view host, port;
  if (text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return bad("the IPv6 address has no closing ']'");
    if (close + 1 >= text.size() || text[close + 1] != ':') return bad("no port after the IPv6 address");
    host = text.substr(0, close + 1);
    port = text.substr(close + 2);
    const auto v6 = ip_address::parse(host.substr(1, host.size() - 2));
    if (!v6 || v6->family != ip_family::v6) return bad(quote(host.substr(1, host.size() - 2)) + " is not an IPv6 address");
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("there is no port");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.empty()) return bad("there is no host");
    if (host.find(':') != std::string_view::npos) return bad("an IPv6 address must be written in brackets");
    if (const auto v4 = ip_address::parse(host)) {
      if (v4->family != ip_family::v4) return bad(quote(host) + " is not an IPv4 address");
    } else if (!valid_dns_name(host)) {
      return bad(quote(host) + " is neither a DNS name nor an IPv4 address");
    }
  }

  if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), is_digit))
    return bad("the port must be a number from 1 to 65535");
  unsigned value = 0;
  std::from_chars(port.data(), port.data() + port.size(), value);
  if (value < 1 || value > 65535) return bad("the port must be a number from 1 to 65535");
  return endpoint{std::string(host), static_cast<std::uint16_t>(value)};
}

result<std::string> render_wg_quick_config(const device& d, const public_key& server_public_key,
                                           const server_addresses& server, const wg_quick_options& options) {
  const auto ep = parse_endpoint(options.endpoint);
  if (!ep) return ep.error();

  const bool v4 = d.ipv4.has_value() && server.ipv4.has_value();
  const bool v6 = d.ipv6.has_value() && server.ipv6.has_value();
  if (!v4 && !v6)
    return fail("device \"" + d.name + "\" has no address lopower serves (" +
                (d.ipv4 ? "it is IPv4-only and IPv4 is off" : "it has no address") + "); remove it and add it again");

  std::vector<std::string> address, dns, allowed;
  if (v4) {
    address.push_back(d.ipv4->to_string() + "/32");
    dns.push_back(server.ipv4->to_string());
    allowed.push_back(server.ipv4->to_string() + "/32");
  }
  if (v6) {
    address.push_back(d.ipv6->to_string() + "/128");
    dns.push_back(server.ipv6->to_string());
    allowed.push_back(server.ipv6->to_string() + "/128");
  }
  if (v4) allowed.emplace_back(tailnet_ipv4_range);
  if (v6) allowed.emplace_back(tailnet_ipv6_range);
  for (const ip_prefix& p : options.device_prefixes)
    if (p.address.family == ip_family::v4 ? v4 : v6) allowed.push_back(p.to_string());
  if (v4 && (options.route_all_ipv4 || options.default_route_v4)) allowed.emplace_back("0.0.0.0/0");
  if (v6 && options.default_route_v6) allowed.emplace_back("::/0");

  std::string out;
  out.reserve(1024);  // no reallocation: no stray copies of the private key
  out += "[Interface]\n";
  if (d.device_private_key) {
    std::string key = d.device_private_key->to_base64();
    out += "PrivateKey = ";
    out += key;
    out += "\n";
    wipe(key);
  } else {
    out += "# This device generated its own key pair: lopower never had its private key.\n";
    out += "# Fill in the device's private key here, on the device.\n";
    out += "PrivateKey = " + std::string(private_key_placeholder) + "\n";
  }
  out += "Address = " + join(address) + "\n";
  out += "DNS = " + join(dns) + "\n";
  out += "MTU = " + std::to_string(options.mtu) + "\n";
  out += "\n[Peer]\n";
  out += "PublicKey = " + server_public_key.to_base64() + "\n";
  out += "AllowedIPs = " + join(allowed) + "\n";
  out += "Endpoint = " + ep->to_string() + "\n";
  if (d.keepalive != 0) out += "PersistentKeepalive = " + std::to_string(d.keepalive) + "\n";
  return out;
}

}  // namespace lopower::enrollment
