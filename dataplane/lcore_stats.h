#pragma once
// Counters. Per-lcore blocks (lcore_stats): each worker writes only its own
// block (no atomics with a lock prefix, no sharing of cache lines); readers
// on the control thread sum the blocks when an operator asks. Counters of
// objects several lcores write (a peer's traffic, a flow's) are
// shared_counter: one slot per worker, summed on read.

#include <atomic>
#include <cstddef>
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

// Drops by reason, one writer per block. count() is how a drop is counted,
// everywhere (workers, the control thread's counters).
struct drop_counters {
  counter by_reason[drop_reason_count];

  void count(drop_reason why, std::uint64_t n = 1) noexcept { of(why).add(n); }
  std::uint64_t get(drop_reason why) const noexcept { return by_reason[static_cast<std::size_t>(why)].get(); }
  counter& of(drop_reason why) noexcept { return by_reason[static_cast<std::size_t>(why)]; }
  // By index, for readers that walk every reason (and older callers).
  counter& operator[](std::size_t r) noexcept { return by_reason[r]; }
  const counter& operator[](std::size_t r) const noexcept { return by_reason[r]; }
};

// Workers with a slot of their own in every shared_counter; workers beyond
// (and the control thread) add to its one atomic slot.
inline constexpr unsigned counter_worker_slots = 8;

// A counter of an object several lcores may write (a peer, a flow): worker
// w < counter_worker_slots adds to slot w, which no one else writes (a plain
// add, like `counter`); the control thread and any further worker share an
// atomic slot (a locked add). load() sums the slots: readers (the control
// thread) see every add made before, never a torn value.
class shared_counter {
 public:
  // A worker's add, `worker` being its worker_index.
  void add(unsigned worker, std::uint64_t n = 1) noexcept {
    if (worker < counter_worker_slots) slots_[worker].add(n);
    else shared_.fetch_add(n, std::memory_order_relaxed);
  }
  // Any other thread's add (the control thread's): the shared slot.
  void fetch_add(std::uint64_t n, std::memory_order order = std::memory_order_relaxed) noexcept { shared_.fetch_add(n, order); }
  std::uint64_t load(std::memory_order order = std::memory_order_relaxed) const noexcept {
    std::uint64_t sum = shared_.load(order);
    for (const counter& c : slots_) sum += c.get();
    return sum;
  }

 private:
  counter slots_[counter_worker_slots];
  std::atomic<std::uint64_t> shared_{0};
};

struct port_counters {
  counter rx_packets, rx_bytes;        // frames this lcore received from the port (TX totals come from ethdev stats)
  counter to_kernel, from_kernel;      // exception path: frames handed to / taken from the TAP
  counter to_control;                  // frames handed to the control plane
  counter device_to_device;            // device packets delivered to another device ([devices] device_to_device)
  counter by_class[packet_class_count];
  drop_counters drops;
};

struct alignas(64) lcore_stats {
  port_counters ports[max_ports];
  counter polls;        // loop iterations
  counter busy_polls;   // iterations that moved at least one packet
  // TSC cycles of those iterations, up to the flush that sent what they
  // buffered: the lcore's work, as against its polling (DPDK's "lcore busy
  // time"). rdtsc counts wall time, so a worker preempted mid-pass by
  // another process (a shared machine) counts the preemption too: the count
  // can only be too large, never too small. Seconds = busy_cycles / TSC Hz.
  counter busy_cycles;
  counter sleeps;       // adaptive idle: times the worker slept
  counter neighbour_notes;
};

}  // namespace lopower
