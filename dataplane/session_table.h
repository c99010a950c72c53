#pragma once
// Receiver index -> keypair, for every live keypair (previous, current and
// next of every peer). The control thread inserts and erases; workers look up
// in bulk without locks; an erased keypair is freed only after every worker
// has passed a quiescent state.

#include <rte_hash.h>

#include <cstdint>

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

  // Workers, lock-free: looks up n receiver indices (rte_hash bulk lookups of
  // up to RTE_HASH_LOOKUP_BULK_MAX at a time); misses give nullptr.
  void lookup_bulk(const std::uint32_t* indices, unsigned n, wg_keypair** out) const noexcept;

 private:
  rte_hash* hash_ = nullptr;
  rcu_domain& rcu_;
};

}  // namespace lopower
