#include "dataplane/rcu.h"

#include <rte_errno.h>
#include <rte_malloc.h>

#include <atomic>
#include <stdexcept>
#include <string>

namespace lopower {
namespace {

constexpr unsigned defer_queue_size = 16384;
std::atomic<unsigned> domain_serial{0};

}  // namespace

rcu_domain::rcu_domain(unsigned max_workers) {
  const std::size_t size = rte_rcu_qsbr_get_memsize(max_workers);
  qsbr_ = static_cast<rte_rcu_qsbr*>(rte_zmalloc("lopower_qsbr", size, RTE_CACHE_LINE_SIZE));
  if (qsbr_ == nullptr || rte_rcu_qsbr_init(qsbr_, max_workers) != 0)
    throw std::runtime_error("cannot create the RCU domain");
  const std::string name = "lp_rcu" + std::to_string(domain_serial++);
  rte_rcu_qsbr_dq_parameters params{};
  params.name = name.c_str();
  params.size = defer_queue_size;
  params.esize = sizeof(deferred);
  // 0: every enqueue (retire) also reclaims what is safe, without waiting;
  // retire and reclaim run on the control thread only, so reclamation does too.
  params.trigger_reclaim_limit = 0;
  params.max_reclaim_size = defer_queue_size;
  params.free_fn = release_batch;
  params.p = this;
  params.v = qsbr_;
  dq_ = rte_rcu_qsbr_dq_create(&params);
  if (dq_ == nullptr) throw std::runtime_error(std::string("cannot create the RCU defer queue: ") + rte_strerror(rte_errno));
}

rcu_domain::~rcu_domain() {
  drain();
  rte_rcu_qsbr_dq_delete(dq_);
  rte_free(qsbr_);
}

void rcu_domain::release_batch(void*, void* e, unsigned n) {
  auto* items = static_cast<deferred*>(e);
  for (unsigned i = 0; i < n; ++i) items[i].release(items[i].a, items[i].b);
}

void rcu_domain::retire(void (*release)(void*, std::uint64_t), void* a, std::uint64_t b) {
  deferred d{release, a, b};
  // A full queue means workers have not passed a quiescent state for a long
  // time (16k retirements): wait for them rather than free early.
  while (rte_rcu_qsbr_dq_enqueue(dq_, &d) != 0) {
    rte_rcu_qsbr_synchronize(qsbr_, RTE_QSBR_THRID_INVALID);
    reclaim();
  }
}

void rcu_domain::reclaim() {
  unsigned freed = 0, pending = 0, available = 0;
  rte_rcu_qsbr_dq_reclaim(dq_, defer_queue_size, &freed, &pending, &available);
}

void rcu_domain::drain() {
  rte_rcu_qsbr_synchronize(qsbr_, RTE_QSBR_THRID_INVALID);
  reclaim();
}

}  // namespace lopower
