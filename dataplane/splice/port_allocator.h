#pragma once
// The tailnet-side source port (or ICMP echo identifier) of each spliced
// flow. lopower has one tailnet address per family, so every device flow
// leaves from it; two devices using the same source port toward the same
// service must get different ports, or their replies could not be told
// apart. A port is therefore unique per destination (family, protocol,
// destination address, destination port), and may be reused toward
// different destinations: each of them has the whole range
// ("endpoint-dependent" mapping, RFC 4787 §4.1; the same 5-tuple may never
// be used twice, which is all the reverse lookup needs).
//
// Selection is RFC 6056 §3.3.4 "Algorithm 4: Double-Hash Port Selection":
// the candidate is offset(destination) + cursor[bucket(destination)], both
// from keyed hashes of the destination, and the cursor moves on past every
// port handed out. So:
//   - ports toward one destination are spread over the range from a point
//     an outsider cannot guess (the seed is secret in lopowerd);
//   - a released port is not handed to the same destination again until
//     the cursor has gone round the range, which keeps a new connection
//     off a 4-tuple the peer may still hold in TIME-WAIT;
//   - it is deterministic given the seed and the sequence of calls (tests).
// Candidates in use are skipped by probing on; because a cursor only moves
// forward, a port found busy is not probed again before the cursor wraps,
// and one wrap (range probes) serves at least range - used allocations:
// amortised probes per allocation are at most 1 / (1 - load), O(1) while a
// destination's share of the range is not nearly full. A destination whose
// every port is in use is refused at once (a count per destination), and a
// free port, if any, is always found.
//
// Memory is fixed at construction (no allocation on the packet path):
// max_flows records plus two open-addressed tables at load <= 1/2, 60 to
// 92 bytes per flow (the tables are rounded up to powers of two).
//
// State is per worker and unsynchronised: each worker owns a disjoint slice
// of the range (worker_index of worker_count), so no locks are needed and
// no two workers can hand out the same port. A port is released by the
// worker that allocated it: slice_owner() tells which one that is.

#include <cstdint>
#include <vector>

#include "dataplane/splice/flow_key.h"
#include "lopower/net_addr.h"
#include "lopower/raw_key.h"

namespace lopower::splice {

// Where a flow goes on the tailnet side: the part of its 5-tuple a port is
// unique within. POD with every byte defined, like flow_key.
struct destination {
  std::uint8_t addr[16];  // IPv4 in the first four bytes, the rest zero
  std::uint16_t port;     // 0 for ICMP echo (an identifier is unique per address)
  ip_family family;
  std::uint8_t protocol;
  // Byte for byte, as flow_key's (lopower/raw_key.h): every new flow's port search.
  bool operator==(const destination& o) const noexcept { return same_key_bytes(*this, o); }
};
static_assert(sizeof(destination) == 20);

// The destination of a tailnet-side key (ICMP: port 0).
destination destination_of(const flow_key& k) noexcept;

struct port_allocator_config {
  std::uint16_t first_port = 1024;  // the range shared out among workers
  std::uint16_t last_port = 65535;
  std::uint16_t worker_index = 0;
  std::uint16_t worker_count = 1;
  std::uint32_t max_flows = 1u << 16;  // ports this worker may hold at once, over all destinations
  std::uint64_t seed = 0;              // keys the hashes: random in lopowerd, fixed in tests
  // Never handed out (lopower's own listeners and port forwards on its
  // tailnet address, whose inbound tuples must not look like replies).
  std::vector<std::uint16_t> excluded;
};

enum class allocation_status : std::uint8_t {
  ok,
  exhausted,  // every port of this worker's slice is in use toward this destination
  full,       // max_flows ports held
};

struct port_allocation {
  allocation_status status = allocation_status::ok;
  std::uint16_t port = 0;  // valid when status is ok
};

class port_allocator {
 public:
  // Throws std::invalid_argument for an empty range or slice, a worker
  // index out of range, max_flows of 0 or above 2^28, or a slice with every
  // port excluded: configuration errors, refused at start-up.
  explicit port_allocator(const port_allocator_config& config);

  port_allocation allocate(const destination& d) noexcept;
  // False (and nothing changed) if `port` is not allocated toward `d`.
  bool release(const destination& d, std::uint16_t port) noexcept;
  bool in_use(const destination& d, std::uint16_t port) const noexcept;

  std::uint32_t used() const noexcept { return used_; }
  std::uint32_t used(const destination& d) const noexcept;
  std::uint16_t slice_first() const noexcept { return slice_first_; }
  std::uint16_t slice_last() const noexcept { return static_cast<std::uint16_t>(slice_first_ + slice_size_ - 1); }
  // Ports of the slice that may be handed out toward one destination.
  std::uint32_t ports_per_destination() const noexcept { return usable_; }
  // Candidates looked at so far (for the amortised-cost claim, and metrics).
  std::uint64_t probes() const noexcept { return probes_; }

  // The first port of worker `index`'s slice of [first, last] shared by
  // `count` workers; slices differ in size by at most one port.
  static std::uint16_t slice_start(std::uint16_t first, std::uint16_t last, std::uint16_t count,
                                   std::uint16_t index) noexcept;
  // The worker whose slice holds `port`; `count` if none does.
  static std::uint16_t slice_owner(std::uint16_t first, std::uint16_t last, std::uint16_t count,
                                   std::uint16_t port) noexcept;

 private:
  struct record {
    destination key;
    std::uint32_t used;
  };
  // Open-addressed, linear probing, deleted by backward shift (no
  // tombstones, so probe lengths do not grow with churn).
  struct destination_slot {
    std::uint32_t record_plus_one;  // 0: empty
    std::uint32_t hash;
  };
  struct port_slot {
    std::uint32_t record_plus_one;  // 0: empty
    std::uint32_t port;
  };

  std::uint64_t destination_hash(const destination& d, std::uint64_t salt) const noexcept;
  std::uint32_t port_home(std::uint32_t record_plus_one, std::uint32_t port) const noexcept;
  std::uint32_t find_record(const destination& d, std::uint32_t hash) const noexcept;  // record + 1, or 0
  std::uint32_t add_record(const destination& d, std::uint32_t hash) noexcept;
  void remove_record(std::uint32_t record_plus_one) noexcept;
  std::uint32_t find_port(std::uint32_t record_plus_one, std::uint32_t port) const noexcept;  // slot, or mask + 1
  void remove_port_slot(std::uint32_t slot) noexcept;

  std::uint16_t slice_first_;
  std::uint32_t slice_size_;
  std::uint32_t usable_;
  std::uint32_t max_flows_;
  std::uint64_t seed_;
  std::uint32_t used_ = 0;
  std::uint64_t probes_ = 0;
  std::vector<bool> excluded_;               // per port of the slice
  std::vector<record> records_;              // max_flows: a live destination holds at least one port
  std::vector<std::uint32_t> free_records_;  // indexes into records_
  std::vector<destination_slot> destinations_;
  std::vector<port_slot> ports_;
  std::vector<std::uint32_t> cursors_;       // RFC 6056's table of per-bucket counters
};

}  // namespace lopower::splice
