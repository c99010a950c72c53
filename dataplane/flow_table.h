#pragma once
// Spliced flows, shared by the workers: each flow is found under two keys,
// the device side (as the device sends: device -> peer) and the tailnet side
// (as replies arrive: peer -> lopower's tailnet address and the port
// allocated for the flow). Lookups are lock-free (rte_hash with
// RW_CONCURRENCY_LF). A worker adds a flow on a flow's first packet; rte_hash
// serialises concurrent adders (MULTI_WRITER_ADD), which is paid once per
// flow, never per packet. Only the control thread deletes (expiry, a device
// removed), and a deleted flow is freed after every worker's quiescent state.
//
// Expiry is a timer wheel the control thread keeps (one slot a second): a
// flow sits in the slot of the second its idle timeout would run out, as of
// its last packet when it was (re)scheduled. When the slot comes round the
// flow is checked against its real last packet: idle past its timeout, it
// is handed back to be erased; else it moves to its new deadline. So the
// control thread touches a flow about once per timeout, not once a second.
// The wheel learns of a flow through a multi-producer ring of flows to
// check: a worker queues a flow it inserts, and one whose TCP state moved
// to a shorter timeout (a FIN, a RST); a flag in the flow keeps it in the
// ring once at most, so the ring cannot fill. The census (flows by
// protocol and TCP state) is kept as counts: per worker, flows made and TCP
// state moves (single-writer counters), less what the control thread
// erased; no walk.
//
// The flows themselves come from the table's own DPDK mempool, sized from
// its capacity (allocate / discard), not from `new`: on hugepages, as
// lopowerd runs, a packet's flow lines then cost no TLB miss of their own.

#include <rte_hash.h>
#include <rte_mempool.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

#include "dataplane/lcore_stats.h"
#include "dataplane/dpdk_array.h"
#include "dataplane/rcu.h"
#include "dataplane/splice/flow_key.h"
#include "dataplane/splice/translate.h"
#include "dataplane/wg_session.h"

namespace lopower {

// Who opened a flow. A spliced flow: a device, toward the tailnet. An
// inbound flow: a tailnet peer, toward a device (route mode, a port
// forward); its keys are the same two sides, seen the other way round.
enum class flow_kind : std::uint8_t {
  spliced,
  inbound,         // no translation but what the keys differ in (route mode without SNAT: none)
  inbound_ported,  // as inbound, its device-side destination port allocated here (SNAT): given back on expiry
};

// A flow's traffic, counted by the workers that carry it: a slot per
// worker below counter_worker_slots holding both directions' counters, so
// a packet writes one line of them (four slots a line: as before, two
// workers carrying one flow's two directions may share it); the control
// thread and any further worker share an atomic slot. Summed on read
// (`lopower-ctl flows`). Lines of their own per worker were measured: the
// flow grew from 7 lines to 11 and 50 000 flows ran slower, not faster.
class flow_traffic {
 public:
  // A worker's packet of `bytes`; `toward_device`: the device receives it.
  void add(unsigned worker, bool toward_device, std::uint64_t bytes) noexcept {
    if (worker >= counter_worker_slots) return add_shared(toward_device, bytes);
    slot& s = slots_[worker];
    (toward_device ? s.packets_in : s.packets_out).add();
    (toward_device ? s.bytes_in : s.bytes_out).add(bytes);
  }
  std::uint64_t packets_out() const noexcept { return sum(&slot::packets_out, shared_.packets_out); }
  std::uint64_t bytes_out() const noexcept { return sum(&slot::bytes_out, shared_.bytes_out); }
  std::uint64_t packets_in() const noexcept { return sum(&slot::packets_in, shared_.packets_in); }
  std::uint64_t bytes_in() const noexcept { return sum(&slot::bytes_in, shared_.bytes_in); }
  // What `worker` writes (prefetched with the flow).
  const void* slot_of(unsigned worker) const noexcept {
    return worker < counter_worker_slots ? static_cast<const void*>(&slots_[worker]) : &shared_;
  }

