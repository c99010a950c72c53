#pragma once
// The bound a worker benchmark is held against: what its backend alone
// takes to decrypt and encrypt one packet of the same (padded) size, in
// bursts of 32 as the worker calls it. A packet that crosses a worker is
// opened once and sealed once, so no path can beat this rate on one core;
// the share of it a path reaches is what the rest of the path (lookups,
// rewriting, buffers, rings) leaves. The worker benchmarks take it in step
// with the path (bound_in_step: in turns of a few milliseconds, so both meet
// the shared machine's drift); cipher_bound_pps, the best reading this
// process has had for a backend and size, is for the benchmarks that cannot
// take turns (two workers at once, the loadgen).

#include <benchmark/benchmark.h>

#include <time.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
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

// A bound's burst: as the worker calls the backend.
inline constexpr unsigned bound_burst = 32;

// The ops a bound runs: `buffers` filled with `length` bytes, each with room
// for the tag behind it, under 4 keys taken in turn (as several peers'
// packets are) with counters as a burst of 32 has them.
inline std::vector<crypto::aead_op> bound_ops(std::uint32_t length, const std::vector<std::uint8_t*>& buffers,
                                              const std::uint8_t* four_keys) {
  if (buffers.empty() || buffers.size() % bound_burst != 0)
    throw std::invalid_argument("the cipher bound wants its buffers in whole bursts of 32");
  std::vector<crypto::aead_op> ops(buffers.size());
  for (std::size_t i = 0; i < buffers.size(); ++i) {
    std::uint8_t* d = buffers[i];
    std::memset(d, 0x5a, length);
    ops[i] = crypto::aead_op{d, length, d + length, four_keys + (i % 4) * crypto::key_size, 1000 + i % bound_burst, false};
  }
  return ops;
}

inline std::unique_ptr<crypto::aead_backend> bound_backend(const std::string& backend) {
  auto aead = crypto::make_backend(backend);
  if (aead == nullptr) throw std::runtime_error(backend + " is not available on this machine");
  return aead;
}

// Seals and opens the next burst of 32 of `ops` (from `next`, wrapping).
inline void bound_round(crypto::aead_backend& aead, std::vector<crypto::aead_op>& ops, std::size_t& next) {
  crypto::aead_op* round = ops.data() + next;
  aead.encrypt_burst(round, bound_burst);
  aead.decrypt_burst(round, bound_burst);  // the tags verify: each round is a real open
  benchmark::ClobberMemory();
  next = next + bound_burst == ops.size() ? 0 : next + bound_burst;
}

inline void check_bound_ops(const std::vector<crypto::aead_op>& ops, std::uint64_t opened) {
  for (std::size_t i = 0; i < std::min<std::size_t>(ops.size(), opened); ++i)
    if (!ops[i].ok) throw std::runtime_error("the cipher bound's round trip failed to verify");
}

// Packets per second one core opens and seals of `length` bytes with
// `backend` in `buffers` (each with room for the tag behind the packet),
// taken in turn: bursts of 32 (4 keys interleaved, as several peers'
// packets are). With 32 buffers every burst finds its data in the cache;
// with as many as a benchmark circulates, the cipher meets the memory that
// benchmark's frames live in. The best of `windows` windows of `seconds` CPU
// time each: a bound is the most the cipher does, and on a shared machine a
// window whose caches a neighbour emptied understates it (one window of
// 20 ms was seen to vary by 15 % from run to run).
inline double cipher_bound_pps_over(const std::string& backend, std::uint32_t length,
                                    const std::vector<std::uint8_t*>& buffers, double seconds = 0.02,
                                    unsigned windows = 5) {
  auto aead = bound_backend(backend);
  std::vector<std::uint8_t> keys(4 * crypto::key_size, 0x42);
  std::vector<crypto::aead_op> ops = bound_ops(length, buffers, keys.data());
  std::size_t next = 0;
  double best = 0;
  for (unsigned w = 0; w < windows; ++w) {
    std::uint64_t rounds = 0;
    const double start = thread_seconds();
    double elapsed = 0;
    do {
      bound_round(*aead, ops, next);
      ++rounds;
    } while ((elapsed = thread_seconds() - start) < seconds);
    check_bound_ops(ops, rounds * bound_burst);
    best = std::max(best, static_cast<double>(rounds * bound_burst) / elapsed);
  }
  return best;
}

