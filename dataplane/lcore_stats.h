#pragma once
// Per-lcore counters. Each worker writes only its own block (no atomics with
// a lock prefix, no sharing of cache lines); readers on the control thread sum
// the blocks when an operator asks.

#include <atomic>
#include <cstdint>

#include "dataplane/classifier.h"
#include "lopower/drop_reasons.h"

namespace lopower {

inline constexpr unsigned max_ports = 8;

// A counter with exactly one writer. Relaxed load+store compiles to a plain
// add on x86 yet keeps concurrent reads from another thread well defined.
class counter {
 public:
  void add(std::uint64_t n = 1) noexcept { value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  std::uint64_t get() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

struct port_counters {
  counter rx_packets, rx_bytes;        // frames this lcore received from the port (TX totals come from ethdev stats)
  counter to_kernel, from_kernel;      // exception path: frames handed to / taken from the TAP
  counter to_control;                  // frames handed to the control plane
  counter by_class[packet_class_count];
  counter drops[drop_reason_count];
};

struct alignas(64) lcore_stats {
  port_counters ports[max_ports];
  counter polls;        // loop iterations
  counter busy_polls;   // iterations that moved at least one packet
  counter sleeps;       // adaptive idle: times the worker slept
  counter neighbour_notes;
};

}  // namespace lopower
