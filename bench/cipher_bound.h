#pragma once
// The bound a worker benchmark is held against: what its backend alone
// takes to decrypt and encrypt one packet of the same (padded) size, in
// bursts of 32 as the worker calls it. A packet that crosses a worker is
// opened once and sealed once, so no path can beat this rate on one core;
// the share of it a path reaches is what the rest of the path (lookups,
// rewriting, buffers, rings) leaves. Measured in the same process right
// before the benchmark: the shared machine's load drifts, and a bound
// from another run would not compare.

#include <benchmark/benchmark.h>

#include <time.h>

#include <cstdint>
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
// `backend`: bursts of 32 (4 keys interleaved, as several peers' packets
// are) for `seconds` of CPU time.
inline double cipher_bound_pps(const std::string& backend, std::uint32_t length, double seconds = 0.02) {
  constexpr unsigned burst = 32;
  auto aead = crypto::make_backend(backend);
  if (aead == nullptr) throw std::runtime_error(backend + " is not available on this machine");
  const std::size_t stride = (length + crypto::tag_size + 63) / 64 * 64;
  std::vector<std::uint8_t> keys(4 * crypto::key_size, 0x42), data(stride * burst, 0x5a);
  std::vector<crypto::aead_op> ops(burst);
  for (unsigned i = 0; i < burst; ++i) {
    std::uint8_t* d = data.data() + i * stride;
    ops[i] = crypto::aead_op{d, length, d + length, keys.data() + (i % 4) * crypto::key_size, 1000 + i, false};
  }
  std::uint64_t rounds = 0;
  const double start = thread_seconds();
  double elapsed = 0;
  do {
    aead->encrypt_burst(ops.data(), burst);
    aead->decrypt_burst(ops.data(), burst);  // the tags verify: each round is a real open
    benchmark::ClobberMemory();
    ++rounds;
  } while ((elapsed = thread_seconds() - start) < seconds);
  for (const crypto::aead_op& op : ops)
    if (!op.ok) throw std::runtime_error("the cipher bound's round trip failed to verify");
  return static_cast<double>(rounds * burst) / elapsed;
}

// The bound and the share of it the benchmark reached: `packets` moved
// (each opened once and sealed once) over the run's time.
inline void report_against_bound(benchmark::State& state, std::uint64_t packets, double bound_pps) {
  state.counters["cipher_bound_Mpps"] = bound_pps / 1e6;
  state.counters["share_of_bound"] =
      benchmark::Counter(static_cast<double>(packets) / bound_pps, benchmark::Counter::kIsRate);
}

// The padded length WireGuard seals an inner packet of `inner` bytes at.
inline std::uint32_t sealed_length(std::uint32_t inner) { return (inner + 15) & ~15u; }

}  // namespace lopower::bench
