#pragma once
// CLOCK_MONOTONIC for the control thread's timers and ages (the workers use
// the TSC instead: no system calls on the fast path).

#include <cstdint>
#include <ctime>
#include <functional>

namespace lopower {

inline std::uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

inline std::uint64_t monotonic_ms() { return monotonic_ns() / 1'000'000; }

// The clocks a control-thread component reads, so that tests can drive
// time by hand instead of sleeping. `tsc`: ticks of the TSC (rte_rdtsc,
// rte_get_tsc_hz() a second), the clock the workers stamp peers and
// keypairs with; `ns`: CLOCK_MONOTONIC in nanoseconds. An empty function
// is the real clock.
struct control_clock {
  std::function<std::uint64_t()> tsc;
  std::function<std::uint64_t()> ns;
};

}  // namespace lopower
