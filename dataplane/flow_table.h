#pragma once
// Spliced flows, shared by the workers: each flow is found under two keys,
// the device side (as the device sends: device -> peer) and the tailnet side
// (as replies arrive: peer -> lopower's tailnet address and the port
// allocated for the flow). Lookups are lock-free (rte_hash with
// RW_CONCURRENCY_LF). A worker adds a flow on a flow's first packet; rte_hash
// serialises concurrent adders (MULTI_WRITER_ADD), which is paid once per
// flow, never per packet. Only the control thread deletes (expiry, a device
// removed), and a deleted flow is freed after every worker's quiescent state.

#include <rte_hash.h>

#include <atomic>
#include <cstdint>
#include <functional>

#include "dataplane/rcu.h"
#include "dataplane/splice/flow_key.h"
#include "dataplane/splice/translate.h"
#include "dataplane/wg_session.h"

namespace lopower {

struct flow {
  splice::flow_key device_key;   // device -> peer, as the device sent it
  splice::flow_key tailnet_key;  // peer -> lopower:port, as replies arrive
  wg_peer* device = nullptr;     // where replies go (its lifetime: RCU, like the flow's)
  std::uint64_t created_tsc = 0;
  std::uint8_t owner_worker = 0;  // whose slice of the port range tailnet_key.dst_port is from
  // Stamped and moved on by whichever worker sees the flow's packets (plain
  // relaxed stores: the last writer wins); read by expiry.
  std::atomic<std::uint64_t> last_tsc{0};
  std::atomic<splice::tcp_state> state{splice::tcp_state::syn_sent};  // TCP only
  // A slot per worker (the device side and the tailnet side of a flow may be
  // on different queues); `lopower-ctl flows` sums them.
  shared_counter packets_out, bytes_out, packets_in, bytes_in;
};

class flow_table {
 public:
  flow_table(unsigned capacity, rcu_domain& rcu);
  ~flow_table();
  flow_table(const flow_table&) = delete;
  flow_table& operator=(const flow_table&) = delete;

  // Workers: the flow under either key, or nullptr.
  flow* find(const splice::flow_key& k) const noexcept;
  // Workers: `n` lookups at once, the hash's bucket reads overlapped
  // (rte_hash prefetches them): out[i] is the flow under *keys[i], or nullptr.
  void find_bulk(const splice::flow_key* const* keys, unsigned n, flow** out) const noexcept;
  // Workers: adds under both keys; false (nothing added, `f` not taken) when
  // either key is present already or the table is full.
  bool insert(flow* f) noexcept;

  // Control thread: every flow once (its device-side entry). `fn` must not
  // free the flow: the walk meets it again at its tailnet-side key.
  void for_each(const std::function<void(flow&)>& fn) const;
  // Control thread: unpublishes both keys; the flow is freed after a grace
  // period, then `released` runs with it (e.g. to give its port back).
  void erase(flow* f, std::function<void(const flow&)> released = {});
  unsigned size() const noexcept;  // flows (each holds two entries)
  unsigned capacity() const noexcept { return capacity_; }

 private:
  rte_hash* hash_ = nullptr;
  rcu_domain& rcu_;
  unsigned capacity_;
};

}  // namespace lopower
