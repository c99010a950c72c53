#pragma once
// The adaptive idle policy's decisions (worker::run acts on them), apart
// from the loop so they can be tested against a made-up clock.
//
// After a pass that moved nothing the worker spins, then pauses, and only
// sleeps (with a doubling interval, up to the configured longest) once no
// packet has come for `hold` TSC cycles. A flow that is merely between
// packets (a TCP sender waiting for its ACKs, a request waiting for its
// answer) thus finds the worker polling, as under idle = "poll": sleeping
// in its gaps added up to the longest sleep (and the kernel's timer slack)
// to each of its round trips. A link that stays quiet for longer than the
// hold still costs no CPU. After DPDK's l3fwd-power, which also sleeps only
// after a run of empty polls.

#include <algorithm>
#include <cstdint>

namespace lopower {

class idle_governor {
 public:
  enum class action : std::uint8_t { spin, pause, sleep };
  struct step {
    action what;
    std::uint32_t sleep_us;  // for action::sleep
  };
  static constexpr unsigned spin_passes = 64;    // empty passes before pausing
  static constexpr unsigned pause_passes = 256;  // before sleep is allowed at all

  idle_governor(std::uint64_t hold_cycles, std::uint32_t sleep_max_us) noexcept
      : hold_(hold_cycles), sleep_max_us_(std::max<std::uint32_t>(sleep_max_us, 1)) {}

  // A pass moved packets at TSC `now`.
  void busy(std::uint64_t now) noexcept {
    last_busy_ = now;
    empty_passes_ = 0;
    sleep_us_ = 1;
  }

  // A pass moved nothing at TSC `now`: what to do before the next one.
  step idle(std::uint64_t now) noexcept {
    ++empty_passes_;
    if (empty_passes_ < spin_passes) return {action::spin, 0};
    if (empty_passes_ < pause_passes || now - last_busy_ < hold_) return {action::pause, 0};
    const std::uint32_t s = sleep_us_;
    sleep_us_ = std::min(sleep_us_ * 2, sleep_max_us_);
    return {action::sleep, s};
  }

 private:
  std::uint64_t hold_;
  std::uint32_t sleep_max_us_;
  std::uint64_t last_busy_ = 0;
  unsigned empty_passes_ = 0;
  std::uint32_t sleep_us_ = 1;
};

}  // namespace lopower
