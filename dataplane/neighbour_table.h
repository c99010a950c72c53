#pragma once
// Next-hop MAC addresses learned from the ARP and ND traffic the workers see.
// One writer (the control thread drains the workers' notes into it) and
// lock-free readers (rte_hash RW_CONCURRENCY_LF): the control thread's
// route_udp, and the workers' uplink NAT (its next hops), once the table
// is shared with them (share_with_workers).
// Bounded for good: entries age out, and a full table gives up its least
// recently updated entry (what may enter at all is dataplane's policy:
// on-link, asked for or asking for lopower).

#include <rte_ether.h>
#include <rte_hash.h>

#include <cstdint>
#include <map>
#include <vector>

#include "dataplane/classifier.h"
#include "dataplane/rcu.h"
#include "lopower/net_addr.h"

namespace lopower {

class neighbour_table {
 public:
  struct entry {
    std::uint16_t port_id;
    ip_address ip;
    rte_ether_addr mac;
    std::uint64_t updated_ms;  // CLOCK_MONOTONIC milliseconds
  };

  explicit neighbour_table(unsigned capacity);
  ~neighbour_table();
  neighbour_table(const neighbour_table&) = delete;
  neighbour_table& operator=(const neighbour_table&) = delete;

  // Control thread only: adds or updates the binding; when the table is
  // full, the least recently updated entry makes room. False only if the
  // hash refuses it anyway.
  bool learn(const neighbour_note& note, std::uint64_t now_ms);
  bool contains(std::uint16_t port_id, ip_family family, const std::uint8_t* ip) const;
  // Control thread only: removes entries not updated for `max_age_ms`;
  // how many. (Deleting is safe: the control thread is the only reader.)
  std::size_t expire(std::uint64_t now_ms, std::uint64_t max_age_ms);
  std::size_t capacity() const { return capacity_; }
  // Control thread, before workers read the table: a removed entry's slot
  // is then freed only after every worker has passed a quiescent state
  // (without it, at once: safe while the control thread is the only reader).
  void share_with_workers(rcu_domain& rcu) { rcu_ = &rcu; }
  // Any thread, lock-free.
  bool lookup(std::uint16_t port_id, const ip_address& ip, rte_ether_addr* mac) const noexcept;
  // Control thread only: a copy for status.
  std::vector<entry> entries() const;
  std::size_t size() const { return mirror_.size(); }

 private:
  struct key {
    std::uint16_t port_id;
    std::uint8_t family;
    std::uint8_t pad;
    std::uint8_t ip[16];
  };
  using mirror_key = std::tuple<std::uint16_t, int, std::array<std::uint8_t, 16>>;
  static key make_key(std::uint16_t port_id, ip_family family, const std::uint8_t* ip);
  void forget(const mirror_key& k);

  rte_hash* hash_ = nullptr;
  rcu_domain* rcu_ = nullptr;
  std::size_t capacity_ = 0;
  std::map<mirror_key, entry> mirror_;
};

}  // namespace lopower
