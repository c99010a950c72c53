#pragma once
// TAI64N timestamps (https://cr.yp.to/libtai/tai64.html) as WireGuard puts
// them in initiations: 8 bytes big-endian seconds label, 4 bytes big-endian
// nanoseconds. A responder accepts an initiation only if its timestamp is
// strictly greater than the last one accepted from that peer, so bytes
// compare as times (lexicographically).

#include <array>
#include <compare>
#include <cstdint>

#include "lopower/wireguard_messages.h"

namespace lopower::wg {

struct tai64n {
  std::array<std::uint8_t, timestamp_size> bytes{};  // all zero: before any real time

  static tai64n from_bytes(const std::uint8_t* p) noexcept;
  // Exact conversion, no whitening. The seconds label is 2^62 + 10 + seconds
  // (the Linux module and wireguard-go add TAI's 10 s offset too, so a peer
  // moving between them and lopower never goes backwards).
  static tai64n from_unix(std::int64_t seconds, std::uint32_t nanoseconds) noexcept;
  std::uint64_t seconds_label() const noexcept;
  std::uint32_t nanoseconds() const noexcept;

  auto operator<=>(const tai64n&) const = default;
  bool operator==(const tai64n&) const = default;
};

// The low bits of the nanoseconds that tai64n_now drops (2^24 ns, about
// 16.8 ms: the power of two below 1 s / initiations_per_second), so that
// timestamps do not reveal the sender's clock more precisely than the
// protocol needs.
inline constexpr std::uint32_t tai64n_whitening_mask = (1u << 24) - 1;

// The timestamp for an initiation sent at `realtime_ns` (nanoseconds since
// the Unix epoch, CLOCK_REALTIME), nanoseconds whitened.
tai64n tai64n_now(std::int64_t realtime_ns) noexcept;
// The same from std::chrono::system_clock.
tai64n tai64n_now() noexcept;

// True if `candidate` is strictly later than `latest`: the replay rule.
inline bool tai64n_after(const tai64n& candidate, const tai64n& latest) noexcept { return candidate > latest; }

}  // namespace lopower::wg
