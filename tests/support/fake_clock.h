#pragma once
// A clock the tests advance by hand, for what takes a control_clock
// (control/clock.h): TSC ticks at the machine's rte_get_tsc_hz(), and
// nanoseconds that follow them.
//
// It starts *behind* the real TSC (by up to an hour): the workers still
// read the real one, and compare the creation time of every keypair --
// stamped by the interface with this clock -- against it; a creation time
// ahead of the real TSC would look expired to them. Advances up to that
// lead keep every keypair usable by the workers; `lead()` says how far.
// Stamps the workers write (last_rx_tsc ...) are real TSC readings, newer
// than this clock: the timers count them zero ticks old. restamp() sets a
// peer's stamps to this clock's now, as workers reading it would have.

#include <rte_cycles.h>

#include <algorithm>
#include <chrono>
#include <cstdint>

#include "control/clock.h"
#include "dataplane/wg_session.h"

namespace lopower::test_support {

class fake_clock {
 public:
  fake_clock() : hz_(rte_get_tsc_hz()) {
    const std::uint64_t real = rte_rdtsc();
    lead_ = std::min(real / 2, hz_ * 3600);
    start_ = now_ = real - lead_;
  }

  std::uint64_t tsc() const { return now_; }
  std::uint64_t ns() const {
    const std::uint64_t ticks = now_ - start_;
    return ns_base + ticks / hz_ * billion + ticks % hz_ * billion / hz_;
  }
  std::uint64_t hz() const { return hz_; }
  // How far it may be advanced with the workers still taking the keypairs made meanwhile.
  std::chrono::seconds lead() const { return std::chrono::seconds(lead_ / hz_); }

  void advance(std::chrono::nanoseconds d) {
    const auto ns = static_cast<std::uint64_t>(d.count());
    now_ += ns / billion * hz_ + ns % billion * hz_ / billion;
  }

  // For set_clock(): reads this object (which must outlive the user).
  control_clock clock() const {
    return {[this] { return tsc(); }, [this] { return ns(); }};
  }

  // The workers' stamps of `p` that are set, now on this clock.
  void restamp(wg_peer& p) const {
    for (auto* s : {&p.last_rx_tsc, &p.last_data_rx_tsc, &p.last_tx_tsc})
      if (s->load() != 0) s->store(now_);
  }

 private:
  static constexpr std::uint64_t billion = 1'000'000'000;
  static constexpr std::uint64_t ns_base = 1'000'000'000'000;  // far from 0 ("never")
  std::uint64_t hz_;
  std::uint64_t lead_;
  std::uint64_t start_, now_;
};

}  // namespace lopower::test_support
