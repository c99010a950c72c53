#pragma once
// CLOCK_MONOTONIC for the control thread's timers and ages (the workers use
// the TSC instead: no system calls on the fast path).

#include <cstdint>
#include <ctime>

namespace lopower {

inline std::uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

inline std::uint64_t monotonic_ms() { return monotonic_ns() / 1'000'000; }

}  // namespace lopower
