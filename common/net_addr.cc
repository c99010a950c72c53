#include "lopower/net_addr.h"

#include "lopower/byte_order.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace lopower {

std::optional<ip_address> ip_address::parse(std::string_view text) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  char buf[INET6_ADDRSTRLEN];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  ip_address out;
  if (inet_pton(AF_INET, buf, out.bytes.data()) == 1) {
    out.family = ip_family::v4;
    return out;
  }
  if (inet_pton(AF_INET6, buf, out.bytes.data()) == 1) {
    out.family = ip_family::v6;
    return out;
  }
  return std::nullopt;
}

ip_address ip_address::v4(std::uint32_t host_order) {
  ip_address out;
  out.family = ip_family::v4;
  std::uint32_t net = htonl(host_order);
  std::memcpy(out.bytes.data(), &net, 4);
  return out;
}

std::uint32_t ip_address::v4_host_order() const {
  std::uint32_t net;
  std::memcpy(&net, bytes.data(), 4);
  return ntohl(net);
}

std::string ip_address::to_string() const {
  char buf[INET6_ADDRSTRLEN];
  const int af = family == ip_family::v4 ? AF_INET : AF_INET6;
  if (inet_ntop(af, bytes.data(), buf, sizeof buf) == nullptr) return "?";
  return buf;
}

std::optional<ip_prefix> ip_prefix::parse(std::string_view text) {
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto addr = ip_address::parse(text.substr(0, slash));
  if (!addr) return std::nullopt;
  const std::string_view len_text = text.substr(slash + 1);
  unsigned len = 0;
  auto [end, ec] = std::from_chars(len_text.data(), len_text.data() + len_text.size(), len);
  if (ec != std::errc() || end != len_text.data() + len_text.size() || len_text.empty()) return std::nullopt;
  const unsigned width = addr->family == ip_family::v4 ? 32 : 128;
  if (len > width) return std::nullopt;
  return ip_prefix{*addr, static_cast<std::uint8_t>(len)};
}

std::string ip_prefix::to_string() const { return address.to_string() + "/" + std::to_string(length); }

bool ip_prefix::contains(const ip_address& other) const {
  const std::uint64_t words[2] = {load_be64(other.bytes.data()), load_be64(other.bytes.data() + 8)};
  return contains(other.family, words);
}

}  // namespace lopower
