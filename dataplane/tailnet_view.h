#pragma once
// What the workers need to know of the tailnet, published by the control
// thread whenever the netmap changes it: lopower's own tailnet addresses
// (local services answer there) and the packet filter inbound tailnet
// traffic must pass. Immutable once published; replaced as a whole (RCU).

#include <compare>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "dataplane/inner_packet.h"
#include "dataplane/packet_filter.h"

namespace lopower {

// Where a spliced flow goes: the tailnet peer whose AllowedIPs hold the
// destination (the peer's lifetime: RCU, retired no sooner than the view).
struct tailnet_route {
  ip_prefix prefix;
  wg_peer* peer = nullptr;
  // The prefix as two masked 64-bit words (bytes as packets carry them; IPv4
  // in the first four), built once by the control thread, so that the
  // worker's per-packet lookup compares two words instead of walking the
  // prefix byte by byte through an ip_address copy.
  std::uint64_t masked[2]{}, mask[2]{};

  tailnet_route(const ip_prefix& p, wg_peer* to) noexcept;
  bool holds(bool ipv6, const std::uint64_t dst[2]) const noexcept {
    return ipv6 == (prefix.address.family == ip_family::v6) && (dst[0] & mask[0]) == masked[0] &&
           (dst[1] & mask[1]) == masked[1];
  }
};

// The tailnet's routes: every peer's AllowedIPs but default routes (those
// are `tailnet_view::exit_node`'s). Built by the control thread (`add` each
// prefix, then `finish`) before the view is published; immutable after, so
// the workers read it without locks.
//
// Nearly every route is a peer's own address (/32, /128): those go into
// sorted arrays, one per family, found by binary search, so a lookup costs
// log2(peers) compares on a tailnet of thousands rather than one per route
// (rte_lpm is no fit: its 2^24-entry table per view, two views alive at each
// swap, in processes the tests start with a few MB of EAL memory). A host
// route is always the most specific match, so it is tried first; the
// remaining (few) subnet routes are scanned longest first.
//
// Two peers claiming one prefix: the one added first takes it (publish
// order), for host and subnet routes alike.
class tailnet_routes {
 public:
  // Default routes (length 0) are left out: egress decides who uses them.
  void add(const ip_prefix& prefix, wg_peer* peer);
  // Sorts what `add` gave since the last `finish` into the tables (routes
  // added before it keep precedence over equal ones added after); until
  // then a lookup does not see them. dataplane::publish_tailnet_view
  // finishes what its caller did not.
  void finish();

  // The peer whose route is the most specific holding `dst` (4 or 16 bytes,
  // network order), or nullptr. Allocation-free.
  wg_peer* lookup(bool ipv6, const std::uint8_t* dst) const noexcept;
  // The finished routes (a host route claimed twice counted once).
  std::size_t size() const noexcept { return v4_hosts_.keys.size() + v6_hosts_.keys.size() + subnets_.size(); }

 private:
  // An address as big-endian words: sorted by key is sorted by address.
  struct v6_key {
    std::uint64_t high = 0, low = 0;
    auto operator<=>(const v6_key&) const = default;
  };
  template <class Key>
  struct host_table {
    std::vector<Key> keys;  // sorted, unique; keys[i] is peers[i]'s
    std::vector<wg_peer*> peers;
    void merge(std::vector<std::pair<Key, wg_peer*>> added);
    wg_peer* find(const Key& key) const noexcept;
  };

  host_table<std::uint32_t> v4_hosts_;
  host_table<v6_key> v6_hosts_;
  std::vector<tailnet_route> subnets_;  // longest prefixes first: the first match is the most specific
  std::vector<tailnet_route> pending_;  // added, not yet finished
};

struct tailnet_view {
  bool has_v4 = false, has_v6 = false;
  std::uint32_t v4_be = 0;
  std::uint8_t v6[16]{};
  std::vector<filter_match> filter;  // empty: nothing is allowed in
  tailnet_routes routes;  // never a default route: that is `exit_node`'s
  // The chosen exit node (its 0.0.0.0/0 and ::/0): where devices whose
  // egress is "exit" send what no route above takes. Null: none available.
  wg_peer* exit_node = nullptr;

  wg_peer* route(bool ipv6, const std::uint8_t* dst) const noexcept { return routes.lookup(ipv6, dst); }
  // lopower's tailnet address of a family, or nullptr when it has none.
  const std::uint8_t* own(bool ipv6) const noexcept { return ipv6 ? (has_v6 ? v6 : nullptr) : (has_v4 ? reinterpret_cast<const std::uint8_t*>(&v4_be) : nullptr); }

  bool owns(bool ipv6, const std::uint8_t* dst) const noexcept;
  // The tailnet's ACLs for a packet coming in from a peer (`p` holds it).
  bool allows(const std::uint8_t* p, const inner_info& info) const noexcept;
};

}  // namespace lopower