// 32 buffers of `length` bytes and a tag, one line apart at least, in one
// block: the hot set a bound runs over.
struct hot_buffers {
  std::vector<std::uint8_t> data;
  std::vector<std::uint8_t*> buffers;
  explicit hot_buffers(std::uint32_t length) {
      const std::size_t stride = (length + crypto::tag_size + 63) / 64 * 64;
    data.resize(stride * bound_burst);
    buffers.resize(bound_burst);
    for (unsigned i = 0; i < bound_burst; ++i) buffers[i] = data.data() + i * stride;
  }
};

// The bound taken in step with a benchmark: between two of the benchmark's
// timed stretches (where it pauses to refill its frames) the backend alone
// seals and opens as many packets as the path moved in the stretch. Over a
// run the two then share the same machine: on a KVM guest whose speed
// drifts by a quarter from one second to the next (bench/RESULTS.md,
// "2026-12-07 (second)"), a bound read before a run and a path read over the
// next second are not comparable, while a path and a bound taken in turns of
// a few milliseconds meet the same drift and their ratio holds.
class bound_in_step {
 public:
  // Over `buffers` (each with room for the tag behind it).
  bound_in_step(const std::string& backend, std::uint32_t length, const std::vector<std::uint8_t*>& buffers)
      : aead_(bound_backend(backend)), keys_(4 * crypto::key_size, 0x42), ops_(bound_ops(length, buffers, keys_.data())) {}
  // Over 32 hot buffers of its own (the bound cipher_bound_pps reads).
  bound_in_step(const std::string& backend, std::uint32_t length)
      : aead_(bound_backend(backend)), keys_(4 * crypto::key_size, 0x42), own_(length), ops_(bound_ops(length, own_->buffers, keys_.data())) {}

  // At least `packets` (whole bursts of 32), timed in thread CPU time.
  void run(std::uint64_t packets) {
    if (packets == 0) return;
    std::uint64_t done = 0;
    const double start = thread_seconds();
    for (; done < packets; done += bound_burst) bound_round(*aead_, ops_, next_);
    seconds_ += thread_seconds() - start;
    packets_ += done;
    check_bound_ops(ops_, packets_);
  }
  double pps() const { return seconds_ > 0 ? static_cast<double>(packets_) / seconds_ : 0; }

 private:
  std::unique_ptr<crypto::aead_backend> aead_;
  std::vector<std::uint8_t> keys_;
  std::optional<hot_buffers> own_;
  std::vector<crypto::aead_op> ops_;
  std::size_t next_ = 0;
  double seconds_ = 0;
  std::uint64_t packets_ = 0;
};

// Prints the bound in step (cipher_bound<suffix>_Mpps) and the share of it
// the path reached moving `packets` in `seconds` of timed CPU time
// (share_of<suffix>_bound); returns the share.
inline double report_in_step(benchmark::State& state, std::uint64_t packets, double seconds, const bound_in_step& bound,
                             const std::string& suffix = "") {
  const double rate = seconds > 0 ? static_cast<double>(packets) / seconds : 0;
  const double share = bound.pps() > 0 ? rate / bound.pps() : 0;
  state.counters["cipher_bound" + suffix + "_Mpps"] = bound.pps() / 1e6;
  state.counters["share_of" + suffix + "_bound"] = share;
  return share;
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
  const hot_buffers hot(length);
  return best_bound_seen(backend + "/hot/" + std::to_string(length), cipher_bound_pps_over(backend, length, hot.buffers, seconds));
}

// The padded length WireGuard seals an inner packet of `inner` bytes at.
inline std::uint32_t sealed_length(std::uint32_t inner) { return (inner + 15) & ~15u; }

}  // namespace lopower::bench
