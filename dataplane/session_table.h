#pragma once
// Receiver index -> keypair, for every live keypair (previous, current and
// next of every peer). The control thread inserts and erases; workers look up
// in bulk without locks; an erased keypair is freed only after every worker
// has passed a quiescent state.
//
// Two levels. Every keypair is in an rte_hash. In front of it, a keypair
// also takes the direct slot its index selects (index & mask) when that
// slot is free: a worker's lookup is then one load and a compare of the
// keypair's own index, and only indices whose slot holds another keypair
// (or none) go on to the hash. Indices are random, so with twice as many
// slots as keypairs nearly every one has its slot; the hash's lock-free
// bulk lookup cost ~160 instructions a packet in the 64-byte splice.

#include <rte_hash.h>

#include <atomic>
#include <cstdint>
#include <memory>

#include "dataplane/dpdk_array.h"
#include "dataplane/rcu.h"
#include "dataplane/wg_session.h"

namespace lopower {

class session_table {
 public:
  session_table(unsigned capacity, rcu_domain& rcu);
  ~session_table();
  session_table(const session_table&) = delete;
  session_table& operator=(const session_table&) = delete;

  // Control thread. insert takes ownership; false if the index is taken or
  // the table is full (the keypair is then deleted).
  bool insert(wg_keypair* kp);
  // Control thread: unpublishes and retires the keypair (freed later).
  void erase(std::uint32_t local_index);
  bool contains(std::uint32_t local_index) const;
  // Control thread only (it is the single writer): the keypair, or nullptr.
  wg_keypair* find(std::uint32_t local_index) const;

  // Workers, lock-free: looks up n receiver indices (their direct slots,
  // then rte_hash bulk lookups of the rest); misses give nullptr.
  void lookup_bulk(const std::uint32_t* indices, unsigned n, wg_keypair** out) const noexcept;

 private:
  std::atomic<wg_keypair*>& slot_of(std::uint32_t index) const noexcept { return slots_[index & slot_mask_]; }
  // The hash's bulk lookup of the n indices the slots did not answer.
  void lookup_in_hash(const std::uint32_t* indices, const std::uint16_t* which, unsigned n, wg_keypair** out) const noexcept;

  rte_hash* hash_ = nullptr;
  dpdk_array<std::atomic<wg_keypair*>> slots_;
  std::uint32_t slot_mask_ = 0;
  rcu_domain& rcu_;
};

}  // namespace lopower
