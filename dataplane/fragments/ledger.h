#pragma once
// The admission ledger in front of a worker's reassembly table: which
// datagrams are in progress, who started them, and which bytes of each are
// already held. Pure C++ (no DPDK), one per worker, no locks.
//
// DPDK's rte_ip_frag keeps fragments and chains them, but takes whatever it
// is given: a second first or last fragment throws the datagram away,
// overlaps show only when the sizes stop adding up, and a table full of one
// sender's datagrams refuses everyone's new ones until they time out. The
// ledger sees each fragment first, so the table only ever gets fragments
// that fit together:
//   - a fragment inside one already held (a duplicate) is dropped alone, as
//     Linux does;
//   - one that overlaps another in part, lies past the end the last fragment
//     gave, or is a second last fragment, gives the datagram up (RFC 5722;
//     Linux does the same for IPv4): its later fragments are dropped until it
//     times out, and it is never delivered;
//   - so is one more than the table has room for (a first, a last and six
//     in between: RTE_LIBRTE_IP_FRAG_MAX_FRAG = 8);
//   - a new datagram is refused when its owner (the device or tailnet peer
//     it came from) already has its share in progress (`per_owner`, unless
//     the caller gives it another), or `max_datagrams` are: a flood from one
//     device uses up its own share, never the others'.
// A datagram times out `timeout` cycles after its first fragment, measured
// from the timestamp the table gets too, so both forget it together.

#include <cstdint>
#include <vector>

#include "dataplane/fragments/fragment_header.h"

namespace lopower::fragments {

// DPDK's table holds at most this many fragments of one datagram.
inline constexpr unsigned max_fragments = 8;

struct ledger_limits {
  std::uint32_t max_datagrams = 256;  // in progress at once
  std::uint32_t per_owner = 16;       // of which one owner may have (unless given another share)
  std::uint64_t timeout = 0;          // cycles from the first fragment
};

enum class admission : std::uint8_t {
  held,         // a new piece: into the table, more are awaited
  complete,     // a new piece, and the last one missing: the table hands the datagram over
  duplicate,    // lies inside a piece already held: drop it alone
  given_up,     // contradicts the others (or its datagram was given up before): drop it
  owner_limit,  // would start a datagram its owner has no share left for: drop it
  full,         // would start a datagram with `max_datagrams` in progress: drop it
};

struct admission_result {
  admission verdict = admission::held;
  // A datagram of the same key had timed out and was forgotten to make way
  // for this one (the sweep had not come by yet): its fragments are dropped.
  std::uint8_t timed_out_port = 0;
  std::uint16_t timed_out_fragments = 0;
};

class ledger {
 public:
  // `seed` keys the hash, so senders cannot aim their datagrams at one chain.
  explicit ledger(const ledger_limits& limits, std::uint64_t seed = 0);

  // A fragment from `owner` (never null) that came in on `port`; `share`:
  // the datagrams `owner` may have in progress (0: limits().per_owner).
  admission_result admit(const fragment_view& f, const void* owner, std::uint8_t port, std::uint64_t now,
                         std::uint32_t share = 0) noexcept;
  // Forgets a datagram (the table delivered it although the ledger did not
  // expect it; true if it was known).
  bool forget(const datagram_key& key) noexcept;
  // Forgets every datagram started more than `timeout` cycles before `now`,
  // calling on_timeout(port, fragments held) for each.
  template <class F>
  void expire(std::uint64_t now, F&& on_timeout) noexcept {
    for (std::size_t i = 0; i < entries_.size();) {
      const entry& e = entries_[i];
      if (e.owner == nullptr || !timed_out(e, now)) {
        ++i;
        continue;
      }
      on_timeout(e.port, static_cast<std::uint16_t>(e.pieces));
      erase(i);  // the slot now holds a later entry (or none): look at it again
    }
  }

  std::uint32_t in_progress() const noexcept { return size_; }
  std::uint32_t held_by(const void* owner) const noexcept;
  const ledger_limits& limits() const noexcept { return limits_; }

 private:
  struct range {
    std::uint16_t begin, end;
  };
  struct entry {
    datagram_key key;
    const void* owner = nullptr;  // null: a free slot
    std::uint64_t start = 0;
    std::uint32_t total = 0;      // the payload's size, once the last fragment came; 0 before
    std::uint32_t held_bytes = 0;
    range pieces_held[max_fragments];
    std::uint8_t pieces = 0;      // handed to the table
    std::uint8_t middles = 0;     // of them, neither first nor last
    bool has_first = false;
    bool gave_up = false;
    std::uint8_t port = 0;
  };
  struct owner_count {
    const void* owner = nullptr;  // null: a free slot
    std::uint32_t count = 0;
  };

  bool timed_out(const entry& e, std::uint64_t now) const noexcept { return now - e.start > limits_.timeout; }
  admission place(entry& e, const fragment_view& f) noexcept;
  std::size_t home(const datagram_key& key) const noexcept;
  std::size_t home(const void* owner) const noexcept;
  std::size_t find(const datagram_key& key) const noexcept;  // its slot, or npos
  std::size_t start(const fragment_view& f, const void* owner, std::uint8_t port, std::uint64_t now) noexcept;
  void erase(std::size_t slot) noexcept;
  owner_count* count_of(const void* owner) noexcept;
  void add_owner(const void* owner) noexcept;
  void remove_owner(const void* owner) noexcept;

  ledger_limits limits_;
  std::uint64_t seed_;
  std::vector<entry> entries_;       // open addressing, linear probing, power of two
  std::vector<owner_count> owners_;  // likewise
  std::uint32_t size_ = 0;
};

}  // namespace lopower::fragments
