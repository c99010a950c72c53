#include "dataplane/device_directory.h"

#include "dataplane/wg_session.h"

namespace lopower {

device_directory::device_directory(std::optional<ip_prefix> v4_prefix, ip_prefix v6_prefix,
                                   const std::vector<wg_peer*>& devices)
    : v4_prefix_(v4_prefix), v6_prefix_(v6_prefix) {
  for (wg_peer* d : devices) {
    if (d->has_v4) v4_.emplace(d->v4_be, d);
    if (d->has_v6) v6_.emplace(key_of(d->v6), d);
  }
}

bool device_directory::covers(bool ipv6, const std::uint8_t* addr) const noexcept {
  if (ipv6) return v6_prefix_.contains(ip_address::from_bytes(true, addr));
  return v4_prefix_ && v4_prefix_->contains(ip_address::from_bytes(false, addr));
}

wg_peer* device_directory::find(bool ipv6, const std::uint8_t* addr) const noexcept {
  if (ipv6) {
    auto it = v6_.find(key_of(addr));
    return it == v6_.end() ? nullptr : it->second;
  }
  std::uint32_t a;
  std::memcpy(&a, addr, 4);
  auto it = v4_.find(a);
  return it == v4_.end() ? nullptr : it->second;
}

}  // namespace lopower
