#pragma once
// Safe retirement of state the workers may still be reading. Workers report
// a quiescent state once per loop pass (and go offline while they sleep);
// the control thread retires objects into a defer queue and reclaims them
// once every worker has passed a quiescent state since.

#include <rte_rcu_qsbr.h>

#include <cstdint>
#include <functional>

namespace lopower {

class rcu_domain {
 public:
  explicit rcu_domain(unsigned max_workers);
  ~rcu_domain();
  rcu_domain(const rcu_domain&) = delete;
  rcu_domain& operator=(const rcu_domain&) = delete;

  rte_rcu_qsbr* qsbr() const noexcept { return qsbr_; }

  // Control thread: calls `release(a, b)` once no worker can still see what
  // was unpublished before this call. Does not wait, unless the defer queue
  // is full (16k retirements outstanding): then it waits for a grace period.
  void retire(void (*release)(void* a, std::uint64_t b), void* a, std::uint64_t b = 0);
  template <class T>
  void retire_object(T* p) {
    retire([](void* a, std::uint64_t) { delete static_cast<T*>(a); }, p);
  }
  // Control thread, periodically: releases what is safe now.
  void reclaim();
  // Waits for a full grace period and releases everything (shutdown; tests).
  void drain();

 private:
  struct deferred {
    void (*release)(void*, std::uint64_t);
    void* a;
    std::uint64_t b;
  };
  static void release_batch(void* p, void* e, unsigned n);

  rte_rcu_qsbr* qsbr_ = nullptr;
  rte_rcu_qsbr_dq* dq_ = nullptr;
};

// Worker side, once per loop pass: cheap (one store).
inline void rcu_quiescent(rte_rcu_qsbr* v, unsigned worker) noexcept { rte_rcu_qsbr_quiescent(v, worker); }

}  // namespace lopower
