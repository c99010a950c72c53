#pragma once
// DNS over TCP frames each message with its length, two bytes big-endian
// (RFC 1035 4.2.2, RFC 7766 8). Pure, so that lopower's server for devices
// (service.cc), its TCP upstream client (upstream_tcp.cc) and the fuzzer
// read the stream the same way.

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace lopower::dns {

// Takes the first whole message off the front of `in` (what a connection
// has received so far and not yet taken); nullopt while it is not all
// there. A connection never holds more than one unfinished message: at most
// 2 + 65535 bytes wait here. A zero-length message comes out empty (the
// caller refuses it as it refuses any malformed query).
std::optional<std::vector<std::uint8_t>> take_tcp_message(std::vector<std::uint8_t>& in);

// `message` with its length in front; nullopt when it is too long for the
// two-byte length.
std::optional<std::vector<std::uint8_t>> frame_tcp_message(std::span<const std::uint8_t> message);

}  // namespace lopower::dns
