#include "dataplane/session_table.h"

#include <rte_errno.h>
#include <rte_hash_crc.h>
#include <rte_lcore.h>

#include <atomic>
#include <bit>
#include <cstring>
#include <stdexcept>
#include <string>

namespace lopower {
namespace {

std::atomic<unsigned> table_serial{0};

// The hash of a receiver index: one crc32 instruction (SSE4.2), inline.
// rte_hash's default, jhash, is called through a pointer per key and mixes
// for longer; passing the hashes to the bulk lookup (with_hash) calls
// nothing per key. Not the index itself, though it is random in lopower:
// rte_hash takes the bucket from the low bits and the alternative bucket
// from the high ones, and a test's or a benchmark's sequential indices
// would then all share one signature and could not move between buckets.
inline std::uint32_t hash_of_index(std::uint32_t index) { return rte_hash_crc_4byte(index, 0); }

// The same as rte_hash's hash function, for the calls that take no hash.
std::uint32_t index_hash(const void* key, std::uint32_t, std::uint32_t) {
  std::uint32_t index;
  std::memcpy(&index, key, sizeof index);
  return hash_of_index(index);
}

struct retired_slot {
  rte_hash* hash;
  wg_keypair* keypair;
};

void release_slot(void* a, std::uint64_t position) {
  auto* r = static_cast<retired_slot*>(a);
  rte_hash_free_key_with_position(r->hash, static_cast<std::int32_t>(position));
  delete r->keypair;
  delete r;
}

}  // namespace

session_table::session_table(unsigned capacity, rcu_domain& rcu) : rcu_(rcu) {
  const std::string name = "lp_sessions" + std::to_string(table_serial++);
  rte_hash_parameters params{};
  params.name = name.c_str();
  params.entries = capacity;
  params.key_len = sizeof(std::uint32_t);
  params.hash_func = index_hash;
  params.socket_id = static_cast<int>(rte_socket_id());
  // Lock-free readers; with this flag a deleted key's slot stays reserved
  // until we free it after the grace period.
  params.extra_flag = RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF;
  hash_ = rte_hash_create(&params);
  if (hash_ == nullptr) throw std::runtime_error(std::string("cannot create the session table: ") + rte_strerror(rte_errno));
  const std::uint32_t slots = std::bit_ceil(std::max(2 * capacity, 64u));
  slots_ = make_dpdk_array<std::atomic<wg_keypair*>>(slots, params.socket_id, "session table's slots");
  slot_mask_ = slots - 1;
}

session_table::~session_table() {
  const void* key;
  void* data;
  std::uint32_t iter = 0;
  while (rte_hash_iterate(hash_, &key, &data, &iter) >= 0) delete static_cast<wg_keypair*>(data);
  rte_hash_free(hash_);
}

bool session_table::insert(wg_keypair* kp) {
  if (contains(kp->local_index) || rte_hash_add_key_data(hash_, &kp->local_index, kp) != 0) {
    delete kp;
    return false;
  }
  // Published with its fields: a worker that loads it reads them written.
  std::atomic<wg_keypair*>& slot = slot_of(kp->local_index);
  if (slot.load(std::memory_order_relaxed) == nullptr) slot.store(kp, std::memory_order_release);
  return true;
}

bool session_table::contains(std::uint32_t local_index) const { return rte_hash_lookup(hash_, &local_index) >= 0; }

wg_keypair* session_table::find(std::uint32_t local_index) const {
  void* data = nullptr;
  return rte_hash_lookup_data(hash_, &local_index, &data) >= 0 ? static_cast<wg_keypair*>(data) : nullptr;
}

void session_table::erase(std::uint32_t local_index) {
  wg_keypair* kp = find(local_index);
  if (kp == nullptr) return;
  // Out of its slot before it is retired: a worker that loaded it already
  // is inside its read-side section, which the grace period waits for.
  std::atomic<wg_keypair*>& slot = slot_of(local_index);
  if (slot.load(std::memory_order_relaxed) == kp) slot.store(nullptr, std::memory_order_relaxed);
  const std::int32_t pos = rte_hash_del_key(hash_, &local_index);
  if (pos < 0) return;
  rcu_.retire(release_slot, new retired_slot{hash_, kp}, static_cast<std::uint64_t>(pos));
}

void session_table::lookup_bulk(const std::uint32_t* indices, unsigned n, wg_keypair** out) const noexcept {
  std::uint16_t missed[RTE_HASH_LOOKUP_BULK_MAX];
  unsigned n_missed = 0;
  for (unsigned i = 0; i < n; ++i) {
    wg_keypair* kp = slot_of(indices[i]).load(std::memory_order_acquire);
    if (kp != nullptr && kp->local_index == indices[i]) {
      out[i] = kp;
      continue;
    }
    out[i] = nullptr;
    missed[n_missed++] = static_cast<std::uint16_t>(i);
    if (n_missed == RTE_HASH_LOOKUP_BULK_MAX) {
      lookup_in_hash(indices, missed, n_missed, out);
      n_missed = 0;
    }
  }
  if (n_missed != 0) lookup_in_hash(indices, missed, n_missed, out);
}

void session_table::lookup_in_hash(const std::uint32_t* indices, const std::uint16_t* which, unsigned n,
                                   wg_keypair** out) const noexcept {
  const void* keys[RTE_HASH_LOOKUP_BULK_MAX];
  hash_sig_t hashes[RTE_HASH_LOOKUP_BULK_MAX];
  void* data[RTE_HASH_LOOKUP_BULK_MAX];
  for (unsigned i = 0; i < n; ++i) {
    keys[i] = &indices[which[i]];
    hashes[i] = hash_of_index(indices[which[i]]);
  }
  std::uint64_t hits = 0;
  rte_hash_lookup_with_hash_bulk_data(hash_, keys, hashes, n, &hits, data);
  for (unsigned i = 0; i < n; ++i)
    if ((hits >> i) & 1) out[which[i]] = static_cast<wg_keypair*>(data[i]);
}

}  // namespace lopower
