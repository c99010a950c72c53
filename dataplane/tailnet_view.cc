#include "dataplane/tailnet_view.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <type_traits>

#include "lopower/byte_order.h"

namespace lopower {

namespace {

constexpr std::uint8_t ipproto_tcp = 6, ipproto_udp = 17, ipproto_sctp = 132;

// A prefix length's mask over an address's big-endian words.
std::uint32_t v4_mask(unsigned length) noexcept { return length == 0 ? 0 : ~std::uint32_t{0} << (32 - length); }
std::uint64_t word_mask(unsigned bits) noexcept { return bits == 0 ? 0 : bits >= 64 ? ~std::uint64_t{0} : ~std::uint64_t{0} << (64 - bits); }

// An address key (a v4 word, or tailnet_routes' two-word v6_key) under a mask of the same kind.
template <class Key>
Key masked_by(const Key& key, const Key& mask) noexcept {
  if constexpr (std::is_integral_v<Key>)
    return key & mask;
  else
    return Key{key.high & mask.high, key.low & mask.low};
}

constexpr std::size_t linear_below = 16;

}  // namespace

template <class Key>
void tailnet_routes::length_table<Key>::merge(std::vector<std::pair<Key, wg_peer*>> added) {
  std::vector<std::pair<Key, wg_peer*>> all;
  all.reserve(keys.size() + added.size());
  for (std::size_t i = 0; i < keys.size(); ++i) all.emplace_back(keys[i], peers[i]);
  all.insert(all.end(), added.begin(), added.end());
  // Stable, then the first of each key kept: the earliest added wins.
  std::stable_sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  all.erase(std::unique(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.first == b.first; }), all.end());
  keys.clear();
  peers.clear();
  keys.reserve(all.size());
  peers.reserve(all.size());
  for (const auto& [key, peer] : all) {
    keys.push_back(key);
    peers.push_back(peer);
  }
}

template <class Key>
wg_peer* tailnet_routes::length_table<Key>::find(const Key& masked) const noexcept {
  // A few keys (a tailnet's handful of subnets of one length) are compared in
  // a row: cheaper than halving's mispredicted branches (route_bench).
  if (keys.size() <= linear_below) {
    for (std::size_t i = 0; i < keys.size(); ++i)
      if (keys[i] == masked) return peers[i];
    return nullptr;
  }
  const auto it = std::lower_bound(keys.begin(), keys.end(), masked);
  return it != keys.end() && *it == masked ? peers[static_cast<std::size_t>(it - keys.begin())] : nullptr;
}

template <class Key>
void tailnet_routes::merge_into(tables<Key>& into, unsigned length, Key mask,
                                std::vector<std::pair<Key, wg_peer*>> added) {
  auto it = std::find_if(into.begin(), into.end(), [length](const length_table<Key>& t) { return t.length <= length; });
  if (it == into.end() || it->length != length) it = into.insert(it, length_table<Key>{length, mask, {}, {}});
  for (auto& entry : added) entry.first = masked_by(entry.first, mask);
  it->merge(std::move(added));
}

template <class Key>
wg_peer* tailnet_routes::longest_match(const tables<Key>& in, const Key& address) noexcept {
  for (const length_table<Key>& t : in)
    if (wg_peer* peer = t.find(masked_by(address, t.mask))) return peer;
  return nullptr;
}

void tailnet_routes::add(const ip_prefix& prefix, wg_peer* peer) {
  if (prefix.length != 0) pending_.emplace_back(prefix, peer);
}

void tailnet_routes::finish() {
  if (pending_.empty()) return;
  // By length, in the order added (merge_into masks them; merge keeps the first of equal prefixes).
  std::map<unsigned, std::vector<std::pair<std::uint32_t, wg_peer*>>> v4;
  std::map<unsigned, std::vector<std::pair<v6_key, wg_peer*>>> v6;
  for (const auto& [prefix, peer] : pending_) {
    const std::uint8_t* bytes = prefix.address.bytes.data();
    if (prefix.address.family == ip_family::v6)
      v6[prefix.length].emplace_back(v6_key{load_be64(bytes), load_be64(bytes + 8)}, peer);
    else
      v4[prefix.length].emplace_back(load_be32(bytes), peer);
  }
  pending_ = {};  // its memory too: the view lives on, published
  for (auto& [length, added] : v4) merge_into(v4_, length, v4_mask(length), std::move(added));
  for (auto& [length, added] : v6)
    merge_into(v6_, length, v6_key{word_mask(length), word_mask(length > 64 ? length - 64u : 0u)}, std::move(added));
}

wg_peer* tailnet_routes::lookup(bool ipv6, const std::uint8_t* dst) const noexcept {
  return ipv6 ? longest_match(v6_, v6_key{load_be64(dst), load_be64(dst + 8)}) : longest_match(v4_, load_be32(dst));
}

std::size_t tailnet_routes::size() const noexcept {
  std::size_t n = 0;
  for (const auto& t : v4_) n += t.keys.size();
  for (const auto& t : v6_) n += t.keys.size();
  return n;
}

bool tailnet_view::owns(bool ipv6, const std::uint8_t* dst) const noexcept {
  return ipv6 ? has_v6 && std::memcmp(dst, v6, 16) == 0 : has_v4 && std::memcmp(dst, &v4_be, 4) == 0;
}

bool tailnet_view::allows(const std::uint8_t* p, const inner_info& info) const noexcept {
  std::optional<std::uint16_t> port;
  const bool has_ports = info.protocol == ipproto_tcp || info.protocol == ipproto_udp || info.protocol == ipproto_sctp;
  if (has_ports) {
    if (info.length < info.l4_offset + 4u) return false;
    port = static_cast<std::uint16_t>(p[info.l4_offset + 2] << 8 | p[info.l4_offset + 3]);
  }
  return filter_allows(filter, info.protocol, ip_address::from_bytes(info.ipv6, info.src),
                       ip_address::from_bytes(info.ipv6, info.dst), port);
}

}  // namespace lopower
