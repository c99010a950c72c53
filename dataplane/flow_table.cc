#include "dataplane/flow_table.h"

#include <rte_errno.h>
#include <rte_hash_crc.h>
#include <rte_lcore.h>
#include <rte_prefetch.h>
#include <rte_ring.h>

#if defined(__SSE4_2__) && defined(__x86_64__)
#include <nmmintrin.h>
#endif

#include <algorithm>
#include <bit>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

namespace lopower {

struct flow_table::retired_flow {
  std::atomic<unsigned>* held;  // the table's count of flows holding entries
  rte_hash* hash;
  rte_mempool* pool;
  flow* f;
  std::int32_t device_pos, tailnet_pos;
  std::function<void(const flow&)> released;
};

namespace {

std::atomic<unsigned> table_serial{0};

// Flows a worker's mempool cache may hold back from the others.
constexpr unsigned flow_pool_cache = 32;

// Flows the pool holds beyond the table's capacity: those erased but still
// in their grace period (an eighth of the table expiring at once), the
// inserts racing past the limit, and what the lcores' caches keep (up to
// 1.5 times the cache size each).
unsigned flow_pool_size(unsigned capacity) noexcept {
  return capacity + capacity / 8 + 1024 + rte_lcore_count() * (flow_pool_cache * 3 / 2 + 1);
}

// A flow's state while it waits in the ring after erase (never a TCP state:
// a worker's move fails against it, and nothing else reads it then).
constexpr auto erased_state = static_cast<splice::tcp_state>(0xff);

void release_flow(void* a, std::uint64_t) {
  auto* r = static_cast<flow_table::retired_flow*>(a);
  if (r->device_pos >= 0) rte_hash_free_key_with_position(r->hash, r->device_pos);
  if (r->tailnet_pos >= 0) rte_hash_free_key_with_position(r->hash, r->tailnet_pos);
  r->held->fetch_sub(1, std::memory_order_relaxed);
  if (r->released) r->released(*r->f);
  r->f->~flow();
  rte_mempool_put(r->pool, r->f);
  delete r;
}

// By the service's port: the destination of whoever opened the flow.
std::uint32_t timeout_of(const flow& f, splice::tcp_state state) noexcept {
  const std::uint16_t service = f.kind == flow_kind::spliced ? f.device_key.dst_port : f.tailnet_key.dst_port;
  return splice::idle_timeout(f.device_key.protocol, service, state);
}

}  // namespace

flow_table::flow_table(unsigned capacity, rcu_domain& rcu) : rcu_(rcu), capacity_(capacity) {
  const std::string name = "lp_flows" + std::to_string(table_serial++);
  rte_hash_parameters params{};
  params.name = name.c_str();
  // Two keys per flow, and a quarter more: a cuckoo table refuses inserts
  // before it is completely full, and the flow limit must be reachable.
  params.entries = capacity * 2 + capacity / 2;
  params.key_len = sizeof(splice::flow_key);
  // DPDK's CRC32C (SSE4.2's crc32 on x86, in every CPU the baseline
  // allows): five dependent 3-cycle steps over the 40-byte key. The
  // murmur-style mix it replaced was a dependent multiply chain per word:
  // 3 % of the 64-byte splice's worker time, and the flow table alone did
  // 50-75 % more single lookups per second with the CRC (bench/RESULTS.md).
  params.hash_func = rte_hash_crc;
  params.socket_id = static_cast<int>(rte_socket_id());
  params.extra_flag = RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF | RTE_HASH_EXTRA_FLAGS_MULTI_WRITER_ADD;
  hash_ = rte_hash_create(&params);
  if (hash_ == nullptr) throw std::runtime_error(std::string("cannot create the flow table: ") + rte_strerror(rte_errno));
  const std::uint32_t slots = std::bit_ceil(std::max(4 * capacity, 64u));
  slots_ = make_dpdk_array<std::atomic<std::uintptr_t>>(slots, params.socket_id, "flow table's slots");
  slot_mask_ = slots - 1;
  // A flow is in the ring once at most, and only while it is in the table
  // (or erased and waiting for its entry): room for every flow the table
  // can hold, and for the few inserts racing past the limit.
  queued_ = rte_ring_create(("lp_fq" + name.substr(8)).c_str(), capacity + 1024, params.socket_id,
                            RING_F_SC_DEQ | RING_F_EXACT_SZ);
  if (queued_ == nullptr) {
    rte_hash_free(hash_);
    throw std::runtime_error(std::string("cannot create the flow table's ring: ") + rte_strerror(rte_errno));
  }
  // On the table's socket (hugepages when EAL has them); objects start a
  // cache line, as the flow's layout assumes.
  pool_ = rte_mempool_create(("lp_fp" + name.substr(8)).c_str(), flow_pool_size(capacity), sizeof(flow), flow_pool_cache, 0,
                             nullptr, nullptr, nullptr, nullptr, params.socket_id, 0);
  if (pool_ == nullptr) {
    rte_ring_free(queued_);
    rte_hash_free(hash_);
    throw std::runtime_error(std::string("cannot create the flows' pool: ") + rte_strerror(rte_errno));
  }
  counts_ = std::make_unique<worker_counts[]>(census_workers);
  wheel_.assign(wheel_slots, nullptr);
}

flow_table::~flow_table() {
  destroy_all();
  rte_mempool_free(pool_);  // the caller drained the RCU domain first: no flow is waiting for a grace period
  rte_ring_free(queued_);
  rte_hash_free(hash_);
}

// The flows' destructors (they own nothing outside the pool today, but a
// member that does stays correct).
void flow_table::destroy_all() noexcept {
  void* p;
  while (rte_ring_sc_dequeue(queued_, &p) == 0) {
  }
  for (auto& [f, r] : zombies_) {  // erased: in no list of the table's
    f->~flow();
    delete r;
  }
  // Collected first: for_each reads each flow again at its second key.
  std::vector<flow*> all;
  for_each([&all](flow& f) { all.push_back(&f); });
  for (flow* f : all) f->~flow();
}

flow* flow_table::allocate() noexcept {
  void* storage = nullptr;
  if (rte_mempool_get(pool_, &storage) != 0) return nullptr;
  return new (storage) flow;
}

void flow_table::discard(flow* f) noexcept {
  f->~flow();
  rte_mempool_put(pool_, f);
}

flow* flow_table::find(const splice::flow_key& k) const noexcept {
  void* data = nullptr;
  return rte_hash_lookup_data(hash_, &k, &data) >= 0 ? static_cast<flow*>(data) : nullptr;
}

namespace {

// rte_hash's hash of a key (its hash_func, rte_hash_crc, with the default
// initial value 0), inline: the slot and the hash's bucket from one sum.
// CRC32C is one function whichever code computes it; rte_hash_crc checks
// at every 8-byte word which code this CPU runs, while the baseline this is
// built for (SSE4.2) has the instruction: five of them, nothing else.
static_assert(sizeof(splice::flow_key) % 8 == 0);
std::uint32_t hash_of(const splice::flow_key& k) noexcept {
#if defined(__SSE4_2__) && defined(__x86_64__)
  std::uint64_t words[sizeof k / 8];
  std::memcpy(words, &k, sizeof k);
  std::uint64_t crc = 0;
  for (const std::uint64_t w : words) crc = _mm_crc32_u64(crc, w);
  return static_cast<std::uint32_t>(crc);
#else
  return rte_hash_crc(&k, sizeof k, 0);
#endif
}

// A slot holds a flow and which of its keys took the slot: the flow's
// address (lines are 64-byte aligned) with the low bit set for the
// device-side key. A lookup then reads only that key's line of the flow.
constexpr std::uintptr_t device_side = 1;
static_assert(alignof(flow) > device_side, "a flow's address leaves the tag's bit free");

std::uintptr_t slot_value(const flow* f, bool device_key) noexcept {
  return reinterpret_cast<std::uintptr_t>(f) | (device_key ? device_side : 0);
}
flow* flow_in(std::uintptr_t v) noexcept { return reinterpret_cast<flow*>(v & ~device_side); }
const splice::flow_key& key_in(std::uintptr_t v) noexcept {
  const flow* f = flow_in(v);
  return (v & device_side) != 0 ? f->device_key : f->tailnet_key;
}

}  // namespace

// In three passes over the keys, so that their cache misses overlap (among
// many flows the slots and the flows are not in the cache; one key at a
// time stalled on its slot, then on its flow): the sums, each slot
// fetched; the line of the key each slot names fetched; the compares.
void flow_table::find_bulk(const splice::flow_key* const* keys, unsigned n, flow** out) const noexcept {
  for (unsigned at = 0; at < n; at += RTE_HASH_LOOKUP_BULK_MAX) {
    const unsigned chunk = std::min<unsigned>(n - at, RTE_HASH_LOOKUP_BULK_MAX);
    std::uint32_t hashes[RTE_HASH_LOOKUP_BULK_MAX];
    std::uintptr_t held[RTE_HASH_LOOKUP_BULK_MAX];
    for (unsigned i = 0; i < chunk; ++i) {
      hashes[i] = hash_of(*keys[at + i]);
      rte_prefetch0(&slot_of(hashes[i]));
    }
    for (unsigned i = 0; i < chunk; ++i) {
      held[i] = slot_of(hashes[i]).load(std::memory_order_acquire);
      if (held[i] != 0) rte_prefetch0(&key_in(held[i]));
    }
    std::uint32_t missed_hashes[RTE_HASH_LOOKUP_BULK_MAX];
    std::uint16_t missed[RTE_HASH_LOOKUP_BULK_MAX];
    unsigned n_missed = 0;
    for (unsigned i = 0; i < chunk; ++i) {
      if (held[i] != 0 && std::memcmp(&key_in(held[i]), keys[at + i], sizeof(splice::flow_key)) == 0) {
        out[at + i] = flow_in(held[i]);
        continue;
      }
      out[at + i] = nullptr;
      missed_hashes[n_missed] = hashes[i];
      missed[n_missed++] = static_cast<std::uint16_t>(i);
    }
    if (n_missed != 0) find_in_hash(keys + at, missed_hashes, missed, n_missed, out + at);
  }
}

void flow_table::find_in_hash(const splice::flow_key* const* keys, const std::uint32_t* hashes, const std::uint16_t* which,
                              unsigned n, flow** out) const noexcept {
  const void* picked[RTE_HASH_LOOKUP_BULK_MAX];
  hash_sig_t sigs[RTE_HASH_LOOKUP_BULK_MAX];
  void* data[RTE_HASH_LOOKUP_BULK_MAX];
  for (unsigned i = 0; i < n; ++i) {
    picked[i] = keys[which[i]];
    sigs[i] = hashes[i];
  }
  std::uint64_t hits = 0;
  rte_hash_lookup_with_hash_bulk_data(hash_, picked, sigs, n, &hits, data);
  for (unsigned i = 0; i < n; ++i)
    if ((hits >> i) & 1) out[which[i]] = static_cast<flow*>(data[i]);
}

// Only a free slot is taken (workers insert concurrently: the first keeps
// it); a key whose slot is held by another flow is found in the hash.
void flow_table::take_slots(flow* f) noexcept {
  for (const bool device_key : {true, false}) {
    std::uintptr_t none = 0;
    slot_of(hash_of(device_key ? f->device_key : f->tailnet_key))
        .compare_exchange_strong(none, slot_value(f, device_key), std::memory_order_release, std::memory_order_relaxed);
  }
}

void flow_table::leave_slots(flow* f) noexcept {
  for (const bool device_key : {true, false}) {
    std::uintptr_t held = slot_value(f, device_key);
    slot_of(hash_of(device_key ? f->device_key : f->tailnet_key)).compare_exchange_strong(held, 0, std::memory_order_relaxed);
  }
}

bool flow_table::insert(flow* f) noexcept {
  // Counted in first: inserts racing for the last place cannot both pass.
  if (held_.n.fetch_add(1, std::memory_order_relaxed) >= capacity_) {
    held_.n.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  if (rte_hash_add_key_data(hash_, &f->device_key, f) != 0) {
    held_.n.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  // The device key is published: add the tailnet key only if it is new,
  // else take the device key back at once. No other worker can hold the
  // flow: only the device's packets carry its device key, and RSS keeps a
  // device on one queue -- the creator's.
  const bool added = find(f->tailnet_key) == nullptr && rte_hash_add_key_data(hash_, &f->tailnet_key, f) == 0;
  // Queued for the wheel before any other thread may erase it; the ring has
  // room for every flow (see the constructor), so this fails only when the
  // limit was raced past by more inserts than that.
  f->queued.store(true, std::memory_order_relaxed);
  // Before the ring hands the flow to the control thread, which may erase it.
  if (added) take_slots(f);
  if (!added || rte_ring_mp_enqueue(queued_, f) != 0) {
    if (added) {
      leave_slots(f);
      const std::int32_t pos = rte_hash_del_key(hash_, &f->tailnet_key);
      if (pos >= 0) rte_hash_free_key_with_position(hash_, pos);
    }
    const std::int32_t pos = rte_hash_del_key(hash_, &f->device_key);
    if (pos >= 0) rte_hash_free_key_with_position(hash_, pos);
    held_.n.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  worker_counts& c = counts_[f->owner_worker];
  if (f->device_key.protocol == splice::ipproto_tcp)
    c.tcp_entered[static_cast<unsigned>(f->state.load(std::memory_order_relaxed)) % 5].add();
  else if (f->device_key.protocol == splice::ipproto_udp) c.udp.add();
  else c.icmp.add();
  if (f->uplink) c.uplink.add();
  return true;
}

bool flow_table::queue(flow& f) noexcept {
  if (f.queued.exchange(true)) return true;  // in the ring already: the control thread reads the state after
  if (rte_ring_mp_enqueue(queued_, &f) == 0) return true;
  f.queued.store(false);  // cannot happen (the ring holds every flow); the flow is checked at its old deadline
  return false;
}

void flow_table::track_tcp(flow& f, std::uint8_t flags, splice::flow_direction dir, unsigned worker) noexcept {
  splice::tcp_state now = f.state.load(std::memory_order_relaxed);
  for (;;) {
    if (now == erased_state) return;
    const splice::tcp_state next = splice::next_state(now, flags, dir);
    if (next == now) return;
    // Another worker's move in between: `now` is reloaded, and this one recomputed from it.
    if (!f.state.compare_exchange_weak(now, next)) continue;
    worker_counts& c = counts_[worker % census_workers];
    c.tcp_left[static_cast<unsigned>(now)].add();
    c.tcp_entered[static_cast<unsigned>(next)].add();
    if (splice::tcp_timeout(next) < splice::tcp_timeout(now)) queue(f);
    return;
  }
}

void flow_table::for_each(const std::function<void(flow&)>& fn) const {
  const void* key;
  void* data;
  std::uint32_t iter = 0;
  while (rte_hash_iterate(hash_, &key, &data, &iter) >= 0) {
    auto* f = static_cast<flow*>(data);
    if (static_cast<const splice::flow_key*>(key)->operator==(f->device_key)) fn(*f);
  }
}

// ---- the wheel (control thread) ----------------------------------------------

void flow_table::unlink(flow& f) noexcept {
  if (!f.in_wheel) return;
  if (f.wheel_prev != nullptr) f.wheel_prev->wheel_next = f.wheel_next;
  else wheel_[f.wheel_slot] = f.wheel_next;
  if (f.wheel_next != nullptr) f.wheel_next->wheel_prev = f.wheel_prev;
  f.wheel_prev = f.wheel_next = nullptr;
  f.in_wheel = false;
  --scheduled_;
}

void flow_table::schedule(flow& f, std::uint64_t second) {
  unlink(f);
  f.wheel_slot = static_cast<std::uint32_t>(second % wheel_slots);
  f.wheel_prev = nullptr;
  f.wheel_next = wheel_[f.wheel_slot];
  if (f.wheel_next != nullptr) f.wheel_next->wheel_prev = &f;
  wheel_[f.wheel_slot] = &f;
  f.in_wheel = true;
  ++scheduled_;
}

void flow_table::check(flow& f, std::uint64_t now, std::uint64_t hz, std::uint64_t earliest_s, std::vector<flow*>& expired) {
  const std::uint64_t last = f.last_tsc.load(std::memory_order_relaxed);
  const std::uint32_t timeout = timeout_of(f, f.state.load(std::memory_order_relaxed));
  // The same test as the walk's was: whole seconds idle, against the timeout.
  if (f.device->removed.load(std::memory_order_relaxed) || splice::seconds_since(last, now, hz) >= timeout) {
    unlink(f);
    expired.push_back(&f);
    return;
  }
  // Due at last + timeout: in the slot of that second, checked at the first
  // call in it or after (a call earlier in that second finds it not yet
  // idle enough and moves it to the next second). Never in a slot this call
  // is past, never further than the wheel reaches.
  const std::uint64_t due_s = (last + std::uint64_t{timeout} * hz) / hz;
  schedule(f, std::clamp(due_s, earliest_s, now / hz + wheel_slots - 1));
}

void flow_table::retire(retired_flow* r) { rcu_.retire(release_flow, r, 0); }

void flow_table::take_queued(std::uint64_t now, std::uint64_t hz, std::vector<flow*>& expired) {
  void* burst[256];
  unsigned n;
  while ((n = rte_ring_sc_dequeue_burst(queued_, burst, 256, nullptr)) != 0)
    for (unsigned i = 0; i < n; ++i) {
      flow& f = *static_cast<flow*>(burst[i]);
      if (f.erased) {  // its flag stays set: no worker queues it again
        auto zombie = zombies_.extract(&f);
        if (!zombie.empty()) retire(zombie.mapped());
        continue;
      }
      // Cleared before the state is read: a move after this read queues it again.
      f.queued.store(false);
      std::atomic_thread_fence(std::memory_order_seq_cst);
      check(f, now, hz, cursor_s_ + 1, expired);
    }
}

void flow_table::collect_expired(std::uint64_t now, std::uint64_t hz, bool removed_devices, std::vector<flow*>& expired) {
  const std::uint64_t now_s = now / hz;
  if (cursor_s_ == 0 || cursor_s_ > now_s) cursor_s_ = now_s - 1;  // the first call (or a clock gone back)
  take_queued(now, hz, expired);
  // Every second since the last call, each slot once even after a long stall.
  const std::uint64_t from = std::max(cursor_s_ + 1, now_s >= wheel_slots ? now_s - wheel_slots + 1 : 0);
  for (std::uint64_t s = from; s <= now_s; ++s) {
    cursor_s_ = s;
    flow* f = wheel_[s % wheel_slots];
    wheel_[s % wheel_slots] = nullptr;  // taken whole: a flow moved back into it is not met again in this call
    while (f != nullptr) {
      flow* next = f->wheel_next;
      f->in_wheel = false;
      f->wheel_prev = f->wheel_next = nullptr;
      --scheduled_;
      check(*f, now, hz, now_s + 1, expired);
      f = next;
    }
  }
  cursor_s_ = now_s;
  if (removed_devices)
    for_each([&](flow& f) {
      if (!f.device->removed.load(std::memory_order_relaxed) || !f.in_wheel) return;  // not in the wheel: expired above
      unlink(f);
      expired.push_back(&f);
    });
}

flow_census flow_table::census() const noexcept {
  std::int64_t tcp[5] = {}, udp = 0, icmp = 0, uplink = 0;
  for (unsigned w = 0; w < census_workers; ++w) {
    const worker_counts& c = counts_[w];
    uplink += static_cast<std::int64_t>(c.uplink.get());
    udp += static_cast<std::int64_t>(c.udp.get());
    icmp += static_cast<std::int64_t>(c.icmp.get());
    for (unsigned s = 0; s < 5; ++s)
      tcp[s] += static_cast<std::int64_t>(c.tcp_entered[s].get()) - static_cast<std::int64_t>(c.tcp_left[s].get());
  }
  // A move being counted while this reads may show for a moment on one side
  // only: never below zero.
  auto at_least_zero = [](std::int64_t v) { return static_cast<std::uint64_t>(std::max<std::int64_t>(v, 0)); };
  flow_census out;
  for (unsigned s = 0; s < 5; ++s) out.tcp[s] = at_least_zero(tcp[s] - static_cast<std::int64_t>(erased_tcp_[s]));
  out.udp = at_least_zero(udp - static_cast<std::int64_t>(erased_udp_));
  out.icmp = at_least_zero(icmp - static_cast<std::int64_t>(erased_icmp_));
  out.uplink = at_least_zero(uplink - static_cast<std::int64_t>(erased_uplink_));
  return out;
}

void flow_table::erase(flow* f, std::function<void(const flow&)> released) {
  unlink(*f);
  // Counted out in the state it leaves in; a worker's move after this fails.
  const splice::tcp_state last = f->state.exchange(erased_state);
  if (f->device_key.protocol == splice::ipproto_tcp) ++erased_tcp_[static_cast<unsigned>(last) % 5];
  else if (f->device_key.protocol == splice::ipproto_udp) ++erased_udp_;
  else ++erased_icmp_;
  if (f->uplink) ++erased_uplink_;
  // Out of its slots with its hash entries: a worker that loaded it from
  // either is inside its read-side section, which the grace period waits for.
  leave_slots(f);
  const std::int32_t device_pos = rte_hash_del_key(hash_, &f->device_key);
  const std::int32_t tailnet_pos = rte_hash_del_key(hash_, &f->tailnet_key);
  auto* r = new retired_flow{&held_.n, hash_, pool_, f, device_pos, tailnet_pos, std::move(released)};
  f->erased = true;
  // In the ring (or about to be: a worker set the flag and is enqueueing):
  // retired when taken out, so the ring never holds a freed flow.
  if (f->queued.exchange(true)) zombies_.emplace(f, r);
  else retire(r);
}

unsigned flow_table::size() const noexcept { return held_.n.load(std::memory_order_relaxed); }

}  // namespace lopower