 private:
  struct slot {
    counter packets_out, bytes_out, packets_in, bytes_in;
  };
  struct shared_slot {
    std::atomic<std::uint64_t> packets_out{0}, bytes_out{0}, packets_in{0}, bytes_in{0};
  };
  void add_shared(bool toward_device, std::uint64_t bytes) noexcept {
    (toward_device ? shared_.packets_in : shared_.packets_out).fetch_add(1, std::memory_order_relaxed);
    (toward_device ? shared_.bytes_in : shared_.bytes_out).fetch_add(bytes, std::memory_order_relaxed);
  }
  std::uint64_t sum(counter slot::*field, const std::atomic<std::uint64_t>& shared) const noexcept {
    std::uint64_t total = shared.load(std::memory_order_relaxed);
    for (const slot& s : slots_) total += (s.*field).get();
    return total;
  }
  slot slots_[counter_worker_slots];
  shared_slot shared_;
};
static_assert(sizeof(flow_traffic) % 32 == 0 && 64 % (4 * sizeof(counter)) == 0,
              "a worker's slot never straddles two lines once the counters start a line");

// Laid out for the fast path: the first line holds all a packet toward the
// tailnet reads and writes but its counters (the reply-side key it is
// rewritten with, the device, the stamp, kind and state); a reply reads the
// second line too (the device-side key); a worker's counters for both
// directions lie together, from the third line on (flow_traffic). So among
// many flows a packet misses on two or three lines of its flow, not four or
// five (worker::prefetch_flow).
struct alignas(64) flow {
  // --- line 0: the fast path's
  // spliced: peer -> lopower:port, as replies arrive; inbound: peer ->
  // (the device | lopower's tailnet address:forwarded port), as the peer sent it.
  splice::flow_key tailnet_key;
  wg_peer* device = nullptr;     // where replies go (its lifetime: RCU, like the flow's)
  // Stamped and moved on by whichever worker sees the flow's packets (plain
  // relaxed stores: the last writer wins); read by expiry.
  std::atomic<std::uint64_t> last_tsc{0};
  std::atomic<splice::tcp_state> state{splice::tcp_state::syn_sent};  // TCP only
  flow_kind kind = flow_kind::spliced;
  // An uplink flow (NATed to the uplink port's address; tailnet_key is then
  // the reply side there: remote -> uplink address:NAT port), else spliced.
  bool uplink = false;
  std::uint8_t owner_worker = 0;  // whose slice of the port range tailnet_key.dst_port is from
  // A device's packet rewritten to come from tailnet_key's destination: the
  // checksum differences, the flow's (splice::rewrite_deltas).
  splice::rewrite_deltas out_deltas;
  // --- line 1: read by replies
  // spliced: device -> peer, as the device sent it; inbound: device ->
  // (lopower's device-side address:port | the peer), as the device replies.
  alignas(64) splice::flow_key device_key;
  std::uint64_t created_tsc = 0;

  // Expiry (flow_table's wheel). `queued`: in the table's ring of flows to
  // check (set by whoever queues it: a worker, or erase; cleared by the
  // control thread as it takes the flow out). The rest is the control
  // thread's alone.
  std::atomic<bool> queued{false};
  bool in_wheel = false;
  bool erased = false;  // unpublished, waiting for its ring entry before it is retired
  std::uint32_t wheel_slot = 0;
  // A reply rewritten to go to device_key's source: the differences.
  splice::rewrite_deltas in_deltas;
  // --- lines 2 to 6
  alignas(64) flow_traffic traffic;
  flow* wheel_prev = nullptr;
  flow* wheel_next = nullptr;
};
static_assert(offsetof(flow, out_deltas) + sizeof(splice::rewrite_deltas) <= 64,
              "what a packet toward the tailnet reads fits the flow's first line");
static_assert(offsetof(flow, device_key) == 64 && offsetof(flow, in_deltas) + sizeof(splice::rewrite_deltas) <= 128,
              "what a reply reads besides the first line fits the second");
static_assert(sizeof(flow) == 7 * 64, "a flow is seven lines (50 000 of them: 22 MB)");

// The spliced flows by protocol and (for TCP) state.
struct flow_census {
  std::uint64_t tcp[5] = {};  // by splice::tcp_state
  std::uint64_t udp = 0, icmp = 0;
  std::uint64_t uplink = 0;  // of all the above, those NATed to the uplink
};

class flow_table {
 public:
  flow_table(unsigned capacity, rcu_domain& rcu);
  ~flow_table();
  flow_table(const flow_table&) = delete;
  flow_table& operator=(const flow_table&) = delete;

  // Workers: a blank flow from the table's pool, or nullptr when the pool
  // is exhausted (flows erased but still in their grace period, beyond the
  // headroom kept for them). It goes to insert(), or back with discard().
  flow* allocate() noexcept;
  // Workers: a flow from allocate() that was never inserted.
  void discard(flow* f) noexcept;

  // Workers: the flow under either key, or nullptr.
  flow* find(const splice::flow_key& k) const noexcept;
  // Workers: `n` lookups at once: out[i] is the flow under *keys[i], or
  // nullptr. Each key's direct slot first (a flow takes the slot of each of
  // its keys' hashes when it is free: one load, and a compare with the key
  // the slot names); the keys no slot answers go to rte_hash in one bulk
  // lookup, its bucket reads overlapped. The hash's lock-free bulk lookup
  // of a 40-byte key was ~180 instructions a packet in the 64-byte splice.
  void find_bulk(const splice::flow_key* const* keys, unsigned n, flow** out) const noexcept;
  // Workers: adds under both keys and queues the flow for the control
  // thread's wheel; false (nothing added, `f` not taken) when either key is
  // present already or the table is full. `f->owner_worker` is the caller's
  // worker index (the census counts the flow there), `f->state` the state
  // it starts in.
  bool insert(flow* f) noexcept;
  // Workers: a TCP segment with `flags` seen in direction `dir` moves the
  // flow's state (splice::next_state; a compare-and-swap, so a move two
  // workers race on is made and counted once). A move to a shorter timeout
  // queues the flow for the wheel. `worker`: the caller's worker index.
  void track_tcp(flow& f, std::uint8_t flags, splice::flow_direction dir, unsigned worker) noexcept;

