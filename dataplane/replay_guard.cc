#include "dataplane/replay_guard.h"

namespace lopower {

// Each failed compare-and-swap means another worker moved the state on
// (unowned -> owned -> revoking -> shared, never back), so this loops at
// most three times.
replay_guard::access replay_guard::contend(unsigned worker, rte_rcu_qsbr* qsbr) noexcept {
  std::uint32_t state = state_.load(std::memory_order_acquire);
  for (;;) {
    if (state == owner_state(worker)) return access::unlocked;
    if (state == shared) return access::locked;
    if (state == unowned) {
      if (state_.compare_exchange_weak(state, owner_state(worker), std::memory_order_acq_rel)) return access::unlocked;
      continue;
    }
    if (state == revoking) {
      // Over once every worker has reported a quiescent state since the
      // revocation, the former owner included: its last unlocked check is
      // then finished and visible here.
      const std::uint64_t token = token_.load(std::memory_order_acquire);
      if (token == 0 || rte_rcu_qsbr_check(qsbr, token, false) != 1) return access::handover;
      state_.compare_exchange_strong(state, shared, std::memory_order_acq_rel);
      return access::locked;  // shared now, by this worker or another
    }
    // Another worker owns it. The grace period starts after the owner can
    // no longer see itself as owner: the token is taken once the state says
    // revoking, never before (an owner's quiescent report between the two
    // would otherwise end a grace period it then starts a check inside).
    if (state_.compare_exchange_weak(state, revoking, std::memory_order_acq_rel)) {
      token_.store(rte_rcu_qsbr_start(qsbr), std::memory_order_release);
      return access::handover;
    }
  }
}

}  // namespace lopower
