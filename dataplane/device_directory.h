#pragma once
// Which device holds an inner address: what inbound tailnet traffic (route
// mode, port forwards) and device-to-device traffic are delivered through.
// Published by the control thread whenever a device is added or removed;
// immutable once published, replaced as a whole (RCU), so the workers read
// it with one acquire load and a hash lookup, no lock. The devices' peers
// outlive the directory that names them: a removed device's peer is retired
// after the directory that no longer holds it (dataplane::retire_device_peer
// waits a second).

#include <cstdint>
#include <cstring>
#include <optional>
#include <unordered_map>
#include <vector>

#include "lopower/net_addr.h"

namespace lopower {

struct wg_peer;

class device_directory {
 public:
  // `v4_prefix`/`v6_prefix`: the device prefixes (addresses inside them are
  // devices' or lopower's own); `devices`: the peers with their addresses.
  device_directory(std::optional<ip_prefix> v4_prefix, ip_prefix v6_prefix, const std::vector<wg_peer*>& devices);

  // Whether `addr` lies in a device prefix (then it is a device's, or nobody's).
  bool covers(bool ipv6, const std::uint8_t* addr) const noexcept;
  // The device whose address `addr` is, or nullptr.
  wg_peer* find(bool ipv6, const std::uint8_t* addr) const noexcept;
  std::size_t size() const noexcept { return v4_.size() + v6_.size(); }

 private:
  struct v6_key {
    std::uint64_t high, low;
    bool operator==(const v6_key&) const = default;
  };
  struct v6_hash {
    std::size_t operator()(const v6_key& k) const noexcept { return std::hash<std::uint64_t>{}(k.high * 31 ^ k.low); }
  };
  static v6_key key_of(const std::uint8_t* addr) noexcept {
    v6_key k;
    std::memcpy(&k.high, addr, 8);
    std::memcpy(&k.low, addr + 8, 8);
    return k;
  }

  std::optional<ip_prefix> v4_prefix_;
  ip_prefix v6_prefix_;
  std::unordered_map<std::uint32_t, wg_peer*> v4_;  // by the address as it is in the packet
  std::unordered_map<v6_key, wg_peer*, v6_hash> v6_;
};

}  // namespace lopower