  // Control thread: every flow once (its device-side entry). `fn` must not
  // free the flow: the walk meets it again at its tailnet-side key.
  void for_each(const std::function<void(flow&)>& fn) const;
  // Control thread, once a second (`now`: a TSC reading, `hz` its rate):
  // takes in the flows queued since the last call, then checks the flows
  // whose deadline has come; appends to `expired` each one idle past its
  // timeout (splice::idle_timeout) or whose device is removed. With
  // `removed_devices`, every flow of the table is checked for a removed
  // device too (a walk: only when a device went away). The flows stay in
  // the table: erase() them.
  void collect_expired(std::uint64_t now, std::uint64_t hz, bool removed_devices, std::vector<flow*>& expired);
  // Control thread: the flows in the table by protocol and TCP state, from
  // the counts (no walk).
  flow_census census() const noexcept;
  // Control thread: unpublishes both keys; the flow is freed after a grace
  // period, then `released` runs with it (e.g. to give its port back).
  void erase(flow* f, std::function<void(const flow&)> released = {});
  unsigned size() const noexcept;  // flows (each holds two entries)
  unsigned capacity() const noexcept { return capacity_; }
  // Control thread: flows in the wheel (every flow of the table, once taken in).
  std::size_t scheduled() const noexcept { return scheduled_; }

  // One slot a second, more slots than the longest timeout (2 h 4 min) has seconds.
  static constexpr std::uint32_t wheel_slots = 8192;
  // Worker indices the census counts apart (flow::owner_worker is 8 bits).
  static constexpr unsigned census_workers = 256;

  struct retired_flow;  // an erased flow on its way out (flow_table.cc)

 private:
  // Per worker, one writer: flows inserted by protocol, TCP moves by state.
  struct alignas(64) worker_counts {
    counter udp, icmp, uplink;
    counter tcp_entered[5], tcp_left[5];
  };
  bool queue(flow& f) noexcept;
  void take_queued(std::uint64_t now, std::uint64_t hz, std::vector<flow*>& expired);
  // The flow checked at `now`: expired, or (re)scheduled no earlier than `earliest_s`.
  void check(flow& f, std::uint64_t now, std::uint64_t hz, std::uint64_t earliest_s, std::vector<flow*>& expired);
  void schedule(flow& f, std::uint64_t second);
  void unlink(flow& f) noexcept;
  void retire(retired_flow* r);
  void destroy_all() noexcept;
  // The direct slots (find_bulk): `f` takes each of its keys' slots that is
  // free, and leaves those it holds before it is unpublished. A slot holds
  // the flow and which of its keys took it (flow_table.cc), or 0.
  std::atomic<std::uintptr_t>& slot_of(std::uint32_t hash) const noexcept { return slots_[hash & slot_mask_]; }
  void take_slots(flow* f) noexcept;
  void leave_slots(flow* f) noexcept;
  void find_in_hash(const splice::flow_key* const* keys, const std::uint32_t* hashes, const std::uint16_t* which, unsigned n,
                    flow** out) const noexcept;

  // Flows holding entries in the hash (from insert until release_flow
  // after the grace period: what rte_hash_count / 2 would say). Counted
  // here because rte_hash_count, with the lock-free and multi-writer flags,
  // sums a free-slot cache for every possible lcore (128 lines) and was 4 %
  // of a worker making a flow of every packet. Written once per flow made
  // or freed, never per packet; a line of its own, so the workers' writes
  // do not evict the pointers every packet reads.
  struct alignas(64) flow_count {
    std::atomic<unsigned> n{0};
  };
  flow_count held_;
  rte_hash* hash_ = nullptr;
  // Four per flow the table can hold (two per key): most keys find their
  // slot free even in a full table. 2 MB at the default 65 536 flows.
  dpdk_array<std::atomic<std::uintptr_t>> slots_;
  std::uint32_t slot_mask_ = 0;
  rte_mempool* pool_ = nullptr;  // struct flow's storage
  rte_ring* queued_ = nullptr;  // flow*: multi-producer (workers, and erase never), one consumer
  rcu_domain& rcu_;
  unsigned capacity_;
  std::unique_ptr<worker_counts[]> counts_;
  // The control thread's.
  std::vector<flow*> wheel_;      // heads of doubly linked lists, by second % wheel_slots
  std::uint64_t cursor_s_ = 0;    // the last second whose slot was checked (0: none yet)
  std::size_t scheduled_ = 0;
  std::uint64_t erased_udp_ = 0, erased_icmp_ = 0, erased_uplink_ = 0, erased_tcp_[5] = {};
  std::unordered_map<flow*, retired_flow*> zombies_;  // erased while queued: retired once taken out of the ring
};

}  // namespace lopower
