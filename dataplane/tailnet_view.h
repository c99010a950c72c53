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

// The tailnet's routes: every peer's AllowedIPs but default routes (those
// are `tailnet_view::exit_node`'s). Built by the control thread (`add` each
// prefix, then `finish`) before the view is published; immutable after, so
// the workers read it without locks.
//
// Routes are kept by family and prefix length: for each length present, the
// prefixes of that length, masked, in a sorted array found by binary search.
// A lookup tries the lengths longest first (a peer's own address, /32 or
// /128, is nearly every route and always the most specific match), masks
// the destination to each and stops at the first hit: log2(routes of that
// length) compares per length present, not one per route, on a tailnet of
// thousands of peers or of site routers with hundreds of subnets each.
// (rte_lpm is no fit: its 2^24-entry table per view, two views alive at each
// swap, in processes the tests start with a few MB of EAL memory.)
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
  // The finished routes (a prefix claimed twice counted once).
  std::size_t size() const noexcept;

 private:
  // An address as big-endian words: sorted by key is sorted by address.
  struct v6_key {
    std::uint64_t high = 0, low = 0;
    auto operator<=>(const v6_key&) const = default;
  };
  // The routes of one family and one prefix length: their prefixes masked
  // to it (as keys: v4 big-endian in a word, v6 as two), sorted and unique;
  // keys[i] is peers[i]'s.
  template <class Key>
  struct length_table {
    unsigned length = 0;
    Key mask{};
    std::vector<Key> keys;
    std::vector<wg_peer*> peers;
    void merge(std::vector<std::pair<Key, wg_peer*>> added);
    wg_peer* find(const Key& masked) const noexcept;
  };
  template <class Key>
  using tables = std::vector<length_table<Key>>;  // longest prefix first
  template <class Key>
  static void merge_into(tables<Key>& into, unsigned length, Key mask, std::vector<std::pair<Key, wg_peer*>> added);
  template <class Key>
  static wg_peer* longest_match(const tables<Key>& in, const Key& address) noexcept;

  tables<std::uint32_t> v4_;
  tables<v6_key> v6_;
  std::vector<std::pair<ip_prefix, wg_peer*>> pending_;  // added, not yet finished
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
