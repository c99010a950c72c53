#include "control/dns/tcp_framing.h"

#include <cstring>

#include "lopower/byte_order.h"

namespace lopower::dns {

std::optional<std::vector<std::uint8_t>> take_tcp_message(std::vector<std::uint8_t>& in) {
  if (in.size() < 2) return std::nullopt;
  const std::size_t size = load_be16(in.data());
  if (in.size() < 2 + size) return std::nullopt;
  const auto end = in.begin() + 2 + static_cast<std::ptrdiff_t>(size);
  std::vector<std::uint8_t> message(in.begin() + 2, end);
  in.erase(in.begin(), end);
  return message;
}

std::optional<std::vector<std::uint8_t>> frame_tcp_message(std::span<const std::uint8_t> message) {
  if (message.size() > 0xffff) return std::nullopt;
  std::vector<std::uint8_t> framed(2 + message.size());
  store_be16(framed.data(), static_cast<std::uint16_t>(message.size()));
  if (!message.empty()) std::memcpy(framed.data() + 2, message.data(), message.size());
  return framed;
}

}  // namespace lopower::dns
