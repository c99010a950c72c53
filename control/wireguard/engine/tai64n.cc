#include "control/wireguard/engine/tai64n.h"

#include <chrono>

#include "lopower/byte_order.h"

namespace lopower::wg {
namespace {
constexpr std::uint64_t tai64_epoch_label = (std::uint64_t{1} << 62) + 10;
constexpr std::int64_t ns_per_second = 1'000'000'000;
}  // namespace

tai64n tai64n::from_bytes(const std::uint8_t* p) noexcept {
  tai64n t;
  for (std::size_t i = 0; i < timestamp_size; ++i) t.bytes[i] = p[i];
  return t;
}

tai64n tai64n::from_unix(std::int64_t seconds, std::uint32_t nanoseconds) noexcept {
  tai64n t;
  const std::uint64_t label = tai64_epoch_label + static_cast<std::uint64_t>(seconds);
  store_be64(&t.bytes[0], label);
  store_be32(&t.bytes[8], nanoseconds);
  return t;
}

std::uint64_t tai64n::seconds_label() const noexcept {
  return load_be64(&bytes[0]);
}

std::uint32_t tai64n::nanoseconds() const noexcept {
  return load_be32(&bytes[8]);
}

tai64n tai64n_now(std::int64_t realtime_ns) noexcept {
  // Floor division, so that times before 1970 (a broken clock) still order.
  std::int64_t seconds = realtime_ns / ns_per_second;
  std::int64_t nanos = realtime_ns % ns_per_second;
  if (nanos < 0) {
    nanos += ns_per_second;
    --seconds;
  }
  return tai64n::from_unix(seconds, static_cast<std::uint32_t>(nanos) & ~tai64n_whitening_mask);
}

tai64n tai64n_now() noexcept {
  const auto since_epoch = std::chrono::system_clock::now().time_since_epoch();
  return tai64n_now(std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch).count());
}

}  // namespace lopower::wg
