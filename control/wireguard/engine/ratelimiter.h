#pragma once
// Per-source token bucket for handshake messages, as the Linux module keeps
// one: 20 per second from one source with a burst of 5, a source being an
// IPv4 address or an IPv6 /64 (one host usually holds a whole /64).
//
// A fixed-size open-addressing table keyed by a random SipHash of the
// source, so lookups are O(1) and an attacker cannot aim at one bucket.
// Sources idle for more than a second are forgotten (their bucket would be
// full again anyway); when the table is full, new sources are refused until
// that happens, as Linux does. Times are nanoseconds of a monotonic clock
// the caller reads. Not thread-safe.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace lopower::wg {

class ratelimiter {
 public:
  static constexpr std::uint64_t packets_per_second = 20;
  static constexpr std::uint64_t packets_burstable = 5;
  static constexpr std::uint64_t packet_cost_ns = 1'000'000'000 / packets_per_second;
  static constexpr std::uint64_t tokens_max_ns = packet_cost_ns * packets_burstable;
  static constexpr std::uint64_t idle_expiry_ns = 1'000'000'000;
  static constexpr std::size_t default_max_entries = 16384;

  // At most `max_entries` sources at once (at least 1).
  explicit ratelimiter(std::size_t max_entries = default_max_entries);

  // One handshake message from `ip` (4 bytes, or 16 with ipv6) at `now_ns`:
  // true if it may be processed.
  bool allow(const std::uint8_t* ip, bool ipv6, std::uint64_t now_ns);

  // Forgets sources idle for more than a second. allow() runs this itself
  // at most once a second; call it to reclaim memory sooner.
  void expire(std::uint64_t now_ns);

  std::size_t size() const noexcept { return count_; }
  std::size_t max_entries() const noexcept { return max_entries_; }

 private:
  struct entry {
    std::uint64_t key = 0;       // IPv4 address or IPv6 /64 prefix
    std::uint64_t last_ns = 0;
    std::uint64_t tokens = 0;    // nanoseconds' worth of credit
    bool used = false;
    bool ipv6 = false;
  };

  std::size_t home(std::uint64_t key, bool ipv6) const noexcept;
  void erase(std::size_t slot) noexcept;

  std::vector<entry> slots_;  // power of two, at least twice max_entries_
  std::size_t mask_ = 0;
  std::size_t max_entries_ = 0;
  std::size_t count_ = 0;
  std::uint64_t last_expiry_ns_ = 0;
  unsigned char hash_key_[16]{};  // crypto_shorthash (SipHash-2-4) key
};

}  // namespace lopower::wg
