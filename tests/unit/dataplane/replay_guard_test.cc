// Who checks a keypair's replay window without its lock (replay_guard.h):
// the first worker; another worker's packets wait out a grace period of the
// RCU domain, then the window is shared under the lock. A real
// rte_rcu_qsbr (no EAL needed), workers played by this thread or by two.

#include "dataplane/replay_guard.h"

#include <gtest/gtest.h>
#include <rte_common.h>
#include <rte_spinlock.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

#include "lopower/replay_window.h"

namespace lopower {
namespace {

using access = replay_guard::access;

// Two workers' RCU domain, both registered and online (as worker::run does).
class qsbr_domain {
 public:
  explicit qsbr_domain(unsigned workers = 2) {
    const std::size_t size = rte_rcu_qsbr_get_memsize(workers);
    memory_ = static_cast<rte_rcu_qsbr*>(std::aligned_alloc(RTE_CACHE_LINE_SIZE, RTE_ALIGN_CEIL(size, RTE_CACHE_LINE_SIZE)));
    if (memory_ == nullptr || rte_rcu_qsbr_init(memory_, workers) != 0) std::abort();
    for (unsigned w = 0; w < workers; ++w) {
      rte_rcu_qsbr_thread_register(memory_, w);
      rte_rcu_qsbr_thread_online(memory_, w);
    }
  }
  ~qsbr_domain() { std::free(memory_); }
  qsbr_domain(const qsbr_domain&) = delete;
  qsbr_domain& operator=(const qsbr_domain&) = delete;
  rte_rcu_qsbr* get() const { return memory_; }
  void quiescent(unsigned worker) const { rte_rcu_qsbr_quiescent(memory_, worker); }

 private:
  rte_rcu_qsbr* memory_ = nullptr;
};

TEST(replay_guard, the_first_worker_owns_the_window) {
  qsbr_domain q;
  replay_guard g;
  EXPECT_EQ(g.enter(1, q.get()), access::unlocked);
  EXPECT_EQ(g.enter(1, q.get()), access::unlocked);
  q.quiescent(1);
  EXPECT_EQ(g.enter(1, q.get()), access::unlocked) << "its own quiescent states change nothing";
}

TEST(replay_guard, without_an_rcu_domain_every_check_takes_the_lock) {
  replay_guard g;
  EXPECT_EQ(g.enter(0, nullptr), access::locked);
  EXPECT_EQ(g.enter(1, nullptr), access::locked);
}

// A second worker's runs are dropped until every worker, the owner and
// itself, has passed a quiescent state; then the window is shared by both.
TEST(replay_guard, a_second_worker_waits_out_a_grace_period_then_both_take_the_lock) {
  qsbr_domain q;
  replay_guard g;
  ASSERT_EQ(g.enter(0, q.get()), access::unlocked);
  EXPECT_EQ(g.enter(1, q.get()), access::handover);
  EXPECT_EQ(g.enter(0, q.get()), access::handover) << "the owner no longer checks unlocked once revoked";
  EXPECT_EQ(g.enter(1, q.get()), access::handover);
  q.quiescent(0);
  EXPECT_EQ(g.enter(1, q.get()), access::handover) << "worker 1 has not passed a quiescent state yet";
  q.quiescent(1);
  EXPECT_EQ(g.enter(1, q.get()), access::locked);
  EXPECT_EQ(g.enter(0, q.get()), access::locked);
  q.quiescent(0);
  q.quiescent(1);
  EXPECT_EQ(g.enter(0, q.get()), access::locked) << "shared for good";
}

// A worker that sleeps (offline) holds no grace period up.
TEST(replay_guard, an_offline_owner_does_not_hold_the_handover_up) {
  qsbr_domain q;
  replay_guard g;
  ASSERT_EQ(g.enter(0, q.get()), access::unlocked);
  rte_rcu_qsbr_thread_offline(q.get(), 0);
  EXPECT_EQ(g.enter(1, q.get()), access::handover);
  q.quiescent(1);
  EXPECT_EQ(g.enter(1, q.get()), access::locked);
}

// Two workers offered every counter, in turn taking the keypair over (the
// stress of a peer bouncing between queues): whatever each accepts, no
// counter is accepted twice, and the window is shared in the end. Each
// worker checks as worker::check_replay does and reports a quiescent state
// after each check, as its loop does after each pass.
TEST(replay_guard, two_workers_never_accept_a_counter_twice) {
  qsbr_domain q;
  replay_guard g;
  replay_window window;
  rte_spinlock_t lock = RTE_SPINLOCK_INITIALIZER;
  constexpr std::uint64_t counters = 200000;
  std::vector<std::uint8_t> accepted[2] = {std::vector<std::uint8_t>(counters), std::vector<std::uint8_t>(counters)};
  std::atomic<unsigned> started{0};
  auto worker = [&](unsigned w) {
    started.fetch_add(1);
    while (started.load() < 2) {
    }
    for (std::uint64_t c = 0; c < counters; ++c) {
      switch (g.enter(w, q.get())) {
        case access::unlocked:
          accepted[w][c] = window.validate(c);
          break;
        case access::locked:
          rte_spinlock_lock(&lock);
          accepted[w][c] = window.validate(c);
          rte_spinlock_unlock(&lock);
          break;
        case access::handover:
          break;
      }
      q.quiescent(w);
    }
  };
  std::thread a(worker, 0), b(worker, 1);
  a.join();
  b.join();
  std::uint64_t total = 0;
  for (std::uint64_t c = 0; c < counters; ++c) {
    ASSERT_LE(accepted[0][c] + accepted[1][c], 1) << "counter " << c << " accepted by both workers";
    total += accepted[0][c] + accepted[1][c];
  }
  EXPECT_GT(total, counters / 2) << "the handover dropped only a grace period's checks";
  EXPECT_EQ(g.enter(0, q.get()), access::locked);
  EXPECT_EQ(g.enter(1, q.get()), access::locked);
}

}  // namespace
}  // namespace lopower
