#include "tools/loadgen/report.h"

#include <bit>
#include <cstdio>

namespace lopower::loadgen {
namespace {

// Bucket of `v`: exact below 32, then 32 buckets for each power of two.
unsigned bucket_of(std::uint64_t v, unsigned sub_bits) {
  const std::uint64_t sub_count = std::uint64_t{1} << sub_bits;
  if (v < sub_count) return static_cast<unsigned>(v);
  const unsigned exponent = 63u - static_cast<unsigned>(std::countl_zero(v));
  const unsigned shift = exponent - sub_bits;
  return static_cast<unsigned>(((exponent - sub_bits + 1) << sub_bits) + ((v >> shift) - sub_count));
}

std::uint64_t lower_bound_of(unsigned bucket, unsigned sub_bits) {
  const unsigned sub_count = 1u << sub_bits;
  if (bucket < sub_count) return bucket;
  const unsigned exponent = (bucket >> sub_bits) + sub_bits - 1;
  return (std::uint64_t{sub_count} + (bucket & (sub_count - 1))) << (exponent - sub_bits);
}

double per_second(std::uint64_t n, double seconds) { return seconds > 0 ? static_cast<double>(n) / seconds : 0.0; }

nlohmann::json rates(std::uint64_t packets, std::uint64_t bytes, double seconds) {
  return {{"packets", packets}, {"bytes", bytes}, {"pps", per_second(packets, seconds)},
          {"bps", per_second(bytes * 8, seconds)}};
}

}  // namespace

void latency_histogram::record(std::uint64_t ns) noexcept {
  ++counts_[bucket_of(ns, sub_bits)];
  ++count_;
  if (ns > max_) max_ = ns;
}

void latency_histogram::merge(const latency_histogram& other) noexcept {
  for (unsigned i = 0; i < buckets; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  if (other.max_ > max_) max_ = other.max_;
}

std::uint64_t latency_histogram::percentile(double q) const noexcept {
  if (count_ == 0) return 0;
  const auto rank = static_cast<std::uint64_t>(q * static_cast<double>(count_ - 1));
  std::uint64_t seen = 0;
  for (unsigned i = 0; i < buckets; ++i) {
    seen += counts_[i];
    if (seen > rank) return lower_bound_of(i, sub_bits);
  }
  return max_;
}

nlohmann::json latency_histogram::summary() const {
  return {{"p50", percentile(0.5)}, {"p90", percentile(0.9)},   {"p99", percentile(0.99)},
          {"p99.9", percentile(0.999)}, {"max", max_}, {"samples", count_}};
}

void counters::add(const counters& other) noexcept {
  offered_packets += other.offered_packets;
  offered_bytes += other.offered_bytes;
  delivered_packets += other.delivered_packets;
  delivered_bytes += other.delivered_bytes;
  latency.merge(other.latency);
}

nlohmann::json receive_drops::to_json() const {
  return {{"not_for_us", not_for_us}, {"unknown_session", unknown_session}, {"bad_tag", bad_tag},
          {"replayed", replayed}, {"not_a_probe", not_a_probe}};
}

void run_report::close_second(double elapsed_s, double second_length_s) {
  const counters& c = second_;
  samples_.push_back({{"t", elapsed_s},
                      {"offered_pps", per_second(c.offered_packets, second_length_s)},
                      {"offered_bps", per_second(c.offered_bytes * 8, second_length_s)},
                      {"delivered_pps", per_second(c.delivered_packets, second_length_s)},
                      {"delivered_bps", per_second(c.delivered_bytes * 8, second_length_s)},
                      {"latency_ns", c.latency.summary()}});
  if (progress_)
    std::fprintf(stderr, "[%6.1fs] offered %10.0f pps %9.2f Mbit/s  delivered %10.0f pps %9.2f Mbit/s  latency p50 %7.1f us p99 %7.1f us"
                 "  (delivered so far %llu)\n",
                 elapsed_s, per_second(c.offered_packets, second_length_s),
                 per_second(c.offered_bytes * 8, second_length_s) / 1e6, per_second(c.delivered_packets, second_length_s),
                 per_second(c.delivered_bytes * 8, second_length_s) / 1e6,
                 static_cast<double>(c.latency.percentile(0.5)) / 1e3, static_cast<double>(c.latency.percentile(0.99)) / 1e3,
                 static_cast<unsigned long long>(total_.delivered_packets + c.delivered_packets));
  total_.add(second_);
  second_ = counters();
}

nlohmann::json run_report::final_json(double elapsed_s, const nlohmann::json& setup, const nlohmann::json& devices,
                                      const receive_drops& drops) const {
  const std::uint64_t lost = total_.offered_packets - std::min(total_.offered_packets, total_.delivered_packets);
  return {{"setup", setup},
          {"devices", devices},
          {"duration_s", elapsed_s},
          {"offered", rates(total_.offered_packets, total_.offered_bytes, elapsed_s)},
          {"delivered", rates(total_.delivered_packets, total_.delivered_bytes, elapsed_s)},
          {"lost", lost},
          {"loss_ratio", total_.offered_packets ? static_cast<double>(lost) / static_cast<double>(total_.offered_packets) : 0.0},
          {"latency_ns", total_.latency.summary()},
          {"receive_drops", drops.to_json()},
          {"samples", samples_}};
}

void run_report::print_summary(double elapsed_s) const {
  const std::uint64_t lost = total_.offered_packets - std::min(total_.offered_packets, total_.delivered_packets);
  std::fprintf(stderr,
               "offered %llu packets (%.0f pps, %.2f Mbit/s), delivered %llu (%.0f pps, %.2f Mbit/s), lost %llu\n"
               "latency p50 %.1f us, p90 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us\n",
               static_cast<unsigned long long>(total_.offered_packets), per_second(total_.offered_packets, elapsed_s),
               per_second(total_.offered_bytes * 8, elapsed_s) / 1e6,
               static_cast<unsigned long long>(total_.delivered_packets), per_second(total_.delivered_packets, elapsed_s),
               per_second(total_.delivered_bytes * 8, elapsed_s) / 1e6, static_cast<unsigned long long>(lost),
               static_cast<double>(total_.latency.percentile(0.5)) / 1e3,
               static_cast<double>(total_.latency.percentile(0.9)) / 1e3,
               static_cast<double>(total_.latency.percentile(0.99)) / 1e3,
               static_cast<double>(total_.latency.percentile(0.999)) / 1e3, static_cast<double>(total_.latency.max()) / 1e3);
}

}  // namespace lopower::loadgen
