#pragma once
// STUN binding requests and responses as tailscale's net/stun does them
// (../shared/docs/DERP-EXIT.md section 3): the 40-byte request with
// SOFTWARE "tailnode" and FINGERPRINT that derper and headscale require,
// and the response's mapped address (XOR-MAPPED-ADDRESS 0x0020 or 0x8020,
// else MAPPED-ADDRESS 0x0001). Bounded parsers; nothing here does I/O.

#include <array>
#include <cstdint>
#include <optional>
#include <span>

#include "lopower/net_addr.h"

namespace lopower::tailnet::stun {

using transaction_id = std::array<std::uint8_t, 12>;
inline constexpr std::size_t request_size = 40;

std::array<std::uint8_t, request_size> binding_request(const transaction_id& txid);
// A random transaction ID (from the system's CSPRNG).
transaction_id new_transaction_id();

// True when `packet` looks like a STUN binding success response: type
// 0x0101, the magic cookie, a length that fits (cheap: for demultiplexing).
bool is_binding_response(std::span<const std::uint8_t> packet) noexcept;

struct binding_response {
  transaction_id txid{};
  ip_address address;
  std::uint16_t port = 0;
};
// The mapped address of a binding success response, or nullopt when it is
// not one or holds none we can read.
std::optional<binding_response> parse_binding_response(std::span<const std::uint8_t> packet) noexcept;

}  // namespace lopower::tailnet::stun
