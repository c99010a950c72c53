#pragma once
// What a run measured: offered and delivered packets and bytes, latency
// (from the send timestamps the replies carry back), per second and in
// total; the progress line and the JSON report.

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lopower::loadgen {

// Latencies in ns, log-linear buckets: 32 per power of two (about 3 %).
class latency_histogram {
 public:
  void record(std::uint64_t ns) noexcept;
  void merge(const latency_histogram& other) noexcept;
  void clear() noexcept { *this = latency_histogram(); }
  std::uint64_t count() const noexcept { return count_; }
  std::uint64_t max() const noexcept { return max_; }
  // The bucket's lower bound under which a `q` (0..1) share of the samples lie; 0 without samples.
  std::uint64_t percentile(double q) const noexcept;
  nlohmann::json summary() const;  // p50, p90, p99, p99.9, max, samples

 private:
  static constexpr unsigned sub_bits = 5;
  static constexpr unsigned buckets = (64 - sub_bits + 1) << sub_bits;
  std::array<std::uint64_t, buckets> counts_{};
  std::uint64_t count_ = 0;
  std::uint64_t max_ = 0;
};

struct counters {
  std::uint64_t offered_packets = 0;
  std::uint64_t offered_bytes = 0;    // inner IP bytes
  std::uint64_t delivered_packets = 0;
  std::uint64_t delivered_bytes = 0;
  latency_histogram latency;

  void add(const counters& other) noexcept;
};

// Frames that arrived and were not a reply we could count; each a reason.
struct receive_drops {
  std::uint64_t not_for_us = 0;       // other traffic on the link
  std::uint64_t unknown_session = 0;  // receiver index of no keypair we hold
  std::uint64_t bad_tag = 0;
  std::uint64_t replayed = 0;
  std::uint64_t not_a_probe = 0;      // decrypted, but not one of our probes
  nlohmann::json to_json() const;
};

class run_report {
 public:
  explicit run_report(bool progress) : progress_(progress) {}

  counters& now() noexcept { return second_; }
  // Closes the current second (`elapsed_s` since traffic began): a sample
  // and, unless quiet, a progress line on stderr.
  void close_second(double elapsed_s, double second_length_s);
  // The totals over the run (`elapsed_s` of traffic).
  nlohmann::json final_json(double elapsed_s, const nlohmann::json& setup, const nlohmann::json& devices,
                            const receive_drops& drops) const;
  void print_summary(double elapsed_s) const;
  const counters& total() const noexcept { return total_; }

 private:
  bool progress_;
  counters second_;
  counters total_;
  nlohmann::json samples_ = nlohmann::json::array();
};

}  // namespace lopower::loadgen
