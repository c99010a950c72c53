#pragma once
// The bound a worker benchmark is held against: what its backend alone
// takes to decrypt and encrypt one packet of the same (padded) size, in
// bursts of 32 as the worker calls it. A packet that crosses a worker is
// opened once and sealed once, so no path can beat this rate on one core;
// the share of it a path reaches is what the rest of the path (lookups,
// rewriting, buffers, rings) leaves. Measured in the same process right
// before the benchmark: the shared machine's load drifts, and a bound
// from another run would not compare. What a benchmark is held against is
// the best reading this process has had for that backend and size (its
// own or an earlier case's): measured right after another benchmark, the
// 64-byte bound once read 2.75 M packets/s where the process's first
// reading was 4.07 M (bench/RESULTS.md, "2026-12-06 (fifth)"), and a bound
// is the most the cipher does.

#include <benchmark/benchmark.h>

#include <time.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "dataplane/crypto/aead_batch.h"

namespace lopower::bench {

// Thread CPU time, as Google Benchmark times its runs by default.
inline double thread_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Packets per second one core opens and seals of `length` bytes with
// `backend` in `buffers` (each with room for the tag behind the packet),
// taken in turn: bursts of 32 (4 keys interleaved, as several peers' packets
// are). With 32 buffers every burst finds its data in the cache; with as
// many as a benchmark circulates, the cipher meets the memory that
// benchmark's frames live in. The best of `windows` windows of `seconds` CPU
// time each: a bound is the most the cipher does, and on a shared machine a
// window whose caches a neighbour emptied understates it (one window of
// 20 ms was seen to vary by 15 % from run to run).
inline double cipher_bound_pps_over(const std::string& backend, std::uint32_t length,
                                    const std::vector<std::uint8_t*>& buffers, double seconds = 0.02,
                                    unsigned windows = 5) {
  constexpr unsigned burst = 32;
  if (buffers.empty() || buffers.size() % burst != 0)
    throw std::invalid_argument("the cipher bound wants its buffers in whole bursts of 32");
  auto aead = crypto::make_backend(backend);
  if (aead == nullptr) throw std::runtime_error(backend + " is not available on this machine");
  std::vector<std::uint8_t> keys(4 * crypto::key_size, 0x42);
  std::vector<crypto::aead_op> ops(buffers.size());
  for (std::size_t i = 0; i < buffers.size(); ++i) {
    std::uint8_t* d = buffers[i];
    std::memset(d, 0x5a, length);
    ops[i] = crypto::aead_op{d, length, d + length, keys.data() + (i % 4) * crypto::key_size, 1000 + i % burst, false};
  }
  std::size_t next = 0;
  double best = 0;
  for (unsigned w = 0; w < windows; ++w) {
    std::uint64_t rounds = 0;
    const double start = thread_seconds();
    double elapsed = 0;
    do {
      crypto::aead_op* round = ops.data() + next;
      aead->encrypt_burst(round, burst);
      aead->decrypt_burst(round, burst);  // the tags verify: each round is a real open
      benchmark::ClobberMemory();
      ++rounds;
      next = next + burst == ops.size() ? 0 : next + burst;
    } while ((elapsed = thread_seconds() - start) < seconds);
    for (std::size_t i = 0; i < std::min<std::size_t>(ops.size(), rounds * burst); ++i)
      if (!ops[i].ok) throw std::runtime_error("the cipher bound's round trip failed to verify");
    best = std::max(best, static_cast<double>(rounds * burst) / elapsed);
  }
  return best;
}

// `measured`, or the best this process measured before under the same
// `what` (backend, size, buffers), whichever is higher; remembered.
inline double best_bound_seen(const std::string& what, double measured) {
  static std::map<std::string, double> best;
  double& b = best[what];
  b = std::max(b, measured);
  return b;
}

// The same over 32 buffers of its own, one line apart at least: the cipher
// alone, its data hot in the cache (the best reading of the process).
inline double cipher_bound_pps(const std::string& backend, std::uint32_t length, double seconds = 0.02) {
  constexpr unsigned burst = 32;
  const std::size_t stride = (length + crypto::tag_size + 63) / 64 * 64;
  std::vector<std::uint8_t> data(stride * burst);
  std::vector<std::uint8_t*> buffers(burst);
  for (unsigned i = 0; i < burst; ++i) buffers[i] = data.data() + i * stride;
  return best_bound_seen(backend + "/hot/" + std::to_string(length), cipher_bound_pps_over(backend, length, buffers, seconds));
}

// The bound and the share of it the benchmark reached: `packets` moved
// (each opened once and sealed once) over the run's time.
inline void report_against_bound(benchmark::State& state, std::uint64_t packets, double bound_pps) {
  state.counters["cipher_bound_Mpps"] = bound_pps / 1e6;
  state.counters["share_of_bound"] =
      benchmark::Counter(static_cast<double>(packets) / bound_pps, benchmark::Counter::kIsRate);
}

// The bound over the benchmark's own frame buffers (cipher_bound_pps_over
// with as many as it circulates) and the share of it reached: beside
// share_of_bound, it tells the path's own cost from what the memory the
// frames live in costs the cipher too.
inline void report_against_pool_bound(benchmark::State& state, std::uint64_t packets, double pool_bound_pps) {
  state.counters["cipher_bound_pool_Mpps"] = pool_bound_pps / 1e6;
  state.counters["share_of_pool_bound"] =
      benchmark::Counter(static_cast<double>(packets) / pool_bound_pps, benchmark::Counter::kIsRate);
}

// The padded length WireGuard seals an inner packet of `inner` bytes at.
inline std::uint32_t sealed_length(std::uint32_t inner) { return (inner + 15) & ~15u; }

}  // namespace lopower::bench
