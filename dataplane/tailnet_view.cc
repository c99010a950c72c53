#include "dataplane/tailnet_view.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "lopower/byte_order.h"

namespace lopower {

namespace {

constexpr std::uint8_t ipproto_tcp = 6, ipproto_udp = 17, ipproto_sctp = 132;

bool is_host_route(const ip_prefix& p) noexcept { return p.length == (p.address.family == ip_family::v6 ? 128 : 32); }

}  // namespace

tailnet_route::tailnet_route(const ip_prefix& p, wg_peer* to) noexcept : prefix(p), peer(to) {
  std::uint8_t mask_bytes[16]{}, masked_bytes[16]{};
  unsigned bits = p.length;
  for (std::size_t i = 0; i < 16 && bits > 0; ++i) {
    const unsigned take = bits >= 8 ? 8 : bits;
    mask_bytes[i] = static_cast<std::uint8_t>(0xff00u >> take);
    masked_bytes[i] = static_cast<std::uint8_t>(p.address.bytes[i] & mask_bytes[i]);
    bits -= take;
  }
  std::memcpy(mask, mask_bytes, sizeof mask);
  std::memcpy(masked, masked_bytes, sizeof masked);
}

template <class Key>
void tailnet_routes::host_table<Key>::merge(std::vector<std::pair<Key, wg_peer*>> added) {
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
wg_peer* tailnet_routes::host_table<Key>::find(const Key& key) const noexcept {
  const auto it = std::lower_bound(keys.begin(), keys.end(), key);
  return it != keys.end() && *it == key ? peers[static_cast<std::size_t>(it - keys.begin())] : nullptr;
}

void tailnet_routes::add(const ip_prefix& prefix, wg_peer* peer) {
  if (prefix.length != 0) pending_.emplace_back(prefix, peer);
}

void tailnet_routes::finish() {
  if (pending_.empty()) return;
  std::vector<std::pair<std::uint32_t, wg_peer*>> v4;
  std::vector<std::pair<v6_key, wg_peer*>> v6;
  for (const tailnet_route& r : pending_) {
    const std::uint8_t* bytes = r.prefix.address.bytes.data();
    if (!is_host_route(r.prefix))
      subnets_.push_back(r);
    else if (r.prefix.address.family == ip_family::v6)
      v6.emplace_back(v6_key{load_be64(bytes), load_be64(bytes + 8)}, r.peer);
    else
      v4.emplace_back(load_be32(bytes), r.peer);
  }
  pending_ = {};  // its memory too: the view lives on, published
  v4_hosts_.merge(std::move(v4));
  v6_hosts_.merge(std::move(v6));
  std::stable_sort(subnets_.begin(), subnets_.end(),
                   [](const tailnet_route& a, const tailnet_route& b) { return a.prefix.length > b.prefix.length; });
}

wg_peer* tailnet_routes::lookup(bool ipv6, const std::uint8_t* dst) const noexcept {
  wg_peer* host = ipv6 ? v6_hosts_.find({load_be64(dst), load_be64(dst + 8)})
                       : v4_hosts_.find(load_be32(dst));
  if (host != nullptr) return host;
  // An IPv4 address in the first four bytes, the rest zero (and masked
  // off); loaded into registers, not memcpy'd into a zeroed array that is
  // read back as words (a store-forwarding stall).
  std::uint64_t words[2]{};
  if (ipv6) {
    std::memcpy(words, dst, 16);
  } else {
    std::uint32_t v4;
    std::memcpy(&v4, dst, 4);
    static_assert(std::endian::native == std::endian::little, "the low half of a word is its first four bytes");
    words[0] = v4;  // its bytes first, as memcpy would have put them
  }
  for (const tailnet_route& r : subnets_)
    if (r.holds(ipv6, words)) return r.peer;
  return nullptr;
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
