#pragma once
// A worker's IP reassembly: DPDK's rte_ip_frag table (one per worker, no
// locks) behind the admission ledger (ledger.h), and what the rest of the
// path needs from its output: one segment, checksums right.
//
// What goes in: an inner packet in one segment, starting at its IP header,
// exactly its IP length long (WireGuard's padding trimmed), that inspect()
// called a fragment. What comes out: nothing yet (held), the datagram
// (whole), or nothing and a drop reason. The fragment's mbuf is consumed
// in every case. Held fragments are bounded: at most max_datagrams
// datagrams of at most 8 fragments each, per worker.

#include <rte_ip_frag.h>
#include <rte_mbuf.h>

#include <cstdint>

#include "dataplane/fragments/fragment_header.h"
#include "dataplane/fragments/ledger.h"
#include "lopower/drop_reasons.h"

namespace lopower::fragments {

// A couple of seconds, as in the issue this answers (Linux waits 30: far
// too long for a gateway that must not hoard buffers under a flood).
inline constexpr unsigned reassembly_timeout_ms = 2000;

struct reassembly_limits {
  ledger_limits ledger;
  // Tailroom a reassembled packet must keep: WireGuard's padding (up to 15
  // bytes) and tag (16) are appended to it in place.
  std::uint16_t tailroom = 32;
};

struct reassembly_outcome {
  enum kind_t : std::uint8_t { held, whole, dropped } kind = held;
  rte_mbuf* packet = nullptr;  // whole: the datagram, one segment
  drop_reason why{};           // dropped: the fragment (or the datagram) counts under this
  // Fragments of an earlier datagram with the same key that timed out just
  // now (fragment_timeout, counted on the port it came in on).
  std::uint8_t timed_out_port = 0;
  std::uint16_t timed_out = 0;
};

class reassembler {
 public:
  // Throws std::runtime_error when DPDK cannot make the table.
  reassembler(const reassembly_limits& limits, std::uint64_t seed, int socket_id);
  ~reassembler();  // frees every fragment still held
  reassembler(const reassembler&) = delete;
  reassembler& operator=(const reassembler&) = delete;

  // `m` holds the fragment `f` (inspect()'s view of it) from `owner`, which
  // came in on `port`; `now` is rte_rdtsc()-like, never going back; `share`
  // as for ledger::admit.
  reassembly_outcome add(rte_mbuf* m, const fragment_view& f, const void* owner, std::uint8_t port,
                         std::uint64_t now, std::uint32_t share = 0) noexcept;

  // Between bursts: frees what the table let go of, and a few times per
  // timeout forgets the datagrams that timed out, calling
  // on_timeout(port, fragments) for each.
  template <class F>
  void tick(std::uint64_t now, F&& on_timeout) noexcept {
    if (death_row_.cnt != 0) rte_ip_frag_free_death_row(&death_row_, prefetch);
    if (now - last_sweep_ < sweep_interval_) return;
    last_sweep_ = now;
    ledger_.expire(now, on_timeout);
    expire_table(now);
  }

  std::uint32_t in_progress() const noexcept { return ledger_.in_progress(); }
  std::uint32_t held_by(const void* owner) const noexcept { return ledger_.held_by(owner); }

 private:
  static constexpr std::uint32_t prefetch = 3;
  rte_mbuf* whole_packet(rte_mbuf* chain, drop_reason& why) noexcept;
  void make_room_on_death_row() noexcept;
  void expire_table(std::uint64_t now) noexcept;

  reassembly_limits limits_;
  ledger ledger_;
  rte_ip_frag_tbl* table_ = nullptr;
  rte_ip_frag_death_row death_row_{};
  std::uint64_t sweep_interval_;
  std::uint64_t last_sweep_ = 0;
};

}  // namespace lopower::fragments
