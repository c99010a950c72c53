#pragma once
// Who may check a keypair's replay window without taking its lock.
//
// RSS keeps a peer's packets on one worker's queue, so nearly every keypair
// is only ever received by one worker; yet the window must stay exclusive
// for the moment a peer roams to another queue (or a tailnet peer's packets
// come both direct and through DERP). A spinlock around the check made that
// safe at the price of a locked instruction per run of a keypair's packets:
// among many devices every run is one packet, and the instruction's barrier
// keeps the next runs' loads from starting early.
//
// So the window is biased: the first worker to check a keypair owns it and
// checks without the lock. Another worker that meets the keypair takes the
// ownership away (revoking) and starts a grace period of the workers' RCU
// domain; until it is over, the owner may still be inside a check it began
// unlocked, so runs of the keypair are dropped (drop_reason
// wg_replay_handover: a roam costs a pass's packets, once per keypair).
// After it, the keypair is shared for good and every check takes the lock,
// as before. A keypair lives two minutes; the next one starts unowned.
//
// Without an RCU domain (a worker not set up with one) there is no grace
// period to wait for: every check takes the lock.

#include <rte_rcu_qsbr.h>

#include <atomic>
#include <cstdint>

namespace lopower {

class replay_guard {
 public:
  enum class access : std::uint8_t {
    unlocked,  // this worker owns the window: check it as it is
    locked,    // shared: check it under the keypair's lock
    handover,  // ownership is moving: drop the run
  };

  // Worker `worker`'s check of a run of the keypair's packets (`qsbr`: the
  // workers' RCU domain, where the worker reports its quiescent states).
  access enter(unsigned worker, rte_rcu_qsbr* qsbr) noexcept {
    if (qsbr == nullptr) return access::locked;
    const std::uint32_t state = state_.load(std::memory_order_acquire);
    if (state == owner_state(worker)) return access::unlocked;
    if (state == shared) return access::locked;
    return contend(worker, qsbr);
  }

 private:
  static constexpr std::uint32_t unowned = 0;
  static constexpr std::uint32_t revoking = 0xffff'fffe;
  static constexpr std::uint32_t shared = 0xffff'ffff;
  static constexpr std::uint32_t owner_state(unsigned worker) noexcept { return worker + 1; }
  // The first check of a keypair, or one by a worker that does not own it.
  access contend(unsigned worker, rte_rcu_qsbr* qsbr) noexcept;

  std::atomic<std::uint32_t> state_{unowned};
  // The grace period a handover waits for (rte_rcu_qsbr_start's token);
  // 0 until the revoking worker has taken it.
  std::atomic<std::uint64_t> token_{0};
};

}  // namespace lopower
